//! Notification policy rows: org custom policies and the instance default.
//!
//! Each change advances its scope's audit sequence first (so concurrent
//! changes of one org are ordered) and stores that number on the row: it is
//! the `details.sequence` Zitadel reports. Whether a change applies is
//! decided in SQL (`ON CONFLICT DO NOTHING`, `… AND password_change <> $2`),
//! atomically with the change.

use anyhow::Context;

use super::sql::policy::POLICY;
use super::{Db, Store, postgres, read_optional, sqlite};
use crate::clock::Millis;
use crate::domain::audit::AuditEntry;
use crate::domain::policy::{Details, Policy};

/// What a policy write found.
#[derive(Debug)]
pub enum PolicyChange {
    Done(Details),
    /// Create: the scope already has a policy.
    Exists,
    /// Change or delete: the scope has no policy.
    Missing,
    /// Change: the policy already has that value.
    Unchanged,
}

pub(super) fn details(sequence: i64, created_at: Millis, changed_at: Millis, scope_id: &str) -> Details {
    Details { sequence, created_at, changed_at, resource_owner: scope_id.to_owned() }
}

impl Store {
    /// Creates the instance default policy if it does not exist yet.
    pub(super) async fn ensure_default_policy(&self) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => db.write(sqlite::settings::ensure_default_policy).await,
            Db::Postgres(p) => postgres::policy::ensure_default_policy(p).await,
        }
    }

    /// The policy stored for a scope (`is_default` is the caller's to set).
    pub async fn policy(&self, scope_id: &str) -> anyhow::Result<Option<Policy>> {
        let row: Option<(bool, i64, i64, i64)> =
            read_optional!(self, POLICY, scope_id).context("load notification policy")?;
        Ok(row.map(|(password_change, sequence, created_at, changed_at)| Policy {
            password_change,
            is_default: false,
            details: Details {
                sequence,
                created_at: Millis(created_at),
                changed_at: Millis(changed_at),
                resource_owner: scope_id.to_owned(),
            },
        }))
    }

    pub async fn create_policy(
        &self,
        scope_id: &str,
        password_change: bool,
        audit: &AuditEntry,
    ) -> anyhow::Result<PolicyChange> {
        match &self.db {
            Db::Sqlite(db) => {
                let (scope_id, audit) = (scope_id.to_owned(), audit.clone());
                db.write(move |tx| sqlite::settings::create_policy(tx, &scope_id, password_change, &audit)).await
            }
            Db::Postgres(p) => postgres::policy::create_policy(p, scope_id, password_change, audit).await,
        }
    }

    pub async fn update_policy(
        &self,
        scope_id: &str,
        password_change: bool,
        audit: &AuditEntry,
    ) -> anyhow::Result<PolicyChange> {
        match &self.db {
            Db::Sqlite(db) => {
                let (scope_id, audit) = (scope_id.to_owned(), audit.clone());
                db.write(move |tx| sqlite::settings::update_policy(tx, &scope_id, password_change, &audit)).await
            }
            Db::Postgres(p) => postgres::policy::update_policy(p, scope_id, password_change, audit).await,
        }
    }

    pub async fn delete_policy(&self, scope_id: &str, audit: &AuditEntry) -> anyhow::Result<PolicyChange> {
        match &self.db {
            Db::Sqlite(db) => {
                let (scope_id, audit) = (scope_id.to_owned(), audit.clone());
                db.write(move |tx| sqlite::settings::delete_policy(tx, &scope_id, &audit)).await
            }
            Db::Postgres(p) => postgres::policy::delete_policy(p, scope_id, audit).await,
        }
    }
}
