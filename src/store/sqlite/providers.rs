//! Providers, health, rate slots and postponed sends on SQLite (see
//! `store/providers.rs`). One writer per process, and `BEGIN IMMEDIATE`
//! across processes: each function here is atomic for every process on
//! the file.

use anyhow::Context;

use super::Tx;
use super::audit::append_audit;
use crate::clock::Millis;
use crate::domain::audit::AuditEntry;
use crate::store::providers::{ProviderRow, placed};
use crate::store::sql::providers::{
    CLAIM_PROBE, DELETE, DELETE_HEALTH, DELETE_RATE, DELETE_RESERVATION, FAILED, HEALTH_ONE, INSERT, ORDER,
    POSTPONE_OUTBOX, RESERVATION, RESERVE, SET_POSITION, TAKE_SLOT_SQLITE, UNCOUNT_ATTEMPT, UPDATE,
};
use crate::store::{HealthRow, RateParams};

fn renumber(tx: &Tx<'_>, scope_id: &str, id: &str, wanted: i64) -> anyhow::Result<()> {
    let order: Vec<(String, i64)> = tx.all(ORDER, &[&scope_id]).context("read provider order")?;
    for (pid, pos) in placed(&order, id, wanted) {
        tx.execute(SET_POSITION, &[&pid, &pos]).context("place provider")?;
    }
    Ok(())
}

pub fn save(tx: &Tx<'_>, r: &ProviderRow, expected: Option<i64>, audit: &AuditEntry) -> anyhow::Result<bool> {
    append_audit(tx, audit)?;
    let written = match expected {
        None => tx.execute(
            INSERT,
            &[
                &r.id,
                &r.scope_id,
                &r.position,
                &r.name,
                &r.kind,
                &r.enabled,
                &r.settings,
                &r.secret,
                &r.bounce_domain,
                &r.max_per_minute,
                &r.max_concurrent,
                &r.version,
                &r.created_at,
                &r.updated_at,
            ],
        ),
        Some(v) => tx.execute(
            UPDATE,
            &[
                &r.id,
                &r.scope_id,
                &r.position,
                &r.name,
                &r.kind,
                &r.enabled,
                &r.settings,
                &r.secret,
                &r.bounce_domain,
                &r.max_per_minute,
                &r.max_concurrent,
                &r.version,
                &r.created_at,
                &r.updated_at,
                &v,
            ],
        ),
    }
    .context("save provider")?;
    if written == 0 {
        tx.discard();
        return Ok(false);
    }
    renumber(tx, &r.scope_id, &r.id, r.position)?;
    Ok(true)
}

pub fn delete(tx: &Tx<'_>, scope_id: &str, id: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
    append_audit(tx, audit)?;
    if tx.execute(DELETE, &[&id, &scope_id]).context("delete provider")? == 0 {
        tx.discard();
        return Ok(false);
    }
    tx.execute(DELETE_HEALTH, &[&id]).context("delete provider health")?;
    tx.execute(DELETE_RATE, &[&id]).context("delete provider rate")?;
    // Close the gap it leaves.
    let order: Vec<(String, i64)> = tx.all(ORDER, &[&scope_id]).context("read provider order")?;
    if let Some((first, _)) = order.first() {
        renumber(tx, scope_id, first, 1)?;
    }
    Ok(true)
}

pub fn failed(
    tx: &Tx<'_>,
    id: &str,
    now: Millis,
    error: &str,
    threshold: i64,
    open_until: Millis,
) -> anyhow::Result<()> {
    tx.execute(FAILED, &[&id, &now.0, &error, &threshold, &open_until.0]).context("record provider failure")?;
    Ok(())
}

pub fn claim_probe(tx: &Tx<'_>, id: &str, now: Millis, until: Millis) -> anyhow::Result<Option<Option<i64>>> {
    if tx.execute(CLAIM_PROBE, &[&id, &now.0, &until.0]).context("claim probe")? > 0 {
        return Ok(None);
    }
    let h: Option<HealthRow> = tx.optional(HEALTH_ONE, &[&id]).context("read provider health")?;
    Ok(Some(h.and_then(|h| h.open_until)))
}

pub fn rate_slot(tx: &Tx<'_>, id: &str, notification: &str, now: Millis, rate: RateParams) -> anyhow::Result<Millis> {
    let reserved: Option<(i64,)> = tx.optional(RESERVATION, &[&notification, &id]).context("read reservation")?;
    if let Some((at,)) = reserved {
        // Back early (another node's clock): keep waiting for it.
        if at > now.0 + rate.lead {
            return Ok(Millis(at));
        }
        tx.execute(DELETE_RESERVATION, &[&notification, &id]).context("use reservation")?;
        // Its slot has come: use it; long gone: a new one.
        if at >= now.0 - rate.tolerance {
            return Ok(Millis(at.max(now.0)));
        }
    }
    let (slot,): (i64,) = tx.optional(TAKE_SLOT_SQLITE, &[&id, &now.0, &rate.interval])?.context("take a rate slot")?;
    if slot > now.0 + rate.lead {
        tx.execute(RESERVE, &[&notification, &id, &slot]).context("reserve a rate slot")?;
    }
    Ok(Millis(slot))
}

pub fn postpone(tx: &Tx<'_>, lease_id: &str, rows: &[(String, Millis)]) -> anyhow::Result<()> {
    for (id, at) in rows {
        if tx.execute(POSTPONE_OUTBOX, &[id, &lease_id, &at.0]).context("postpone outbox row")? > 0 {
            tx.execute(UNCOUNT_ATTEMPT, &[id]).context("uncount attempt")?;
        }
    }
    Ok(())
}
