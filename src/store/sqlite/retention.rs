//! Retention, erasure, space and backups on SQLite (see `store/retention.rs`).
//!
//! Space: a new database is created with `auto_vacuum = INCREMENTAL`.
//! Pruned pages are reused by new rows first; after each pruning pass the
//! free pages beyond a reserve for that (a quarter of the live pages) are
//! handed back a slice at a time ([`reclaim`]). So the file stops growing
//! at steady state and shrinks when there is less to keep. An existing
//! database can only be switched by one full `VACUUM`: [`open_space`] does it
//! at start-up while the file is small, `herald vacuum` otherwise.
//!
//! Erasure: the writer connection runs with `secure_delete = ON`, so deleted
//! rows (and the older copies an update leaves behind in a page) are zeroed,
//! and after an erasure [`checkpoint_truncate`] copies the WAL into the file
//! and truncates it, so no older page image with the address remains.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags};

use super::Tx;
use super::audit::{append_audit, bump_sequence, insert_audit};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::retention::{
    Cutoffs, ERASED, Erased, RetentionOverride, erased_suppression_key, redact_json, redact_text, without_contact,
};
use crate::domain::suppressions::email_key;
use crate::store::sql::retention::{
    COUNT_ATTEMPTS, DELETE_EMPTY_EVENT, DELETE_HOOK, DELETE_OVERRIDE, DELIVERED_STATUSES, ERASE_AUDIT_SQLITE,
    ERASE_CONTACTS_READ, ERASE_CONTACTS_WRITE, ERASE_EVENTS_SQLITE, ERASE_FIND, ERASE_HOOKS_SQLITE, ERASE_KEYS_SQLITE,
    ERASE_NOTIFICATION, ERASE_SUPPRESSION, ERASE_SUPPRESSION_MARK, PRUNE_ALERTS, PRUNE_AUDIT, PRUNE_BODIES,
    PRUNE_RECORDS, PRUNE_SUPPRESSED_EVENTS, PRUNE_USAGE, PRUNE_WEBHOOK_MESSAGES, REDACT_AUDIT, REDACT_EVENT,
    REDACT_HOOK, UPSERT_OVERRIDE,
};

/// A database of at most this size is switched to incremental vacuum at
/// start-up (one `VACUUM`, a few seconds at most); a larger one is left to
/// `herald vacuum`, run while Herald is stopped.
pub const VACUUM_AT_START_MAX_BYTES: i64 = 256 * 1024 * 1024;

/// Settings of the writer connection, before the first table exists:
/// incremental vacuum for a new file, or the one-time switch of a small old
/// one; zeroed deletes; a WAL file trimmed back after checkpoints.
pub fn open_space(writer: &Connection) -> anyhow::Result<()> {
    writer.pragma_update(None, "secure_delete", true)?;
    writer.pragma_update(None, "journal_size_limit", i64::try_from(WAL_LIMIT_BYTES).unwrap_or(i64::MAX))?;
    let tables: i64 = writer.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))?;
    if tables == 0 {
        writer.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        return Ok(());
    }
    if auto_vacuum(writer)? == 2 {
        return Ok(());
    }
    let size = size_bytes(writer)?;
    if size <= VACUUM_AT_START_MAX_BYTES {
        writer.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        if let Err(e) = writer.execute_batch("VACUUM") {
            tracing::warn!(error = %e, "could not switch the SQLite file to incremental vacuum; run `herald vacuum`");
        } else {
            tracing::info!(bytes = size, "SQLite file switched to incremental vacuum");
        }
    } else {
        tracing::warn!(
            bytes = size,
            "the SQLite file does not hand free space back (auto_vacuum off); stop Herald and run `herald vacuum` once"
        );
    }
    Ok(())
}

/// The WAL file is kept near this size: trimmed back to it after a
/// checkpoint (`journal_size_limit`), and checkpointed from the start once
/// it grows past it ([`bound_wal`]).
pub const WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// How long [`bound_wal`]'s checkpoint waits for readers of an older
/// snapshot before it gives up until the next commit.
const WAL_WAIT: Duration = Duration::from_millis(200);

/// Called by the writer after each commit. SQLite's own checkpoints (every
/// 1,000 pages) copy only the frames no reader needs and start the WAL
/// over only when no reader uses it; under constant reads that moment may
/// not come, and the WAL grew to 125 MB beside a 125 MB database
/// (bench/retention). Past `limit`, this checkpoint waits (briefly) for
/// the readers of older snapshots, copies everything and truncates the WAL
/// to zero. Readers are short, so the wait is a few milliseconds; a long
/// one (a backup) only makes it give up until the next commit.
pub fn bound_wal(writer: &Connection, wal: &Path, limit: u64) {
    if std::fs::metadata(wal).map_or(true, |m| m.len() <= limit) {
        return;
    }
    let _ = writer.busy_timeout(WAL_WAIT);
    let busy = writer.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0));
    let _ = writer.busy_timeout(super::BUSY_TIMEOUT);
    match busy {
        Ok(0) => metrics::counter!("herald_sqlite_wal_truncations_total").increment(1),
        Ok(_) => tracing::debug!("the WAL checkpoint waited for readers in vain; again after the next commit"),
        Err(e) => tracing::warn!(error = %e, "could not checkpoint the SQLite WAL"),
    }
}

fn auto_vacuum(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
}

fn size_bytes(c: &Connection) -> rusqlite::Result<i64> {
    let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(pages * size)
}

/// `herald vacuum`: switches the file to incremental vacuum and rewrites it
/// compactly (needs as much free disk as the file; run while Herald is
/// stopped). Returns the sizes before and after.
pub fn vacuum(path: &Path) -> anyhow::Result<(i64, i64)> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("open {}", path.display()))?;
    c.busy_timeout(Duration::from_secs(10))?;
    let before = size_bytes(&c)?;
    c.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    c.execute_batch("VACUUM").context("VACUUM")?;
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).context("checkpoint")?;
    Ok((before, size_bytes(&c)?))
}

/// One batch of a pruning step; the rows it changed (for `PRUNE_RECORDS`,
/// the events it emptied are deleted too, and counted in `.1`).
pub fn prune_bodies(
    tx: &Tx<'_>,
    org: &OrgId,
    status: &str,
    before: Millis,
    now: Millis,
    n: i64,
) -> anyhow::Result<u64> {
    let changed = tx.execute(PRUNE_BODIES, &[&org.as_str(), &status, &before.0, &now.0, &n]).context("prune bodies")?;
    Ok(changed as u64)
}

pub fn prune_records(tx: &Tx<'_>, org: &OrgId, before: Millis, n: i64) -> anyhow::Result<(u64, u64)> {
    let gone: Vec<(String,)> = tx.all(PRUNE_RECORDS, &[&org.as_str(), &before.0, &n]).context("prune records")?;
    let events = delete_empty_events(tx, gone.iter().map(|(e,)| e.as_str()))?;
    Ok((gone.len() as u64, events))
}

fn delete_empty_events<'a>(tx: &Tx<'_>, ids: impl Iterator<Item = &'a str>) -> anyhow::Result<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut deleted = 0;
    for id in ids.filter(|id| seen.insert(*id)) {
        deleted += tx.execute(DELETE_EMPTY_EVENT, &[&id]).context("delete an emptied event")? as u64;
    }
    Ok(deleted)
}

pub fn prune_suppressed_events(tx: &Tx<'_>, org: &OrgId, before: Millis, n: i64) -> anyhow::Result<u64> {
    Ok(tx.execute(PRUNE_SUPPRESSED_EVENTS, &[&org.as_str(), &before.0, &n]).context("prune events")? as u64)
}

pub fn prune_audit(tx: &Tx<'_>, scope_id: &str, before: Millis, n: i64) -> anyhow::Result<u64> {
    Ok(tx.execute(PRUNE_AUDIT, &[&scope_id, &before.0, &n]).context("prune audit")? as u64)
}

/// Pruning steps of one org in order; each call is one batch.
pub fn prune_step(
    tx: &Tx<'_>,
    step: usize,
    org: &OrgId,
    cut: &Cutoffs,
    now: Millis,
    n: i64,
) -> anyhow::Result<(u64, u64)> {
    match step {
        0 => {
            let mut pruned = 0;
            for status in DELIVERED_STATUSES {
                pruned += prune_bodies(tx, org, status, cut.sent_body, now, n)?;
            }
            Ok((pruned, 0))
        }
        1 => Ok((prune_bodies(tx, org, "dead", cut.dead_body, now, n)?, 0)),
        2 => prune_records(tx, org, cut.record, n),
        3 => Ok((prune_suppressed_events(tx, org, cut.record, n)?, 0)),
        4 => {
            let done = tx.execute(PRUNE_WEBHOOK_MESSAGES, &[&org.as_str(), &cut.record.0, &n]);
            Ok((done.context("prune webhook messages")? as u64, 0))
        }
        5 => Ok((tx.execute(PRUNE_ALERTS, &[&org.as_str(), &cut.record.0, &n]).context("prune alerts")? as u64, 0)),
        6 => Ok((tx.execute(PRUNE_USAGE, &[&org.as_str(), &cut.usage.0, &n]).context("prune usage")? as u64, 0)),
        _ => match cut.audit {
            Some(before) => Ok((prune_audit(tx, org.as_str(), before, n)?, 0)),
            None => Ok((0, 0)),
        },
    }
}

/// Free pages kept for new rows to reuse, per live page: SQLite fills free
/// pages before it grows the file, so at steady state the mail pruned in
/// one pass makes room for the mail of the next, and handing those pages
/// to the file system only to take them back would rewrite them through the
/// WAL twice (bench/retention: WAL bursts of 200 MB and more while
/// incremental vacuum moved every freed page). Beyond a quarter of the
/// live pages (less data than before: a quieter org, an erasure, a shorter
/// retention) the file shrinks.
const FREE_PAGES_KEPT_PER_LIVE: i64 = 4;

/// Hands up to 2,000 free pages (bounding how long one write holds the
/// lock) beyond the reserve for reuse back to the file system; the number
/// handed back (0 when the file is not in incremental mode, or within its
/// reserve).
pub fn reclaim(tx: &Tx<'_>) -> anyhow::Result<u64> {
    let (mode,): (i64,) = tx.optional("PRAGMA auto_vacuum", &[])?.context("no auto_vacuum row")?;
    if mode != 2 {
        return Ok(0);
    }
    let (free,): (i64,) = tx.optional("PRAGMA freelist_count", &[])?.context("no freelist_count row")?;
    let (pages,): (i64,) = tx.optional("PRAGMA page_count", &[])?.context("no page_count row")?;
    let excess = free - (pages - free) / FREE_PAGES_KEPT_PER_LIVE;
    if excess <= 0 {
        return Ok(0);
    }
    // Each step frees one page; its rows carry no columns.
    let mut stmt =
        tx.conn.prepare(&format!("PRAGMA incremental_vacuum({})", excess.min(2_000))).context("incremental vacuum")?;
    let mut steps = stmt.raw_query();
    while steps.next().context("incremental vacuum")?.is_some() {}
    let (left,): (i64,) = tx.optional("PRAGMA freelist_count", &[])?.context("no freelist_count row")?;
    Ok((free - left).max(0) as u64)
}

/// Stores (`Some`) or drops (`None`) an org's overrides, audited first.
pub fn set_override(
    tx: &Tx<'_>,
    org: &OrgId,
    o: Option<RetentionOverride>,
    audit: &AuditEntry,
    now: Millis,
) -> anyhow::Result<bool> {
    append_audit(tx, audit)?;
    match o {
        Some(o) => tx.execute(
            UPSERT_OVERRIDE,
            &[&org.as_str(), &o.body_days, &o.record_days, &o.dead_days, &o.audit_days, &now.0],
        ),
        None => tx.execute(DELETE_OVERRIDE, &[&org.as_str()]),
    }
    .context("store retention overrides")?;
    Ok(true)
}

#[derive(Debug)]
struct Found {
    id: String,
    event_id: String,
    lease_id: Option<String>,
}

impl TryFrom<&rusqlite::Row<'_>> for Found {
    type Error = rusqlite::Error;
    fn try_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Found { id: r.get("id")?, event_id: r.get("event_id")?, lease_id: r.get("lease_id")? })
    }
}

/// The erasure in one transaction; the audit row, written last under the
/// number taken first, carries the counts.
pub fn erase(tx: &Tx<'_>, org: &OrgId, email: &str, audit: &AuditEntry) -> anyhow::Result<Erased> {
    let (scope_id, seq) = bump_sequence(tx, &audit.scope)?;
    let found: Vec<Found> = tx.all(ERASE_FIND, &[&org.as_str(), &email]).context("find the recipient's mail")?;
    let mut erased = Erased::default();
    let mut events = Vec::new();
    for f in &found {
        if f.lease_id.is_some() {
            erased.in_flight += 1;
            continue;
        }
        let (attempts,): (i64,) = tx.optional(COUNT_ATTEMPTS, &[&f.id])?.context("no count")?;
        if tx.execute(ERASE_NOTIFICATION, &[&org.as_str(), &f.id]).context("erase a notification")? == 1 {
            erased.notifications += 1;
            erased.attempts += attempts as u64;
            events.push(f.event_id.as_str());
        } else {
            erased.in_flight += 1;
        }
    }
    erased.events = delete_empty_events(tx, events.into_iter())?;
    erased.idempotency_keys = tx.execute(ERASE_KEYS_SQLITE, &[&org.as_str(), &email]).context("erase answers")? as u64;
    erase_beyond_mail(tx, org, email, &scope_id, &mut erased)?;
    let mut entry = audit.clone();
    entry.detail = serde_json::to_value(erased).context("describe the erasure")?;
    insert_audit(tx, &scope_id, seq, &entry)?;
    Ok(erased)
}

/// The rest of an erasure: webhook messages, suppressed events, the
/// suppression entry and the audit entries that name the address.
fn erase_beyond_mail(tx: &Tx<'_>, org: &OrgId, email: &str, scope_id: &str, erased: &mut Erased) -> anyhow::Result<()> {
    let o = org.as_str();
    let hooks: Vec<(i64, String, String)> = tx.all(ERASE_HOOKS_SQLITE, &[&o, &email]).context("find messages")?;
    for (seq, status, payload) in hooks {
        if status == "delivered" {
            erased.webhook_messages += tx.execute(DELETE_HOOK, &[&seq]).context("erase a webhook message")? as u64;
        } else if let Some(redacted) = redact_json(&payload, email) {
            erased.webhook_messages_redacted += tx.execute(REDACT_HOOK, &[&seq, &redacted]).context("redact")? as u64;
        }
    }
    let events: Vec<(String, String)> = tx.all(ERASE_EVENTS_SQLITE, &[&o, &email]).context("find events")?;
    for (id, reason) in events {
        let Some(redacted) = redact_text(&reason, email, ERASED) else { continue };
        if tx.execute(DELETE_EMPTY_EVENT, &[&id]).context("erase an event")? == 1 {
            erased.events += 1;
        } else {
            erased.events_redacted += tx.execute(REDACT_EVENT, &[&id, &redacted]).context("redact an event")? as u64;
        }
    }
    let key = email_key(email);
    let marker = erased_suppression_key(org, email);
    tx.execute(ERASE_SUPPRESSION_MARK, &[&o, &key, &marker, &ERASED]).context("mark the suppression")?;
    erased.suppressions = tx.execute(ERASE_SUPPRESSION, &[&o, &key]).context("erase the suppression")? as u64;
    let entries: Vec<(i64, String, String)> = tx.all(ERASE_AUDIT_SQLITE, &[&scope_id, &email]).context("find audit")?;
    for (seq, resource, detail) in entries {
        let resource = redact_text(&resource, email, &marker).unwrap_or(resource);
        let detail = redact_json(&detail, email).unwrap_or(detail);
        erased.audit_entries_redacted +=
            tx.execute(REDACT_AUDIT, &[&scope_id, &seq, &resource, &detail]).context("redact audit")? as u64;
    }
    let contacts: Option<(String,)> = tx.optional(ERASE_CONTACTS_READ, &[&o]).context("read alert contacts")?;
    if let Some(kept) = contacts.and_then(|(emails,)| without_contact(&emails, email)) {
        erased.alert_contacts = tx.execute(ERASE_CONTACTS_WRITE, &[&o, &kept]).context("alert contacts")? as u64;
    }
    Ok(())
}

/// Copies the WAL into the database file and truncates it to zero bytes,
/// on a connection of its own (a checkpoint cannot run inside the writer's
/// transaction). Waits for readers to move on; false if they never did.
pub fn checkpoint_truncate(path: &Path) -> anyhow::Result<bool> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("open {}", path.display()))?;
    c.busy_timeout(Duration::from_secs(10))?;
    for _ in 0..50 {
        let busy: i64 = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).context("checkpoint")?;
        if busy == 0 {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(false)
}

/// `herald backup`: a consistent copy of the live database (`VACUUM INTO`
/// reads one snapshot; writers go on meanwhile). The copy is compact and
/// has no WAL. Refuses to overwrite a file.
pub fn backup(path: &Path, to: &Path) -> anyhow::Result<i64> {
    anyhow::ensure!(!to.exists(), "{} exists already; choose a new file", to.display());
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("open {}", path.display()))?;
    c.busy_timeout(Duration::from_secs(10))?;
    let target = to.to_str().context("the backup path is not valid UTF-8")?;
    c.execute("VACUUM INTO ?1", [target]).with_context(|| format!("write the backup to {}", to.display()))?;
    Ok(std::fs::metadata(to)?.len() as i64)
}

/// Checks that `from` is a sound Herald database: SQLite's integrity check
/// passes and it has Herald's migration history.
pub fn check_backup(from: &Path) -> anyhow::Result<()> {
    let c = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("open {}", from.display()))?;
    let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).context("integrity check")?;
    anyhow::ensure!(ok == "ok", "{} fails SQLite's integrity check: {ok}", from.display());
    let applied: i64 = c
        .query_row("SELECT COUNT(*) FROM _sqlx_migrations WHERE success", [], |r| r.get(0))
        .with_context(|| format!("{} is not a Herald database", from.display()))?;
    anyhow::ensure!(applied > 0, "{} is not a Herald database", from.display());
    Ok(())
}

/// `herald restore`: puts the backup `from` in place of the database at
/// `path` (Herald must be stopped). The current file, if any, is first
/// checkpointed and kept beside as `<name>.before-restore-<millis>`; the
/// copy is written under a temporary name, synced, then renamed over.
/// Returns where the old file went.
pub fn restore(from: &Path, path: &Path, now: Millis) -> anyhow::Result<Option<std::path::PathBuf>> {
    check_backup(from)?;
    let name = path.file_name().context("the database path has no file name")?.to_string_lossy().into_owned();
    let sibling = |suffix: &str| path.with_file_name(format!("{name}{suffix}"));
    let mut kept = None;
    if path.exists() {
        // Folds a WAL left by an unclean stop into the file being kept.
        checkpoint_truncate(path)?;
        let aside = sibling(&format!(".before-restore-{}", now.0));
        std::fs::rename(path, &aside).with_context(|| format!("move {} aside", path.display()))?;
        kept = Some(aside);
    }
    for stale in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(sibling(stale));
    }
    let tmp = sibling(".restoring");
    std::fs::copy(from, &tmp).with_context(|| format!("copy {} to {}", from.display(), tmp.display()))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename {} to {}", tmp.display(), path.display()))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_gets_incremental_vacuum_and_zeroed_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join("n.db")).unwrap();
        open_space(&c).unwrap();
        c.execute_batch("CREATE TABLE t (v TEXT)").unwrap();
        assert_eq!(auto_vacuum(&c).unwrap(), 2);
        let secure: i64 = c.query_row("PRAGMA secure_delete", [], |r| r.get(0)).unwrap();
        assert_eq!(secure, 1);
    }

    #[test]
    fn a_small_old_file_is_switched_once_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('x');").unwrap();
        assert_eq!(auto_vacuum(&c).unwrap(), 0);
        drop(c);
        let c = Connection::open(&path).unwrap();
        open_space(&c).unwrap();
        assert_eq!(auto_vacuum(&c).unwrap(), 2);
        let v: String = c.query_row("SELECT v FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(v, "x");
    }
}
