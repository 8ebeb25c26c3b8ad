//! The audit sequence and rows on PostgreSQL (see `store/audit.rs`).

use anyhow::Context;
use sqlx::{PgConnection, PgPool};

use crate::clock::Millis;
use crate::domain::audit::{AuditEntry, Scope};
use crate::store::sql::audit::{BUMP_INSTANCE_SEQ, BUMP_ORG_SEQ, INSERT_AUDIT, INSERT_INSTANCE, SET_KEY_CHECK};

/// Creates the instance row unless there is one.
pub async fn insert_instance(p: &PgPool, fresh: &str, now: Millis) -> anyhow::Result<()> {
    sqlx::query(INSERT_INSTANCE).bind(fresh).bind(now.0).execute(p).await.context("create the instance row")?;
    Ok(())
}

/// Stores the key-check value unless one is already there.
pub async fn set_key_check(p: &PgPool, check: &[u8]) -> anyhow::Result<()> {
    sqlx::query(SET_KEY_CHECK).bind(check).execute(p).await.context("write the key check")?;
    Ok(())
}

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
