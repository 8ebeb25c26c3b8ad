//! Webhook endpoints and messages on PostgreSQL (see `store/webhooks.rs`).

use anyhow::Context;
use sqlx::{PgConnection, PgPool};

use super::audit::append_audit;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::webhooks::{MessageResult, WebhookEvent};
use crate::store::sql::webhooks::{
    CLAIM_PG, CLAIMED, DELETE_ENDPOINT, DELETE_SUBSCRIPTIONS, DELIVERED, DISABLE_FAILING, ENDPOINT_FAILING,
    ENDPOINT_OK, INSERT_ATTEMPT, INSERT_ENDPOINT, INSERT_SUBSCRIPTION, PG_ENQUEUE, RETRY, ROTATE, UPDATE_ENDPOINT,
};
use crate::store::webhooks::{ClaimedRow, EndpointWrite};

const DISABLED_REASON: &str = "every delivery failed for 24 hours";

async fn subscribe(tx: &mut PgConnection, w: &EndpointWrite<'_>) -> anyhow::Result<()> {
    let e = w.endpoint;
    sqlx::query(DELETE_SUBSCRIPTIONS).bind(&e.id).execute(&mut *tx).await.context("clear subscriptions")?;
    for t in &e.event_types {
        sqlx::query(INSERT_SUBSCRIPTION)
            .bind(&e.id)
            .bind(e.org.as_str())
            .bind(t)
            .execute(&mut *tx)
            .await
            .context("subscribe")?;
    }
    Ok(())
}

pub async fn insert(p: &PgPool, w: &EndpointWrite<'_>, sealed: &[u8], audit: &AuditEntry) -> anyhow::Result<()> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let e = w.endpoint;
    sqlx::query(INSERT_ENDPOINT)
        .bind(&e.id)
        .bind(e.org.as_str())
        .bind(&e.url)
        .bind(&e.description)
        .bind(&w.event_types_json)
        .bind(e.enabled)
        .bind(sealed)
        .bind(e.created_at.0)
        .execute(&mut *tx)
        .await
        .context("insert webhook endpoint")?;
    subscribe(&mut tx, w).await?;
    tx.commit().await.context("commit webhook endpoint")
}

pub async fn update(
    p: &PgPool,
    w: &EndpointWrite<'_>,
    rotation: Option<(Vec<u8>, Millis)>,
    audit: &AuditEntry,
) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let e = w.endpoint;
    let done = sqlx::query(UPDATE_ENDPOINT)
        .bind(e.org.as_str())
        .bind(&e.id)
        .bind(&e.url)
        .bind(&e.description)
        .bind(&w.event_types_json)
        .bind(e.enabled)
        .bind(e.disabled_reason.as_deref())
        .bind(e.failing_since.map(|m| m.0))
        .bind(e.updated_at.0)
        .execute(&mut *tx)
        .await
        .context("update webhook endpoint")?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    if let Some((sealed, until)) = rotation {
        sqlx::query(ROTATE)
            .bind(e.org.as_str())
            .bind(&e.id)
            .bind(until.0)
            .bind(sealed)
            .execute(&mut *tx)
            .await
            .context("rotate webhook secret")?;
    }
    subscribe(&mut tx, w).await?;
    tx.commit().await.context("commit webhook endpoint")?;
    Ok(true)
}

pub async fn delete(p: &PgPool, org: &OrgId, id: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let done = sqlx::query(DELETE_ENDPOINT)
        .bind(org.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("delete webhook endpoint")?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    tx.commit().await.context("commit webhook deletion")?;
    Ok(true)
}

/// The columns of `pg_enqueue!` (ids, orgs, types, payloads, times).
pub(super) type HookColumns<'a> = (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>, Vec<&'a str>, Vec<i64>);

pub(super) fn hook_columns(events: &[WebhookEvent]) -> HookColumns<'_> {
    (
        events.iter().map(|e| e.id.as_str()).collect(),
        events.iter().map(|e| e.org.as_str()).collect(),
        events.iter().map(|e| e.kind).collect(),
        events.iter().map(|e| e.payload.as_str()).collect(),
        events.iter().map(|e| e.at.0).collect(),
    )
}

/// One message per subscribed endpoint, inside the caller's transaction.
pub async fn enqueue(tx: &mut PgConnection, events: &[WebhookEvent]) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let (ids, orgs, kinds, payloads, at) = hook_columns(events);
    sqlx::query(PG_ENQUEUE)
        .bind(&ids)
        .bind(&orgs)
        .bind(&kinds)
        .bind(&payloads)
        .bind(&at)
        .execute(&mut *tx)
        .await
        .context("queue webhook messages")?;
    Ok(())
}

pub async fn claim(
    p: &PgPool,
    lease_id: &str,
    now: Millis,
    lease_until: Millis,
    limit: i64,
) -> anyhow::Result<Vec<ClaimedRow>> {
    let mut tx = p.begin().await.context("begin")?;
    let claimed = sqlx::query(CLAIM_PG)
        .bind(lease_id)
        .bind(lease_until.0)
        .bind(now.0)
        .bind(limit)
        .execute(&mut *tx)
        .await
        .context("claim webhook messages")?;
    if claimed.rows_affected() == 0 {
        return Ok(Vec::new());
    }
    let rows = sqlx::query_as(CLAIMED).bind(lease_id).fetch_all(&mut *tx).await.context("read claimed messages")?;
    tx.commit().await.context("commit webhook claim")?;
    Ok(rows)
}

pub async fn finish(
    p: &PgPool,
    lease_id: &str,
    results: &[MessageResult],
    now: Millis,
    disable_before: Millis,
) -> anyhow::Result<Vec<String>> {
    let mut tx = p.begin().await.context("begin")?;
    let mut disabled = Vec::new();
    for r in results {
        let moved = match r.retry_at {
            None => sqlx::query(DELIVERED).bind(r.seq).bind(lease_id).bind(now.0).execute(&mut *tx).await,
            Some(at) => sqlx::query(RETRY).bind(r.seq).bind(lease_id).bind(at.0).execute(&mut *tx).await,
        }
        .context("update webhook message")?
        .rows_affected();
        sqlx::query(INSERT_ATTEMPT)
            .bind(r.seq)
            .bind(r.attempt)
            .bind(now.0)
            .bind(r.status_code)
            .bind(r.latency_ms)
            .bind(r.error.as_deref())
            .execute(&mut *tx)
            .await
            .context("record webhook attempt")?;
        if moved == 0 {
            continue;
        }
        if r.delivered() {
            sqlx::query(ENDPOINT_OK).bind(&r.endpoint_id).execute(&mut *tx).await.context("endpoint ok")?;
        } else {
            sqlx::query(ENDPOINT_FAILING)
                .bind(&r.endpoint_id)
                .bind(now.0)
                .execute(&mut *tx)
                .await
                .context("endpoint failing")?;
            let done = sqlx::query(DISABLE_FAILING)
                .bind(&r.endpoint_id)
                .bind(now.0)
                .bind(disable_before.0)
                .bind(DISABLED_REASON)
                .execute(&mut *tx)
                .await
                .context("disable endpoint")?;
            if done.rows_affected() == 1 {
                disabled.push(r.endpoint_id.clone());
            }
        }
    }
    tx.commit().await.context("commit webhook results")?;
    Ok(disabled)
}
