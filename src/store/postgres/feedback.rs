//! Bounces and complaints on PostgreSQL (see `store/feedback.rs`).

use anyhow::Context;
use sqlx::PgPool;

use super::audit::append_audit;
use super::suppressions::insert_row;
use super::webhooks::enqueue;
use crate::store::FeedbackWrite;
use crate::store::sql::feedback::{INSERT, SET_STATUS};

/// The report's row, and when it is new: the status, the suppression, the
/// webhook message and the audit row, all in one transaction.
pub async fn apply(p: &PgPool, w: &FeedbackWrite) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    let done = sqlx::query(INSERT)
        .bind(w.org.as_str())
        .bind(&w.notification_id)
        .bind(&w.fingerprint)
        .bind(w.kind)
        .bind(&w.recipient)
        .bind(&w.status)
        .bind(&w.diagnostic)
        .bind(w.source)
        .bind(w.at.0)
        .execute(&mut *tx)
        .await
        .context("insert feedback")?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    if let Some(status) = w.new_status {
        sqlx::query(SET_STATUS)
            .bind(w.org.as_str())
            .bind(&w.notification_id)
            .bind(status)
            .bind(w.at.0)
            .execute(&mut *tx)
            .await
            .context("set notification status")?;
    }
    if let Some(s) = &w.suppression {
        insert_row(&mut tx, &w.org, s).await?;
    }
    if let Some(hook) = &w.hook {
        enqueue(&mut tx, std::slice::from_ref(hook)).await?;
    }
    append_audit(&mut tx, &w.audit).await?;
    tx.commit().await.context("commit feedback")?;
    Ok(true)
}
