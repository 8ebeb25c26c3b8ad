//! Notification policy rows on PostgreSQL (see `store/policy.rs`).

use anyhow::Context;
use sqlx::PgPool;

use super::audit::append_audit;
use crate::clock::Millis;
use crate::domain::audit::AuditEntry;
use crate::domain::policy::DEFAULT_PASSWORD_CHANGE;
use crate::store::PolicyChange;
use crate::store::policy::details;
use crate::store::sql::policy::{DELETE, EXISTS, INSERT, INSTANCE_DEFAULT, UPDATE};

/// Creates the instance default policy if it does not exist yet.
pub async fn ensure_default_policy(p: &PgPool) -> anyhow::Result<()> {
    sqlx::query(INSTANCE_DEFAULT)
        .bind(DEFAULT_PASSWORD_CHANGE)
        .execute(p)
        .await
        .map(drop)
        .context("create the default notification policy")
}

pub async fn create_policy(
    p: &PgPool,
    scope_id: &str,
    password_change: bool,
    audit: &AuditEntry,
) -> anyhow::Result<PolicyChange> {
    let now = audit.at;
    let mut tx = p.begin().await.context("begin")?;
    let seq = append_audit(&mut tx, audit).await?;
    let done = sqlx::query(INSERT)
        .bind(scope_id)
        .bind(password_change)
        .bind(seq)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .context("insert notification policy")?;
    if done.rows_affected() == 0 {
        return Ok(PolicyChange::Exists);
    }
    tx.commit().await.context("commit notification policy")?;
    Ok(PolicyChange::Done(details(seq, now, now, scope_id)))
}

pub async fn update_policy(
    p: &PgPool,
    scope_id: &str,
    password_change: bool,
    audit: &AuditEntry,
) -> anyhow::Result<PolicyChange> {
    let now = audit.at;
    let mut tx = p.begin().await.context("begin")?;
    let seq = append_audit(&mut tx, audit).await?;
    let created: Option<(i64,)> = sqlx::query_as(UPDATE)
        .bind(scope_id)
        .bind(password_change)
        .bind(seq)
        .bind(now.0)
        .fetch_optional(&mut *tx)
        .await
        .context("update notification policy")?;
    let Some((created_at,)) = created else {
        // Nothing written: rolling back also returns the sequence number.
        let (exists,): (bool,) =
            sqlx::query_as(EXISTS).bind(scope_id).fetch_one(&mut *tx).await.context("find policy")?;
        return Ok(if exists { PolicyChange::Unchanged } else { PolicyChange::Missing });
    };
    tx.commit().await.context("commit notification policy")?;
    Ok(PolicyChange::Done(details(seq, Millis(created_at), now, scope_id)))
}

pub async fn delete_policy(p: &PgPool, scope_id: &str, audit: &AuditEntry) -> anyhow::Result<PolicyChange> {
    let now = audit.at;
    let mut tx = p.begin().await.context("begin")?;
    let seq = append_audit(&mut tx, audit).await?;
    let deleted: Option<(i64,)> =
        sqlx::query_as(DELETE).bind(scope_id).fetch_optional(&mut *tx).await.context("delete notification policy")?;
    let Some((created_at,)) = deleted else { return Ok(PolicyChange::Missing) };
    tx.commit().await.context("commit notification policy")?;
    Ok(PolicyChange::Done(details(seq, Millis(created_at), now, scope_id)))
}
