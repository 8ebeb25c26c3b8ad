//! Events, notifications, the outbox and idempotency keys (contract §8).
//!
//! The outbox holds one row per notification still to be sent. Workers
//! claim due rows by moving their `available_at` to the end of a lease and
//! stamping a `lease_id`; a result is written back only while that lease is
//! still the row's, so a worker that lost its lease (it stalled past the end
//! and another took the row) cannot overwrite the newer attempt.

use anyhow::Context;

use super::sql::delivery::{ATTEMPTS, NOTIFICATION, ORG_NAME, OUTBOX_STATS, PAGE_ALL, PAGE_BY_STATUS, USER_BY_EMAIL};
use super::{Db, Store, postgres, read_all, read_optional, sqlite};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::delivery::{
    Attempt, Claimed, IdempotencyClaim, NewEvent, Notification, Outcome, Requeue, Status, Via,
};
use crate::domain::webhooks::{self, WebhookEvent};

/// A `notifications` row as the delivery log shows it (`NOTIFICATION_COLUMNS`).
#[derive(sqlx::FromRow)]
pub(super) struct NotificationRow {
    id: String,
    event_id: String,
    kind: String,
    to_addr: String,
    subject: String,
    locale: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    smtp_response: Option<String>,
    created_at: i64,
    updated_at: i64,
    sent_at: Option<i64>,
    body_pruned_at: Option<i64>,
}

impl TryFrom<&rusqlite::Row<'_>> for NotificationRow {
    type Error = rusqlite::Error;
    fn try_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(NotificationRow {
            id: r.get("id")?,
            event_id: r.get("event_id")?,
            kind: r.get("kind")?,
            to_addr: r.get("to_addr")?,
            subject: r.get("subject")?,
            locale: r.get("locale")?,
            status: r.get("status")?,
            attempts: r.get("attempts")?,
            last_error: r.get("last_error")?,
            smtp_response: r.get("smtp_response")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
            sent_at: r.get("sent_at")?,
            body_pruned_at: r.get("body_pruned_at")?,
        })
    }
}

type AttemptRow = (i64, i64, String, Option<String>, Option<String>, Option<String>, Option<String>);

/// A leased notification as a worker sends it (`CLAIMED`).
#[derive(sqlx::FromRow)]
pub(super) struct ClaimedRow {
    id: String,
    pub(super) org_id: String,
    kind: String,
    to_addr: String,
    to_name: Option<String>,
    subject: String,
    body_text: String,
    body_html: Option<String>,
    attachments: Option<String>,
    attempts: i64,
    queued_at: i64,
}

impl TryFrom<&rusqlite::Row<'_>> for ClaimedRow {
    type Error = rusqlite::Error;
    fn try_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(ClaimedRow {
            id: r.get("id")?,
            org_id: r.get("org_id")?,
            kind: r.get("kind")?,
            to_addr: r.get("to_addr")?,
            to_name: r.get("to_name")?,
            subject: r.get("subject")?,
            body_text: r.get("body_text")?,
            body_html: r.get("body_html")?,
            attachments: r.get("attachments")?,
            attempts: r.get("attempts")?,
            queued_at: r.get("queued_at")?,
        })
    }
}

pub(super) fn notification_from(row: NotificationRow) -> anyhow::Result<Notification> {
    let NotificationRow {
        id,
        event_id,
        kind,
        to_addr,
        subject,
        locale,
        status,
        attempts,
        last_error,
        smtp_response,
        created_at,
        updated_at,
        sent_at,
        body_pruned_at,
    } = row;
    Ok(Notification {
        id,
        event_id,
        kind,
        to: to_addr,
        subject,
        locale,
        status: Status::parse(&status).with_context(|| format!("unknown notification status {status:?}"))?,
        attempts,
        last_error,
        smtp_response,
        created_at: Millis(created_at),
        updated_at: Millis(updated_at),
        sent_at: sent_at.map(Millis),
        body_pruned_at: body_pruned_at.map(Millis),
    })
}

pub(super) fn claimed_from(row: ClaimedRow) -> Claimed {
    let ClaimedRow {
        id,
        org_id,
        kind,
        to_addr,
        to_name,
        subject,
        body_text,
        body_html,
        attachments,
        attempts,
        queued_at,
    } = row;
    Claimed {
        id,
        org: OrgId::from_db(org_id),
        kind,
        to_addr,
        to_name,
        subject,
        body_text,
        body_html,
        attachments,
        attempt: attempts,
        queued_at: Millis(queued_at),
    }
}

/// What a send's outcome writes.
pub(super) struct ResultRow<'a> {
    pub status: Status,
    pub error: Option<&'a str>,
    pub response: Option<&'a str>,
    pub next: Option<Millis>,
}

pub(super) fn result_of(outcome: &Outcome) -> ResultRow<'_> {
    match outcome {
        Outcome::Sent { response } => {
            ResultRow { status: Status::Sent, error: None, response: Some(response.as_str()), next: None }
        }
        Outcome::Retry { error, response, at } => ResultRow {
            status: Status::Retrying,
            error: Some(error.as_str()),
            response: response.as_deref(),
            next: Some(*at),
        },
        Outcome::Dead { error, response } => {
            ResultRow { status: Status::Dead, error: Some(error.as_str()), response: response.as_deref(), next: None }
        }
    }
}

/// An event to write, with the idempotency key whose response it stores.
pub struct EventWrite<'a> {
    pub event: &'a NewEvent,
    pub idempotency: Option<(&'a str, &'a str)>,
}

/// How an express claim leases an org's rows: those due at `now`, up to
/// `limit` of the oldest, until `until`.
#[derive(Debug, Clone, Copy)]
pub struct LeaseTerms {
    pub now: Millis,
    pub until: Millis,
    pub limit: i64,
}

/// Express claims made by the transaction that commits new events
/// ([`Store::insert_events`]): each org's rows leased on `terms` to its own
/// lease id, as [`Store::claim_org_outbox`] would, without a claim of their
/// own after the commit (`domain::fairness::express_orgs` says which orgs).
pub struct LeaseOnCommit {
    pub orgs: Vec<(OrgId, String)>,
    pub terms: LeaseTerms,
}

/// A request's idempotency key to claim if it is new
/// ([`Store::claim_new_idempotency_keys`]).
#[derive(Debug, Clone)]
pub struct NewKeyClaim {
    pub org: OrgId,
    pub key: String,
    pub hash: String,
    pub now: Millis,
    pub claim_until: Millis,
}

/// The `notification.suppressed` webhook events of accepted events, written
/// in their transaction.
fn suppressed_hooks(writes: &[EventWrite<'_>]) -> Vec<WebhookEvent> {
    writes.iter().filter_map(|w| webhooks::for_suppressed(w.event)).collect()
}

/// The `notification.sent|deferred|dead` webhook events of send results,
/// written in the results' transaction (a result recorded after its lease
/// was lost is reported too: the attempt happened).
fn outcome_hooks(results: &[(&Claimed, Outcome, Option<Via>)], now: Millis) -> Vec<WebhookEvent> {
    results.iter().map(|(c, o, _)| webhooks::for_outcome(c, o, now)).collect()
}

impl Store {
    /// Claims `key` for a request with body digest `hash`, or says why not.
    pub async fn claim_idempotency_key(
        &self,
        org: &OrgId,
        key: &str,
        hash: &str,
        now: Millis,
        claim_until: Millis,
    ) -> anyhow::Result<IdempotencyClaim> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, key, hash) = (org.clone(), key.to_owned(), hash.to_owned());
                db.write(move |tx| sqlite::delivery::claim_idempotency_key(tx, &org, &key, &hash, now, claim_until))
                    .await
            }
            Db::Postgres(p) => postgres::delivery::claim_idempotency_key(p, org, key, hash, now, claim_until).await,
        }
    }

    /// Claims the keys of many requests that are new, in one transaction:
    /// `true` for each key claimed, `false` for a key that exists already
    /// (its request takes [`Store::claim_idempotency_key`], which decides
    /// between replay, conflict and take-over). Keys must be distinct.
    pub async fn claim_new_idempotency_keys(&self, claims: &[NewKeyClaim]) -> anyhow::Result<Vec<bool>> {
        match &self.db {
            Db::Sqlite(db) => {
                let claims = claims.to_vec();
                db.write(move |tx| sqlite::delivery::claim_new_idempotency_keys(tx, &claims)).await
            }
            Db::Postgres(p) => postgres::delivery::claim_new_idempotency_keys(p, claims).await,
        }
    }

    /// Gives up a claimed key whose event was not written.
    pub async fn release_idempotency_key(&self, org: &OrgId, key: &str) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, key) = (org.clone(), key.to_owned());
                db.write(move |tx| sqlite::delivery::release_idempotency_key(tx, &org, &key)).await
            }
            Db::Postgres(p) => postgres::delivery::release_idempotency_key(p, org, key).await,
        }
    }

    /// Forgets keys older than `before`.
    pub async fn purge_idempotency_keys(&self, before: Millis) -> anyhow::Result<u64> {
        match &self.db {
            Db::Sqlite(db) => db.write(move |tx| sqlite::delivery::purge_idempotency_keys(tx, before)).await,
            Db::Postgres(p) => postgres::delivery::purge_idempotency_keys(p, before).await,
        }
    }

    /// Writes events, their notifications and outbox rows, and the stored
    /// responses of their idempotency keys, all in one transaction, with
    /// the usage counts waiting since the last such write
    /// (`pending_usage.rs`; put back if the write fails). `urgent`: small
    /// orgs' events, written ahead of queued writes on SQLite
    /// ([`sqlite::Sqlite::write_urgent`]). `lease`: express claims made in
    /// the same transaction; their rows come back, one list per org in the
    /// lease's order (none without a lease).
    pub async fn insert_events(
        &self,
        writes: &[EventWrite<'_>],
        urgent: bool,
        lease: Option<&LeaseOnCommit>,
    ) -> anyhow::Result<Vec<Vec<Claimed>>> {
        let usage = self.pending_usage.take();
        let written = match &self.db {
            Db::Sqlite(db) => {
                let owned: Vec<(NewEvent, Option<(String, String)>)> = writes
                    .iter()
                    .map(|w| (w.event.clone(), w.idempotency.map(|(k, r)| (k.to_owned(), r.to_owned()))))
                    .collect();
                let hooks = suppressed_hooks(writes);
                let counts = usage.clone();
                let lease = lease.map(|l| (l.orgs.clone(), l.terms));
                let write = move |tx: &sqlite::Tx<'_>| {
                    sqlite::delivery::insert_events(tx, &owned)?;
                    sqlite::fairness::count_usage(tx, &counts)?;
                    sqlite::webhooks::enqueue(tx, &hooks)?;
                    let Some((orgs, terms)) = lease else { return Ok(Vec::new()) };
                    orgs.iter().map(|(org, lease_id)| sqlite::fairness::lease_org(tx, lease_id, org, terms)).collect()
                };
                if urgent { db.write_urgent(write).await } else { db.write(write).await }
            }
            Db::Postgres(p) => {
                postgres::delivery::insert_events(p, writes, &suppressed_hooks(writes), &usage, lease).await
            }
        };
        if written.is_err() {
            self.pending_usage.restore(usage);
        }
        Ok(written?.into_iter().map(|rows| rows.into_iter().map(claimed_from).collect()).collect())
    }

    /// Leases up to `limit` due outbox rows to `lease_id` until `lease_until`
    /// and marks their notifications `sending` (counting the attempt).
    pub async fn claim_outbox(
        &self,
        lease_id: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> anyhow::Result<Vec<Claimed>> {
        let rows: Vec<ClaimedRow> = match &self.db {
            Db::Sqlite(db) => {
                let lease_id = lease_id.to_owned();
                db.write(move |tx| sqlite::delivery::claim_outbox(tx, &lease_id, now, lease_until, limit)).await?
            }
            Db::Postgres(p) => postgres::delivery::claim_outbox(p, lease_id, now, lease_until, limit).await?,
        };
        Ok(rows.into_iter().map(claimed_from).collect())
    }

    /// Records the outcome of each leased send in one transaction. A result
    /// whose lease was lost is kept as an attempt but changes nothing else.
    pub async fn finish_sends(
        &self,
        lease_id: &str,
        results: &[(&Claimed, Outcome, Option<Via>)],
        now: Millis,
    ) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let lease_id = lease_id.to_owned();
                let owned: Vec<(Claimed, Outcome, Option<Via>)> =
                    results.iter().map(|(c, o, v)| ((*c).clone(), o.clone(), v.clone())).collect();
                let hooks = outcome_hooks(results, now);
                db.write(move |tx| {
                    sqlite::delivery::finish_sends(tx, &lease_id, &owned, now)?;
                    sqlite::webhooks::enqueue(tx, &hooks)
                })
                .await
            }
            Db::Postgres(p) => {
                postgres::delivery::finish_sends(p, lease_id, results, now, &outcome_hooks(results, now)).await
            }
        }
    }

    pub async fn notification(&self, org: &OrgId, id: &str) -> anyhow::Result<Option<Notification>> {
        let row: Option<NotificationRow> =
            read_optional!(self, NOTIFICATION, org.as_str(), id).context("load notification")?;
        row.map(notification_from).transpose()
    }

    /// Newest first, ids below `before` (a UUIDv7: ids sort by creation).
    pub async fn notifications(
        &self,
        org: &OrgId,
        status: Option<Status>,
        before: &str,
        limit: u32,
    ) -> anyhow::Result<Vec<Notification>> {
        let limit = i64::from(limit);
        let rows: Vec<NotificationRow> = match status {
            Some(s) => read_all!(self, PAGE_BY_STATUS, org.as_str(), s.as_str(), before, limit),
            None => read_all!(self, PAGE_ALL, org.as_str(), before, limit),
        }
        .context("page notifications")?;
        rows.into_iter().map(notification_from).collect()
    }

    pub async fn attempts(&self, notification_id: &str) -> anyhow::Result<Vec<Attempt>> {
        let rows: Vec<AttemptRow> = read_all!(self, ATTEMPTS, notification_id).context("load attempts")?;
        Ok(rows
            .into_iter()
            .map(|(attempt, at, outcome, error, smtp_response, provider_id, provider_name)| Attempt {
                attempt,
                at: Millis(at),
                outcome,
                error,
                smtp_response,
                provider: provider_id.map(|id| Via { id, name: provider_name.unwrap_or_default() }),
            })
            .collect())
    }

    /// Puts a dead notification back in the outbox, due now, with its audit row.
    pub async fn requeue(&self, org: &OrgId, id: &str, now: Millis, audit: &AuditEntry) -> anyhow::Result<Requeue> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, id, audit) = (org.clone(), id.to_owned(), audit.clone());
                db.write(move |tx| sqlite::delivery::requeue(tx, &org, &id, now, &audit)).await
            }
            Db::Postgres(p) => postgres::delivery::requeue(p, org, id, now, audit).await,
        }
    }

    /// Rows waiting (not leased) and the oldest one's due time.
    pub async fn outbox_stats(&self) -> anyhow::Result<(i64, Option<Millis>)> {
        let row: Option<(i64, Option<i64>)> = read_optional!(self, OUTBOX_STATS).context("outbox stats")?;
        Ok(row.map_or((0, None), |(n, oldest)| (n, oldest.map(Millis))))
    }

    /// The id of the org's user with this email (case-insensitive).
    pub async fn user_id_by_email(&self, org: &OrgId, email: &str) -> anyhow::Result<Option<String>> {
        let key = email.to_lowercase();
        let row: Option<(String,)> =
            read_optional!(self, USER_BY_EMAIL, org.as_str(), key.as_str()).context("find user by email")?;
        Ok(row.map(|(id,)| id))
    }

    pub async fn org_name(&self, org: &OrgId) -> anyhow::Result<Option<String>> {
        let row: Option<(String,)> = read_optional!(self, ORG_NAME, org.as_str()).context("read org name")?;
        Ok(row.map(|(n,)| n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::delivery::NOTIFICATION_COLUMNS;

    #[test]
    fn page_queries_select_the_row_columns() {
        for sql in [NOTIFICATION, PAGE_ALL, PAGE_BY_STATUS] {
            let squashed = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(squashed(sql).contains(&squashed(NOTIFICATION_COLUMNS)), "{sql}");
        }
    }
}
