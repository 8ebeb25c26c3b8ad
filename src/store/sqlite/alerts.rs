//! Alerts on SQLite (see `store/alerts.rs`).

use anyhow::Context;

use super::Tx;
use crate::domain::alerts::Alert;
use crate::domain::webhooks::WebhookEvent;
use crate::store::sql::alerts::{INSERT, RESOLVE};

pub fn open(tx: &Tx<'_>, a: &Alert, hook: &WebhookEvent) -> anyhow::Result<bool> {
    let n = tx
        .execute(INSERT, &[&a.id, &a.org.as_str(), &a.kind.as_str(), &a.subject, &a.detail, &a.opened_at.0])
        .context("insert alert")?;
    if n == 1 {
        super::webhooks::enqueue(tx, std::slice::from_ref(hook))?;
    }
    Ok(n == 1)
}

pub fn resolve(tx: &Tx<'_>, a: &Alert, hook: &WebhookEvent) -> anyhow::Result<bool> {
    let at = a.resolved_at.map(|t| t.0);
    let n = tx.execute(RESOLVE, &[&a.id, &at]).context("resolve alert")?;
    if n == 1 {
        super::webhooks::enqueue(tx, std::slice::from_ref(hook))?;
    }
    Ok(n == 1)
}
