//! Events, idempotency keys and the outbox on SQLite (see `store/delivery.rs`).

use anyhow::Context;

use super::Tx;
use super::audit::append_audit;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::delivery::{
    Claimed, IDEMPOTENCY_WINDOW_MS, IdempotencyClaim, NewEvent, Outcome, Requeue, Status, Via,
};
use crate::store::delivery::{ClaimedRow, NewKeyClaim, result_of};
use crate::store::sql::delivery::{
    CLAIM_KEY, CLAIMED, INSERT_ATTEMPT, INSERT_EVENT, INSERT_NOTIFICATION, INSERT_OUTBOX, INSERT_OUTBOX_DUE,
    MARK_SENDING, PURGE_KEYS, READ_KEY, RECLAIM_KEY, RELEASE_KEY, REQUEUE, RETRY_OUTBOX, SENT_OUTBOX, SET_RESULT,
    STATUS_OF, STORE_RESPONSE,
};

/// Writes an event, its notifications and their outbox rows.
pub fn insert_event_rows(tx: &Tx<'_>, e: &NewEvent) -> anyhow::Result<()> {
    let org = e.org.as_str();
    tx.execute(INSERT_EVENT, &[&e.id, &org, &e.kind, &e.suppressed, &e.created_at.0]).context("insert event")?;
    for n in &e.notifications {
        tx.execute(
            INSERT_NOTIFICATION,
            &[
                &n.id,
                &org,
                &e.id,
                &e.kind,
                &n.to_addr,
                &n.to_name,
                &n.subject,
                &n.body_text,
                &n.body_html,
                &n.locale,
                &e.created_at.0,
                &n.attachments,
            ],
        )
        .context("insert notification")?;
        tx.execute(INSERT_OUTBOX_DUE, &[&n.id, &org, &e.due_at().0, &e.created_at.0]).context("insert outbox row")?;
    }
    Ok(())
}

/// Events with the stored responses of their idempotency keys.
pub fn insert_events(tx: &Tx<'_>, writes: &[(NewEvent, Option<(String, String)>)]) -> anyhow::Result<()> {
    for (e, idempotency) in writes {
        insert_event_rows(tx, e)?;
        if let Some((key, response)) = idempotency {
            tx.execute(STORE_RESPONSE, &[&e.org.as_str(), key, response]).context("store idempotent response")?;
        }
    }
    Ok(())
}

/// Claims each key that is new (`true`); an existing key is left alone.
pub fn claim_new_idempotency_keys(tx: &Tx<'_>, claims: &[NewKeyClaim]) -> anyhow::Result<Vec<bool>> {
    claims
        .iter()
        .map(|c| {
            let org = c.org.as_str();
            let done = tx
                .execute(CLAIM_KEY, &[&org, &c.key.as_str(), &c.hash.as_str(), &c.now.0, &c.claim_until.0])
                .context("claim idempotency key")?;
            Ok(done == 1)
        })
        .collect()
}

pub fn claim_idempotency_key(
    tx: &Tx<'_>,
    org: &OrgId,
    key: &str,
    hash: &str,
    now: Millis,
    claim_until: Millis,
) -> anyhow::Result<IdempotencyClaim> {
    let org = org.as_str();
    if tx.execute(CLAIM_KEY, &[&org, &key, &hash, &now.0, &claim_until.0]).context("claim idempotency key")? == 1 {
        return Ok(IdempotencyClaim::Claimed);
    }
    let (stored_hash, response, created_at, claimed_until): (String, Option<String>, i64, i64) =
        tx.optional(READ_KEY, &[&org, &key])?.context("read idempotency key")?;
    let expired = created_at <= now.0 - IDEMPOTENCY_WINDOW_MS;
    // An abandoned claim (its process died before the event was written)
    // is taken over once its claim time has passed.
    let abandoned = response.is_none() && claimed_until <= now.0 && stored_hash == hash;
    Ok(if expired || abandoned {
        tx.execute(RECLAIM_KEY, &[&org, &key, &hash, &now.0, &claim_until.0]).context("reclaim idempotency key")?;
        IdempotencyClaim::Claimed
    } else if stored_hash != hash {
        IdempotencyClaim::OtherBody
    } else {
        match response {
            Some(body) => IdempotencyClaim::Replay(body),
            None => IdempotencyClaim::InFlight,
        }
    })
}

pub fn release_idempotency_key(tx: &Tx<'_>, org: &OrgId, key: &str) -> anyhow::Result<()> {
    tx.execute(RELEASE_KEY, &[&org.as_str(), &key]).context("release idempotency key")?;
    Ok(())
}

pub fn purge_idempotency_keys(tx: &Tx<'_>, before: Millis) -> anyhow::Result<u64> {
    Ok(tx.execute(PURGE_KEYS, &[&before.0]).context("purge idempotency keys")? as u64)
}

/// SQLite has no row locks; the one writer makes the claim atomic. The
/// orgs with due mail take turns (`sqlite/fairness.rs`).
pub fn claim_outbox(
    tx: &Tx<'_>,
    lease_id: &str,
    now: Millis,
    lease_until: Millis,
    limit: i64,
) -> anyhow::Result<Vec<ClaimedRow>> {
    if super::fairness::lease_fairly(tx, lease_id, now, lease_until, limit).context("claim outbox rows")? == 0 {
        return Ok(Vec::new());
    }
    tx.execute(MARK_SENDING, &[&lease_id, &now.0]).context("mark notifications sending")?;
    tx.all(CLAIMED, &[&lease_id]).context("read claimed rows")
}

/// The lost-lease rule: the outbox row moves (retry) or leaves (sent, dead)
/// only while the lease is ours; every attempt is kept; the notification
/// changes only where the outbox row did.
pub fn finish_sends(
    tx: &Tx<'_>,
    lease_id: &str,
    results: &[(Claimed, Outcome, Option<Via>)],
    now: Millis,
) -> anyhow::Result<()> {
    for (claimed, outcome, via) in results {
        let (provider_id, provider_name) = (via.as_ref().map(|v| v.id.as_str()), via.as_ref().map(|v| v.name.as_str()));
        let r = result_of(outcome);
        let moved = match r.next {
            Some(at) => tx.execute(RETRY_OUTBOX, &[&claimed.id, &lease_id, &at.0]),
            None => tx.execute(SENT_OUTBOX, &[&claimed.id, &lease_id]),
        }
        .context("update outbox row")?;
        let status = r.status.as_str();
        tx.execute(
            INSERT_ATTEMPT,
            &[&claimed.id, &claimed.attempt, &now.0, &status, &r.error, &r.response, &provider_id, &provider_name],
        )
        .context("record attempt")?;
        if moved > 0 {
            let sent_at = matches!(r.status, Status::Sent).then_some(now.0);
            tx.execute(SET_RESULT, &[&claimed.id, &status, &r.error, &r.response, &now.0, &sent_at])
                .context("record send result")?;
        }
    }
    Ok(())
}

pub fn requeue(tx: &Tx<'_>, org: &OrgId, id: &str, now: Millis, audit: &AuditEntry) -> anyhow::Result<Requeue> {
    // First, as every audited change: it orders the org's changes.
    append_audit(tx, audit)?;
    let status: Option<(String,)> = tx.optional(STATUS_OF, &[&org.as_str(), &id]).context("read")?;
    let outcome = match status {
        None => Requeue::NotFound,
        Some((s,)) if s != Status::Dead.as_str() => Requeue::NotDead,
        Some(_) => {
            if tx.execute(REQUEUE, &[&org.as_str(), &id, &now.0]).context("requeue")? == 0 {
                tx.discard();
                return Ok(Requeue::BodyPruned);
            }
            tx.execute(INSERT_OUTBOX, &[&id, &org.as_str(), &now.0]).context("insert outbox row")?;
            return Ok(Requeue::Done);
        }
    };
    tx.discard();
    Ok(outcome)
}
