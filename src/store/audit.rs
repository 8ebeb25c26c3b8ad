//! Audit rows and the gapless per-scope sequence.
//!
//! A change advances its scope's counter (`orgs.seq` or `instance.seq`) and
//! inserts its audit row *first* in its transaction: the counter row lock
//! (PostgreSQL) or the single writer (SQLite) then orders concurrent changes
//! of one org, and a rolled-back change takes its number back with it.

use anyhow::Context;

use super::sql::audit::{INSERT_INSTANCE, INSTANCE_ID, KEY_CHECK, PAGE_INSTANCE, PAGE_ORG, SET_KEY_CHECK};
use super::{Db, Store, postgres, read_all, read_optional};
use crate::clock::Millis;
use crate::domain::audit::{AuditRecord, Scope};

super::row! {
    struct AuditRow { seq: i64, at: i64, actor: String, action: String, resource_type: String, resource_id: String, detail: String }
}

/// A page of audit records.
pub type AuditPage = Vec<AuditRecord>;

impl Store {
    /// The instance id, created on first start. Stable for the database's life.
    pub async fn ensure_instance(&self, now: Millis) -> anyhow::Result<String> {
        let fresh = uuid::Uuid::now_v7().to_string();
        match &self.db {
            Db::Sqlite(db) => {
                db.write(move |tx| tx.execute(INSERT_INSTANCE, &[&fresh, &now.0]).context("create the instance row"))
                    .await?;
            }
            Db::Postgres(p) => postgres::audit::insert_instance(p, &fresh, now).await?,
        }
        self.ensure_default_policy().await?;
        self.instance_id().await
    }

    /// The key-check value of this database, if one was written.
    pub async fn key_check(&self) -> anyhow::Result<Option<Vec<u8>>> {
        let row: Option<(Option<Vec<u8>>,)> = read_optional!(self, KEY_CHECK).context("read the key check")?;
        Ok(row.and_then(|(check,)| check))
    }

    /// Stores the key-check value unless one is already there.
    pub async fn set_key_check(&self, check: &[u8]) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let check = check.to_vec();
                db.write(move |tx| tx.execute(SET_KEY_CHECK, &[&check]).context("write the key check")).await?;
            }
            Db::Postgres(p) => postgres::audit::set_key_check(p, check).await?,
        }
        Ok(())
    }

    /// The instance id (read once, then remembered: it never changes).
    pub async fn instance_id(&self) -> anyhow::Result<String> {
        if let Some(id) = self.instance.get() {
            return Ok(id.clone());
        }
        let row: Option<(String,)> = read_optional!(self, INSTANCE_ID).context("read the instance id")?;
        let (id,) = row.context("the instance row is missing (run `herald migrate`)")?;
        Ok(self.instance.get_or_init(|| id).clone())
    }

    pub async fn audit_page(&self, scope: &Scope, after: i64, limit: u32) -> anyhow::Result<AuditPage> {
        let limit = i64::from(limit);
        let rows: Vec<AuditRow> = match scope {
            Scope::Org(org) => read_all!(self, PAGE_ORG, org.as_str(), after, limit),
            Scope::Instance => read_all!(self, PAGE_INSTANCE, after, limit),
        }
        .context("read the audit log")?;
        rows.into_iter()
            .map(|AuditRow { seq, at, actor, action, resource_type, resource_id, detail }| {
                Ok(AuditRecord {
                    seq,
                    at: Millis(at),
                    actor,
                    action,
                    resource_type,
                    resource_id,
                    detail: serde_json::from_str(&detail).context("decode an audit detail")?,
                })
            })
            .collect()
    }
}
