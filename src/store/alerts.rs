//! Alerts (see `domain/alerts.rs`).

use anyhow::Context;

use super::sql::alerts::{CONTACTS, DEAD_SINCE, DISABLED_ENDPOINTS, DUE_BEFORE, OPEN, OPEN_CIRCUITS, PAGE, PAGE_OPEN};
use super::{Db, Store, postgres, read_all, read_optional, row, sqlite};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::alerts::{Alert, Facts, Kind};
use crate::domain::audit::AuditEntry;
use crate::domain::delivery::NewEvent;
use crate::domain::webhooks::WebhookEvent;

row! {
    pub(super) struct AlertRow {
        id: String,
        org_id: String,
        kind: String,
        subject: String,
        detail: String,
        opened_at: i64,
        resolved_at: Option<i64>,
    }
}

fn alert_from(row: AlertRow) -> anyhow::Result<Alert> {
    let AlertRow { id, org_id, kind, subject, detail, opened_at, resolved_at } = row;
    Ok(Alert {
        id,
        org: OrgId::from_db(org_id),
        kind: Kind::parse(&kind).with_context(|| format!("unknown alert kind {kind:?}"))?,
        subject,
        detail,
        opened_at: Millis(opened_at),
        resolved_at: resolved_at.map(Millis),
    })
}

impl Store {
    /// What the alert conditions look at: dead mail since `dead_since`,
    /// mail due since before `due_before`, endpoints Herald disabled.
    pub async fn alert_facts(&self, dead_since: Millis, due_before: Millis) -> anyhow::Result<Facts> {
        let dead: Vec<(String, i64)> = read_all!(self, DEAD_SINCE, dead_since.0).context("count dead mail")?;
        let stalled: Vec<(String, i64)> = read_all!(self, DUE_BEFORE, due_before.0).context("find stalled mail")?;
        let disabled: Vec<(String, String, String)> =
            read_all!(self, DISABLED_ENDPOINTS).context("find disabled endpoints")?;
        let circuits: Vec<(String, String, String, i64)> =
            read_all!(self, OPEN_CIRCUITS).context("find open circuits")?;
        Ok(Facts {
            dead: dead.into_iter().map(|(o, n)| (OrgId::from_db(o), n)).collect(),
            stalled: stalled.into_iter().map(|(o, t)| (OrgId::from_db(o), Millis(t))).collect(),
            disabled: disabled.into_iter().map(|(o, id, url)| (OrgId::from_db(o), id, url)).collect(),
            circuits: circuits.into_iter().map(|(o, id, name, n)| (OrgId::from_db(o), id, name, n)).collect(),
        })
    }

    pub async fn open_alerts(&self) -> anyhow::Result<Vec<Alert>> {
        let rows: Vec<AlertRow> = read_all!(self, OPEN).context("read open alerts")?;
        rows.into_iter().map(alert_from).collect()
    }

    pub async fn alerts(&self, org: &OrgId, open_only: bool, limit: u32) -> anyhow::Result<Vec<Alert>> {
        let limit = i64::from(limit);
        let rows: Vec<AlertRow> = if open_only {
            read_all!(self, PAGE_OPEN, org.as_str(), limit)
        } else {
            read_all!(self, PAGE, org.as_str(), limit)
        }
        .context("list alerts")?;
        rows.into_iter().map(alert_from).collect()
    }

    /// Opens `alert` unless one is open for its org, kind and subject; true
    /// (and `hook` and the contacts' `mail` written in the same
    /// transaction) when this call opened it.
    pub async fn open_alert(
        &self,
        alert: &Alert,
        hook: &WebhookEvent,
        mail: Option<&NewEvent>,
    ) -> anyhow::Result<bool> {
        match &self.db {
            Db::Sqlite(db) => {
                let (alert, hook, mail) = (alert.clone(), hook.clone(), mail.cloned());
                db.write(move |tx| sqlite::alerts::open(tx, &alert, &hook, mail.as_ref())).await
            }
            Db::Postgres(p) => postgres::alerts::open(p, alert, hook, mail).await,
        }
        .context("open alert")
    }

    /// Resolves `alert` if it is still open; true when this call did.
    pub async fn resolve_alert(
        &self,
        alert: &Alert,
        hook: &WebhookEvent,
        mail: Option<&NewEvent>,
    ) -> anyhow::Result<bool> {
        match &self.db {
            Db::Sqlite(db) => {
                let (alert, hook, mail) = (alert.clone(), hook.clone(), mail.cloned());
                db.write(move |tx| sqlite::alerts::resolve(tx, &alert, &hook, mail.as_ref())).await
            }
            Db::Postgres(p) => postgres::alerts::resolve(p, alert, hook, mail).await,
        }
        .context("resolve alert")
    }

    /// The org's alert contacts and when they were set; `None` if never.
    pub async fn alert_contacts(&self, org: &OrgId) -> anyhow::Result<Option<(Vec<String>, Millis)>> {
        let row: Option<(String, i64)> = read_optional!(self, CONTACTS, org.as_str()).context("read alert contacts")?;
        row.map(|(emails, at)| Ok((serde_json::from_str(&emails).context("alert contacts")?, Millis(at)))).transpose()
    }

    /// Replaces the org's alert contacts, with its audit row.
    pub async fn set_alert_contacts(
        &self,
        org: &OrgId,
        emails: &[String],
        audit: &AuditEntry,
        now: Millis,
    ) -> anyhow::Result<()> {
        let json = serde_json::to_string(emails).context("alert contacts")?;
        match &self.db {
            Db::Sqlite(db) => {
                let (org, audit) = (org.clone(), audit.clone());
                db.write(move |tx| sqlite::alerts::set_contacts(tx, &org, &json, &audit, now)).await
            }
            Db::Postgres(p) => postgres::alerts::set_contacts(p, org, &json, audit, now).await,
        }
        .context("store alert contacts")
    }
}
