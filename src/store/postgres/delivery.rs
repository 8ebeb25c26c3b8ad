//! Events, the outbox and idempotency keys on PostgreSQL (see
//! `store/delivery.rs`).

use anyhow::Context;
use sqlx::PgConnection;

use crate::domain::delivery::NewEvent;
use crate::store::sql::delivery::{INSERT_EVENT, INSERT_NOTIFICATION, INSERT_OUTBOX};

/// Writes an event, its notifications and their outbox rows (the writes
/// that queue a mail together with another change; the hot path of
/// `POST /v1/events` writes whole batches with `UNNEST`).
pub async fn insert_event_rows(tx: &mut PgConnection, e: &NewEvent) -> anyhow::Result<()> {
    sqlx::query(INSERT_EVENT)
        .bind(&e.id)
        .bind(e.org.as_str())
        .bind(&e.kind)
        .bind(e.suppressed.as_deref())
        .bind(e.created_at.0)
        .execute(&mut *tx)
        .await
        .context("insert event")?;
    for n in &e.notifications {
        sqlx::query(INSERT_NOTIFICATION)
            .bind(&n.id)
            .bind(e.org.as_str())
            .bind(&e.id)
            .bind(&e.kind)
            .bind(&n.to_addr)
            .bind(n.to_name.as_deref())
            .bind(&n.subject)
            .bind(&n.body_text)
            .bind(n.body_html.as_deref())
            .bind(&n.locale)
            .bind(e.created_at.0)
            .bind(n.attachments.as_deref())
            .execute(&mut *tx)
            .await
            .context("insert notification")?;
        sqlx::query(INSERT_OUTBOX)
            .bind(&n.id)
            .bind(e.org.as_str())
            .bind(e.created_at.0)
            .execute(&mut *tx)
            .await
            .context("insert outbox row")?;
    }
    Ok(())
}
