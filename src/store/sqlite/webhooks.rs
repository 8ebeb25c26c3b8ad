//! Webhook endpoints and messages on SQLite (see `store/webhooks.rs`).

use anyhow::Context;

use super::Tx;
use super::audit::append_audit;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::webhooks::{MessageResult, WebhookEvent};
use crate::store::sql::webhooks::{
    CLAIM_SQLITE, CLAIMED, DELETE_ENDPOINT, DELETE_SUBSCRIPTIONS, DELIVERED, DISABLE_FAILING, ENDPOINT_FAILING,
    ENDPOINT_OK, ENQUEUE, INSERT_ATTEMPT, INSERT_ENDPOINT, INSERT_SUBSCRIPTION, RETRY, ROTATE, UPDATE_ENDPOINT,
};
use crate::store::webhooks::{ClaimedRow, EndpointWrite};

const DISABLED_REASON: &str = "every delivery failed for 24 hours";

fn subscribe(tx: &Tx<'_>, w: &EndpointWrite<'_>) -> anyhow::Result<()> {
    let e = w.endpoint;
    tx.execute(DELETE_SUBSCRIPTIONS, &[&e.id]).context("clear subscriptions")?;
    for t in &e.event_types {
        tx.execute(INSERT_SUBSCRIPTION, &[&e.id, &e.org.as_str(), t]).context("subscribe")?;
    }
    Ok(())
}

pub fn insert(tx: &Tx<'_>, w: &EndpointWrite<'_>, sealed: &[u8], audit: &AuditEntry) -> anyhow::Result<()> {
    append_audit(tx, audit)?;
    let e = w.endpoint;
    tx.execute(
        INSERT_ENDPOINT,
        &[&e.id, &e.org.as_str(), &e.url, &e.description, &w.event_types_json, &e.enabled, &sealed, &e.created_at.0],
    )
    .context("insert webhook endpoint")?;
    subscribe(tx, w)
}

pub fn update(
    tx: &Tx<'_>,
    w: &EndpointWrite<'_>,
    rotation: Option<(Vec<u8>, Millis)>,
    audit: &AuditEntry,
) -> anyhow::Result<bool> {
    append_audit(tx, audit)?;
    let e = w.endpoint;
    let org = e.org.as_str();
    let n = tx
        .execute(
            UPDATE_ENDPOINT,
            &[
                &org,
                &e.id,
                &e.url,
                &e.description,
                &w.event_types_json,
                &e.enabled,
                &e.disabled_reason,
                &e.failing_since.map(|m| m.0),
                &e.updated_at.0,
            ],
        )
        .context("update webhook endpoint")?;
    if n == 0 {
        tx.discard();
        return Ok(false);
    }
    if let Some((sealed, until)) = rotation {
        tx.execute(ROTATE, &[&org, &e.id, &until.0, &sealed]).context("rotate webhook secret")?;
    }
    subscribe(tx, w)?;
    Ok(true)
}

pub fn delete(tx: &Tx<'_>, org: &OrgId, id: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
    append_audit(tx, audit)?;
    let n = tx.execute(DELETE_ENDPOINT, &[&org.as_str(), &id]).context("delete webhook endpoint")?;
    if n == 0 {
        tx.discard();
    }
    Ok(n == 1)
}

/// One message per subscribed endpoint, inside the caller's transaction.
pub fn enqueue(tx: &Tx<'_>, events: &[WebhookEvent]) -> anyhow::Result<()> {
    for e in events {
        tx.execute(ENQUEUE, &[&e.id, &e.org.as_str(), &e.kind, &e.payload, &e.at.0])
            .context("queue webhook message")?;
    }
    Ok(())
}

pub fn claim(
    tx: &Tx<'_>,
    lease_id: &str,
    now: Millis,
    lease_until: Millis,
    limit: i64,
) -> anyhow::Result<Vec<ClaimedRow>> {
    if tx.execute(CLAIM_SQLITE, &[&lease_id, &lease_until.0, &now.0, &limit]).context("claim webhook messages")? == 0 {
        return Ok(Vec::new());
    }
    tx.all(CLAIMED, &[&lease_id]).context("read claimed webhook messages")
}

pub fn finish(
    tx: &Tx<'_>,
    lease_id: &str,
    results: &[MessageResult],
    now: Millis,
    disable_before: Millis,
) -> anyhow::Result<Vec<String>> {
    let mut disabled = Vec::new();
    for r in results {
        let moved = match r.retry_at {
            None => tx.execute(DELIVERED, &[&r.seq, &lease_id, &now.0]),
            Some(at) => tx.execute(RETRY, &[&r.seq, &lease_id, &at.0]),
        }
        .context("update webhook message")?;
        tx.execute(INSERT_ATTEMPT, &[&r.seq, &r.attempt, &now.0, &r.status_code, &r.latency_ms, &r.error])
            .context("record webhook attempt")?;
        if moved == 0 {
            continue;
        }
        if r.delivered() {
            tx.execute(ENDPOINT_OK, &[&r.endpoint_id]).context("endpoint ok")?;
        } else {
            tx.execute(ENDPOINT_FAILING, &[&r.endpoint_id, &now.0]).context("endpoint failing")?;
            if tx
                .execute(DISABLE_FAILING, &[&r.endpoint_id, &now.0, &disable_before.0, &DISABLED_REASON])
                .context("disable endpoint")?
                == 1
            {
                disabled.push(r.endpoint_id.clone());
            }
        }
    }
    Ok(disabled)
}
