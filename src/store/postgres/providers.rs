//! Providers, health, rate slots and postponed sends on PostgreSQL (see
//! `store/providers.rs`). The rate slot is one upsert (its row lock orders
//! every node); the rest are short transactions.

use anyhow::Context;
use sqlx::PgPool;

use super::audit::append_audit;
use crate::clock::Millis;
use crate::domain::audit::AuditEntry;
use crate::store::providers::{ProviderRow, placed};
use crate::store::sql::providers::{
    ASYNC_COMMIT, CLAIM_PROBE, DELETE, DELETE_HEALTH, DELETE_RATE, DELETE_RESERVATION, FAILED, HEALTH_ONE, INSERT,
    ORDER, POSTPONE_OUTBOX, RESERVATION, RESERVE, SET_POSITION, TAKE_SLOT_PG, UNCOUNT_ATTEMPT, UPDATE,
};
use crate::store::{HealthRow, RateParams};

async fn renumber(tx: &mut sqlx::PgConnection, scope_id: &str, id: &str, wanted: i64) -> anyhow::Result<()> {
    let order: Vec<(String, i64)> =
        sqlx::query_as(ORDER).bind(scope_id).fetch_all(&mut *tx).await.context("read provider order")?;
    for (pid, pos) in placed(&order, id, wanted) {
        sqlx::query(SET_POSITION).bind(pid).bind(pos).execute(&mut *tx).await.context("place provider")?;
    }
    Ok(())
}

pub async fn save(p: &PgPool, r: &ProviderRow, expected: Option<i64>, audit: &AuditEntry) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let q = sqlx::query(if expected.is_some() { UPDATE } else { INSERT })
        .bind(&r.id)
        .bind(&r.scope_id)
        .bind(r.position)
        .bind(&r.name)
        .bind(&r.kind)
        .bind(r.enabled)
        .bind(&r.settings)
        .bind(&r.secret)
        .bind(&r.bounce_domain)
        .bind(r.max_per_minute)
        .bind(r.max_concurrent)
        .bind(r.version)
        .bind(r.created_at)
        .bind(r.updated_at);
    let q = match expected {
        Some(v) => q.bind(v),
        None => q,
    };
    if q.execute(&mut *tx).await.context("save provider")?.rows_affected() == 0 {
        return Ok(false);
    }
    renumber(&mut tx, &r.scope_id, &r.id, r.position).await?;
    tx.commit().await.context("commit provider")?;
    Ok(true)
}

pub async fn delete(p: &PgPool, scope_id: &str, id: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    if sqlx::query(DELETE).bind(id).bind(scope_id).execute(&mut *tx).await.context("delete provider")?.rows_affected()
        == 0
    {
        return Ok(false);
    }
    sqlx::query(DELETE_HEALTH).bind(id).execute(&mut *tx).await.context("delete provider health")?;
    sqlx::query(DELETE_RATE).bind(id).execute(&mut *tx).await.context("delete provider rate")?;
    let order: Vec<(String, i64)> =
        sqlx::query_as(ORDER).bind(scope_id).fetch_all(&mut *tx).await.context("read provider order")?;
    if let Some((first, _)) = order.first() {
        renumber(&mut tx, scope_id, first, 1).await?;
    }
    tx.commit().await.context("commit provider deletion")?;
    Ok(true)
}

pub async fn failed(
    p: &PgPool,
    id: &str,
    now: Millis,
    error: &str,
    threshold: i64,
    open_until: Millis,
) -> anyhow::Result<()> {
    sqlx::query(FAILED)
        .bind(id)
        .bind(now.0)
        .bind(error)
        .bind(threshold)
        .bind(open_until.0)
        .execute(p)
        .await
        .context("record provider failure")?;
    Ok(())
}

pub async fn claim_probe(p: &PgPool, id: &str, now: Millis, until: Millis) -> anyhow::Result<Option<Option<i64>>> {
    let claimed =
        sqlx::query(CLAIM_PROBE).bind(id).bind(now.0).bind(until.0).execute(p).await.context("claim probe")?;
    if claimed.rows_affected() > 0 {
        return Ok(None);
    }
    let h: Option<HealthRow> =
        sqlx::query_as(HEALTH_ONE).bind(id).fetch_optional(p).await.context("read provider health")?;
    Ok(Some(h.and_then(|h| h.open_until)))
}

pub async fn rate_slot(
    p: &PgPool,
    id: &str,
    notification: &str,
    now: Millis,
    rate: RateParams,
) -> anyhow::Result<Millis> {
    let mut tx = p.begin().await.context("begin")?;
    // Every send of the provider, on every node, passes its one
    // `provider_rate` row: the row lock must not be held through a WAL
    // flush. A slot lost to a crash only lets one mail more through.
    sqlx::query(ASYNC_COMMIT).execute(&mut *tx).await.context("async commit")?;
    let reserved: Option<(i64,)> = sqlx::query_as(RESERVATION)
        .bind(notification)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .context("read reservation")?;
    if let Some((at,)) = reserved {
        // Back early (another node's clock): keep waiting for it.
        if at > now.0 + rate.lead {
            return Ok(Millis(at));
        }
        sqlx::query(DELETE_RESERVATION).bind(notification).bind(id).execute(&mut *tx).await.context("use")?;
        // Its slot has come: use it; long gone: a new one.
        if at >= now.0 - rate.tolerance {
            tx.commit().await.context("commit rate slot")?;
            return Ok(Millis(at.max(now.0)));
        }
    }
    let (slot,): (i64,) = sqlx::query_as(TAKE_SLOT_PG)
        .bind(id)
        .bind(now.0)
        .bind(rate.interval)
        .fetch_one(&mut *tx)
        .await
        .context("take a rate slot")?;
    if slot > now.0 + rate.lead {
        sqlx::query(RESERVE)
            .bind(notification)
            .bind(id)
            .bind(slot)
            .execute(&mut *tx)
            .await
            .context("reserve a rate slot")?;
    }
    tx.commit().await.context("commit rate slot")?;
    Ok(Millis(slot))
}

pub async fn postpone(p: &PgPool, lease_id: &str, rows: &[(String, Millis)]) -> anyhow::Result<()> {
    let mut tx = p.begin().await.context("begin")?;
    // Lost in a crash, the rows come back when their lease ends (the
    // attempt then counted): no need to wait for the flush.
    sqlx::query(ASYNC_COMMIT).execute(&mut *tx).await.context("async commit")?;
    for (id, at) in rows {
        let moved = sqlx::query(POSTPONE_OUTBOX)
            .bind(id)
            .bind(lease_id)
            .bind(at.0)
            .execute(&mut *tx)
            .await
            .context("postpone outbox row")?;
        if moved.rows_affected() > 0 {
            sqlx::query(UNCOUNT_ATTEMPT).bind(id).execute(&mut *tx).await.context("uncount attempt")?;
        }
    }
    tx.commit().await.context("commit postponement")?;
    Ok(())
}
