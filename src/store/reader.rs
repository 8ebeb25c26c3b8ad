//! SQLite's read path: reads run inline on a few rusqlite connections.
//!
//! sqlx runs every SQLite connection on a worker thread of its own, so each
//! statement and each row costs a thread hand-off (a futex wake and a
//! context switch); profiling showed that hand-off, not SQLite, was nearly
//! all of a read's cost. Reads here instead run on the calling thread
//! against a read-only (`query_only`) connection. Under WAL a reader never
//! waits for the writer and each statement sees every committed change, from
//! this process or any other, so nothing is cached and nothing can be stale.
//! Writes and migrations stay on sqlx's pool.
//!
//! The SQL is the same `const` text sqlx runs on PostgreSQL, and rows decode
//! into the same tuple types; see [`read_optional!`] and friends.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{CachedStatement, Connection, OpenFlags, Row, ToSql};

pub struct Reader {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
    /// One write connection for the delivery engine's hot writes (see
    /// [`Reader::write`]).
    writer: Mutex<Connection>,
}

impl Reader {
    /// Opens `count` read connections to the database file at `path`, which
    /// sqlx has already created and put in WAL mode.
    pub fn open(path: &Path, count: usize) -> anyhow::Result<Reader> {
        let connect = || -> anyhow::Result<Connection> {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
            )
            .context("open a SQLite connection")?;
            conn.busy_timeout(Duration::from_secs(10))?;
            conn.set_prepared_statement_cache_capacity(64);
            Ok(conn)
        };
        let conns = (0..count.max(1))
            .map(|_| {
                let conn = connect()?;
                conn.pragma_update(None, "query_only", true)?;
                Ok(Mutex::new(conn))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let writer = connect()?;
        // The same settings sqlx gives its connections.
        writer.pragma_update(None, "foreign_keys", true)?;
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(Reader { conns, next: AtomicUsize::new(0), writer: Mutex::new(writer) })
    }

    /// A free connection if there is one, else waits for the next in turn.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.conns.len();
        for i in 0..n {
            if let Ok(guard) = self.conns[(start + i) % n].try_lock() {
                return guard;
            }
        }
        // A panic while holding a connection leaves it usable: SQLite has no
        // half-done read state to protect.
        self.conns[start % n].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn prepare<'c>(conn: &'c Connection, sql: &'static str) -> anyhow::Result<CachedStatement<'c>> {
        let stmt = conn.prepare_cached(sql).context("prepare a read")?;
        // `$n` are named parameters to SQLite, numbered by first appearance;
        // binding by position is right only if `$1…$n` appear in order.
        for i in 1..=stmt.parameter_count() {
            let name = stmt.parameter_name(i);
            anyhow::ensure!(name == Some(&format!("${i}")), "read SQL must use $1..$n in order: {sql}");
        }
        Ok(stmt)
    }

    pub fn optional<T>(&self, sql: &'static str, params: &[&dyn ToSql]) -> anyhow::Result<Option<T>>
    where
        T: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error>,
    {
        let conn = self.conn();
        let mut stmt = Self::prepare(&conn, sql)?;
        let mut rows = stmt.query(params).context("run a read")?;
        match rows.next().context("read a row")? {
            Some(row) => Ok(Some(T::try_from(row).context("decode a row")?)),
            None => Ok(None),
        }
    }

    pub fn all<T>(&self, sql: &'static str, params: &[&dyn ToSql]) -> anyhow::Result<Vec<T>>
    where
        T: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error>,
    {
        let conn = self.conn();
        let mut stmt = Self::prepare(&conn, sql)?;
        let mut rows = stmt.query(params).context("run a read")?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().context("read a row")? {
            out.push(T::try_from(row).context("decode a row")?);
        }
        Ok(out)
    }
}

/// An open write transaction on the write connection.
pub struct Tx<'c>(&'c rusqlite::Transaction<'c>);

impl Tx<'_> {
    /// Binds `params` to `$1…$n` by name, so a statement may use them in
    /// any order (sqlx's PostgreSQL and SQLite statements share the text).
    fn bind(stmt: &mut CachedStatement<'_>, params: &[&dyn ToSql]) -> anyhow::Result<()> {
        for (i, value) in params.iter().enumerate() {
            let index = stmt.parameter_index(&format!("${}", i + 1))?.context("SQL lacks a parameter")?;
            stmt.raw_bind_parameter(index, value)?;
        }
        Ok(())
    }

    pub fn execute(&self, sql: &'static str, params: &[&dyn ToSql]) -> anyhow::Result<usize> {
        let mut stmt = self.0.prepare_cached(sql).context("prepare a write")?;
        Self::bind(&mut stmt, params)?;
        stmt.raw_execute().context("run a write")
    }

    pub fn query<T>(&self, sql: &'static str, params: &[&dyn ToSql]) -> anyhow::Result<Vec<T>>
    where
        T: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error>,
    {
        let mut stmt = self.0.prepare_cached(sql).context("prepare a write")?;
        Self::bind(&mut stmt, params)?;
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().context("read a row")? {
            out.push(T::try_from(row).context("decode a row")?);
        }
        Ok(out)
    }
}

impl Reader {
    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the write connection,
    /// committing if it returns `Ok`. Blocking: call it from
    /// `spawn_blocking`. Used for the delivery engine's frequent multi-row
    /// writes, where sqlx's per-statement thread hand-off dominated (bench/delivery).
    pub fn write<T>(&self, f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).context("begin")?;
        let out = f(&Tx(&tx))?;
        tx.commit().context("commit")?;
        Ok(out)
    }
}

/// Runs a read returning at most one row, decoded as the tuple type `T`:
/// inline on SQLite's [`Reader`], through sqlx elsewhere. Binds must be
/// types both drivers take (`&str`, `String`, `i64`, `bool`, options of those).
macro_rules! read_optional {
    ($store:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        match &$store.reader {
            Some(reader) => reader.optional($sql, &[$(&$bind as &dyn rusqlite::ToSql),*]),
            None => $crate::store::with_pool!($store, |p| sqlx::query_as($sql)$(.bind($bind))*.fetch_optional(p).await)
                .map_err(anyhow::Error::from),
        }
    };
}

/// Like [`read_optional!`], for every row.
macro_rules! read_all {
    ($store:expr, $sql:expr $(, $bind:expr)* $(,)?) => {
        match &$store.reader {
            Some(reader) => reader.all($sql, &[$(&$bind as &dyn rusqlite::ToSql),*]),
            None => $crate::store::with_pool!($store, |p| sqlx::query_as($sql)$(.bind($bind))*.fetch_all(p).await)
                .map_err(anyhow::Error::from),
        }
    };
}

pub(crate) use {read_all, read_optional};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_out_of_order_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (a INTEGER, b INTEGER)").unwrap();
        let reader = Reader::open(&path, 2).unwrap();
        let ok: Option<(i64,)> = reader.optional("SELECT $1 + $2", &[&1i64, &2i64]).unwrap();
        assert_eq!(ok, Some((3,)));
        let err = reader.optional::<(i64,)>("SELECT $2 - $1", &[&1i64, &2i64]).unwrap_err();
        assert!(err.to_string().contains("in order"), "{err}");
        let write = reader.all::<(i64,)>("INSERT INTO t (a, b) VALUES (1, 2) RETURNING a", &[]);
        assert!(write.is_err(), "read connections are query-only");
    }

    /// How often SQLite re-planned `sql` after running it 20 times.
    fn reprepares(sql: &'static str) -> i32 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let setup = Connection::open(&path).unwrap();
        setup
            .execute_batch("CREATE TABLE t (k TEXT, n BIGINT, PRIMARY KEY (k, n)); INSERT INTO t VALUES ('a', 1);")
            .unwrap();
        let reader = Reader::open(&path, 1).unwrap();
        for _ in 0..20 {
            reader.all::<(i64,)>(sql, &[&"a", &0i64, &10i64]).unwrap();
        }
        let conn = reader.conn();
        conn.prepare_cached(sql).unwrap().get_status(rusqlite::StatementStatus::RePrepare)
    }

    #[test]
    fn a_bare_bound_limit_is_replanned_every_run_and_plus_zero_is_not() {
        assert_eq!(reprepares("SELECT n FROM t WHERE k = $1 AND n > $2 ORDER BY n LIMIT $3"), 20);
        assert_eq!(reprepares("SELECT n FROM t WHERE k = $1 AND n > $2 ORDER BY n LIMIT $3 + 0"), 0);
    }
}
