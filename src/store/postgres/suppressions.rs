//! The suppression list on PostgreSQL (see `store/suppressions.rs`).

use anyhow::Context;
use sqlx::{PgConnection, PgPool};

use super::audit::append_audit;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::suppressions::{Suppression, email_key};
use crate::store::sql::suppressions::{DELETE, INSERT};

pub async fn insert(p: &PgPool, org: &OrgId, e: &Suppression, audit: Option<&AuditEntry>) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    if let Some(audit) = audit {
        append_audit(&mut tx, audit).await?;
    }
    if !insert_row(&mut tx, org, e).await? {
        // Already listed: the rollback gives the audit number back.
        return Ok(false);
    }
    tx.commit().await.context("commit suppression")?;
    Ok(true)
}

/// The row alone, inside the caller's transaction.
pub async fn insert_row(tx: &mut PgConnection, org: &OrgId, e: &Suppression) -> anyhow::Result<bool> {
    let done = sqlx::query(INSERT)
        .bind(org.as_str())
        .bind(email_key(&e.email))
        .bind(&e.email)
        .bind(e.reason.as_str())
        .bind(&e.detail)
        .bind(&e.notification_id)
        .bind(e.created_at.0)
        .execute(&mut *tx)
        .await
        .context("insert suppression")?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete(p: &PgPool, org: &OrgId, key: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let done =
        sqlx::query(DELETE).bind(org.as_str()).bind(key).execute(&mut *tx).await.context("delete suppression")?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    tx.commit().await.context("commit removal")?;
    Ok(true)
}
