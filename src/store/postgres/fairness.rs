//! The fair claim, org limits and usage windows on PostgreSQL (see
//! `store/fairness.rs`). The claim itself is `CLAIM_FAIR_PG`, one statement,
//! run by `postgres/delivery.rs`; an express claim made by the commit of new
//! events is part of `PG_COMMIT_EVENTS`.

use anyhow::Context;
use sqlx::PgPool;

use super::audit::append_audit;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::fairness::{OrgLimits, Reservation, windows};
use crate::store::delivery::{ClaimedRow, LeaseTerms};
use crate::store::fairness::{Decide, LimitsRow, UsageRow, limits_from, usage_from};
use crate::store::sql::fairness::CLAIM_ORG_PG;
use crate::store::sql::fairness::{COUNT, LIMITS_OF_FOR_UPDATE, PG_COUNT_UNLIMITED, UPSERT_LIMITS, USAGE_FROM};

/// The express claim: `org`'s oldest due rows that no other claim holds,
/// on `terms`, marked sending (one statement).
pub async fn claim_org(p: &PgPool, lease_id: &str, org: &OrgId, terms: LeaseTerms) -> anyhow::Result<Vec<ClaimedRow>> {
    sqlx::query_as(CLAIM_ORG_PG)
        .bind(lease_id)
        .bind(terms.until.0)
        .bind(terms.now.0)
        .bind(org.as_str())
        .bind(terms.limit)
        .fetch_all(p)
        .await
        .context("claim an org's outbox rows")
}

pub async fn set_limits(p: &PgPool, org: &OrgId, l: &OrgLimits, now: Millis, audit: &AuditEntry) -> anyhow::Result<()> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    sqlx::query(UPSERT_LIMITS)
        .bind(org.as_str())
        .bind(l.weight)
        .bind(l.hourly_quota)
        .bind(l.daily_quota)
        .bind(l.quota_mode.as_str())
        .bind(l.api_rate_per_minute)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .context("store org limits")?;
    tx.commit().await.context("commit org limits")
}

/// Counts `n` new notifications of `org`. Without a quota that is one
/// statement; with one, the org's limits row is locked so that its
/// reservations take turns across nodes, and each reads the usage the
/// previous one committed.
pub async fn reserve(p: &PgPool, org: &OrgId, n: i64, now: Millis, decide: Decide) -> anyhow::Result<Reservation> {
    let (hour, day) = windows(now);
    let counted = sqlx::query(PG_COUNT_UNLIMITED)
        .bind(org.as_str())
        .bind(hour)
        .bind(day)
        .bind(n)
        .execute(p)
        .await
        .context("count usage")?;
    if counted.rows_affected() > 0 {
        return Ok(Reservation::Counted { hour, day, release_at: None });
    }
    let mut tx = p.begin().await.context("begin")?;
    let limits: Option<LimitsRow> = sqlx::query_as(LIMITS_OF_FOR_UPDATE)
        .bind(org.as_str())
        .fetch_optional(&mut *tx)
        .await
        .context("read limits")?;
    let limits = limits.map(limits_from).transpose()?.unwrap_or_default();
    let rows: Vec<UsageRow> =
        sqlx::query_as(USAGE_FROM).bind(org.as_str()).bind(day).fetch_all(&mut *tx).await.context("read usage")?;
    let r = decide(&limits, &usage_from(rows), n, now);
    if let Reservation::Counted { hour, day, .. } = &r {
        sqlx::query(COUNT).bind(org.as_str()).bind(hour).bind(day).bind(n).execute(&mut *tx).await.context("count")?;
    }
    tx.commit().await.context("commit reservation")?;
    Ok(r)
}

pub async fn unreserve(p: &PgPool, org: &OrgId, hour: i64, day: i64, n: i64) -> anyhow::Result<()> {
    sqlx::query(COUNT).bind(org.as_str()).bind(hour).bind(day).bind(-n).execute(p).await.context("give back usage")?;
    Ok(())
}
