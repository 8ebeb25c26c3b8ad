//! SMTP server rows (org configs and the instance settings, by scope).
//!
//! Every change runs [`Store::change_smtp`]: take the scope's audit number
//! (and with it the lock that orders the org's changes), read the current
//! row, let the domain decide the new row, write it and its audit row, all
//! in one transaction. So the write-only password rule (keep it unless the
//! host or port changed) is decided against the row it replaces.

use anyhow::Context;
use serde_json::Value;

use super::cache::ClearOnDrop;
use super::sql::smtp::BY_SCOPE;
use super::{Db, Store, postgres, read_optional, sqlite};
use crate::clock::Millis;
use crate::domain::Actor;
use crate::domain::audit::{AuditEntry, Scope};
use crate::error::Error;

/// A stored row. `password` is ciphertext.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SmtpRow {
    pub id: String,
    pub scope_id: String,
    pub enabled: bool,
    pub host: String,
    pub port: i64,
    pub security: String,
    pub accept_invalid_certs: bool,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    pub from_email: Option<String>,
    pub from_name: Option<String>,
    pub reply_to: Option<String>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for SmtpRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpRow")
            .field("id", &self.id)
            .field("scope_id", &self.scope_id)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("password_set", &self.password.is_some())
            .finish_non_exhaustive()
    }
}

impl TryFrom<&rusqlite::Row<'_>> for SmtpRow {
    type Error = rusqlite::Error;
    fn try_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(SmtpRow {
            id: r.get("id")?,
            scope_id: r.get("scope_id")?,
            enabled: r.get("enabled")?,
            host: r.get("host")?,
            port: r.get("port")?,
            security: r.get("security")?,
            accept_invalid_certs: r.get("accept_invalid_certs")?,
            username: r.get("username")?,
            password: r.get("password")?,
            from_email: r.get("from_email")?,
            from_name: r.get("from_name")?,
            reply_to: r.get("reply_to")?,
            version: r.get("version")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    }
}

/// What the domain decided a change does.
pub enum SmtpDecision {
    Save(Box<SmtpRow>),
    Delete,
}

pub struct Decided {
    pub decision: SmtpDecision,
    pub action: &'static str,
    pub detail: Value,
}

impl Store {
    /// The SMTP row of a scope (org id or instance id). Answers from the
    /// cache while fresh (see `store/cache.rs` for the bounds).
    pub async fn smtp_row(&self, scope_id: &str) -> anyhow::Result<Option<SmtpRow>> {
        if let Some(cached) = self.cache.smtp.get(scope_id) {
            return Ok(cached);
        }
        let ticket = self.cache.smtp.ticket();
        let row: Option<SmtpRow> = read_optional!(self, BY_SCOPE, scope_id).context("load SMTP settings")?;
        self.cache.smtp.put(ticket, scope_id.to_owned(), row.clone());
        Ok(row)
    }

    /// Changes a scope's SMTP row as `decide` says, given the current row and
    /// the scope id; an error from `decide` changes nothing.
    pub async fn change_smtp<F>(
        &self,
        scope: &Scope,
        actor: &Actor,
        now: Millis,
        decide: F,
    ) -> Result<Option<SmtpRow>, Error>
    where
        F: FnOnce(Option<SmtpRow>, &str) -> Result<Decided, Error> + Send,
    {
        // Cached rows are forgotten once the change returns (or its caller
        // goes away), so it holds on this node from the next request.
        let _forget = ClearOnDrop(&self.cache.smtp);
        match &self.db {
            Db::Sqlite(db) => {
                let read_scope = scope.clone();
                let entry = AuditEntry {
                    scope: scope.clone(),
                    actor: actor.clone(),
                    at: now,
                    action: "",
                    resource_type: "smtp_server",
                    resource_id: String::new(),
                    detail: Value::Null,
                };
                db.write_deciding(
                    move |tx| sqlite::settings::smtp_current(tx, &read_scope),
                    |(scope_id, seq, current)| {
                        let current_id = current.as_ref().map(|r| r.id.clone());
                        let decided = decide(current, &scope_id);
                        ((scope_id, seq, current_id), decided)
                    },
                    move |tx, (at, decided)| match decided {
                        Err(e) => {
                            tx.discard();
                            Ok(Err(e))
                        }
                        Ok(decided) => sqlite::settings::smtp_save(tx, at, entry, decided).map(Ok),
                    },
                )
                .await?
            }
            Db::Postgres(p) => postgres::smtp::change_smtp(p, scope, actor, now, decide).await,
        }
    }
}
