//! Organisation rows on PostgreSQL (see `store/orgs.rs`).

use anyhow::Context;
use sqlx::PgPool;

use super::audit::append_audit;
use crate::domain::audit::AuditEntry;
use crate::domain::orgs::Org;
use crate::store::sql::orgs::INSERT_ORG;

pub async fn insert_org(p: &PgPool, org: &Org, audit: &AuditEntry) -> anyhow::Result<()> {
    let mut tx = p.begin().await.context("begin")?;
    sqlx::query(INSERT_ORG)
        .bind(org.id.as_str())
        .bind(&org.name)
        .bind(org.created_at.0)
        .execute(&mut *tx)
        .await
        .context("insert org")?;
    append_audit(&mut tx, audit).await?;
    tx.commit().await.context("commit org")
}
