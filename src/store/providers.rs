//! Providers, their circuit-breaker health, rate-limit slots, and the
//! outbox operations failover needs (issue 17; `domain/providers.rs`
//! decides, this stores).
//!
//! Everything a node decides with other nodes lives here, in the database:
//! consecutive failures and the open circuit (`provider_health`), the next
//! free send slot of a rate-limited provider (`provider_rate`, GCRA) and the
//! slots reserved by mails that wait for them (`provider_reservations`).
//! Each is one statement or one short transaction, so it holds across
//! processes on one SQLite file and across nodes on one PostgreSQL database.

use anyhow::Context;

use super::sql::providers::{BY_SCOPE, HEALTH_OF_SCOPE, LAST_ATTEMPT_PROVIDER, PURGE_RESERVATIONS, RECOVERED};
use super::{Db, Store, postgres, read_all, read_optional, sqlite};
use crate::clock::Millis;
use crate::domain::audit::AuditEntry;

/// A stored provider. `secret` is ciphertext.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProviderRow {
    pub id: String,
    pub scope_id: String,
    pub position: i64,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub settings: String,
    pub secret: Option<Vec<u8>>,
    pub bounce_domain: Option<String>,
    pub max_per_minute: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TryFrom<&rusqlite::Row<'_>> for ProviderRow {
    type Error = rusqlite::Error;
    fn try_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(ProviderRow {
            id: r.get("id")?,
            scope_id: r.get("scope_id")?,
            position: r.get("position")?,
            name: r.get("name")?,
            kind: r.get("kind")?,
            enabled: r.get("enabled")?,
            settings: r.get("settings")?,
            secret: r.get("secret")?,
            bounce_domain: r.get("bounce_domain")?,
            max_per_minute: r.get("max_per_minute")?,
            max_concurrent: r.get("max_concurrent")?,
            version: r.get("version")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    }
}

/// A provider's circuit-breaker state.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HealthRow {
    pub provider_id: String,
    pub failures: i64,
    pub open_until: Option<i64>,
    pub last_error: Option<String>,
    pub last_failure_at: Option<i64>,
}

impl TryFrom<&rusqlite::Row<'_>> for HealthRow {
    type Error = rusqlite::Error;
    fn try_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(HealthRow {
            provider_id: r.get("provider_id")?,
            failures: r.get("failures")?,
            open_until: r.get("open_until")?,
            last_error: r.get("last_error")?,
            last_failure_at: r.get("last_failure_at")?,
        })
    }
}

impl std::fmt::Debug for ProviderRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderRow")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("secret_set", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

/// The new positions (1, 2, …) after placing `this` at `wanted` (1-based,
/// clamped; past the end: last) among `order`; only rows that move.
pub(super) fn placed(order: &[(String, i64)], this: &str, wanted: i64) -> Vec<(String, i64)> {
    let mut ids: Vec<&str> = order.iter().map(|(id, _)| id.as_str()).filter(|id| *id != this).collect();
    let at = usize::try_from(wanted.saturating_sub(1).max(0)).unwrap_or(usize::MAX).min(ids.len());
    ids.insert(at, this);
    ids.iter()
        .enumerate()
        .filter_map(|(i, id)| {
            let pos = i64::try_from(i + 1).unwrap_or(i64::MAX);
            let old = order.iter().find(|(o, _)| o == id).map(|(_, p)| *p);
            (old != Some(pos)).then(|| ((*id).to_owned(), pos))
        })
        .collect()
}

/// How a rate-limited provider's slots are handed out (ms).
#[derive(Debug, Clone, Copy)]
pub struct RateParams {
    pub interval: i64,
    pub tolerance: i64,
    pub lead: i64,
}

impl Store {
    /// A scope's providers in order.
    pub async fn provider_rows(&self, scope_id: &str) -> anyhow::Result<Vec<ProviderRow>> {
        read_all!(self, BY_SCOPE, scope_id).context("load providers")
    }

    /// Health of a scope's providers (and of its legacy configuration).
    pub async fn provider_health(&self, scope_id: &str) -> anyhow::Result<Vec<HealthRow>> {
        read_all!(self, HEALTH_OF_SCOPE, scope_id).context("load provider health")
    }

    /// Inserts (`expected` none) or updates (only at version `expected`) a
    /// provider, places it at `row.position` and writes the audit row, in
    /// one transaction. False: the row changed meanwhile (or is gone).
    pub async fn save_provider(
        &self,
        row: ProviderRow,
        expected: Option<i64>,
        audit: AuditEntry,
    ) -> anyhow::Result<bool> {
        match &self.db {
            Db::Sqlite(db) => db.write(move |tx| sqlite::providers::save(tx, &row, expected, &audit)).await,
            Db::Postgres(p) => postgres::providers::save(p, &row, expected, &audit).await,
        }
    }

    /// Removes a provider (and its health and rate state); false if none.
    pub async fn delete_provider(&self, scope_id: &str, id: &str, audit: AuditEntry) -> anyhow::Result<bool> {
        match &self.db {
            Db::Sqlite(db) => {
                let (scope_id, id) = (scope_id.to_owned(), id.to_owned());
                db.write(move |tx| sqlite::providers::delete(tx, &scope_id, &id, &audit)).await
            }
            Db::Postgres(p) => postgres::providers::delete(p, scope_id, id, &audit).await,
        }
    }

    /// One more consecutive failure of `id`; at `threshold` of them the
    /// circuit opens until `open_until`.
    pub async fn provider_failed(
        &self,
        id: &str,
        now: Millis,
        error: &str,
        threshold: i64,
        open_until: Millis,
    ) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let (id, error) = (id.to_owned(), error.to_owned());
                db.write(move |tx| sqlite::providers::failed(tx, &id, now, &error, threshold, open_until)).await
            }
            Db::Postgres(p) => postgres::providers::failed(p, id, now, error, threshold, open_until).await,
        }
    }

    /// A success: the failure count is 0 again and the circuit closed.
    pub async fn provider_recovered(&self, id: &str) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let id = id.to_owned();
                db.write(move |tx| Ok(tx.execute(RECOVERED, &[&id]).map(drop)?)).await
            }
            Db::Postgres(p) => {
                sqlx::query(RECOVERED).bind(id).execute(p).await.context("close circuit")?;
                Ok(())
            }
        }
    }

    /// Takes the probe of a provider whose cool-down is over (the others
    /// see it open until `until`). `None`: taken; else the provider's
    /// current `open_until` (`Some(None)`: it is closed again).
    pub async fn claim_probe(&self, id: &str, now: Millis, until: Millis) -> anyhow::Result<Option<Option<i64>>> {
        match &self.db {
            Db::Sqlite(db) => {
                let id = id.to_owned();
                db.write(move |tx| sqlite::providers::claim_probe(tx, &id, now, until)).await
            }
            Db::Postgres(p) => postgres::providers::claim_probe(p, id, now, until).await,
        }
    }

    /// The send slot of `notification` on rate-limited provider `id`
    /// (slots `interval` ms apart): the slot it reserved earlier (unless
    /// that passed more than `tolerance` ms ago: a mail back that late takes
    /// a new slot, so late mails cannot bunch into a burst), else the next
    /// free one. A slot more than `lead` ms ahead stays reserved for the
    /// mail, which waits in the outbox; a nearer one is the caller's to use.
    pub async fn rate_slot(
        &self,
        id: &str,
        notification: &str,
        now: Millis,
        rate: RateParams,
    ) -> anyhow::Result<Millis> {
        match &self.db {
            Db::Sqlite(db) => {
                let (id, n) = (id.to_owned(), notification.to_owned());
                db.write(move |tx| sqlite::providers::rate_slot(tx, &id, &n, now, rate)).await
            }
            Db::Postgres(p) => {
                // A task of its own: the transaction holds the provider's
                // row lock, and a caller's future that is not polled for a
                // while (a send stream paused while its results are written)
                // must not hold it with it; every node's sends wait on it.
                let (p, id, n) = (p.clone(), id.to_owned(), notification.to_owned());
                tokio::spawn(async move { postgres::providers::rate_slot(&p, &id, &n, now, rate).await })
                    .await
                    .context("the rate-slot task failed")?
            }
        }
    }

    /// Gives leased rows back, due at their time, without counting the
    /// attempt their claim counted (a provider's rate limit or open circuit
    /// held them back; the mail did nothing wrong).
    pub async fn postpone_sends(&self, lease_id: &str, rows: &[(String, Millis)]) -> anyhow::Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        match &self.db {
            Db::Sqlite(db) => {
                let (lease_id, rows) = (lease_id.to_owned(), rows.to_vec());
                db.write(move |tx| sqlite::providers::postpone(tx, &lease_id, &rows)).await
            }
            Db::Postgres(p) => postgres::providers::postpone(p, lease_id, rows).await,
        }
    }

    /// The provider of a notification's latest attempt.
    pub async fn last_attempt_provider(&self, notification: &str) -> anyhow::Result<Option<String>> {
        let row: Option<(Option<String>,)> =
            read_optional!(self, LAST_ATTEMPT_PROVIDER, notification).context("read the last attempt")?;
        Ok(row.and_then(|(p,)| p))
    }

    /// Forgets reservations older than `before` (their mails went elsewhere).
    pub async fn purge_reservations(&self, before: Millis) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => db.write(move |tx| Ok(tx.execute(PURGE_RESERVATIONS, &[&before.0]).map(drop)?)).await,
            Db::Postgres(p) => {
                sqlx::query(PURGE_RESERVATIONS).bind(before.0).execute(p).await.context("purge reservations")?;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::placed;

    fn order(ids: &[&str]) -> Vec<(String, i64)> {
        ids.iter().enumerate().map(|(i, id)| ((*id).to_owned(), i as i64 + 1)).collect()
    }

    #[test]
    fn placing_renumbers_only_what_moves() {
        let o = order(&["a", "b", "c"]);
        assert_eq!(placed(&o, "c", 1), vec![("c".into(), 1), ("a".into(), 2), ("b".into(), 3)]);
        assert_eq!(placed(&o, "b", 2), vec![]);
        assert_eq!(placed(&o, "a", 99), vec![("b".into(), 1), ("c".into(), 2), ("a".into(), 3)]);
        let mut with_new = o.clone();
        with_new.push(("n".into(), i64::MAX));
        assert_eq!(placed(&with_new, "n", i64::MAX), vec![("n".into(), 4)]);
        assert_eq!(placed(&o, "n", 0), vec![("n".into(), 1), ("a".into(), 2), ("b".into(), 3), ("c".into(), 4)]);
    }
}
