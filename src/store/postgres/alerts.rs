//! Alerts on PostgreSQL (see `store/alerts.rs`).

use anyhow::Context;
use sqlx::PgPool;

use crate::domain::alerts::Alert;
use crate::domain::webhooks::WebhookEvent;
use crate::store::sql::alerts::{INSERT, RESOLVE};

pub async fn open(p: &PgPool, a: &Alert, hook: &WebhookEvent) -> anyhow::Result<bool> {
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
    }
    tx.commit().await.context("commit alert")?;
    Ok(n == 1)
}

pub async fn resolve(p: &PgPool, a: &Alert, hook: &WebhookEvent) -> anyhow::Result<bool> {
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
    }
    tx.commit().await.context("commit alert")?;
    Ok(n == 1)
}
