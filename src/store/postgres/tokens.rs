//! API token rows on PostgreSQL (see `store/tokens.rs`).

use anyhow::Context;
use sqlx::PgPool;

use super::audit::append_audit;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::tokens::TokenRecord;
use crate::store::sql::tokens::{INSERT_TOKEN, REVOKE};

pub async fn insert_token(p: &PgPool, token: &TokenRecord, digest: &str, audit: &AuditEntry) -> anyhow::Result<()> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    sqlx::query(INSERT_TOKEN)
        .bind(&token.id)
        .bind(token.org_id.as_ref().map(OrgId::as_str))
        .bind(&token.name)
        .bind(digest)
        .bind(token.created_at.0)
        .execute(&mut *tx)
        .await
        .context("insert token")?;
    tx.commit().await.context("commit token")
}

pub async fn revoke_token(p: &PgPool, org: &OrgId, id: &str, now: Millis, audit: &AuditEntry) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let done =
        sqlx::query(REVOKE).bind(org.as_str()).bind(id).bind(now.0).execute(&mut *tx).await.context("revoke token")?;
    if done.rows_affected() == 0 {
        // Nothing changed: the rollback also returns the sequence number.
        return Ok(false);
    }
    tx.commit().await.context("commit revocation")?;
    Ok(true)
}
