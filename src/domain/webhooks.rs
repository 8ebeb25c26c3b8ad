//! Webhooks (issue 18): an org's endpoints, what they subscribe to, their
//! secrets, and the events reported to them.
//!
//! An event is written as one message row per subscribed endpoint in the
//! same transaction as the change it reports ([`WebhookEvent`], written by
//! the store beside the change), so a crash cannot lose it; the machinery
//! that delivers, signs and retries is [`crate::delivery::webhooks`].
//!
//! Secrets are `whsec_` + base64 of 32 random bytes (the Standard Webhooks
//! format), shown once when made, AEAD-encrypted at rest with the org and
//! endpoint ids as associated data, never returned again. A rotation keeps
//! the previous secret for [`ROTATION_OVERLAP_MS`]; messages sent meanwhile
//! carry both signatures.

use serde_json::{Value, json};

use crate::clock::Millis;
use crate::crypto::Cipher;
use crate::domain::audit::{AuditEntry, Scope};
use crate::domain::delivery::{Claimed, NewEvent, Outcome, RetryPolicy};
use crate::domain::identities::{SenderIdentity, Status as IdentityStatus};
use crate::domain::signing;
use crate::domain::{Actor, OrgId};
use crate::error::{Error, FieldErrors, Resource};
use crate::secret::Secret;
use crate::store::Store;

/// Every event type an endpoint can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "notification.sent",
    "notification.deferred",
    "notification.dead",
    "notification.bounced",
    "notification.complained",
    "notification.suppressed",
    "sender_identity.approved",
    "sender_identity.denied",
    "sender_identity.revoked",
    "alert.opened",
    "alert.resolved",
];

/// How long the previous secret stays valid after a rotation: 24 hours.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;
/// An endpoint failing for this long is disabled: 24 hours.
pub const DISABLE_AFTER_MS: i64 = 24 * 3600 * 1000;
pub const MAX_ENDPOINTS: i64 = 50;
const MAX_URL: usize = 2048;
const MAX_DESCRIPTION: usize = 500;

/// An endpoint as stored, without its secrets.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub org: OrgId,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// An endpoint's encrypted secrets.
#[derive(Debug, Clone)]
pub struct SealedSecrets {
    pub current: Vec<u8>,
    pub previous: Option<Vec<u8>>,
    pub previous_until: Option<Millis>,
}

/// What a create or update asks for, checked.
#[derive(Debug, Clone)]
pub struct EndpointDraft {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Update only: make a new secret.
    pub rotate_secret: bool,
}

/// An event to report: one message per subscribed, enabled endpoint of
/// `org`, all with the same `id` (the `webhook-id` header).
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub id: String,
    pub org: OrgId,
    pub kind: &'static str,
    /// When it happened.
    pub at: Millis,
    /// The whole body: `{type, timestamp, data}`.
    pub payload: String,
}

impl WebhookEvent {
    pub fn new(org: &OrgId, kind: &'static str, at: Millis, data: Value) -> WebhookEvent {
        let payload = json!({ "type": kind, "timestamp": at.rfc3339(), "data": data }).to_string();
        WebhookEvent { id: format!("msg_{}", uuid::Uuid::now_v7().simple()), org: org.clone(), kind, at, payload }
    }
}

/// The webhook event a send's outcome reports.
pub fn for_outcome(claimed: &Claimed, outcome: &Outcome, at: Millis) -> WebhookEvent {
    let (kind, status, error, response, next) = match outcome {
        Outcome::Sent { response } => ("notification.sent", "sent", None, Some(response), None),
        Outcome::Retry { error, response, at } => {
            ("notification.deferred", "retrying", Some(error), response.as_ref(), Some(at.rfc3339()))
        }
        Outcome::Dead { error, response } => ("notification.dead", "dead", Some(error), response.as_ref(), None),
    };
    let data = json!({
        "notificationId": claimed.id,
        "type": claimed.kind,
        "to": claimed.to_addr,
        "status": status,
        "attempt": claimed.attempt,
        "error": error,
        "smtpResponse": response,
        "nextAttemptAt": next,
    });
    WebhookEvent::new(&claimed.org, kind, at, data)
}

/// When a failed message is tried again: 5 s after the first failure,
/// doubling up to an hour, with jitter (the mail retry arithmetic).
pub fn retry_at(attempt: i64, now: Millis) -> Millis {
    let policy = RetryPolicy {
        base: std::time::Duration::from_secs(5),
        cap: std::time::Duration::from_secs(3600),
        ..RetryPolicy::default()
    };
    let delay = policy.backoff(attempt, rand::random::<f64>());
    Millis(now.0 + i64::try_from(delay.as_millis()).unwrap_or(3_600_000))
}

/// The webhook event of an accepted event that made no notification.
pub fn for_suppressed(event: &NewEvent) -> Option<WebhookEvent> {
    let reason = event.suppressed.as_ref()?;
    let data = json!({ "eventId": event.id, "type": event.kind, "reason": reason });
    Some(WebhookEvent::new(&event.org, "notification.suppressed", event.created_at, data))
}

/// The webhook event of a sender identity's new status (approved, denied
/// or revoked through its mailed link).
pub fn for_identity(org: &OrgId, identity: &SenderIdentity, at: Millis) -> Option<WebhookEvent> {
    let kind = match identity.status {
        IdentityStatus::Approved => "sender_identity.approved",
        IdentityStatus::Denied => "sender_identity.denied",
        IdentityStatus::Revoked => "sender_identity.revoked",
        IdentityStatus::Pending => return None,
    };
    let data = json!({
        "senderIdentityId": identity.id,
        "name": identity.name,
        "email": identity.email,
        "status": identity.status.as_str(),
    });
    Some(WebhookEvent::new(org, kind, at, data))
}

/// A fresh secret in the Standard Webhooks format.
pub fn new_secret() -> Secret {
    signing::generate_secret()
}

/// The signing key of a `whsec_…` secret.
pub fn secret_bytes(secret: &Secret) -> Option<Vec<u8>> {
    signing::secret_key(secret).ok()
}

fn secret_aad(org: &OrgId, endpoint_id: &str) -> Vec<u8> {
    format!("herald:webhook-secret:{}:{endpoint_id}", org.as_str()).into_bytes()
}

pub fn seal(cipher: &Cipher, org: &OrgId, endpoint_id: &str, secret: &Secret) -> anyhow::Result<Vec<u8>> {
    cipher.encrypt(secret.expose().as_bytes(), &secret_aad(org, endpoint_id))
}

/// The signing keys valid at `now`: the current one, and the previous one
/// during a rotation's overlap.
pub fn signing_keys(
    cipher: &Cipher,
    org: &OrgId,
    endpoint_id: &str,
    sealed: &SealedSecrets,
    now: Millis,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let open = |stored: &[u8]| -> anyhow::Result<Vec<u8>> {
        let plain = cipher.decrypt(stored, &secret_aad(org, endpoint_id))?;
        let secret =
            Secret::new(String::from_utf8(plain).map_err(|_| anyhow::anyhow!("a webhook secret is not UTF-8"))?);
        secret_bytes(&secret).ok_or_else(|| anyhow::anyhow!("a stored webhook secret is malformed"))
    };
    let mut keys = vec![open(&sealed.current)?];
    if let (Some(previous), Some(until)) = (&sealed.previous, sealed.previous_until)
        && until.0 > now.0
    {
        keys.push(open(previous)?);
    }
    Ok(keys)
}

/// Checks the fields of a create or update.
pub fn parse_draft(
    url: Option<String>,
    description: Option<String>,
    event_types: Option<Vec<String>>,
    enabled: Option<bool>,
) -> Result<EndpointDraft, Error> {
    let mut errors = FieldErrors::new();
    let url = match url {
        None => {
            errors.add("url", "is required");
            String::new()
        }
        Some(u) => {
            let u = u.trim().to_owned();
            match url::Url::parse(&u) {
                _ if u.len() > MAX_URL => errors.add("url", format!("must be at most {MAX_URL} characters")),
                Ok(parsed) if matches!(parsed.scheme(), "https" | "http") && parsed.host().is_some() => {
                    if !parsed.username().is_empty() || parsed.password().is_some() {
                        errors.add("url", "must not contain credentials");
                    }
                }
                _ => errors.add("url", "must be an absolute https:// or http:// URL"),
            }
            u
        }
    };
    let description = description.unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION || description.chars().any(char::is_control) {
        errors.add("description", format!("must be at most {MAX_DESCRIPTION} characters without control characters"));
    }
    let mut types = Vec::new();
    match event_types {
        None => errors.add("eventTypes", "is required"),
        Some(list) if list.is_empty() => errors.add("eventTypes", "must name at least one event type"),
        Some(list) => {
            for t in list {
                if !EVENT_TYPES.contains(&t.as_str()) {
                    errors.add("eventTypes", format!("must contain only {}", EVENT_TYPES.join(", ")));
                    break;
                }
                if !types.contains(&t) {
                    types.push(t);
                }
            }
        }
    }
    errors.finish()?;
    Ok(EndpointDraft { url, description, event_types: types, enabled: enabled.unwrap_or(true), rotate_secret: false })
}

fn audit(org: &OrgId, actor: &Actor, at: Millis, action: &'static str, id: &str, detail: Value) -> AuditEntry {
    AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at,
        action,
        resource_type: "webhook",
        resource_id: id.to_owned(),
        detail,
    }
}

/// Creates an endpoint; its secret is in this answer only.
pub async fn create(
    store: &Store,
    cipher: &Cipher,
    actor: &Actor,
    org: &OrgId,
    draft: EndpointDraft,
    now: Millis,
) -> Result<(Endpoint, Secret), Error> {
    if store.webhook_count(org).await? >= MAX_ENDPOINTS {
        return Err(Error::Precondition("an organisation has at most 50 webhook endpoints"));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let secret = new_secret();
    let sealed = seal(cipher, org, &id, &secret)?;
    let endpoint = Endpoint {
        id: id.clone(),
        org: org.clone(),
        url: draft.url,
        description: draft.description,
        event_types: draft.event_types,
        enabled: draft.enabled,
        disabled_reason: None,
        failing_since: None,
        created_at: now,
        updated_at: now,
    };
    let entry = audit(org, actor, now, "webhook.created", &id, json!({ "url": endpoint.url }));
    store.insert_webhook(&endpoint, &sealed, &entry).await?;
    Ok((endpoint, secret))
}

pub async fn get(store: &Store, org: &OrgId, id: &str) -> Result<Endpoint, Error> {
    let id = uuid::Uuid::parse_str(id.trim()).map_err(|_| Error::NotFound(Resource::Webhook))?.to_string();
    store.webhook(org, &id).await?.ok_or(Error::NotFound(Resource::Webhook))
}

pub async fn list(store: &Store, org: &OrgId) -> Result<Vec<Endpoint>, Error> {
    Ok(store.webhooks(org).await?)
}

/// Replaces the writable fields; with `rotate_secret`, makes a new secret (in the
/// answer only) and keeps the old one valid for the overlap. Enabling a
/// disabled endpoint clears its failure record.
pub async fn update(
    store: &Store,
    cipher: &Cipher,
    actor: &Actor,
    org: &OrgId,
    id: &str,
    draft: EndpointDraft,
    now: Millis,
) -> Result<(Endpoint, Option<Secret>), Error> {
    let old = get(store, org, id).await?;
    let rotate = draft.rotate_secret;
    let rotation = if rotate {
        let secret = new_secret();
        let sealed = seal(cipher, org, &old.id, &secret)?;
        Some((secret, sealed, Millis(now.0 + ROTATION_OVERLAP_MS)))
    } else {
        None
    };
    let endpoint = Endpoint {
        url: draft.url,
        description: draft.description,
        event_types: draft.event_types,
        enabled: draft.enabled,
        disabled_reason: if draft.enabled { None } else { old.disabled_reason.clone() },
        failing_since: if draft.enabled && !old.enabled { None } else { old.failing_since },
        updated_at: now,
        ..old
    };
    let entry = audit(
        org,
        actor,
        now,
        "webhook.updated",
        &endpoint.id,
        json!({ "url": endpoint.url, "secretRotated": rotate }),
    );
    let sealed = rotation.as_ref().map(|(_, s, until)| (s.clone(), *until));
    if !store.update_webhook(&endpoint, sealed, &entry).await? {
        return Err(Error::NotFound(Resource::Webhook));
    }
    Ok((endpoint, rotation.map(|(secret, _, _)| secret)))
}

pub async fn delete(store: &Store, actor: &Actor, org: &OrgId, id: &str, now: Millis) -> Result<(), Error> {
    let endpoint = get(store, org, id).await?;
    let entry = audit(org, actor, now, "webhook.deleted", &endpoint.id, json!({}));
    if store.delete_webhook(org, &endpoint.id, &entry).await? {
        Ok(())
    } else {
        Err(Error::NotFound(Resource::Webhook))
    }
}

/// One message of an endpoint's delivery log.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub event_type: String,
    /// pending, delivered or failed.
    pub status: String,
    pub attempts: i64,
    pub created_at: Millis,
    pub finished_at: Option<Millis>,
    pub last_status_code: Option<i64>,
    pub last_latency_ms: Option<i64>,
    pub last_error: Option<String>,
}

pub async fn messages(store: &Store, org: &OrgId, id: &str, limit: u32) -> Result<Vec<Message>, Error> {
    let endpoint = get(store, org, id).await?;
    if !(1..=500).contains(&limit) {
        return Err(Error::field("limit", "must be between 1 and 500"));
    }
    Ok(store.webhook_messages(org, &endpoint.id, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_standard_webhooks_secrets() {
        let s = new_secret();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(secret_bytes(&s).unwrap().len(), 32);
        assert!(secret_bytes(&Secret::new("nope")).is_none());
    }

    #[test]
    fn drafts_are_checked() {
        let ok =
            parse_draft(Some("https://example.com/hook".into()), None, Some(vec!["notification.sent".into()]), None);
        assert!(ok.unwrap().enabled);
        for (url, types) in [
            (Some("ftp://example.com"), Some(vec!["notification.sent".to_owned()])),
            (Some("https://u:p@example.com"), Some(vec!["notification.sent".to_owned()])),
            (None, Some(vec!["notification.sent".to_owned()])),
            (Some("https://example.com"), Some(vec![])),
            (Some("https://example.com"), Some(vec!["nope".to_owned()])),
            (Some("https://example.com"), None),
        ] {
            assert!(parse_draft(url.map(str::to_owned), None, types.clone(), None).is_err(), "{url:?} {types:?}");
        }
    }
}

/// A message a worker holds a lease on.
#[derive(Debug, Clone)]
pub struct ClaimedMessage {
    pub seq: i64,
    /// The `webhook-id`.
    pub id: String,
    pub org: OrgId,
    pub endpoint_id: String,
    pub event_type: String,
    pub payload: String,
    /// This attempt's number (1 for the first).
    pub attempt: i64,
    pub url: String,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone)]
pub struct MessageResult {
    pub seq: i64,
    pub endpoint_id: String,
    pub attempt: i64,
    /// The response's status, when one came back.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    pub error: Option<String>,
    /// `None`: delivered; else due again then.
    pub retry_at: Option<Millis>,
}

impl MessageResult {
    pub fn delivered(&self) -> bool {
        self.retry_at.is_none()
    }
}
