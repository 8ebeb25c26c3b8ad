//! Retention settings, pruning batches, erasure, space and backups
//! (issue 20). Pruning covers `notifications` (bodies, then records, with
//! `delivery_attempts` and `outbox` by cascade), `events` and `audit_log`;
//! `idempotency_keys` keep their own 24 h purge (`delivery::worker`).

use std::path::Path;

use anyhow::Context;

use super::sql::retention::{ORG_EXISTS, ORG_OVERRIDE, ORG_SETTINGS, PG_BODIES, PG_ROWS, PG_SIZE, SQLITE_ROWS};
use super::{Db, Store, postgres, read_all, read_optional, sqlite};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::retention::{Cutoffs, Erased, OrgRetention, Pruned, RetentionOverride};

super::row! {
    struct SettingsRow { org_id: String, body_days: Option<i64>, record_days: Option<i64>, dead_days: Option<i64>, audit_days: Option<i64> }
}

super::row! {
    struct OverrideRow { body_days: Option<i64>, record_days: Option<i64>, dead_days: Option<i64>, audit_days: Option<i64>, updated_at: i64 }
}

super::row! {
    struct SqliteRows { notifications: i64, bodies: i64, events: i64, attempts: i64, outbox: i64, idempotency_keys: i64, audit: i64 }
}

/// The pruning lock of this node (PostgreSQL: a connection holding an
/// advisory lock; SQLite: nothing, its one writer orders everything).
pub struct PruneLock(Option<sqlx::PgConnection>);

impl PruneLock {
    pub async fn release(self) {
        if let Some(conn) = self.0 {
            postgres::retention::unlock(conn).await;
        }
    }
}

/// How big the database is, and what it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// The SQLite file and its WAL, or `pg_database_size`.
    pub size_bytes: i64,
    /// Rows by table class (`notification_bodies`: notifications that still
    /// have their body). Exact on SQLite; PostgreSQL's live-row estimates.
    pub rows: Vec<(&'static str, i64)>,
}

/// Pruning steps per org, in order (see `sqlite::retention::prune_step`).
const STEPS: usize = 8;

impl Store {
    /// Takes this node's turn to prune; `None` when another node prunes now.
    pub async fn try_prune_lock(&self) -> anyhow::Result<Option<PruneLock>> {
        match &self.db {
            Db::Sqlite(_) => Ok(Some(PruneLock(None))),
            Db::Postgres(p) => Ok(postgres::retention::try_lock(p).await?.map(|c| PruneLock(Some(c)))),
        }
    }

    /// Every org with its overrides.
    pub async fn retention_settings(&self) -> anyhow::Result<Vec<(OrgId, RetentionOverride)>> {
        let rows: Vec<SettingsRow> = read_all!(self, ORG_SETTINGS).context("read retention settings")?;
        Ok(rows
            .into_iter()
            .map(|SettingsRow { org_id, body_days, record_days, dead_days, audit_days }| {
                (OrgId::from_db(org_id), RetentionOverride { body_days, record_days, dead_days, audit_days })
            })
            .collect())
    }

    pub async fn org_exists(&self, org: &OrgId) -> anyhow::Result<bool> {
        let row: Option<(String,)> = read_optional!(self, ORG_EXISTS, org.as_str()).context("look the org up")?;
        Ok(row.is_some())
    }

    /// An org's overrides (all `None` without a row); `None` for no such org.
    pub async fn org_retention(&self, org: &OrgId) -> anyhow::Result<Option<OrgRetention>> {
        if !self.org_exists(org).await? {
            return Ok(None);
        }
        let row: Option<OverrideRow> = read_optional!(self, ORG_OVERRIDE, org.as_str()).context("read overrides")?;
        Ok(Some(match row {
            None => OrgRetention { overrides: RetentionOverride::default(), updated_at: None },
            Some(OverrideRow { body_days, record_days, dead_days, audit_days, updated_at }) => OrgRetention {
                overrides: RetentionOverride { body_days, record_days, dead_days, audit_days },
                updated_at: Some(Millis(updated_at)),
            },
        }))
    }

    /// Stores (`Some`) or drops (`None`) an org's overrides with its audit
    /// row; false when the org does not exist.
    pub async fn set_org_retention(
        &self,
        org: &OrgId,
        overrides: Option<&RetentionOverride>,
        audit: &AuditEntry,
        now: Millis,
    ) -> anyhow::Result<bool> {
        if !self.org_exists(org).await? {
            return Ok(false);
        }
        let (org, overrides, audit) = (org.clone(), overrides.copied(), audit.clone());
        match &self.db {
            Db::Sqlite(db) => {
                db.write(move |tx| sqlite::retention::set_override(tx, &org, overrides, &audit, now)).await
            }
            Db::Postgres(p) => postgres::retention::set_override(p, &org, overrides, &audit, now).await,
        }
    }

    /// Runs every pruning step of one org, batch after batch, each batch a
    /// transaction of its own.
    pub async fn prune_org(&self, org: &OrgId, cut: &Cutoffs, now: Millis, batch: i64) -> anyhow::Result<Pruned> {
        let mut pruned = Pruned::default();
        for step in 0..STEPS {
            loop {
                let (changed, events) = match &self.db {
                    Db::Sqlite(db) => {
                        let (org, cut) = (org.clone(), *cut);
                        db.write(move |tx| sqlite::retention::prune_step(tx, step, &org, &cut, now, batch)).await
                    }
                    Db::Postgres(p) => postgres::retention::prune_step(p, step, org, cut, now, batch).await,
                }
                .with_context(|| format!("pruning step {step} of org {org}"))?;
                match step {
                    0 | 1 => pruned.bodies += changed,
                    2 => pruned.notifications += changed,
                    3 => pruned.events += changed,
                    4 => pruned.webhook_messages += changed,
                    5 => pruned.alerts += changed,
                    6 => pruned.usage_windows += changed,
                    _ => pruned.audit_entries += changed,
                }
                pruned.events += events;
                if changed < batch as u64 {
                    break;
                }
                // Lets the delivery path's writes in between batches.
                tokio::task::yield_now().await;
            }
        }
        Ok(pruned)
    }

    /// Prunes the audit rows of a scope (the instance's own log) older than `before`.
    pub async fn prune_audit_scope(&self, scope_id: &str, before: Millis, batch: i64) -> anyhow::Result<u64> {
        let mut total = 0;
        loop {
            let n = match &self.db {
                Db::Sqlite(db) => {
                    let scope_id = scope_id.to_owned();
                    db.write(move |tx| sqlite::retention::prune_audit(tx, &scope_id, before, batch)).await?
                }
                Db::Postgres(p) => postgres::retention::prune_audit(p, scope_id, before, batch).await?,
            };
            total += n;
            if n < batch as u64 {
                return Ok(total);
            }
        }
    }

    /// SQLite: hands free pages back to the file system, a slice per write,
    /// and then trims the WAL; the pages handed back. PostgreSQL: nothing
    /// (autovacuum's job).
    pub async fn reclaim_space(&self) -> anyhow::Result<u64> {
        let Db::Sqlite(db) = &self.db else { return Ok(0) };
        let mut total = 0;
        loop {
            let freed = db.write(sqlite::retention::reclaim).await.context("incremental vacuum")?;
            total += freed;
            if freed == 0 {
                break;
            }
        }
        if total > 0
            && let Some(path) = self.sqlite_file()
        {
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || sqlite::retention::checkpoint_truncate(&path))
                .await
                .context("checkpoint")??;
        }
        Ok(total)
    }

    /// Erases `email`'s mail in `org` (see `domain::retention::erase`). On
    /// SQLite the WAL is then checkpointed and truncated, so the only copy
    /// of each changed page is the zeroed one in the file.
    pub async fn erase_recipient(&self, org: &OrgId, email: &str, audit: &AuditEntry) -> anyhow::Result<Erased> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, email, audit) = (org.clone(), email.to_owned(), audit.clone());
                let erased = db.write(move |tx| sqlite::retention::erase(tx, &org, &email, &audit)).await?;
                let path = self.sqlite_file().context("no SQLite file")?.to_path_buf();
                let done = tokio::task::spawn_blocking(move || sqlite::retention::checkpoint_truncate(&path))
                    .await
                    .context("checkpoint")??;
                if !done {
                    tracing::warn!("after an erasure, readers kept the WAL from being truncated; it will be reused");
                }
                Ok(erased)
            }
            Db::Postgres(p) => postgres::retention::erase(p, org, email, audit).await,
        }
    }

    /// Database size and rows by table class.
    pub async fn storage_stats(&self) -> anyhow::Result<StorageStats> {
        match &self.db {
            Db::Sqlite(db) => {
                let counts: Option<SqliteRows> = db.optional(SQLITE_ROWS, Vec::new()).await?;
                let SqliteRows { notifications, bodies, events, attempts, outbox, idempotency_keys, audit } =
                    counts.context("no counts")?;
                let path = self.sqlite_file().context("no SQLite file")?;
                let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len() as i64);
                let mut wal = path.as_os_str().to_owned();
                wal.push("-wal");
                Ok(StorageStats {
                    size_bytes: len(path) + len(Path::new(&wal)),
                    rows: vec![
                        ("notifications", notifications),
                        ("notification_bodies", bodies),
                        ("events", events),
                        ("delivery_attempts", attempts),
                        ("outbox", outbox),
                        ("idempotency_keys", idempotency_keys),
                        ("audit_log", audit),
                    ],
                })
            }
            Db::Postgres(p) => {
                let (size,): (i64,) = sqlx::query_as(PG_SIZE).fetch_one(p).await.context("database size")?;
                let live: Vec<(String, i64)> = sqlx::query_as(PG_ROWS).fetch_all(p).await.context("row estimates")?;
                let (bodies,): (i64,) = sqlx::query_as(PG_BODIES).fetch_one(p).await.context("count bodies")?;
                let get = |t: &str| live.iter().find(|(n, _)| n == t).map_or(0, |(_, c)| *c);
                Ok(StorageStats {
                    size_bytes: size,
                    rows: vec![
                        ("notifications", get("notifications")),
                        ("notification_bodies", bodies),
                        ("events", get("events")),
                        ("delivery_attempts", get("delivery_attempts")),
                        ("outbox", get("outbox")),
                        ("idempotency_keys", get("idempotency_keys")),
                        ("audit_log", get("audit_log")),
                    ],
                })
            }
        }
    }
}

/// `herald backup --to FILE` for the SQLite database of `url`, online (no
/// migration, no write: a snapshot read); the bytes written.
pub fn backup_sqlite(url: &str, to: &Path) -> anyhow::Result<i64> {
    anyhow::ensure!(
        url.starts_with("sqlite:"),
        "herald backup copies SQLite databases; for PostgreSQL use pg_dump (README: \"Retention, erasure and backups\")"
    );
    let (path, _) = super::sqlite_options(url)?;
    anyhow::ensure!(path.exists(), "no SQLite database at {}", path.display());
    sqlite::retention::backup(&path, to)
}

/// `herald restore --from FILE` for the SQLite database of `url` (Herald
/// stopped); where the replaced file was kept, if there was one.
pub fn restore_sqlite(url: &str, from: &Path, now: Millis) -> anyhow::Result<Option<std::path::PathBuf>> {
    anyhow::ensure!(
        url.starts_with("sqlite:"),
        "herald restore replaces a SQLite file; for PostgreSQL restore the pg_dump with pg_restore"
    );
    let (path, _) = super::sqlite_options(url)?;
    sqlite::retention::restore(from, &path, now)
}

/// `herald vacuum` for the SQLite database of `url`: (bytes before, after).
pub fn vacuum_sqlite(url: &str) -> anyhow::Result<(i64, i64)> {
    anyhow::ensure!(url.starts_with("sqlite:"), "herald vacuum is for SQLite; PostgreSQL has autovacuum");
    let (path, _) = super::sqlite_options(url)?;
    sqlite::retention::vacuum(&path)
}
