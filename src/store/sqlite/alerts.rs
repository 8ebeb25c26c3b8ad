//! Alerts on SQLite (see `store/alerts.rs`).

use anyhow::Context;

use super::Tx;
use super::audit::append_audit;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::alerts::Alert;
use crate::domain::audit::AuditEntry;
use crate::domain::delivery::NewEvent;
use crate::domain::webhooks::WebhookEvent;
use crate::store::sql::alerts::{INSERT, RESOLVE, SET_CONTACTS};

pub fn open(tx: &Tx<'_>, a: &Alert, hook: &WebhookEvent, mail: Option<&NewEvent>) -> anyhow::Result<bool> {
    let n = tx
        .execute(INSERT, &[&a.id, &a.org.as_str(), &a.kind.as_str(), &a.subject, &a.detail, &a.opened_at.0])
        .context("insert alert")?;
    if n == 1 {
        super::webhooks::enqueue(tx, std::slice::from_ref(hook))?;
        if let Some(mail) = mail {
            super::delivery::insert_event_rows(tx, mail)?;
        }
    }
    Ok(n == 1)
}

pub fn resolve(tx: &Tx<'_>, a: &Alert, hook: &WebhookEvent, mail: Option<&NewEvent>) -> anyhow::Result<bool> {
    let at = a.resolved_at.map(|t| t.0);
    let n = tx.execute(RESOLVE, &[&a.id, &at]).context("resolve alert")?;
    if n == 1 {
        super::webhooks::enqueue(tx, std::slice::from_ref(hook))?;
        if let Some(mail) = mail {
            super::delivery::insert_event_rows(tx, mail)?;
        }
    }
    Ok(n == 1)
}

pub fn set_contacts(tx: &Tx<'_>, org: &OrgId, emails: &str, audit: &AuditEntry, now: Millis) -> anyhow::Result<()> {
    append_audit(tx, audit)?;
    tx.execute(SET_CONTACTS, &[&org.as_str(), &emails, &now.0]).context("store alert contacts")?;
    Ok(())
}
