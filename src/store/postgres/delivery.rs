//! Events, the outbox and idempotency keys on PostgreSQL (see
//! `store/delivery.rs`).

use anyhow::Context;
use sqlx::{PgConnection, PgPool};

use super::audit::append_audit;
use super::webhooks::hook_columns;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::delivery::{
    Claimed, IDEMPOTENCY_WINDOW_MS, IdempotencyClaim, NewEvent, Outcome, Requeue, Status, Via,
};
use crate::domain::webhooks::WebhookEvent;
use crate::store::delivery::{ClaimedRow, NewKeyClaim, ResultRow, result_of};
use crate::store::pending_usage::{Counts, PendingUsage};
use crate::store::sql::delivery::{
    CLAIM_KEY, INSERT_EVENT, INSERT_NOTIFICATION, INSERT_OUTBOX, INSERT_OUTBOX_DUE, PG_CLAIM_KEYS, PG_COMMIT_EVENTS,
    PG_FINISH, PURGE_KEYS, READ_KEY, RECLAIM_KEY, RELEASE_KEY, REQUEUE, STATUS_OF,
};
use crate::store::{EventWrite, LeaseOnCommit};

/// Writes an event, its notifications and their outbox rows (the writes
/// that queue a mail together with another change; the hot path of
/// `POST /v1/events` writes whole batches with `UNNEST`).
pub async fn insert_event_rows(tx: &mut PgConnection, e: &NewEvent) -> anyhow::Result<()> {
    sqlx::query(INSERT_EVENT)
        .bind(&e.id)
        .bind(e.org.as_str())
        .bind(&e.kind)
        .bind(e.suppressed.as_deref())
        .bind(e.created_at.0)
        .execute(&mut *tx)
        .await
        .context("insert event")?;
    for n in &e.notifications {
        sqlx::query(INSERT_NOTIFICATION)
            .bind(&n.id)
            .bind(e.org.as_str())
            .bind(&e.id)
            .bind(&e.kind)
            .bind(&n.to_addr)
            .bind(n.to_name.as_deref())
            .bind(&n.subject)
            .bind(&n.body_text)
            .bind(n.body_html.as_deref())
            .bind(&n.locale)
            .bind(e.created_at.0)
            .bind(n.attachments.as_deref())
            .execute(&mut *tx)
            .await
            .context("insert notification")?;
        sqlx::query(INSERT_OUTBOX_DUE)
            .bind(&n.id)
            .bind(e.org.as_str())
            .bind(e.due_at().0)
            .bind(e.created_at.0)
            .execute(&mut *tx)
            .await
            .context("insert outbox row")?;
    }
    Ok(())
}

pub async fn finish_sends(
    pool: &PgPool,
    lease_id: &str,
    results: &[(&Claimed, Outcome, Option<Via>)],
    now: Millis,
    hooks: &[WebhookEvent],
) -> anyhow::Result<()> {
    let rows: Vec<(&Claimed, ResultRow<'_>)> = results.iter().map(|(c, o, _)| (*c, result_of(o))).collect();
    let provider_ids: Vec<Option<&str>> = results.iter().map(|(_, _, v)| v.as_ref().map(|v| v.id.as_str())).collect();
    let provider_names: Vec<Option<&str>> =
        results.iter().map(|(_, _, v)| v.as_ref().map(|v| v.name.as_str())).collect();
    let ids: Vec<&str> = rows.iter().map(|(c, _)| c.id.as_str()).collect();
    let statuses: Vec<&str> = rows.iter().map(|(_, r)| r.status.as_str()).collect();
    let errors: Vec<Option<&str>> = rows.iter().map(|(_, r)| r.error).collect();
    let responses: Vec<Option<&str>> = rows.iter().map(|(_, r)| r.response).collect();
    let attempts: Vec<i64> = rows.iter().map(|(c, _)| c.attempt).collect();
    let next: Vec<Option<i64>> = rows.iter().map(|(_, r)| r.next.map(|m| m.0)).collect();
    let (hook_ids, hook_orgs, hook_kinds, payloads, hook_at) = hook_columns(hooks);
    sqlx::query(PG_FINISH)
        .bind(&ids)
        .bind(&statuses)
        .bind(&errors)
        .bind(&responses)
        .bind(&attempts)
        .bind(&next)
        .bind(lease_id)
        .bind(now.0)
        .bind(&provider_ids)
        .bind(&provider_names)
        .bind(&hook_ids)
        .bind(&hook_orgs)
        .bind(&hook_kinds)
        .bind(&payloads)
        .bind(&hook_at)
        .execute(pool)
        .await
        .context("record send results")?;
    Ok(())
}

/// Columns of the notifications to insert, one vector each.
#[derive(Default)]
struct NotificationColumns {
    id: Vec<String>,
    org: Vec<String>,
    event: Vec<String>,
    kind: Vec<String>,
    to_addr: Vec<String>,
    to_name: Vec<Option<String>>,
    subject: Vec<String>,
    text: Vec<String>,
    html: Vec<Option<String>>,
    locale: Vec<String>,
    at: Vec<i64>,
    due: Vec<i64>,
    attachments: Vec<Option<String>>,
}

pub async fn insert_events(
    pool: &PgPool,
    writes: &[EventWrite<'_>],
    hooks: &[WebhookEvent],
    usage: &Counts,
    lease: Option<&LeaseOnCommit>,
) -> anyhow::Result<Vec<Vec<ClaimedRow>>> {
    let events = writes.iter().map(|w| w.event);
    let ids: Vec<&str> = events.clone().map(|e| e.id.as_str()).collect();
    let orgs: Vec<&str> = events.clone().map(|e| e.org.as_str()).collect();
    let kinds: Vec<&str> = events.clone().map(|e| e.kind.as_str()).collect();
    let suppressed: Vec<Option<&str>> = events.clone().map(|e| e.suppressed.as_deref()).collect();
    let created: Vec<i64> = events.clone().map(|e| e.created_at.0).collect();
    let mut n = NotificationColumns::default();
    for e in events {
        for x in &e.notifications {
            n.id.push(x.id.clone());
            n.org.push(e.org.as_str().to_owned());
            n.event.push(e.id.clone());
            n.kind.push(e.kind.clone());
            n.to_addr.push(x.to_addr.clone());
            n.to_name.push(x.to_name.clone());
            n.subject.push(x.subject.clone());
            n.text.push(x.body_text.clone());
            n.html.push(x.body_html.clone());
            n.locale.push(x.locale.clone());
            n.at.push(e.created_at.0);
            n.due.push(e.due_at().0);
            n.attachments.push(x.attachments.clone());
        }
    }
    let keyed: Vec<(&str, &str, &str)> =
        writes.iter().filter_map(|w| w.idempotency.map(|(k, r)| (w.event.org.as_str(), k, r))).collect();
    let key_orgs: Vec<&str> = keyed.iter().map(|k| k.0).collect();
    let keys: Vec<&str> = keyed.iter().map(|k| k.1).collect();
    let responses: Vec<&str> = keyed.iter().map(|k| k.2).collect();
    let (usage_orgs, periods, buckets, counts) = PendingUsage::columns(usage);
    let (express, lease_ids): (Vec<&str>, Vec<&str>) =
        lease.map_or_else(Default::default, |l| l.orgs.iter().map(|(o, id)| (o.as_str(), id.as_str())).unzip());
    let terms = lease.map(|l| l.terms);
    let (hook_ids, hook_orgs, hook_kinds, payloads, hook_at) = hook_columns(hooks);
    let rows: Vec<ClaimedRow> = sqlx::query_as(PG_COMMIT_EVENTS)
        .bind(&ids)
        .bind(&orgs)
        .bind(&kinds)
        .bind(&suppressed)
        .bind(&created)
        .bind(&n.id)
        .bind(&n.org)
        .bind(&n.event)
        .bind(&n.kind)
        .bind(&n.to_addr)
        .bind(&n.to_name)
        .bind(&n.subject)
        .bind(&n.text)
        .bind(&n.html)
        .bind(&n.locale)
        .bind(&n.at)
        .bind(&n.attachments)
        .bind(&n.due)
        .bind(&key_orgs)
        .bind(&keys)
        .bind(&responses)
        .bind(&usage_orgs)
        .bind(&periods)
        .bind(&buckets)
        .bind(&counts)
        .bind(&express)
        .bind(&lease_ids)
        .bind(terms.map_or(0, |t| t.now.0))
        .bind(terms.map_or(0, |t| t.until.0))
        .bind(terms.map_or(0, |t| t.limit))
        .bind(&hook_ids)
        .bind(&hook_orgs)
        .bind(&hook_kinds)
        .bind(&payloads)
        .bind(&hook_at)
        .fetch_all(pool)
        .await
        .context("commit events")?;
    // One list per express org, in the lease's order.
    let mut leased: Vec<Vec<ClaimedRow>> = express.iter().map(|_| Vec::new()).collect();
    for row in rows {
        if let Some(i) = express.iter().position(|org| *org == row.org_id) {
            leased[i].push(row);
        }
    }
    Ok(leased)
}

/// Gives up a claimed key whose event was not written.
pub async fn release_idempotency_key(p: &PgPool, org: &OrgId, key: &str) -> anyhow::Result<()> {
    sqlx::query(RELEASE_KEY).bind(org.as_str()).bind(key).execute(p).await.map(drop).context("release idempotency key")
}

/// Forgets keys older than `before`.
pub async fn purge_idempotency_keys(p: &PgPool, before: Millis) -> anyhow::Result<u64> {
    sqlx::query(PURGE_KEYS).bind(before.0).execute(p).await.map(|r| r.rows_affected()).context("purge idempotency keys")
}

/// Claims the new keys among `claims` in one statement (its own implicit
/// transaction); `true` where the key was claimed.
pub async fn claim_new_idempotency_keys(p: &PgPool, claims: &[NewKeyClaim]) -> anyhow::Result<Vec<bool>> {
    let orgs: Vec<&str> = claims.iter().map(|c| c.org.as_str()).collect();
    let keys: Vec<&str> = claims.iter().map(|c| c.key.as_str()).collect();
    let hashes: Vec<&str> = claims.iter().map(|c| c.hash.as_str()).collect();
    let nows: Vec<i64> = claims.iter().map(|c| c.now.0).collect();
    let untils: Vec<i64> = claims.iter().map(|c| c.claim_until.0).collect();
    let claimed: Vec<(String, String)> = sqlx::query_as(PG_CLAIM_KEYS)
        .bind(&orgs)
        .bind(&keys)
        .bind(&hashes)
        .bind(&nows)
        .bind(&untils)
        .fetch_all(p)
        .await
        .context("claim idempotency keys")?;
    let claimed: std::collections::HashSet<(String, String)> = claimed.into_iter().collect();
    Ok(claims.iter().map(|c| claimed.contains(&(c.org.as_str().to_owned(), c.key.clone()))).collect())
}

pub async fn claim_idempotency_key(
    p: &PgPool,
    org: &OrgId,
    key: &str,
    hash: &str,
    now: Millis,
    claim_until: Millis,
) -> anyhow::Result<IdempotencyClaim> {
    // The common case, a new key, is one statement in its own implicit
    // transaction: one round trip instead of BEGIN, INSERT and COMMIT.
    let inserted = sqlx::query(CLAIM_KEY)
        .bind(org.as_str())
        .bind(key)
        .bind(hash)
        .bind(now.0)
        .bind(claim_until.0)
        .execute(p)
        .await
        .context("claim idempotency key")?;
    if inserted.rows_affected() == 1 {
        return Ok(IdempotencyClaim::Claimed);
    }
    // The key exists: read it and decide under a transaction (the row may
    // have gone meanwhile: then the insert claims it after all).
    let mut tx = p.begin().await.context("begin")?;
    let inserted = sqlx::query(CLAIM_KEY)
        .bind(org.as_str())
        .bind(key)
        .bind(hash)
        .bind(now.0)
        .bind(claim_until.0)
        .execute(&mut *tx)
        .await
        .context("claim idempotency key")?;
    if inserted.rows_affected() == 1 {
        tx.commit().await.context("commit key claim")?;
        return Ok(IdempotencyClaim::Claimed);
    }
    let (stored_hash, response, created_at, claimed_until): (String, Option<String>, i64, i64) =
        sqlx::query_as(READ_KEY)
            .bind(org.as_str())
            .bind(key)
            .fetch_one(&mut *tx)
            .await
            .context("read idempotency key")?;
    let expired = created_at <= now.0 - IDEMPOTENCY_WINDOW_MS;
    // An abandoned claim (its process died before the event was
    // written) is taken over once its claim time has passed.
    let abandoned = response.is_none() && claimed_until <= now.0 && stored_hash == hash;
    let outcome = if expired || abandoned {
        sqlx::query(RECLAIM_KEY)
            .bind(org.as_str())
            .bind(key)
            .bind(hash)
            .bind(now.0)
            .bind(claim_until.0)
            .execute(&mut *tx)
            .await
            .context("reclaim idempotency key")?;
        IdempotencyClaim::Claimed
    } else if stored_hash != hash {
        IdempotencyClaim::OtherBody
    } else {
        match response {
            Some(body) => IdempotencyClaim::Replay(body),
            None => IdempotencyClaim::InFlight,
        }
    };
    tx.commit().await.context("commit key claim")?;
    Ok(outcome)
}

pub async fn claim_outbox(
    p: &PgPool,
    lease_id: &str,
    now: Millis,
    lease_until: Millis,
    limit: i64,
) -> anyhow::Result<Vec<ClaimedRow>> {
    sqlx::query_as(crate::store::sql::fairness::CLAIM_FAIR_PG)
        .bind(lease_id)
        .bind(lease_until.0)
        .bind(now.0)
        .bind(limit)
        .fetch_all(p)
        .await
        .context("claim outbox rows")
}

pub async fn requeue(p: &PgPool, org: &OrgId, id: &str, now: Millis, audit: &AuditEntry) -> anyhow::Result<Requeue> {
    let mut tx = p.begin().await.context("begin")?;
    // First, as every audited change: it orders the org's changes.
    append_audit(&mut tx, audit).await?;
    let status: Option<(String,)> =
        sqlx::query_as(STATUS_OF).bind(org.as_str()).bind(id).fetch_optional(&mut *tx).await.context("read")?;
    match status {
        None => return Ok(Requeue::NotFound),
        Some((s,)) if s != Status::Dead.as_str() => return Ok(Requeue::NotDead),
        Some(_) => {}
    }
    let requeued =
        sqlx::query(REQUEUE).bind(org.as_str()).bind(id).bind(now.0).execute(&mut *tx).await.context("requeue")?;
    if requeued.rows_affected() == 0 {
        // Dropping the transaction rolls the audit row back.
        return Ok(Requeue::BodyPruned);
    }
    sqlx::query(INSERT_OUTBOX)
        .bind(id)
        .bind(org.as_str())
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .context("insert outbox row")?;
    tx.commit().await.context("commit requeue")?;
    Ok(Requeue::Done)
}
