//! PostgreSQL on sqlx: the statements several writes share, as functions
//! over an open transaction's connection.

use anyhow::Context;
use sqlx::PgConnection;

use crate::domain::audit::{AuditEntry, Scope};
use crate::domain::delivery::NewEvent;
use crate::store::sql::audit::{BUMP_INSTANCE_SEQ, BUMP_ORG_SEQ, INSERT_AUDIT};
use crate::store::sql::delivery::{INSERT_EVENT, INSERT_NOTIFICATION, INSERT_OUTBOX};

/// Advances the audit sequence of `scope`: `(scope_id, seq)`. Taking the
/// number first also takes the scope's row lock, which orders concurrent
/// changes of one org.
pub async fn bump_sequence(tx: &mut PgConnection, scope: &Scope) -> anyhow::Result<(String, i64)> {
    let bumped: Option<(String, i64)> = match scope {
        Scope::Org(org) => sqlx::query_as(BUMP_ORG_SEQ).bind(org.as_str()).fetch_optional(&mut *tx).await,
        Scope::Instance => sqlx::query_as(BUMP_INSTANCE_SEQ).fetch_optional(&mut *tx).await,
    }
    .context("advance the audit sequence")?;
    bumped.context("the audited org or instance does not exist")
}

/// Writes the audit row for `entry` under the number [`bump_sequence`] gave.
pub async fn insert_audit(tx: &mut PgConnection, scope_id: &str, seq: i64, entry: &AuditEntry) -> anyhow::Result<()> {
    sqlx::query(INSERT_AUDIT)
        .bind(scope_id)
        .bind(seq)
        .bind(entry.at.0)
        .bind(entry.actor.as_str())
        .bind(entry.action)
        .bind(entry.resource_type)
        .bind(&entry.resource_id)
        .bind(entry.detail.to_string())
        .execute(&mut *tx)
        .await
        .context("write the audit row")?;
    Ok(())
}

/// Appends `entry` to its scope's log; the new sequence number.
pub async fn append_audit(tx: &mut PgConnection, entry: &AuditEntry) -> anyhow::Result<i64> {
    let (scope_id, seq) = bump_sequence(tx, &entry.scope).await?;
    insert_audit(tx, &scope_id, seq, entry).await?;
    Ok(seq)
}

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

/// True when a database error is a unique-constraint violation.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
