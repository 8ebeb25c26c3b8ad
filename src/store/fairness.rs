//! Org limits, usage windows and the fair claim's helpers (issue 19). The
//! rules are in `domain/fairness.rs`; the claim itself is
//! [`Store::claim_outbox`] (`store/delivery.rs`).

use anyhow::Context;

use super::delivery::{ClaimedRow, LeaseTerms, claimed_from};
use super::sql::fairness::{LIMITS_OF, RATE_OVERRIDES, USAGE_FROM};
use super::{Db, Store, postgres, read_all, read_optional, row, sqlite};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::delivery::Claimed;
use crate::domain::fairness::{OrgLimits, QuotaMode, Reservation, Usage, windows};

/// The quota rule the store applies inside its transaction.
pub type Decide = fn(&OrgLimits, &Usage, i64, Millis) -> Reservation;

row! {
    /// An `org_limits` row (`LIMITS_OF`).
    pub(super) struct LimitsRow {
        weight: i64,
        hourly_quota: Option<i64>,
        daily_quota: Option<i64>,
        quota_mode: String,
        api_rate: Option<i64>,
    }
}

row! {
    /// An `org_usage` row (`USAGE_FROM`).
    pub(super) struct UsageRow {
        period: String,
        bucket: i64,
        used: i64,
    }
}

pub(super) fn limits_from(row: LimitsRow) -> anyhow::Result<OrgLimits> {
    let LimitsRow { weight, hourly_quota, daily_quota, quota_mode, api_rate } = row;
    Ok(OrgLimits {
        weight,
        hourly_quota,
        daily_quota,
        quota_mode: QuotaMode::parse(&quota_mode).with_context(|| format!("unknown quota mode {quota_mode:?}"))?,
        api_rate_per_minute: api_rate,
    })
}

pub(super) fn usage_from(rows: Vec<UsageRow>) -> Usage {
    let mut usage = Usage::default();
    for UsageRow { period, bucket, used } in rows {
        match period.as_str() {
            "hour" => usage.hours.insert(bucket, used),
            _ => usage.days.insert(bucket, used),
        };
    }
    usage
}

impl Store {
    /// The org's limits; `None` when it has none of its own.
    pub async fn org_limits(&self, org: &OrgId) -> anyhow::Result<Option<OrgLimits>> {
        let row: Option<LimitsRow> = read_optional!(self, LIMITS_OF, org.as_str()).context("read org limits")?;
        row.map(limits_from).transpose()
    }

    /// Replaces the org's limits, with its audit row.
    pub async fn set_org_limits(
        &self,
        org: &OrgId,
        limits: &OrgLimits,
        now: Millis,
        audit: &AuditEntry,
    ) -> anyhow::Result<()> {
        // Cleared after the commit, so this node's next event sees the change.
        let _forget = super::cache::ClearOnDrop(&self.cache.limits);
        match &self.db {
            Db::Sqlite(db) => {
                let (org, limits, audit) = (org.clone(), limits.clone(), audit.clone());
                db.write(move |tx| sqlite::fairness::set_limits(tx, &org, &limits, now, &audit)).await
            }
            Db::Postgres(p) => postgres::fairness::set_limits(p, org, limits, now, audit).await,
        }
    }

    /// The express claim (`domain::fairness::express_orgs`): leases `org`'s
    /// oldest due rows on `terms`, like [`Store::claim_outbox`] but for one
    /// org.
    pub async fn claim_org_outbox(
        &self,
        lease_id: &str,
        org: &OrgId,
        terms: LeaseTerms,
    ) -> anyhow::Result<Vec<Claimed>> {
        let rows: Vec<ClaimedRow> = match &self.db {
            Db::Sqlite(db) => {
                let (lease_id, org) = (lease_id.to_owned(), org.clone());
                db.write_urgent(move |tx| sqlite::fairness::lease_org(tx, &lease_id, &org, terms)).await?
            }
            Db::Postgres(p) => postgres::fairness::claim_org(p, lease_id, org, terms).await?,
        };
        Ok(rows.into_iter().map(claimed_from).collect())
    }

    /// Every org's own API rate (requests per minute per token).
    pub async fn api_rate_overrides(&self) -> anyhow::Result<Vec<(OrgId, i64)>> {
        let rows: Vec<(String, i64)> = read_all!(self, RATE_OVERRIDES).context("read API rate overrides")?;
        Ok(rows.into_iter().map(|(o, r)| (OrgId::from_db(o), r)).collect())
    }

    /// The org's usage from the day starting at `day` on (today, and mail
    /// held for later windows).
    pub async fn org_usage(&self, org: &OrgId, day: i64) -> anyhow::Result<Usage> {
        let rows: Vec<UsageRow> = read_all!(self, USAGE_FROM, org.as_str(), day).context("read usage")?;
        Ok(usage_from(rows))
    }

    /// Counts `n` new notifications of `org` under `decide` (the quota rule),
    /// atomically with respect to every other reservation of the org, on
    /// every node.
    pub async fn reserve_usage(&self, org: &OrgId, n: i64, now: Millis, decide: Decide) -> anyhow::Result<Reservation> {
        // Without a quota nothing is decided: the count waits for the
        // committer's next transaction (`pending_usage.rs`).
        if !self.has_quota_cached(org).await? {
            let (hour, day) = windows(now);
            self.pending_usage.add(org.as_str(), hour, day, n);
            return Ok(Reservation::Counted { hour, day, release_at: None });
        }
        match &self.db {
            Db::Sqlite(db) => {
                let org = org.clone();
                db.write(move |tx| sqlite::fairness::reserve(tx, &org, n, now, decide)).await
            }
            Db::Postgres(p) => postgres::fairness::reserve(p, org, n, now, decide).await,
        }
    }

    /// Whether the org has an hourly or daily quota, from the cache of
    /// limits rows (`cache.rs`: a change holds at once on this node and
    /// within 500 ms on the others).
    async fn has_quota_cached(&self, org: &OrgId) -> anyhow::Result<bool> {
        let limits = match self.cache.limits.get(org.as_str()) {
            Some(limits) => limits,
            None => {
                let ticket = self.cache.limits.ticket();
                let limits = self.org_limits(org).await?;
                self.cache.limits.put(ticket, org.as_str().to_owned(), limits.clone());
                limits
            }
        };
        Ok(limits.is_some_and(|l| l.has_quota()))
    }

    /// Gives back a reservation whose event was not written.
    pub async fn unreserve_usage(&self, org: &OrgId, hour: i64, day: i64, n: i64) -> anyhow::Result<()> {
        if self.pending_usage.give_back(org.as_str(), hour, day, n) {
            return Ok(());
        }
        match &self.db {
            Db::Sqlite(db) => {
                let org = org.clone();
                db.write(move |tx| sqlite::fairness::unreserve(tx, &org, hour, day, n)).await
            }
            Db::Postgres(p) => postgres::fairness::unreserve(p, org, hour, day, n).await,
        }
    }
}
