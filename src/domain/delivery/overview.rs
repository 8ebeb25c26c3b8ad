//! What the operator console shows of delivery (issue 14): the delivery log
//! searched by status, recipient and time, and the dashboard's numbers.
//! Read-only; retries go through [`super::retry`] like the API's.

use super::{Notification, Status};
use crate::clock::Millis;
use crate::domain::orgs::Org;
use crate::domain::{OrgId, contains_pattern, smtp};
use crate::error::Error;
use crate::store::{LogQuery, Store};

pub const HOUR_MS: i64 = 3_600_000;
/// Hours the dashboard's chart covers.
pub const HOURS: usize = 24;

/// Filters of the delivery log.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub status: Option<Status>,
    /// Part of the recipient's address, any case.
    pub to: Option<String>,
    pub from: Option<Millis>,
    pub until: Option<Millis>,
}

/// A page of the org's delivery log, newest first, below id `before`.
pub async fn search(
    store: &Store,
    org: &OrgId,
    filter: &LogFilter,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Notification>, Error> {
    let pattern = filter.to.as_deref().map(|t| contains_pattern(&t.to_lowercase())).unwrap_or_default();
    let query = LogQuery {
        status: filter.status.map_or("", Status::as_str),
        to_pattern: &pattern,
        from: filter.from.unwrap_or(Millis(i64::MIN)),
        until: filter.until.unwrap_or(Millis(i64::MAX)),
        // Every id sorts below "~", so no cursor means "from the newest".
        before_id: before.unwrap_or("~"),
        limit: limit.clamp(1, 500),
    };
    Ok(store.search_notifications(org, &query).await?)
}

/// Attempts that ended sent, retrying or dead within one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourCounts {
    pub sent: i64,
    pub retrying: i64,
    pub dead: i64,
}

impl HourCounts {
    pub fn total(self) -> i64 {
        self.sent + self.retrying + self.dead
    }
}

/// One org's line on the dashboard.
#[derive(Debug, Clone)]
pub struct OrgHealth {
    pub org: Org,
    /// Notifications that are dead now.
    pub dead: i64,
    /// Rows in the outbox (waiting, retrying or being sent).
    pub queue_depth: i64,
    /// How long the oldest due row has waited, if one is due.
    pub oldest_due_ms: Option<i64>,
    /// Whether the org's mail goes through an SMTP server (its own enabled
    /// configuration or the instance settings), not to the outbox directory.
    pub smtp_configured: bool,
}

/// The dashboard of one org (an org admin) or of every org.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// Oldest first; the last is the hour up to now.
    pub hours: Vec<HourCounts>,
    pub last_hour: HourCounts,
    pub last_day: HourCounts,
    pub orgs: Vec<OrgHealth>,
}

pub async fn dashboard(store: &Store, only: Option<&OrgId>, now: Millis) -> Result<Dashboard, Error> {
    let since = Millis(now.0 - HOUR_MS * HOURS as i64);
    let mut hours = vec![HourCounts::default(); HOURS];
    for (bucket, outcome, count) in store.attempts_by_hour(only, since).await? {
        let Some(h) = usize::try_from(bucket).ok().and_then(|b| hours.get_mut(b)) else { continue };
        match outcome.as_str() {
            "sent" => h.sent += count,
            "retrying" => h.retrying += count,
            "dead" => h.dead += count,
            _ => {}
        }
    }
    let sum = |hs: &[HourCounts]| {
        hs.iter().fold(HourCounts::default(), |a, h| HourCounts {
            sent: a.sent + h.sent,
            retrying: a.retrying + h.retrying,
            dead: a.dead + h.dead,
        })
    };
    let last_hour = hours.last().copied().unwrap_or_default();
    let last_day = sum(&hours);
    let orgs = match only {
        Some(id) => store.org(id).await?.into_iter().collect(),
        None => store.orgs().await?,
    };
    let queues = store.outbox_queues(now).await?;
    let instance_smtp = smtp::instance_settings(store).await?.is_some();
    let mut health = Vec::with_capacity(orgs.len());
    for org in orgs {
        let queue = queues.iter().find(|q| q.org == org.id);
        let own = store.smtp_row(org.id.as_str()).await?.is_some_and(|row| row.enabled);
        health.push(OrgHealth {
            dead: store.dead_notifications(&org.id).await?,
            queue_depth: queue.map_or(0, |q| q.depth),
            oldest_due_ms: queue.and_then(|q| q.oldest_due).map(|t| (now.0 - t.0).max(0)),
            smtp_configured: own || instance_smtp,
            org,
        });
    }
    Ok(Dashboard { hours, last_hour, last_day, orgs: health })
}
