//! Storage: one [`Store`] over SQLite (embedded default) or PostgreSQL,
//! chosen by the database URL.
//!
//! Domain code calls `Store` methods and never sees SQL. A portable statement
//! is written once as a `const &str` and compiled for both drivers through
//! [`with_pool!`]; where the dialects differ, both texts sit side by side.
//! Conventions: `$n` placeholders (in order of appearance: SQLite numbers
//! them that way), `LIMIT $n + 0` rather than a bare bound `LIMIT $n` (which
//! SQLite re-plans on every run), UUIDv7 `TEXT` ids, `BIGINT` Unix
//! milliseconds supplied by Herald's clock, and every org-scoped statement
//! filters on `org_id`.
//!
//! On SQLite, reads go through [`reader`] (inline, no thread hop) and writes
//! through sqlx's pool; on PostgreSQL everything goes through sqlx.

mod audit;
mod console;
mod delivery;
mod directory;
mod identities;
mod orgs;
mod overview;
mod policy;
mod reader;
mod smtp;
mod tokens;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Postgres, Sqlite, Transaction};

pub use audit::AuditPage;
pub use console::{ConsoleLogin, UserInsert};
pub use delivery::EventWrite;
pub use directory::{DepartmentWrite, UserWrite};
pub use identities::{IdentityWrite, LinkUse};
pub use overview::{LogQuery, QueueRow};
pub use policy::PolicyChange;
pub use smtp::{Decided, SmtpDecision, SmtpRow};
pub use tokens::TokenAuth;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The one storage API of Herald. Cheap to clone (pools are shared).
#[derive(Clone)]
pub struct Store {
    db: Db,
    /// SQLite's inline read path (absent for PostgreSQL and in-memory SQLite).
    reader: Option<Arc<reader::Reader>>,
    /// The instance id, once read.
    instance: Arc<std::sync::OnceLock<String>>,
    sqlite_file: Option<Arc<std::path::PathBuf>>,
    /// Where the data is, for people: the absolute SQLite path, or
    /// PostgreSQL's host, port and database (never a password).
    location: Arc<str>,
    /// SQLite has one writer. Busy writers wait in SQLite's busy handler,
    /// which sleeps in steps of up to 100 ms; the hot write paths queue on
    /// this lock instead, so they run back to back. (Other processes on the
    /// same file still meet the busy handler.)
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for Store {
    // The URL may hold a password: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend()).finish_non_exhaustive()
    }
}

/// Runs `$body` with `$pool` bound to this store's pool. The body compiles
/// once per backend, so one SQL text is type-checked against both drivers.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use reader::{read_all, read_optional};
pub(crate) use with_pool;

/// Opens a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so a
/// transaction that reads and then writes waits on `busy_timeout` for the
/// single writer lock instead of failing with `SQLITE_BUSY` at its first write.
pub(crate) trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Self::Db>>;
}

impl BeginWrite for SqlitePool {
    type Db = Sqlite;
    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Sqlite>> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Db = Postgres;
    async fn begin_write(&self) -> sqlx::Result<Transaction<'static, Postgres>> {
        self.begin().await
    }
}

/// One read connection per core: more only contend for SQLite's shared
/// WAL-index lock (bench/http measured 2 > 1 > 4 on 2 cores).
fn reader_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8))
}

/// True when a database error is a unique-constraint violation (both
/// engines report it through sqlx's portable kind; SQLite names no constraint).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// True when `err` (anywhere in its chain) says the database could not be
/// reached or is not taking work just now, rather than that a statement or
/// its data is wrong: the pool timed out or is closed, a connection broke or
/// was refused, PostgreSQL ended the session (`FATAL`, e.g. 57P01
/// `admin_shutdown` while it restarts, 57P03 `cannot_connect_now`, a database
/// not accepting connections) or reported a connection or resource class
/// error (08, 53, 57P, 58), or SQLite stayed busy or locked past its busy
/// timeout, could not open its file or hit an I/O error or a full disk.
/// Requests failing so are answered 503 with `Retry-After`, not 500.
pub fn is_unavailable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        if let Some(e) = cause.downcast_ref::<sqlx::Error>() {
            sqlx_unavailable(e)
        } else if let Some(rusqlite::Error::SqliteFailure(e, _)) = cause.downcast_ref::<rusqlite::Error>() {
            sqlite_code_unavailable(e.extended_code)
        } else {
            false
        }
    })
}

fn sqlx_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                use sqlx::postgres::PgSeverity;
                let code = pg.code();
                matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic)
                    || ["08", "53", "57P", "58"].iter().any(|class| code.starts_with(class))
            } else {
                db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(sqlite_code_unavailable)
            }
        }
        _ => false,
    }
}

/// SQLite's (extended) result codes that mean "not now" rather than "wrong":
/// BUSY, LOCKED, IOERR, FULL, CANTOPEN (the primary code is the low byte).
fn sqlite_code_unavailable(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6 | 10 | 13 | 14)
}

/// The database file of a SQLite URL; `None` for an in-memory database,
/// which other connections cannot open.
fn options_file(url: &str) -> anyhow::Result<Option<std::path::PathBuf>> {
    let options = SqliteConnectOptions::from_str(url).context("parse the SQLite database URL")?;
    let path = options.get_filename();
    let memory = url.contains(":memory:") || url.contains("mode=memory") || path.as_os_str().is_empty();
    Ok(if memory { None } else { Some(path.to_path_buf()) })
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`). A SQLite file is
    /// created if missing and runs in WAL mode with foreign keys on.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        let mut reader = None;
        let mut sqlite_file = None;
        let location: String;
        let db = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .context("parse the SQLite database URL")?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let path = options.get_filename();
            location = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string();
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await
                .with_context(|| format!("open the SQLite database {location}"))?;
            let file = options_file(url)?;
            if let Some(file) = file {
                reader = Some(Arc::new(reader::Reader::open(&file, reader_count())?));
                sqlite_file = Some(Arc::new(file));
            }
            Db::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).context("parse the PostgreSQL database URL")?;
            location = format!(
                "postgres://{}:{}/{}",
                options.get_host(),
                options.get_port(),
                options.get_database().unwrap_or_default()
            );
            // One direct connection first: it fails at once with the server's
            // own reason (connection refused, no such database, bad password),
            // where the pool would retry a refused connection until its
            // acquire timeout and then say only "pool timed out".
            let first = tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&options))
                .await
                .map_err(|_| anyhow::anyhow!("no answer within 10 s"))
                .and_then(|connected| Ok(connected?))
                .with_context(|| format!("connect to PostgreSQL at {location}"))?;
            let _ = first.close().await;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .with_context(|| format!("connect to PostgreSQL at {location}"))?;
            Db::Postgres(pool)
        } else {
            anyhow::bail!("unsupported database URL scheme (expected sqlite:// or postgres://)");
        };
        let location = location.into();
        Ok(Store { db, reader, instance: Arc::default(), sqlite_file, location, write_lock: Arc::default() })
    }

    /// On SQLite, waits for this process's turn to write; `None` on PostgreSQL.
    pub(crate) async fn sqlite_writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.db {
            Db::Sqlite(_) => Some(self.write_lock.lock().await),
            Db::Postgres(_) => None,
        }
    }

    /// The SQLite database file, if this store is one (the default home of
    /// the key file).
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.sqlite_file.as_ref().map(|p| p.as_path())
    }

    /// Where the data is: the absolute path of the SQLite file, or
    /// `postgres://host:port/database` (no user, no password).
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.db {
            Db::Sqlite(_) => &SQLITE_MIGRATIONS,
            Db::Postgres(_) => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies every pending migration of this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = self.migrator();
        with_pool!(self, |p| migrator.run(p).await).context("apply database migrations")
    }

    /// Readiness: the database answers and every migration Herald ships has
    /// been applied successfully.
    pub async fn ready(&self) -> anyhow::Result<()> {
        const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success";
        let applied: Vec<i64> =
            with_pool!(self, |p| sqlx::query_scalar(APPLIED).fetch_all(p).await).context("read applied migrations")?;
        let missing: Vec<i64> = self.migrator().iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect();
        anyhow::ensure!(missing.is_empty(), "migrations not applied: {missing:?}");
        Ok(())
    }

    /// Closes every pooled connection (used at shutdown and by tests that
    /// drop their database).
    pub async fn close(&self) {
        with_pool!(self, |p| p.close().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_ship_the_same_migrations() {
        let names = |m: &Migrator| m.iter().map(|m| (m.version, m.description.to_string())).collect::<Vec<_>>();
        assert_eq!(names(&SQLITE_MIGRATIONS), names(&POSTGRES_MIGRATIONS));
        assert!(SQLITE_MIGRATIONS.iter().count() > 0);
    }
}

#[cfg(test)]
mod outage_tests {
    use super::is_unavailable;

    #[test]
    fn outages_are_told_from_faults() {
        let sqlite = |code| anyhow::Error::new(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None));
        assert!(is_unavailable(&sqlite(5).context("load department")), "SQLITE_BUSY");
        assert!(is_unavailable(&sqlite(10 | (4 << 8))), "SQLITE_IOERR_SHORT_READ");
        assert!(!is_unavailable(&sqlite(2067)), "SQLITE_CONSTRAINT_UNIQUE is a fault, not an outage");
        assert!(is_unavailable(&anyhow::Error::new(sqlx::Error::PoolTimedOut).context("begin")));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(is_unavailable(&anyhow::Error::new(sqlx::Error::Io(refused))));
        assert!(!is_unavailable(&anyhow::Error::new(sqlx::Error::RowNotFound)));
        assert!(!is_unavailable(&anyhow::anyhow!("decode a row")));
    }
}
