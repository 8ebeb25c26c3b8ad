//! Retention and erasure on PostgreSQL (see `store/retention.rs`). Space
//! comes back through ordinary autovacuum (README: "Retention, erasure and
//! backups"); backups are `pg_dump`'s job.

use anyhow::Context;
use sqlx::{Connection, PgConnection, PgPool};

use super::audit::{append_audit, bump_sequence, insert_audit};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::retention::{
    Cutoffs, ERASED, Erased, RetentionOverride, erased_suppression_key, redact_json, redact_text, without_contact,
};
use crate::domain::suppressions::email_key;
use crate::store::sql::retention::{
    DELETE_HOOK, DELETE_OVERRIDE, DELIVERED_STATUSES, ERASE_AUDIT_PG, ERASE_CONTACTS_READ, ERASE_CONTACTS_WRITE,
    ERASE_EVENTS_PG, ERASE_FIND, ERASE_HOOKS_PG, ERASE_KEYS_PG, ERASE_SUPPRESSION, ERASE_SUPPRESSION_MARK,
    PG_COUNT_ATTEMPTS, PG_DELETE_EMPTY_EVENTS, PG_ERASE_NOTIFICATIONS, PG_LOCK_OUTBOX, PG_TRY_LOCK, PG_UNLOCK,
    PRUNE_ALERTS, PRUNE_AUDIT, PRUNE_BODIES, PRUNE_RECORDS, PRUNE_SUPPRESSED_EVENTS, PRUNE_USAGE,
    PRUNE_WEBHOOK_MESSAGES, REDACT_AUDIT, REDACT_EVENT, REDACT_HOOK, UPSERT_OVERRIDE,
};

/// The advisory lock key of pruning ("HERALDRT").
const PRUNE_LOCK: i64 = 0x4845_5241_4c44_5254;

/// Takes the pruning lock on a connection of its own, taken out of the pool
/// (closing it, or a node dying, releases the lock); `None` when another
/// node holds it.
pub async fn try_lock(p: &PgPool) -> anyhow::Result<Option<PgConnection>> {
    let mut conn = p.acquire().await.context("acquire a connection")?.detach();
    let (got,): (bool,) = sqlx::query_as(PG_TRY_LOCK).bind(PRUNE_LOCK).fetch_one(&mut conn).await.context("lock")?;
    if got {
        Ok(Some(conn))
    } else {
        let _ = conn.close().await;
        Ok(None)
    }
}

pub async fn unlock(mut conn: PgConnection) {
    let _ = sqlx::query(PG_UNLOCK).bind(PRUNE_LOCK).execute(&mut conn).await;
    let _ = conn.close().await;
}

/// One batch of pruning step `step` (see `sqlite::retention::prune_step`):
/// (rows changed, events deleted with them).
pub async fn prune_step(
    p: &PgPool,
    step: usize,
    org: &OrgId,
    cut: &Cutoffs,
    now: Millis,
    n: i64,
) -> anyhow::Result<(u64, u64)> {
    let org = org.as_str();
    let bodies = |status: &'static str, before: Millis| {
        sqlx::query(PRUNE_BODIES).bind(org).bind(status).bind(before.0).bind(now.0).bind(n).execute(p)
    };
    match step {
        0 => {
            let mut pruned = 0;
            for status in DELIVERED_STATUSES {
                pruned += bodies(status, cut.sent_body).await.context("prune bodies")?.rows_affected();
            }
            Ok((pruned, 0))
        }
        1 => Ok((bodies("dead", cut.dead_body).await.context("prune bodies")?.rows_affected(), 0)),
        2 => {
            // Records and the events they empty in one transaction, so no
            // event is left behind without its notifications.
            let mut tx = p.begin().await.context("begin")?;
            let gone: Vec<(String,)> = sqlx::query_as(PRUNE_RECORDS)
                .bind(org)
                .bind(cut.record.0)
                .bind(n)
                .fetch_all(&mut *tx)
                .await
                .context("prune records")?;
            let mut events: Vec<String> = gone.iter().map(|(e,)| e.clone()).collect();
            events.sort_unstable();
            events.dedup();
            let deleted =
                sqlx::query(PG_DELETE_EMPTY_EVENTS).bind(&events).execute(&mut *tx).await.context("prune events")?;
            tx.commit().await.context("commit")?;
            Ok((gone.len() as u64, deleted.rows_affected()))
        }
        3 => {
            let done = sqlx::query(PRUNE_SUPPRESSED_EVENTS).bind(org).bind(cut.record.0).bind(n).execute(p).await;
            Ok((done.context("prune events")?.rows_affected(), 0))
        }
        4 => {
            let done = sqlx::query(PRUNE_WEBHOOK_MESSAGES).bind(org).bind(cut.record.0).bind(n).execute(p).await;
            Ok((done.context("prune webhook messages")?.rows_affected(), 0))
        }
        5 => {
            let done = sqlx::query(PRUNE_ALERTS).bind(org).bind(cut.record.0).bind(n).execute(p).await;
            Ok((done.context("prune alerts")?.rows_affected(), 0))
        }
        6 => {
            let done = sqlx::query(PRUNE_USAGE).bind(org).bind(cut.usage.0).bind(n).execute(p).await;
            Ok((done.context("prune usage")?.rows_affected(), 0))
        }
        _ => match cut.audit {
            Some(before) => Ok((prune_audit(p, org, before, n).await?, 0)),
            None => Ok((0, 0)),
        },
    }
}

pub async fn prune_audit(p: &PgPool, scope_id: &str, before: Millis, n: i64) -> anyhow::Result<u64> {
    let done = sqlx::query(PRUNE_AUDIT).bind(scope_id).bind(before.0).bind(n).execute(p).await;
    Ok(done.context("prune audit")?.rows_affected())
}

/// Stores (`Some`) or drops (`None`) an org's overrides, audited first.
pub async fn set_override(
    p: &PgPool,
    org: &OrgId,
    o: Option<RetentionOverride>,
    audit: &AuditEntry,
    now: Millis,
) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    match o {
        Some(o) => {
            sqlx::query(UPSERT_OVERRIDE)
                .bind(org.as_str())
                .bind(o.body_days)
                .bind(o.record_days)
                .bind(o.dead_days)
                .bind(o.audit_days)
                .bind(now.0)
                .execute(&mut *tx)
                .await
        }
        None => sqlx::query(DELETE_OVERRIDE).bind(org.as_str()).execute(&mut *tx).await,
    }
    .context("store retention overrides")?;
    tx.commit().await.context("commit")?;
    Ok(true)
}

#[derive(sqlx::FromRow)]
struct Found {
    id: String,
    event_id: String,
}

/// The erasure in one transaction (see `sqlite::retention::erase`).
pub async fn erase(p: &PgPool, org: &OrgId, email: &str, audit: &AuditEntry) -> anyhow::Result<Erased> {
    let mut tx = p.begin().await.context("begin")?;
    let (scope_id, seq) = bump_sequence(&mut tx, &audit.scope).await?;
    let found: Vec<Found> = sqlx::query_as(ERASE_FIND)
        .bind(org.as_str())
        .bind(email)
        .fetch_all(&mut *tx)
        .await
        .context("find the recipient's mail")?;
    // Locks the outbox rows first: a worker's claim skips locked rows, so
    // the leases read here hold until the commit.
    let all: Vec<String> = found.iter().map(|f| f.id.clone()).collect();
    let outbox: Vec<(String, Option<String>)> =
        sqlx::query_as(PG_LOCK_OUTBOX).bind(&all).fetch_all(&mut *tx).await.context("lock outbox rows")?;
    let leased: Vec<&str> = outbox.iter().filter(|(_, lease)| lease.is_some()).map(|(id, _)| id.as_str()).collect();
    let ids: Vec<String> = all.iter().filter(|id| !leased.contains(&id.as_str())).cloned().collect();
    let mut erased = Erased { in_flight: leased.len() as u64, ..Erased::default() };
    let (attempts,): (i64,) =
        sqlx::query_as(PG_COUNT_ATTEMPTS).bind(&ids).fetch_one(&mut *tx).await.context("count attempts")?;
    erased.attempts = attempts.max(0) as u64;
    erased.notifications = sqlx::query(PG_ERASE_NOTIFICATIONS)
        .bind(org.as_str())
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .context("erase notifications")?
        .rows_affected();
    let mut events: Vec<String> = found.iter().map(|f| f.event_id.clone()).collect();
    events.sort_unstable();
    events.dedup();
    erased.events = sqlx::query(PG_DELETE_EMPTY_EVENTS)
        .bind(&events)
        .execute(&mut *tx)
        .await
        .context("erase emptied events")?
        .rows_affected();
    erased.idempotency_keys = sqlx::query(ERASE_KEYS_PG)
        .bind(org.as_str())
        .bind(email)
        .execute(&mut *tx)
        .await
        .context("erase stored answers")?
        .rows_affected();
    erase_beyond_mail(&mut tx, org, email, &scope_id, &mut erased).await?;
    let mut entry = audit.clone();
    entry.detail = serde_json::to_value(erased).context("describe the erasure")?;
    insert_audit(&mut tx, &scope_id, seq, &entry).await?;
    tx.commit().await.context("commit the erasure")?;
    Ok(erased)
}

/// The rest of an erasure (see `sqlite::retention::erase_beyond_mail`).
async fn erase_beyond_mail(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    org: &OrgId,
    email: &str,
    scope_id: &str,
    erased: &mut Erased,
) -> anyhow::Result<()> {
    let o = org.as_str();
    let hooks: Vec<(i64, String, String)> =
        sqlx::query_as(ERASE_HOOKS_PG).bind(o).bind(email).fetch_all(&mut **tx).await.context("find messages")?;
    for (seq, status, payload) in hooks {
        if status == "delivered" {
            let done = sqlx::query(DELETE_HOOK).bind(seq).execute(&mut **tx).await;
            erased.webhook_messages += done.context("erase a webhook message")?.rows_affected();
        } else if let Some(redacted) = redact_json(&payload, email) {
            let done = sqlx::query(REDACT_HOOK).bind(seq).bind(redacted).execute(&mut **tx).await;
            erased.webhook_messages_redacted += done.context("redact a webhook message")?.rows_affected();
        }
    }
    let events: Vec<(String, String)> =
        sqlx::query_as(ERASE_EVENTS_PG).bind(o).bind(email).fetch_all(&mut **tx).await.context("find events")?;
    for (id, reason) in events {
        let Some(redacted) = redact_text(&reason, email, ERASED) else { continue };
        let ids = vec![id.clone()];
        let gone = sqlx::query(PG_DELETE_EMPTY_EVENTS).bind(&ids).execute(&mut **tx).await.context("erase event")?;
        if gone.rows_affected() == 1 {
            erased.events += 1;
        } else {
            let done = sqlx::query(REDACT_EVENT).bind(&id).bind(redacted).execute(&mut **tx).await;
            erased.events_redacted += done.context("redact an event")?.rows_affected();
        }
    }
    let key = email_key(email);
    let marker = erased_suppression_key(org, email);
    sqlx::query(ERASE_SUPPRESSION_MARK)
        .bind(o)
        .bind(&key)
        .bind(&marker)
        .bind(ERASED)
        .execute(&mut **tx)
        .await
        .context("mark the suppression")?;
    erased.suppressions = sqlx::query(ERASE_SUPPRESSION)
        .bind(o)
        .bind(&key)
        .execute(&mut **tx)
        .await
        .context("erase the suppression")?
        .rows_affected();
    let entries: Vec<(i64, String, String)> =
        sqlx::query_as(ERASE_AUDIT_PG).bind(scope_id).bind(email).fetch_all(&mut **tx).await.context("find audit")?;
    for (seq, resource, detail) in entries {
        let resource = redact_text(&resource, email, &marker).unwrap_or(resource);
        let detail = redact_json(&detail, email).unwrap_or(detail);
        let done =
            sqlx::query(REDACT_AUDIT).bind(scope_id).bind(seq).bind(resource).bind(detail).execute(&mut **tx).await;
        erased.audit_entries_redacted += done.context("redact an audit entry")?.rows_affected();
    }
    let contacts: Option<(String,)> =
        sqlx::query_as(ERASE_CONTACTS_READ).bind(o).fetch_optional(&mut **tx).await.context("alert contacts")?;
    if let Some(kept) = contacts.and_then(|(emails,)| without_contact(&emails, email)) {
        let done = sqlx::query(ERASE_CONTACTS_WRITE).bind(o).bind(kept).execute(&mut **tx).await;
        erased.alert_contacts = done.context("alert contacts")?.rows_affected();
    }
    Ok(())
}
