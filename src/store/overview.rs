//! Read-only views of delivery for the operator console (issue 14): the
//! delivery log with filters, attempts per hour and outcome, queue depth,
//! dead mail per org.

use anyhow::Context;

use super::delivery::{NotificationRow, notification_from};
use super::sql::overview::{DEAD, HOURLY, QUEUES, SEARCH};
use super::{Store, read_all, read_optional};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::delivery::Notification;

/// Filters of the console's delivery log; empty strings switch one off.
#[derive(Debug, Clone)]
pub struct LogQuery<'a> {
    pub status: &'a str,
    /// A `LIKE` pattern over the lower-cased recipient, or `""`.
    pub to_pattern: &'a str,
    pub from: Millis,
    pub until: Millis,
    pub before_id: &'a str,
    pub limit: u32,
}

/// One org's outbox: rows in it and the oldest due time of those waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRow {
    pub org: OrgId,
    pub depth: i64,
    pub oldest_due: Option<Millis>,
}

impl Store {
    pub async fn search_notifications(&self, org: &OrgId, q: &LogQuery<'_>) -> anyhow::Result<Vec<Notification>> {
        let rows: Vec<NotificationRow> = read_all!(
            self,
            SEARCH,
            org.as_str(),
            q.before_id,
            q.status,
            q.to_pattern,
            q.from.0,
            q.until.0,
            i64::from(q.limit)
        )
        .context("search notifications")?;
        rows.into_iter().map(notification_from).collect()
    }

    /// `(hour, outcome, count)` of attempts since `since`, of one org or all.
    pub async fn attempts_by_hour(
        &self,
        org: Option<&OrgId>,
        since: Millis,
    ) -> anyhow::Result<Vec<(i64, String, i64)>> {
        let org = org.map(OrgId::as_str).unwrap_or("");
        read_all!(self, HOURLY, since.0, org).context("count attempts by hour")
    }

    pub async fn outbox_queues(&self, now: Millis) -> anyhow::Result<Vec<QueueRow>> {
        let rows: Vec<(String, i64, Option<i64>)> = read_all!(self, QUEUES, now.0).context("outbox per org")?;
        Ok(rows
            .into_iter()
            .map(|(org, depth, oldest)| QueueRow { org: OrgId::from_db(org), depth, oldest_due: oldest.map(Millis) })
            .collect())
    }

    pub async fn dead_notifications(&self, org: &OrgId) -> anyhow::Result<i64> {
        let row: Option<(i64,)> = read_optional!(self, DEAD, org.as_str()).context("count dead notifications")?;
        Ok(row.map_or(0, |(n,)| n))
    }
}
