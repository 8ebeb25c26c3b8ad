//! Webhook endpoints, their messages and delivery log (see
//! `domain/webhooks.rs`).

use anyhow::Context;

use super::sql::webhooks::{ALL, COUNT, MESSAGES, ONE, SECRETS};
use super::{Db, Store, postgres, read_all, read_optional, row, sqlite};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::webhooks::{ClaimedMessage, Endpoint, Message, MessageResult, SealedSecrets, WebhookEvent};

row! {
    /// A `webhook_endpoints` row without its secrets.
    pub(super) struct EndpointRow {
        id: String,
        org_id: String,
        url: String,
        description: String,
        event_types: String,
        enabled: bool,
        disabled_reason: Option<String>,
        failing_since: Option<i64>,
        created_at: i64,
        updated_at: i64,
    }
}

row! {
    pub(super) struct SecretsRow {
        secret_enc: Vec<u8>,
        previous_enc: Option<Vec<u8>>,
        previous_until: Option<i64>,
    }
}

row! {
    /// A leased message with its endpoint's URL (`CLAIMED`).
    pub(super) struct ClaimedRow {
        seq: i64,
        id: String,
        org_id: String,
        endpoint_id: String,
        event_type: String,
        payload: String,
        attempts: i64,
        url: String,
    }
}

row! {
    pub(super) struct MessageRow {
        id: String,
        event_type: String,
        status: String,
        attempts: i64,
        created_at: i64,
        finished_at: Option<i64>,
        last_status_code: Option<i64>,
        last_latency_ms: Option<i64>,
        last_error: Option<String>,
    }
}

fn endpoint_from(row: EndpointRow) -> anyhow::Result<Endpoint> {
    let EndpointRow {
        id,
        org_id,
        url,
        description,
        event_types,
        enabled,
        disabled_reason,
        failing_since,
        created_at,
        updated_at,
    } = row;
    Ok(Endpoint {
        id,
        org: OrgId::from_db(org_id),
        url,
        description,
        event_types: serde_json::from_str(&event_types).context("decode event types")?,
        enabled,
        disabled_reason,
        failing_since: failing_since.map(Millis),
        created_at: Millis(created_at),
        updated_at: Millis(updated_at),
    })
}

pub(super) fn claimed_from(row: ClaimedRow) -> ClaimedMessage {
    let ClaimedRow { seq, id, org_id, endpoint_id, event_type, payload, attempts, url } = row;
    ClaimedMessage { seq, id, org: OrgId::from_db(org_id), endpoint_id, event_type, payload, attempt: attempts, url }
}

/// An endpoint's columns as written.
pub struct EndpointWrite<'a> {
    pub endpoint: &'a Endpoint,
    pub event_types_json: String,
}

impl<'a> EndpointWrite<'a> {
    pub fn new(endpoint: &'a Endpoint) -> Self {
        EndpointWrite { endpoint, event_types_json: serde_json::Value::from(endpoint.event_types.clone()).to_string() }
    }
}

impl Store {
    pub async fn insert_webhook(&self, e: &Endpoint, sealed: &[u8], audit: &AuditEntry) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let (e, sealed, audit) = (e.clone(), sealed.to_vec(), audit.clone());
                db.write(move |tx| sqlite::webhooks::insert(tx, &EndpointWrite::new(&e), &sealed, &audit)).await
            }
            Db::Postgres(p) => postgres::webhooks::insert(p, &EndpointWrite::new(e), sealed, audit).await,
        }
        .context("create webhook endpoint")
    }

    /// Replaces the endpoint's fields (and rotates its secret when
    /// `rotation` has the new sealed one); false when it is gone.
    pub async fn update_webhook(
        &self,
        e: &Endpoint,
        rotation: Option<(Vec<u8>, Millis)>,
        audit: &AuditEntry,
    ) -> anyhow::Result<bool> {
        match &self.db {
            Db::Sqlite(db) => {
                let (e, audit) = (e.clone(), audit.clone());
                db.write(move |tx| sqlite::webhooks::update(tx, &EndpointWrite::new(&e), rotation, &audit)).await
            }
            Db::Postgres(p) => postgres::webhooks::update(p, &EndpointWrite::new(e), rotation, audit).await,
        }
        .context("update webhook endpoint")
    }

    pub async fn delete_webhook(&self, org: &OrgId, id: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, id, audit) = (org.clone(), id.to_owned(), audit.clone());
                db.write(move |tx| sqlite::webhooks::delete(tx, &org, &id, &audit)).await
            }
            Db::Postgres(p) => postgres::webhooks::delete(p, org, id, audit).await,
        }
        .context("delete webhook endpoint")
    }

    pub async fn webhook(&self, org: &OrgId, id: &str) -> anyhow::Result<Option<Endpoint>> {
        let row: Option<EndpointRow> = read_optional!(self, ONE, org.as_str(), id).context("read webhook")?;
        row.map(endpoint_from).transpose()
    }

    pub async fn webhooks(&self, org: &OrgId) -> anyhow::Result<Vec<Endpoint>> {
        let rows: Vec<EndpointRow> = read_all!(self, ALL, org.as_str()).context("list webhooks")?;
        rows.into_iter().map(endpoint_from).collect()
    }

    pub async fn webhook_count(&self, org: &OrgId) -> anyhow::Result<i64> {
        let row: Option<(i64,)> = read_optional!(self, COUNT, org.as_str()).context("count webhooks")?;
        Ok(row.map_or(0, |(n,)| n))
    }

    pub async fn webhook_secrets(&self, endpoint_id: &str) -> anyhow::Result<Option<SealedSecrets>> {
        let row: Option<SecretsRow> = read_optional!(self, SECRETS, endpoint_id).context("read webhook secrets")?;
        Ok(row.map(|SecretsRow { secret_enc, previous_enc, previous_until }| SealedSecrets {
            current: secret_enc,
            previous: previous_enc,
            previous_until: previous_until.map(Millis),
        }))
    }

    /// Writes `events` for their subscribers on its own (events not tied to
    /// another write, such as a test).
    pub async fn enqueue_webhooks(&self, events: &[WebhookEvent]) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let events = events.to_vec();
                db.write(move |tx| sqlite::webhooks::enqueue(tx, &events)).await
            }
            Db::Postgres(p) => {
                let mut conn = p.acquire().await.context("connect")?;
                postgres::webhooks::enqueue(&mut conn, events).await
            }
        }
    }

    /// Leases the due head-of-line messages, up to `limit`.
    pub async fn claim_webhooks(
        &self,
        lease_id: &str,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> anyhow::Result<Vec<ClaimedMessage>> {
        let rows: Vec<ClaimedRow> = match &self.db {
            Db::Sqlite(db) => {
                let lease_id = lease_id.to_owned();
                db.write(move |tx| sqlite::webhooks::claim(tx, &lease_id, now, lease_until, limit)).await?
            }
            Db::Postgres(p) => postgres::webhooks::claim(p, lease_id, now, lease_until, limit).await?,
        };
        Ok(rows.into_iter().map(claimed_from).collect())
    }

    /// Records attempts; returns the endpoints this disabled (failing since
    /// before `disable_before`), with their audit rows written.
    pub async fn finish_webhooks(
        &self,
        lease_id: &str,
        results: &[MessageResult],
        now: Millis,
        disable_before: Millis,
    ) -> anyhow::Result<Vec<String>> {
        match &self.db {
            Db::Sqlite(db) => {
                let (lease_id, results) = (lease_id.to_owned(), results.to_vec());
                db.write(move |tx| sqlite::webhooks::finish(tx, &lease_id, &results, now, disable_before)).await
            }
            Db::Postgres(p) => postgres::webhooks::finish(p, lease_id, results, now, disable_before).await,
        }
    }

    /// An endpoint's delivery log, newest first.
    pub async fn webhook_messages(&self, org: &OrgId, endpoint_id: &str, limit: u32) -> anyhow::Result<Vec<Message>> {
        let limit = i64::from(limit);
        let rows: Vec<MessageRow> =
            read_all!(self, MESSAGES, org.as_str(), endpoint_id, limit).context("read webhook messages")?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let MessageRow {
                    id,
                    event_type,
                    status,
                    attempts,
                    created_at,
                    finished_at,
                    last_status_code,
                    last_latency_ms,
                    last_error,
                } = r;
                Message {
                    id,
                    event_type,
                    status,
                    attempts,
                    created_at: Millis(created_at),
                    finished_at: finished_at.map(Millis),
                    last_status_code,
                    last_latency_ms,
                    last_error,
                }
            })
            .collect())
    }
}
