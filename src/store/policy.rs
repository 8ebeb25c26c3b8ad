//! Notification policy rows: org custom policies and the instance default.
//!
//! Each change advances its scope's audit sequence first (so concurrent
//! changes of one org are ordered) and stores that number on the row: it is
//! the `details.sequence` Zitadel reports. Whether a change applies is
//! decided in SQL (`ON CONFLICT DO NOTHING`, `… AND password_change <> $2`),
//! atomically with the change.

use anyhow::Context;

use super::sql::policy::{DELETE, EXISTS, INSERT, INSTANCE_DEFAULT, POLICY, UPDATE};
use super::{Db, Store, postgres, read_optional, sqlite};
use crate::clock::Millis;
use crate::domain::audit::AuditEntry;
use crate::domain::policy::{DEFAULT_PASSWORD_CHANGE, Details, Policy};

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
            Db::Postgres(p) => sqlx::query(INSTANCE_DEFAULT)
                .bind(DEFAULT_PASSWORD_CHANGE)
                .execute(p)
                .await
                .map(drop)
                .context("create the default notification policy"),
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
        let now = audit.at;
        match &self.db {
            Db::Sqlite(db) => {
                let (scope_id, audit) = (scope_id.to_owned(), audit.clone());
                db.write(move |tx| sqlite::settings::create_policy(tx, &scope_id, password_change, &audit)).await
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await.context("begin")?;
                let seq = postgres::append_audit(&mut tx, audit).await?;
                let done = sqlx::query(INSERT)
                    .bind(scope_id)
                    .bind(password_change)
                    .bind(seq)
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await
                    .context("insert notification policy")?;
                if done.rows_affected() == 0 {
                    return Ok(PolicyChange::Exists);
                }
                tx.commit().await.context("commit notification policy")?;
                Ok(PolicyChange::Done(details(seq, now, now, scope_id)))
            }
        }
    }

    pub async fn update_policy(
        &self,
        scope_id: &str,
        password_change: bool,
        audit: &AuditEntry,
    ) -> anyhow::Result<PolicyChange> {
        let now = audit.at;
        match &self.db {
            Db::Sqlite(db) => {
                let (scope_id, audit) = (scope_id.to_owned(), audit.clone());
                db.write(move |tx| sqlite::settings::update_policy(tx, &scope_id, password_change, &audit)).await
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await.context("begin")?;
                let seq = postgres::append_audit(&mut tx, audit).await?;
                let created: Option<(i64,)> = sqlx::query_as(UPDATE)
                    .bind(scope_id)
                    .bind(password_change)
                    .bind(seq)
                    .bind(now.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("update notification policy")?;
                let Some((created_at,)) = created else {
                    // Nothing written: rolling back also returns the sequence number.
                    let (exists,): (bool,) =
                        sqlx::query_as(EXISTS).bind(scope_id).fetch_one(&mut *tx).await.context("find policy")?;
                    return Ok(if exists { PolicyChange::Unchanged } else { PolicyChange::Missing });
                };
                tx.commit().await.context("commit notification policy")?;
                Ok(PolicyChange::Done(details(seq, Millis(created_at), now, scope_id)))
            }
        }
    }

    pub async fn delete_policy(&self, scope_id: &str, audit: &AuditEntry) -> anyhow::Result<PolicyChange> {
        let now = audit.at;
        match &self.db {
            Db::Sqlite(db) => {
                let (scope_id, audit) = (scope_id.to_owned(), audit.clone());
                db.write(move |tx| sqlite::settings::delete_policy(tx, &scope_id, &audit)).await
            }
            Db::Postgres(p) => {
                let mut tx = p.begin().await.context("begin")?;
                let seq = postgres::append_audit(&mut tx, audit).await?;
                let deleted: Option<(i64,)> = sqlx::query_as(DELETE)
                    .bind(scope_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("delete notification policy")?;
                let Some((created_at,)) = deleted else { return Ok(PolicyChange::Missing) };
                tx.commit().await.context("commit notification policy")?;
                Ok(PolicyChange::Done(details(seq, Millis(created_at), now, scope_id)))
            }
        }
    }
}
