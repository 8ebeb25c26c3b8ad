//! Storage: one [`Store`] over SQLite (embedded default) or PostgreSQL,
//! chosen by the database URL.
//!
//! Domain code calls `Store` methods and never sees SQL. The rule fits in a
//! sentence: SQLite code is rusqlite ([`sqlite`]), PostgreSQL code is sqlx
//! ([`postgres`], a file per area), SQL text is shared: a portable
//! statement is written once as a `const &str` in [`sql`], and each method
//! of `store/<area>.rs` is a two-arm dispatch over [`Db`] (one-statement
//! reads through [`read_optional!`] and [`read_all!`]). Row structs and
//! their mappers sit beside the methods of their area. Where the dialects
//! differ, both texts sit side by side. Conventions: `$n`
//! placeholders (rusqlite binds them by name), `LIMIT $n + 0` rather than a
//! bare bound `LIMIT $n` (which SQLite re-plans on every run), UUIDv7 `TEXT`
//! ids, `BIGINT` Unix milliseconds supplied by Herald's clock, and every
//! org-scoped statement filters on `org_id`.
//!
//! sqlx's SQLite driver remains only to run the migrations, so a database
//! made by an earlier release keeps its `_sqlx_migrations` history.

mod alerts;
mod audit;
mod cache;
mod console;
mod delivery;
mod directory;
mod fairness;
mod feedback;
mod identities;
mod orgs;
mod overview;
mod pending_usage;
mod policy;
mod postgres;
mod provider_slots;
mod providers;
mod retention;
mod smtp;
mod sql;
mod sqlite;
mod suppressions;
mod tokens;
mod webhooks;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};

pub use audit::AuditPage;
pub use console::{ConsoleLogin, UserInsert};
pub use delivery::{EventWrite, LeaseOnCommit, LeaseTerms, NewKeyClaim};
pub use directory::{DepartmentWrite, UserWrite};
pub use feedback::{FeedbackRow, FeedbackTarget, FeedbackWrite};
pub use identities::{IdentityWrite, LinkUse};
pub use overview::{LogQuery, QueueRow};
pub use policy::PolicyChange;
pub use postgres::nodelay::tcp_nodelay_of;
pub use providers::{HealthRow, ProviderRow, RateParams};
pub use retention::{PruneLock, StorageStats, backup_sqlite, restore_sqlite, vacuum_sqlite};
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
    Sqlite(Arc<sqlite::Sqlite>),
    Postgres(PgPool),
}

/// The one storage API of Herald. Cheap to clone (pools are shared).
#[derive(Clone)]
pub struct Store {
    db: Db,
    /// The instance id, once read.
    instance: Arc<std::sync::OnceLock<String>>,
    sqlite_file: Option<Arc<std::path::PathBuf>>,
    /// sqlx's options for the SQLite migrator (see [`Store::migrate`]).
    migrate_options: Option<Arc<SqliteConnectOptions>>,
    /// Where the data is, for people: the absolute SQLite path, or
    /// PostgreSQL's host, port and database (never a password).
    location: Arc<str>,
    /// Token lookups and SMTP rows, with their bounds (see [`cache`]).
    cache: Arc<cache::ReadCache>,
    /// Usage counts of orgs without a quota, written with the next events
    /// (PostgreSQL; see [`pending_usage`]).
    pending_usage: Arc<pending_usage::PendingUsage>,
}

impl fmt::Debug for Store {
    // The URL may hold a password: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend()).finish_non_exhaustive()
    }
}

/// A row type with one mapper per driver, both by column name: sqlx's
/// `FromRow` (PostgreSQL) and rusqlite's `TryFrom<&Row>` (SQLite). Named
/// fields, so a swapped pair of columns is a decode error, never a quietly
/// swapped value.
macro_rules! row {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(sqlx::FromRow)]
        $vis struct $name { $($field: $ty),* }

        impl TryFrom<&rusqlite::Row<'_>> for $name {
            type Error = rusqlite::Error;
            fn try_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok($name { $($field: r.get(stringify!($field))?),* })
            }
        }
    };
}
pub(crate) use row;

/// Runs a read returning at most one row, decoded as `T` (a tuple or a
/// named row with a mapper per driver): on a SQLite reader thread, or
/// through sqlx on PostgreSQL. Binds must be types both drivers take
/// (`&str`, `String`, `i64`, `bool`, options of those).
macro_rules! read_optional {
    ($store:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        match &$store.db {
            $crate::store::Db::Sqlite(db) => {
                // A statement of its own: the borrowed binds must not live
                // across the await (the future stays `Send`).
                let params = $crate::store::sqlite::owned_params(&[$(&$bind as &dyn rusqlite::ToSql),*]);
                match params {
                    Ok(params) => db.optional($sql, params).await,
                    Err(e) => Err(e),
                }
            }
            $crate::store::Db::Postgres(p) => sqlx::query_as($sql)$(.bind($bind))*.fetch_optional(p).await
                .map_err(anyhow::Error::from),
        }
    };
}

/// Like [`read_optional!`], for every row.
macro_rules! read_all {
    ($store:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        match &$store.db {
            $crate::store::Db::Sqlite(db) => {
                // A statement of its own: the borrowed binds must not live
                // across the await (the future stays `Send`).
                let params = $crate::store::sqlite::owned_params(&[$(&$bind as &dyn rusqlite::ToSql),*]);
                match params {
                    Ok(params) => db.all($sql, params).await,
                    Err(e) => Err(e),
                }
            }
            $crate::store::Db::Postgres(p) => sqlx::query_as($sql)$(.bind($bind))*.fetch_all(p).await
                .map_err(anyhow::Error::from),
        }
    };
}
pub(crate) use {read_all, read_optional};

/// One read connection per core: more only contend for SQLite's shared
/// WAL-index lock (bench/http measured 2 > 1 > 4 on 2 cores).
fn reader_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8))
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

/// The database file of a SQLite URL, and sqlx's options for the migrator.
/// An in-memory database is refused: every connection would get a database
/// of its own, and a mail service must not keep accepted mail in memory.
fn sqlite_options(url: &str) -> anyhow::Result<(std::path::PathBuf, SqliteConnectOptions)> {
    let options = SqliteConnectOptions::from_str(url)
        .context("parse the SQLite database URL")?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let path = options.get_filename();
    let memory = url.contains(":memory:") || url.contains("mode=memory") || path.as_os_str().is_empty();
    anyhow::ensure!(
        !memory,
        "in-memory SQLite is not supported: accepted mail must survive a restart; \
         give a file, e.g. sqlite://herald.db"
    );
    Ok((path.to_path_buf(), options))
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`). A SQLite file is
    /// created if missing and runs in WAL mode with foreign keys on; its
    /// writes commit with `synchronous = FULL`.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        let mut sqlite_file = None;
        let mut migrate_options = None;
        let location: String;
        let db = if url.starts_with("sqlite:") {
            let (path, options) = sqlite_options(url)?;
            location = std::path::absolute(&path).unwrap_or_else(|_| path.clone()).display().to_string();
            let open = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || sqlite::Sqlite::open(&path, reader_count()))
            };
            let db = open
                .await
                .context("open the SQLite database")?
                .with_context(|| format!("open the SQLite database {location}"))?;
            sqlite_file = Some(Arc::new(path));
            migrate_options = Some(Arc::new(options));
            Db::Sqlite(Arc::new(db))
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
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        postgres::nodelay::set_on(conn).await;
                        Ok(())
                    })
                })
                .connect_with(options)
                .await
                .with_context(|| format!("connect to PostgreSQL at {location}"))?;
            Db::Postgres(pool)
        } else {
            anyhow::bail!("unsupported database URL scheme (expected sqlite:// or postgres://)");
        };
        let location = location.into();
        Ok(Store {
            db,
            instance: Arc::default(),
            sqlite_file,
            migrate_options,
            location,
            cache: Arc::default(),
            pending_usage: Arc::default(),
        })
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
        match &self.db {
            Db::Sqlite(_) => {
                // sqlx's migrator, on a connection of its own, so the
                // `_sqlx_migrations` history of deployed databases goes on.
                let options = self.migrate_options.as_deref().context("SQLite options missing")?;
                let mut conn = SqliteConnection::connect_with(options).await.context("open the SQLite database")?;
                let applied = migrator.run(&mut conn).await;
                let _ = conn.close().await;
                applied
            }
            Db::Postgres(p) => migrator.run(p).await,
        }
        .context("apply database migrations")
    }

    /// Readiness: the database answers and every migration Herald ships has
    /// been applied successfully.
    pub async fn ready(&self) -> anyhow::Result<()> {
        const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success";
        let applied: Vec<(i64,)> = read_all!(self, APPLIED).context("read applied migrations")?;
        let applied: Vec<i64> = applied.into_iter().map(|(v,)| v).collect();
        let missing: Vec<i64> = self.migrator().iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect();
        anyhow::ensure!(missing.is_empty(), "migrations not applied: {missing:?}");
        Ok(())
    }

    /// Closes every pooled connection (used at shutdown and by tests that
    /// drop their database).
    pub async fn close(&self) {
        match &self.db {
            // The writer thread ends with the last clone of the store.
            Db::Sqlite(_) => {}
            Db::Postgres(p) => p.close().await,
        }
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

    #[tokio::test]
    async fn in_memory_sqlite_is_refused_with_the_reason() {
        for url in ["sqlite::memory:", "sqlite://file.db?mode=memory"] {
            let err = Store::connect(url).await.expect_err("refused");
            assert!(format!("{err:#}").contains("in-memory SQLite is not supported"), "{url}: {err:#}");
        }
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
