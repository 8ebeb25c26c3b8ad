//! The fair claim, org limits and usage windows on SQLite (see
//! `store/fairness.rs`).

use anyhow::Context;

use super::Tx;
use super::audit::append_audit;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::fairness::{OrgLimits, Reservation, Usage, candidates_per_org, fair_order};
use crate::store::delivery::{ClaimedRow, LeaseTerms};
use crate::store::fairness::{Decide, LimitsRow, UsageRow, limits_from, usage_from};
use crate::store::pending_usage::Counts;
use crate::store::sql::delivery::{CLAIMED, MARK_SENDING};
use crate::store::sql::fairness::{
    COUNT, COUNT_ONE, LEASE_ONE, LIMITS_OF, ORG_DUE, SQLITE_DUE_ORGS, UPSERT_LIMITS, USAGE_FROM,
};

/// Leases up to `limit` due rows, the orgs with due mail taking turns by
/// weight. The one writer makes it atomic; each step is an index probe.
pub fn lease_fairly(
    tx: &Tx<'_>,
    lease_id: &str,
    now: Millis,
    lease_until: Millis,
    limit: i64,
) -> anyhow::Result<usize> {
    let due: Vec<(String, i64)> = tx.all(SQLITE_DUE_ORGS, &[&now.0]).context("find orgs with due mail")?;
    if due.is_empty() {
        return Ok(0);
    }
    let total: i64 = due.iter().map(|(_, w)| *w).sum();
    let mut per_org = Vec::with_capacity(due.len());
    for (org, weight) in &due {
        // Alone, an org takes the whole batch; SQLite has no concurrent claims
        // to leave rows for.
        let take = if due.len() == 1 { limit } else { candidates_per_org(limit, *weight, total) };
        let rows: Vec<(String, i64)> = tx.all(ORG_DUE, &[org, &now.0, &take]).context("read due rows")?;
        per_org.push((*weight, rows));
    }
    let ids = fair_order(per_org, usize::try_from(limit).unwrap_or(0));
    for id in &ids {
        tx.execute(LEASE_ONE, &[&lease_id, &lease_until.0, id]).context("lease a row")?;
    }
    Ok(ids.len())
}

/// The express claim: `org`'s oldest due rows, on `terms`.
pub fn lease_org(tx: &Tx<'_>, lease_id: &str, org: &OrgId, terms: LeaseTerms) -> anyhow::Result<Vec<ClaimedRow>> {
    let LeaseTerms { now, until, limit } = terms;
    let rows: Vec<(String, i64)> = tx.all(ORG_DUE, &[&org.as_str(), &now.0, &limit]).context("read due rows")?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    for (id, _) in &rows {
        tx.execute(LEASE_ONE, &[&lease_id, &until.0, id]).context("lease a row")?;
    }
    tx.execute(MARK_SENDING, &[&lease_id, &now.0]).context("mark notifications sending")?;
    tx.all(CLAIMED, &[&lease_id]).context("read claimed rows")
}

pub fn set_limits(tx: &Tx<'_>, org: &OrgId, l: &OrgLimits, now: Millis, audit: &AuditEntry) -> anyhow::Result<()> {
    append_audit(tx, audit)?;
    tx.execute(
        UPSERT_LIMITS,
        &[
            &org.as_str(),
            &l.weight,
            &l.hourly_quota,
            &l.daily_quota,
            &l.quota_mode.as_str(),
            &l.api_rate_per_minute,
            &now.0,
        ],
    )
    .context("store org limits")?;
    Ok(())
}

/// Counts `n` new notifications of `org`, within its quota if it has one.
pub fn reserve(tx: &Tx<'_>, org: &OrgId, n: i64, now: Millis, decide: Decide) -> anyhow::Result<Reservation> {
    let (_, day) = crate::domain::fairness::windows(now);
    let org = org.as_str();
    let limits: Option<LimitsRow> = tx.optional(LIMITS_OF, &[&org]).context("read org limits")?;
    let limits = limits.map(limits_from).transpose()?.unwrap_or_default();
    let rows: Vec<UsageRow> = tx.all(USAGE_FROM, &[&org, &day]).context("read usage")?;
    let usage: Usage = usage_from(rows);
    let r = decide(&limits, &usage, n, now);
    if let Reservation::Counted { hour, day, .. } = &r {
        tx.execute(COUNT, &[&org, hour, day, &n]).context("count usage")?;
    }
    Ok(r)
}

/// Writes the summed usage counts of a batch of events
/// (`store/pending_usage.rs`).
pub fn count_usage(tx: &Tx<'_>, counts: &Counts) -> anyhow::Result<()> {
    for ((org, period, bucket), n) in counts.iter().filter(|(_, n)| **n != 0) {
        tx.execute(COUNT_ONE, &[&org.as_str(), period, bucket, n]).context("count usage")?;
    }
    Ok(())
}

/// Gives back `n` counted in the hour and day starting at `hour`, `day`.
pub fn unreserve(tx: &Tx<'_>, org: &OrgId, hour: i64, day: i64, n: i64) -> anyhow::Result<()> {
    tx.execute(COUNT, &[&org.as_str(), &hour, &day, &-n]).context("give back usage")?;
    Ok(())
}
