//! Alerts on PostgreSQL (see `store/alerts.rs`).

use anyhow::Context;
use sqlx::PgPool;

use super::audit::append_audit;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::alerts::Alert;
use crate::domain::audit::AuditEntry;
use crate::domain::delivery::NewEvent;
use crate::domain::webhooks::WebhookEvent;
use crate::store::sql::alerts::{INSERT, RESOLVE, SET_CONTACTS};

pub async fn open(p: &PgPool, a: &Alert, hook: &WebhookEvent, mail: Option<&NewEvent>) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    let n = sqlx::query(INSERT)
        .bind(&a.id)
        .bind(a.org.as_str())
        .bind(a.kind.as_str())
        .bind(&a.subject)
        .bind(&a.detail)
        .bind(a.opened_at.0)
        .execute(&mut *tx)
        .await
        .context("insert alert")?
        .rows_affected();
    if n == 1 {
        super::webhooks::enqueue(&mut tx, std::slice::from_ref(hook)).await?;
        if let Some(mail) = mail {
            super::delivery::insert_event_rows(&mut tx, mail).await?;
        }
    }
    tx.commit().await.context("commit alert")?;
    Ok(n == 1)
}

pub async fn resolve(p: &PgPool, a: &Alert, hook: &WebhookEvent, mail: Option<&NewEvent>) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    let n = sqlx::query(RESOLVE)
        .bind(&a.id)
        .bind(a.resolved_at.map(|t| t.0))
        .execute(&mut *tx)
        .await
        .context("resolve alert")?
        .rows_affected();
    if n == 1 {
        super::webhooks::enqueue(&mut tx, std::slice::from_ref(hook)).await?;
        if let Some(mail) = mail {
            super::delivery::insert_event_rows(&mut tx, mail).await?;
        }
    }
    tx.commit().await.context("commit alert")?;
    Ok(n == 1)
}

pub async fn set_contacts(
    p: &PgPool,
    org: &OrgId,
    emails: &str,
    audit: &AuditEntry,
    now: Millis,
) -> anyhow::Result<()> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    sqlx::query(SET_CONTACTS).bind(org.as_str()).bind(emails).bind(now.0).execute(&mut *tx).await.context("store")?;
    tx.commit().await.context("commit alert contacts")?;
    Ok(())
}
