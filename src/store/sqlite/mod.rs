//! SQLite on rusqlite: a few read connections, and one writer thread that
//! serves every write of the process.
//!
//! Reads run on a read-only (`query_only`) connection, on a few reader
//! threads (one per connection) that take queued reads in turn, so blocking
//! SQLite work never runs on an async worker. Under WAL a reader
//! never waits for the writer and each statement sees every committed
//! change, from this process or another (token lookups and SMTP rows are
//! cached above this layer, in `store/cache.rs`).
//!
//! Writes are closures over a [`Tx`], queued to one OS thread that owns the
//! only write connection. The thread takes everything queued, opens one
//! `BEGIN IMMEDIATE` transaction (so another process on the same file waits
//! on `busy_timeout` rather than failing), runs each closure in a savepoint
//! of its own (a failing or [discarding](Tx::discard) closure rolls back only
//! itself), commits once with `synchronous = FULL`, and only then answers
//! every caller: one fsync serves the whole batch, and an answer means on
//! disk. Writes inside one process never meet SQLite's busy handler.
//!
//! Statements are the shared `$n` SQL text; a write binds `$n` by name, so
//! the text may use them in any order.

pub mod alerts;
pub mod audit;
pub mod delivery;
pub mod directory;
pub mod fairness;
pub mod feedback;
pub mod identities;
pub mod providers;
pub mod retention;
pub mod settings;
pub mod suppressions;
pub mod webhooks;

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{CachedStatement, Connection, OpenFlags, Row, ToSql};

/// How long a connection waits for another process's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many writes share one transaction (bounds the time a batch
/// holds SQLite's write lock against other processes).
const MAX_BATCH: usize = 512;

/// A queued write: run inside the batch's transaction (or told why it
/// could not be); answers its caller once the batch is committed.
type Job = Box<dyn FnOnce(Result<&Tx<'_>, anyhow::Error>) -> Option<(bool, Answer)> + Send>;
/// Sends the write's result, or the commit's error, to its caller.
type Answer = Box<dyn FnOnce(Option<anyhow::Error>) + Send>;

/// A queued read: runs on a read connection, on a reader thread.
type ReadJob = Box<dyn FnOnce(&Connection) + Send>;

pub struct Sqlite {
    /// Writes, each marked urgent or not ([`Sqlite::write_urgent`]).
    jobs: mpsc::Sender<(bool, Job)>,
    reads: flume::Sender<ReadJob>,
}

fn connect(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    // One line: rusqlite's message names the file and the reason, and its
    // source would only repeat the reason.
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl Sqlite {
    /// Opens (creating if missing) the database file at `path` in WAL mode,
    /// `readers` read connections and the writer thread.
    pub fn open(path: &Path, readers: usize) -> anyhow::Result<Sqlite> {
        Sqlite::open_with_wal_limit(path, readers, retention::WAL_LIMIT_BYTES)
    }

    /// [`Sqlite::open`] with the WAL kept near `wal_limit` bytes
    /// ([`retention::bound_wal`]).
    fn open_with_wal_limit(path: &Path, readers: usize, wal_limit: u64) -> anyhow::Result<Sqlite> {
        let writer = connect(path)?;
        retention::open_space(&writer)?;
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "SQLite refused WAL mode (journal mode {mode})");
        writer.pragma_update(None, "synchronous", "FULL")?;
        writer.pragma_update(None, "foreign_keys", true)?;
        let conns = (0..readers.max(1))
            .map(|_| {
                let conn = connect(path)?;
                conn.pragma_update(None, "query_only", true)?;
                Ok(conn)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("herald-sqlite-writer".into())
            .spawn(move || write_loop(&writer, &queue, wal_limit))
            .context("start the SQLite writer thread")?;
        // A channel with many receivers: a queued read wakes one idle reader
        // thread (behind a mutex, each read woke a second thread to wait
        // on the queue next).
        let (reads, read_queue) = flume::unbounded::<ReadJob>();
        for conn in conns {
            let read_queue = read_queue.clone();
            std::thread::Builder::new()
                .name("herald-sqlite-reader".into())
                .spawn(move || read_loop(&conn, &read_queue))
                .context("start a SQLite reader thread")?;
        }
        Ok(Sqlite { jobs, reads })
    }

    /// Runs `f` on a read connection on one of the reader threads (one per
    /// read connection) and waits for its answer without blocking the
    /// async worker. Under load the reader threads take one queued read
    /// after another, so a read costs no thread hand-off of its own (as
    /// `block_in_place` does: bench/RESULTS.md, issue 15, second pass).
    pub async fn on_reader<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a database read panicked")));
            let _ = reply.send(result);
        });
        self.reads.send(job).map_err(|_| anyhow::anyhow!("the SQLite readers stopped"))?;
        answer.await.context("the SQLite readers stopped")?
    }

    /// Runs `sql` with `params` (see [`owned_params`]) on a reader thread;
    /// its first row, if any, decoded as `T`.
    pub async fn optional<T>(&self, sql: &'static str, params: Vec<Value>) -> anyhow::Result<Option<T>>
    where
        T: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error> + Send + 'static,
    {
        self.on_reader(move |c| {
            let mut stmt = prepare(c, sql)?;
            bind_owned(&mut stmt, &params)?;
            let mut rows = stmt.raw_query();
            match rows.next().context("read a row")? {
                Some(row) => Ok(Some(T::try_from(row).context("decode a row")?)),
                None => Ok(None),
            }
        })
        .await
    }

    /// Like [`Sqlite::optional`], for every row.
    pub async fn all<T>(&self, sql: &'static str, params: Vec<Value>) -> anyhow::Result<Vec<T>>
    where
        T: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error> + Send + 'static,
    {
        self.on_reader(move |c| {
            let mut stmt = prepare(c, sql)?;
            bind_owned(&mut stmt, &params)?;
            collect(stmt.raw_query()).context("read rows")
        })
        .await
    }

    /// Queues `f` to the writer thread and waits until its batch committed.
    /// `f` returning `Err` (or panicking) rolls back only its own changes.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.submit(false, f)?.await.context("the SQLite writer stopped")?
    }

    /// [`Sqlite::write`] ahead of the queued writes: the next transaction
    /// holds only the urgent writes queued by then (unless the one before
    /// it did too; so the others wait at most one small transaction
    /// longer). For a small org's mail (its commit and its express claim,
    /// issue 19), so it waits for the transaction running now but not for
    /// the next one of another org's burst.
    pub async fn write_urgent<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        self.submit(true, f)?.await.context("the SQLite writer stopped")?
    }

    /// A write whose middle step is decided by the caller: `read` runs in
    /// the transaction, `decide` gets its result back on the caller's side
    /// (it may borrow, and need not be `Send`), and `finish` writes what it
    /// decided, in the same transaction. The writer thread waits for the
    /// decision; a caller that goes away meanwhile rolls its write back.
    pub async fn write_deciding<Q, A, T>(
        &self,
        read: impl FnOnce(&Tx<'_>) -> anyhow::Result<Q> + Send + 'static,
        decide: impl FnOnce(Q) -> A,
        finish: impl FnOnce(&Tx<'_>, A) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T>
    where
        Q: Send + 'static,
        A: Send + 'static,
        T: Send + 'static,
    {
        let (question_tx, question) = tokio::sync::oneshot::channel::<Q>();
        let (answer, answer_rx) = tokio::sync::oneshot::channel::<A>();
        let done = self.submit(false, move |tx| {
            let q = read(tx)?;
            question_tx.send(q).map_err(|_| anyhow::anyhow!("the caller went away"))?;
            let a = answer_rx.blocking_recv().context("the caller went away")?;
            finish(tx, a)
        })?;
        if let Ok(q) = question.await {
            // If the write is gone already, `done` says why.
            let _ = answer.send(decide(q));
        }
        done.await.context("the SQLite writer stopped")?
    }

    fn submit<T: Send + 'static>(
        &self,
        urgent: bool,
        f: impl FnOnce(&Tx<'_>) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<tokio::sync::oneshot::Receiver<anyhow::Result<T>>> {
        let (reply, done) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |tx| match tx {
            Err(e) => {
                let _ = reply.send(Err(e));
                None
            }
            Ok(tx) => {
                let result = catch_unwind(AssertUnwindSafe(|| f(tx)))
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a database write panicked")));
                let keep = result.is_ok();
                let answer: Answer = Box::new(move |commit| {
                    let _ = reply.send(match commit {
                        None => result,
                        Some(e) => Err(e),
                    });
                });
                Some((keep, answer))
            }
        });
        self.jobs.send((urgent, job)).map_err(|_| anyhow::anyhow!("the SQLite writer stopped"))?;
        Ok(done)
    }
}

/// A reader thread: takes queued reads one after another. Ends when every
/// [`Sqlite`] (every sender) is gone.
fn read_loop(conn: &Connection, queue: &flume::Receiver<ReadJob>) {
    while let Ok(job) = queue.recv() {
        job(conn);
    }
}

/// The values of a read's parameters, owned, so the read can run on a
/// reader thread.
pub fn owned_params(params: &[&dyn ToSql]) -> anyhow::Result<Vec<Value>> {
    params
        .iter()
        .map(|p| match p.to_sql().context("bind a parameter")? {
            ToSqlOutput::Borrowed(v) => Ok(match v {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Integer(i),
                ValueRef::Real(f) => Value::Real(f),
                ValueRef::Text(t) => Value::Text(std::str::from_utf8(t).context("bind a parameter")?.to_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            }),
            ToSqlOutput::Owned(v) => Ok(v),
            _ => anyhow::bail!("unsupported parameter type"),
        })
        .collect()
}

fn bind_owned(stmt: &mut CachedStatement<'_>, params: &[Value]) -> rusqlite::Result<()> {
    let refs: Vec<&dyn ToSql> = params.iter().map(|v| v as &dyn ToSql).collect();
    bind(stmt, &refs)
}

/// The writer thread: batch, run, commit once, answer. Ends when every
/// [`Sqlite`] (every sender) is gone.
fn write_loop(conn: &Connection, queue: &mpsc::Receiver<(bool, Job)>, wal_limit: u64) {
    let wal = conn.path().filter(|p| !p.is_empty()).map(|p| std::path::PathBuf::from(format!("{p}-wal")));
    let (mut urgent, mut normal): (VecDeque<Job>, VecDeque<Job>) = (VecDeque::new(), VecDeque::new());
    let mut urgent_alone = false;
    loop {
        let take = |(is_urgent, job): (bool, Job), urgent: &mut VecDeque<Job>, normal: &mut VecDeque<Job>| {
            if is_urgent { urgent.push_back(job) } else { normal.push_back(job) }
        };
        if urgent.is_empty() && normal.is_empty() {
            match queue.recv() {
                Ok(job) => take(job, &mut urgent, &mut normal),
                Err(_) => return,
            }
        }
        while urgent.len() + normal.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => take(job, &mut urgent, &mut normal),
                Err(_) => break,
            }
        }
        // Urgent writes get a transaction of their own ahead of the others,
        // but not twice in a row while others wait (`write_urgent`).
        let after_urgent = urgent_alone;
        urgent_alone = !urgent_alone && !urgent.is_empty() && !normal.is_empty();
        let mut waiting = std::mem::take(&mut urgent);
        if !urgent_alone {
            waiting.append(&mut normal);
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            for job in waiting.drain(..) {
                job(Err(copy_error(&e).context("begin a write")));
            }
            continue;
        }
        let mut answers: Vec<Answer> = Vec::new();
        let mut failed: Option<rusqlite::Error> = None;
        while answers.len() < MAX_BATCH
            && let Some(job) = waiting.pop_front()
        {
            if let Err(e) = conn.execute_batch("SAVEPOINT write") {
                job(Err(copy_error(&e).context("open a savepoint")));
                failed = Some(e);
                break;
            }
            let tx = Tx { conn, discard: Cell::new(false) };
            let Some((keep, answer)) = job(Ok(&tx)) else { continue };
            if conn.is_autocommit() {
                // SQLite rolled the whole transaction back (a full disk, an
                // I/O error): nothing of this batch was written.
                answers.push(answer);
                failed = Some(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some("the write transaction was rolled back".into()),
                ));
                break;
            }
            let end = if keep && !tx.discard.get() { "RELEASE write" } else { "ROLLBACK TO write; RELEASE write" };
            answers.push(answer);
            if let Err(e) = conn.execute_batch(end) {
                failed = Some(e);
                break;
            }
            // An urgent write queued meanwhile: commit what ran so far, so it
            // waits for one write of this transaction, not for all of them.
            // Not right after an urgent transaction: then the others run to
            // the end, so a stream of urgent writes cannot starve them.
            if !urgent_alone && !after_urgent && !waiting.is_empty() {
                while urgent.len() + normal.len() < MAX_BATCH
                    && let Ok(job) = queue.try_recv()
                {
                    take(job, &mut urgent, &mut normal);
                }
                if !urgent.is_empty() {
                    break;
                }
            }
        }
        let outcome = match failed {
            Some(e) => Err(e),
            None => conn.execute_batch("COMMIT"),
        };
        match outcome {
            Ok(()) => {
                answers.into_iter().for_each(|answer| answer(None));
                if let Some(wal) = &wal {
                    retention::bound_wal(conn, wal, wal_limit);
                }
            }
            Err(e) => {
                if !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                for answer in answers {
                    answer(Some(copy_error(&e).context("commit a write")));
                }
            }
        }
        // Writes this transaction did not reach go first next time.
        while let Some(job) = waiting.pop_back() {
            normal.push_front(job);
        }
    }
}

/// `err` again, for each caller of a failed batch: SQLite's codes are kept,
/// so an outage still reads as one.
fn copy_error(err: &rusqlite::Error) -> anyhow::Error {
    match err {
        rusqlite::Error::SqliteFailure(e, msg) => {
            anyhow::Error::new(rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(e.extended_code), msg.clone()))
        }
        other => anyhow::anyhow!("{other}"),
    }
}

fn prepare<'c>(conn: &'c Connection, sql: &'static str) -> anyhow::Result<CachedStatement<'c>> {
    conn.prepare_cached(sql).context("prepare a statement")
}

/// Binds `params` to `$1…$n` by name, so a statement may use them in any
/// order (the text is shared with PostgreSQL).
fn bind(stmt: &mut CachedStatement<'_>, params: &[&dyn ToSql]) -> rusqlite::Result<()> {
    for (i, value) in params.iter().enumerate() {
        let name = format!("${}", i + 1);
        let index = stmt.parameter_index(&name)?.ok_or(rusqlite::Error::InvalidParameterName(name))?;
        stmt.raw_bind_parameter(index, value)?;
    }
    Ok(())
}

fn collect<T>(mut rows: rusqlite::Rows<'_>) -> rusqlite::Result<Vec<T>>
where
    T: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error>,
{
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(T::try_from(row)?);
    }
    Ok(out)
}

/// The open write transaction, as one queued write sees it.
pub struct Tx<'c> {
    conn: &'c Connection,
    discard: Cell<bool>,
}

impl Tx<'_> {
    pub fn execute(&self, sql: &'static str, params: &[&dyn ToSql]) -> rusqlite::Result<usize> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        bind(&mut stmt, params)?;
        stmt.raw_execute()
    }

    pub fn all<T>(&self, sql: &'static str, params: &[&dyn ToSql]) -> rusqlite::Result<Vec<T>>
    where
        T: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error>,
    {
        let mut stmt = self.conn.prepare_cached(sql)?;
        bind(&mut stmt, params)?;
        collect(stmt.raw_query())
    }

    pub fn optional<T>(&self, sql: &'static str, params: &[&dyn ToSql]) -> rusqlite::Result<Option<T>>
    where
        T: for<'r> TryFrom<&'r Row<'r>, Error = rusqlite::Error>,
    {
        let mut stmt = self.conn.prepare_cached(sql)?;
        bind(&mut stmt, params)?;
        let mut rows = stmt.raw_query();
        rows.next()?.map(T::try_from).transpose()
    }

    /// Rolls back this write's changes when it returns, while still handing
    /// its (`Ok`) result to the caller: a write that finds it must not
    /// happen after taking an audit number gives the number back.
    pub fn discard(&self) {
        self.discard.set(true);
    }
}

/// True when `err` is a unique-constraint violation.
pub fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(e, _)
        if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &tempfile::TempDir) -> (Sqlite, std::path::PathBuf) {
        let path = dir.path().join("w.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)").unwrap();
        (Sqlite::open(&path, 2).unwrap(), path)
    }

    fn insert(tx: &Tx<'_>, k: &str) -> anyhow::Result<()> {
        tx.execute("INSERT INTO t (k) VALUES ($1)", &[&k])?;
        Ok(())
    }

    #[tokio::test]
    async fn queued_writes_commit_together_and_a_failing_one_rolls_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let (db, path) = open(&dir);
        // Hold the writer until the next four writes are queued behind it.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let first = db.submit(false, move |_| Ok::<(), anyhow::Error>(hold.recv()?)).unwrap();
        let a = db.submit(false, |tx| insert(tx, "a")).unwrap();
        let b = db
            .submit(false, |tx| -> anyhow::Result<()> {
                insert(tx, "b")?;
                anyhow::bail!("b fails after writing")
            })
            .unwrap();
        let c = db
            .submit(false, |tx| {
                insert(tx, "c")?;
                tx.discard();
                Ok("c discarded")
            })
            .unwrap();
        let d = db
            .submit(false, move |tx| {
                insert(tx, "d")?;
                // Another connection sees only what is committed: nothing
                // of this batch yet, so `a` was not committed on its own.
                let outside: i64 = Connection::open(&path)?.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?;
                let inside: Vec<(String,)> = tx.all("SELECT k FROM t ORDER BY k", &[])?;
                Ok((outside, inside))
            })
            .unwrap();
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        a.await.unwrap().unwrap();
        assert!(b.await.unwrap().is_err());
        assert_eq!(c.await.unwrap().unwrap(), "c discarded");
        let (outside, inside) = d.await.unwrap().unwrap();
        assert_eq!(outside, 0, "the batch commits once");
        assert_eq!(inside, [("a".to_owned(),), ("d".to_owned(),)]);
        let rows: Vec<(String,)> = db.all("SELECT k FROM t ORDER BY k", Vec::new()).await.unwrap();
        assert_eq!(rows, [("a".to_owned(),), ("d".to_owned(),)]);
    }

    /// The writes that ran, in order, each with the rows committed when it
    /// ran (as another connection sees them).
    #[derive(Default, Clone)]
    struct Seen(std::sync::Arc<std::sync::Mutex<Vec<(String, i64)>>>);

    impl Seen {
        /// A write that notes itself, then inserts its name.
        fn note(
            &self,
            path: &Path,
            name: &'static str,
        ) -> impl FnOnce(&Tx<'_>) -> anyhow::Result<()> + Send + 'static + use<> {
            let (seen, path) = (self.clone(), path.to_owned());
            move |tx: &Tx<'_>| {
                let other = Connection::open(&path)?;
                let committed: i64 = other.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?;
                seen.0.lock().unwrap().push((name.to_owned(), committed));
                insert(tx, name)
            }
        }

        fn all(&self) -> Vec<(String, i64)> {
            self.0.lock().unwrap().clone()
        }
    }

    /// Urgent writes (issue 19) get a transaction of their own ahead of
    /// the queued ones, but not two in a row while others wait.
    #[tokio::test]
    async fn urgent_writes_commit_first_but_not_twice_in_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let (db, path) = open(&dir);
        let db = std::sync::Arc::new(db);
        let seen = Seen::default();
        let note = |name: &'static str| seen.note(&path, name);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let first = db
            .submit(false, move |_| {
                started.send(())?;
                Ok::<(), anyhow::Error>(hold.recv()?)
            })
            .unwrap();
        // The writer runs `first` alone: what follows queues behind it.
        running.recv().unwrap();
        let n1 = db.submit(false, note("n1")).unwrap();
        let n2 = db.submit(false, note("n2")).unwrap();
        // u1 queues u2 while it runs: u2 is urgent too, but n1 and n2 have
        // waited one urgent transaction already, so they go with it.
        let (again, u2_done) = tokio::sync::oneshot::channel();
        let u1 = {
            let (db, note_u1, note_u2) = (db.clone(), note("u1"), note("u2"));
            db.clone()
                .submit(true, move |tx| {
                    let u2 = db.submit(true, note_u2)?;
                    let _ = again.send(u2);
                    note_u1(tx)
                })
                .unwrap()
        };
        release.send(()).unwrap();
        for done in [first.await.unwrap(), u1.await.unwrap(), n1.await.unwrap(), n2.await.unwrap()] {
            done.unwrap();
        }
        u2_done.await.unwrap().await.unwrap().unwrap();
        let seen = seen.all();
        let expected: Vec<(String, i64)> =
            [("u1", 0), ("u2", 1), ("n1", 1), ("n2", 1)].into_iter().map(|(n, c)| (n.to_owned(), c)).collect();
        // u1 ran first and alone (u2 and n1 saw it committed); u2, n1 and n2
        // ran in one transaction, u2 first.
        assert_eq!(seen, expected);
    }

    /// An urgent write queued while a transaction runs ends it after the
    /// write running then: it does not wait for the rest of the queue.
    #[tokio::test]
    async fn an_urgent_write_ends_the_running_transaction_early() {
        let dir = tempfile::tempdir().unwrap();
        let (db, path) = open(&dir);
        let seen = Seen::default();
        let note = |name: &'static str| seen.note(&path, name);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        let first = {
            let started = started.clone();
            db.submit(false, move |_| {
                started.send(())?;
                Ok::<(), anyhow::Error>(hold.recv()?)
            })
            .unwrap()
        };
        running.recv().unwrap();
        // n1 and n2 queue behind `first`, so they share the next
        // transaction; n1 holds it until u1 is queued.
        let (release_n1, hold_n1) = std::sync::mpsc::channel::<()>();
        let n1 = {
            let note_n1 = note("n1");
            db.submit(false, move |tx| {
                started.send(())?;
                hold_n1.recv()?;
                note_n1(tx)
            })
            .unwrap()
        };
        let n2 = db.submit(false, note("n2")).unwrap();
        release.send(()).unwrap();
        running.recv().unwrap();
        let u1 = db.submit(true, note("u1")).unwrap();
        release_n1.send(()).unwrap();
        for done in [first.await.unwrap(), n1.await.unwrap(), u1.await.unwrap(), n2.await.unwrap()] {
            done.unwrap();
        }
        let seen = seen.all();
        let expected: Vec<(String, i64)> =
            [("n1", 0), ("u1", 1), ("n2", 2)].into_iter().map(|(n, c)| (n.to_owned(), c)).collect();
        // n1 committed alone, u1 next in a transaction of its own, then n2.
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn writes_commit_with_synchronous_full_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = open(&dir);
        let (sync, mode) = db
            .write(|tx| {
                let (sync,): (i64,) = tx.optional("PRAGMA synchronous", &[])?.context("no row")?;
                let (mode,): (String,) = tx.optional("PRAGMA journal_mode", &[])?.context("no row")?;
                Ok((sync, mode))
            })
            .await
            .unwrap();
        assert_eq!(sync, 2, "FULL: a commit is fsynced before its caller hears of it");
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn a_panicking_write_is_an_error_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = open(&dir);
        let err = db
            .write(|tx| -> anyhow::Result<()> {
                insert(tx, "x")?;
                panic!("a bug in a write")
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        db.write(|tx| insert(tx, "y")).await.unwrap();
        let rows: Vec<(String,)> = db.all("SELECT k FROM t", Vec::new()).await.unwrap();
        assert_eq!(rows, [("y".to_owned(),)]);
    }

    #[tokio::test]
    async fn parameters_bind_by_name_and_reads_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = open(&dir);
        let diff: Option<(i64,)> = db.optional("SELECT $2 - $1", owned_params(&[&1i64, &5i64]).unwrap()).await.unwrap();
        assert_eq!(diff, Some((4,)));
        assert!(db.all::<(String,)>("INSERT INTO t (k) VALUES ('r') RETURNING k", Vec::new()).await.is_err());
    }

    #[tokio::test]
    async fn queued_reads_run_on_reader_threads_with_owned_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = open(&dir);
        db.write(|tx| insert(tx, "a")).await.unwrap();
        let params = owned_params(&[&"a", &Some(2i64), &None::<String>]).unwrap();
        let row: Option<(String, i64, Option<String>)> =
            db.optional("SELECT k, $2, $3 FROM t WHERE k = $1", params).await.unwrap();
        assert_eq!(row, Some(("a".to_owned(), 2, None)));
        let thread = db.on_reader(|_| Ok(std::thread::current().name().map(str::to_owned))).await.unwrap();
        assert_eq!(thread.as_deref(), Some("herald-sqlite-reader"), "not on the async worker");
        let err = db.on_reader(|_| -> anyhow::Result<()> { panic!("a bug in a read") }).await.unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        let rows: Vec<(String,)> = db.all("SELECT k FROM t", Vec::new()).await.unwrap();
        assert_eq!(rows, [("a".to_owned(),)], "the readers go on after a panic");
    }

    /// How often SQLite re-planned `sql` after running it 20 times.
    async fn reprepares(sql: &'static str) -> i32 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (k TEXT, n BIGINT, PRIMARY KEY (k, n)); INSERT INTO t VALUES ('a', 1);")
            .unwrap();
        let db = Sqlite::open(&path, 1).unwrap();
        for _ in 0..20 {
            db.all::<(i64,)>(sql, owned_params(&[&"a", &0i64, &10i64]).unwrap()).await.unwrap();
        }
        // One reader: the connection that ran them.
        db.on_reader(move |conn| Ok(conn.prepare_cached(sql)?.get_status(rusqlite::StatementStatus::RePrepare)))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_bare_bound_limit_is_replanned_every_run_and_plus_zero_is_not() {
        assert_eq!(reprepares("SELECT n FROM t WHERE k = $1 AND n > $2 ORDER BY n LIMIT $3").await, 20);
        assert_eq!(reprepares("SELECT n FROM t WHERE k = $1 AND n > $2 ORDER BY n LIMIT $3 + 0").await, 0);
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_near_its_limit_under_constant_reads() {
        const LIMIT: u64 = 512 * 1024;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY)").unwrap();
        let db = Sqlite::open_with_wal_limit(&path, 1, LIMIT).unwrap();
        // Two readers of their own, each holding a snapshot for a moment
        // and taking the next at once, staggered: some reader always
        // holds an older snapshot, so SQLite's own checkpoints cannot
        // start the WAL over.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2u64)
            .map(|n| {
                let (path, stop) = (path.clone(), stop.clone());
                std::thread::spawn(move || {
                    let c = connect(&path).unwrap();
                    std::thread::sleep(Duration::from_millis(1 + n * 2));
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        c.execute_batch("BEGIN").unwrap();
                        let _: i64 = c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)).unwrap();
                        std::thread::sleep(Duration::from_millis(4));
                        c.execute_batch("COMMIT").unwrap();
                    }
                })
            })
            .collect();
        let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));
        let mut largest = 0;
        // 1,000 rows of 4 kB (in the table and in its key's index): past
        // SQLite's own checkpoint interval (1,000 pages), so without the
        // bound the WAL reaches 4 MB.
        for n in 0..1_000 {
            let k = format!("{n:04}{}", "x".repeat(4_000));
            db.write(move |tx| insert(tx, &k)).await.unwrap();
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        readers.into_iter().for_each(|r| r.join().unwrap());
        // One write's frames (its pages in the table and the index) may
        // land before the checkpoint after it.
        assert!(largest > LIMIT / 2, "the workload reached the limit: {largest} bytes");
        assert!(largest <= LIMIT * 3 / 2, "the WAL grew to {largest} bytes (limit {LIMIT})");
    }
    #[tokio::test]
    async fn freed_pages_are_kept_for_reuse_up_to_a_quarter_of_the_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let db = Sqlite::open(&path, 1).unwrap();
        db.write(|tx| Ok(tx.execute("CREATE TABLE r (n INTEGER PRIMARY KEY, v TEXT)", &[]).map(drop)?)).await.unwrap();
        let fill = |from: i64, to: i64| {
            db.write(move |tx| {
                for n in from..to {
                    tx.execute("INSERT INTO r (n, v) VALUES ($1, $2)", &[&n, &"x".repeat(3_000)])?;
                }
                Ok(())
            })
        };
        fill(0, 1_000).await.unwrap();
        let pragma = |sql: &'static str| db.optional::<(i64,)>(sql, Vec::new());
        let reclaim_all = || async {
            while db.write(retention::reclaim).await.unwrap() > 0 {}
            let free = pragma("PRAGMA freelist_count").await.unwrap().unwrap().0;
            (free, pragma("PRAGMA page_count").await.unwrap().unwrap().0 - free)
        };
        // Half the rows go: their pages are kept for the next rows, up to
        // a quarter of the live pages; the rest goes back.
        db.write(|tx| Ok(tx.execute("DELETE FROM r WHERE n % 2 = 0", &[]).map(drop)?)).await.unwrap();
        let (free, live) = reclaim_all().await;
        assert!(free > 0 && free <= live / 4, "{free} free pages kept for {live} live ones");
        // New rows take the kept pages before the file grows.
        let pages = pragma("PRAGMA page_count").await.unwrap().unwrap().0;
        fill(1_000, 1_000 + free / 2).await.unwrap();
        assert_eq!(pragma("PRAGMA page_count").await.unwrap().unwrap().0, pages, "reused, not grown");
        // Nearly everything goes: the file shrinks to about what is left.
        db.write(|tx| Ok(tx.execute("DELETE FROM r WHERE n > 5", &[]).map(drop)?)).await.unwrap();
        let (free, live) = reclaim_all().await;
        assert!(free <= live / 4 && live < 50, "{free} free and {live} live pages");
    }
}
