//! Events, notifications, the outbox and idempotency keys (contract §8).
//!
//! The outbox holds one row per notification still to be sent. Workers
//! claim due rows by moving their `available_at` to the end of a lease and
//! stamping a `lease_id`; a result is written back only while that lease is
//! still the row's, so a worker that lost its lease (it stalled past the end
//! and another took the row) cannot overwrite the newer attempt.

use anyhow::Context;

use super::sql::delivery::{
    ATTEMPTS, CLAIM_KEY, CLAIM_PG, CLAIMED, INSERT_OUTBOX, MARK_SENDING, NOTIFICATION, ORG_NAME, OUTBOX_STATS,
    PAGE_ALL, PAGE_BY_STATUS, PG_FINISH, PG_INSERT_EVENTS, PG_INSERT_NOTIFICATIONS, PG_INSERT_OUTBOX,
    PG_STORE_RESPONSES, PURGE_KEYS, READ_KEY, RECLAIM_KEY, RELEASE_KEY, REQUEUE, STATUS_OF, USER_BY_EMAIL,
};
use super::{Db, Store, postgres, read_all, read_optional, sqlite};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::delivery::{
    Attempt, Claimed, IDEMPOTENCY_WINDOW_MS, IdempotencyClaim, NewEvent, Notification, Outcome, Requeue, Status,
};

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
        })
    }
}

type AttemptRow = (i64, i64, String, Option<String>, Option<String>);

/// A leased notification as a worker sends it (`CLAIMED`).
#[derive(sqlx::FromRow)]
pub(super) struct ClaimedRow {
    id: String,
    org_id: String,
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
    })
}

fn claimed_from(row: ClaimedRow) -> Claimed {
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

async fn pg_finish_sends(
    pool: &sqlx::PgPool,
    lease_id: &str,
    results: &[(&Claimed, Outcome)],
    now: Millis,
) -> anyhow::Result<()> {
    let rows: Vec<(&Claimed, ResultRow<'_>)> = results.iter().map(|(c, o)| (*c, result_of(o))).collect();
    let ids: Vec<&str> = rows.iter().map(|(c, _)| c.id.as_str()).collect();
    let statuses: Vec<&str> = rows.iter().map(|(_, r)| r.status.as_str()).collect();
    let errors: Vec<Option<&str>> = rows.iter().map(|(_, r)| r.error).collect();
    let responses: Vec<Option<&str>> = rows.iter().map(|(_, r)| r.response).collect();
    let attempts: Vec<i64> = rows.iter().map(|(c, _)| c.attempt).collect();
    let next: Vec<Option<i64>> = rows.iter().map(|(_, r)| r.next.map(|m| m.0)).collect();
    sqlx::query(PG_FINISH)
        .bind(&ids)
        .bind(&statuses)
        .bind(&errors)
        .bind(&responses)
        .bind(&attempts)
        .bind(&next)
        .bind(lease_id)
        .bind(now.0)
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
    attachments: Vec<Option<String>>,
}

async fn pg_insert_events(pool: &sqlx::PgPool, writes: &[EventWrite<'_>]) -> anyhow::Result<()> {
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
            n.attachments.push(x.attachments.clone());
        }
    }
    let keyed: Vec<_> =
        writes.iter().filter_map(|w| w.idempotency.map(|(k, r)| (w.event.org.as_str(), k, r))).collect();
    let mut tx = pool.begin().await.context("begin")?;
    sqlx::query(PG_INSERT_EVENTS)
        .bind(&ids)
        .bind(&orgs)
        .bind(&kinds)
        .bind(&suppressed)
        .bind(&created)
        .execute(&mut *tx)
        .await
        .context("insert events")?;
    if !n.id.is_empty() {
        sqlx::query(PG_INSERT_NOTIFICATIONS)
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
            .execute(&mut *tx)
            .await
            .context("insert notifications")?;
        sqlx::query(PG_INSERT_OUTBOX)
            .bind(&n.id)
            .bind(&n.org)
            .bind(&n.at)
            .execute(&mut *tx)
            .await
            .context("insert outbox rows")?;
    }
    if !keyed.is_empty() {
        let (o, k, r): (Vec<&str>, Vec<&str>, Vec<&str>) =
            keyed.into_iter().fold((Vec::new(), Vec::new(), Vec::new()), |(mut o, mut k, mut r), (a, b, c)| {
                o.push(a);
                k.push(b);
                r.push(c);
                (o, k, r)
            });
        sqlx::query(PG_STORE_RESPONSES)
            .bind(&o)
            .bind(&k)
            .bind(&r)
            .execute(&mut *tx)
            .await
            .context("store idempotent responses")?;
    }
    tx.commit().await.context("commit events")?;
    Ok(())
}

/// An event to write, with the idempotency key whose response it stores.
pub struct EventWrite<'a> {
    pub event: &'a NewEvent,
    pub idempotency: Option<(&'a str, &'a str)>,
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
            Db::Postgres(p) => {
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
        }
    }

    /// Gives up a claimed key whose event was not written.
    pub async fn release_idempotency_key(&self, org: &OrgId, key: &str) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, key) = (org.clone(), key.to_owned());
                db.write(move |tx| sqlite::delivery::release_idempotency_key(tx, &org, &key)).await
            }
            Db::Postgres(p) => sqlx::query(RELEASE_KEY)
                .bind(org.as_str())
                .bind(key)
                .execute(p)
                .await
                .map(drop)
                .context("release idempotency key"),
        }
    }

    /// Forgets keys older than `before`.
    pub async fn purge_idempotency_keys(&self, before: Millis) -> anyhow::Result<u64> {
        match &self.db {
            Db::Sqlite(db) => db.write(move |tx| sqlite::delivery::purge_idempotency_keys(tx, before)).await,
            Db::Postgres(p) => sqlx::query(PURGE_KEYS)
                .bind(before.0)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
                .context("purge idempotency keys"),
        }
    }

    /// Writes events, their notifications and outbox rows, and the stored
    /// responses of their idempotency keys, all in one transaction.
    pub async fn insert_events(&self, writes: &[EventWrite<'_>]) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let owned: Vec<(NewEvent, Option<(String, String)>)> = writes
                    .iter()
                    .map(|w| (w.event.clone(), w.idempotency.map(|(k, r)| (k.to_owned(), r.to_owned()))))
                    .collect();
                db.write(move |tx| sqlite::delivery::insert_events(tx, &owned)).await
            }
            Db::Postgres(pool) => pg_insert_events(pool, writes).await,
        }
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
            Db::Postgres(p) => {
                let mut tx = p.begin().await.context("begin")?;
                let claimed = sqlx::query(CLAIM_PG)
                    .bind(lease_id)
                    .bind(lease_until.0)
                    .bind(now.0)
                    .bind(limit)
                    .execute(&mut *tx)
                    .await
                    .context("claim outbox rows")?;
                if claimed.rows_affected() == 0 {
                    return Ok(Vec::new());
                }
                sqlx::query(MARK_SENDING)
                    .bind(lease_id)
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await
                    .context("mark notifications sending")?;
                let rows =
                    sqlx::query_as(CLAIMED).bind(lease_id).fetch_all(&mut *tx).await.context("read claimed rows")?;
                tx.commit().await.context("commit claim")?;
                rows
            }
        };
        Ok(rows.into_iter().map(claimed_from).collect())
    }

    /// Records the outcome of each leased send in one transaction. A result
    /// whose lease was lost is kept as an attempt but changes nothing else.
    pub async fn finish_sends(
        &self,
        lease_id: &str,
        results: &[(&Claimed, Outcome)],
        now: Millis,
    ) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let lease_id = lease_id.to_owned();
                let owned: Vec<(Claimed, Outcome)> = results.iter().map(|(c, o)| ((*c).clone(), o.clone())).collect();
                db.write(move |tx| sqlite::delivery::finish_sends(tx, &lease_id, &owned, now)).await
            }
            Db::Postgres(pool) => pg_finish_sends(pool, lease_id, results, now).await,
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
            .map(|(attempt, at, outcome, error, smtp_response)| Attempt {
                attempt,
                at: Millis(at),
                outcome,
                error,
                smtp_response,
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
            Db::Postgres(p) => {
                let mut tx = p.begin().await.context("begin")?;
                // First, as every audited change: it orders the org's changes.
                postgres::append_audit(&mut tx, audit).await?;
                let status: Option<(String,)> = sqlx::query_as(STATUS_OF)
                    .bind(org.as_str())
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .context("read")?;
                match status {
                    None => return Ok(Requeue::NotFound),
                    Some((s,)) if s != Status::Dead.as_str() => return Ok(Requeue::NotDead),
                    Some(_) => {}
                }
                sqlx::query(REQUEUE)
                    .bind(org.as_str())
                    .bind(id)
                    .bind(now.0)
                    .execute(&mut *tx)
                    .await
                    .context("requeue")?;
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
