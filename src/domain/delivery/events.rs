//! `POST /v1/events` (contract §8): validate, decide who is notified,
//! render, and commit the event with its notifications and outbox rows
//! before answering 202.
//!
//! The commit itself goes through the process's [`Committer`] (in
//! [`crate::delivery`]), as other writes go through the [`Store`]: this
//! module decides what is written, not how writes are batched.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::documents::{self, DocumentEvent};
use super::templates;
use super::{IdempotencyClaim, NewEvent, NewNotification};
use crate::clock::{Clock, Millis};
use crate::delivery::committer::Committer;
use crate::domain::smtp::{parse_address, parse_text};
use crate::domain::{OrgId, fairness, policy};
use crate::error::{Error, FieldErrors, Resource};
use crate::store::Store;

/// The event types of this release (contract §8).
pub const TYPES: &[&str] = &[
    "message.send",
    "user.password_changed",
    "document.viewed",
    "document.sent",
    "document.delivery_failed",
    "document.declined",
    "document.revoked",
    "document.reassigned",
    "document.completed",
    "document.signed",
    "document.expired",
    "document.authentication_failed",
    "document.reminder",
];

/// How long a claimed idempotency key stays "in flight" if its process dies
/// before writing the event; after that a retry may take it over.
const CLAIM_MS: i64 = 60_000;
const MAX_SUBJECT: usize = 998;
const MAX_KEY: usize = 255;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventBody {
    /// `message.send`, `user.password_changed` or `document.<event>`
    /// (viewed, sent, delivery_failed, declined, revoked, reassigned,
    /// completed, signed, expired, authentication_failed, reminder).
    #[serde(rename = "type")]
    pub kind: String,
    /// Who `user.password_changed` is for: a user id or an email address.
    pub recipient: Option<Recipient>,
    /// The sender identity (email) of a document event.
    pub sender_identity: Option<String>,
    /// `message.send`: `{to, subject, text, html?}`. Document events:
    /// `{documentId?, documentTitle?, signerName?, signerEmail?, reason?,
    /// documentUrl?, attachments?}`; `attachments` (document.completed only)
    /// is `[{fileName, contentType?, content (base64)}]`.
    #[schema(value_type = Object)]
    pub data: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Recipient {
    pub user_id: Option<String>,
    pub email: Option<String>,
}

/// The answer to an accepted event: the 202 body, or the first response to
/// the same idempotent request, replayed.
#[derive(Debug)]
pub struct Accepted {
    pub body: String,
    pub replayed: bool,
}

/// The body as one canonical string (object keys sorted, no whitespace),
/// so that "the same body" does not depend on formatting.
pub fn canonical(value: &Value) -> String {
    // serde_json's map is ordered by key unless `preserve_order` is on; a
    // unit test below fails if that ever changes.
    value.to_string()
}

fn digest(canonical: &str) -> String {
    crate::domain::tokens::sha256_hex(canonical.as_bytes())
}

/// Checks an `Idempotency-Key` header value: 1–255 visible ASCII characters.
pub fn parse_key(raw: &str) -> Result<String, Error> {
    if raw.is_empty() || raw.len() > MAX_KEY || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::field("Idempotency-Key", format!("must be 1–{MAX_KEY} visible ASCII characters")));
    }
    Ok(raw.to_owned())
}

fn text_field(data: &Map<String, Value>, name: &str, errors: &mut FieldErrors) -> Option<String> {
    match data.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.add(format!("data.{name}"), "must be a string");
            None
        }
    }
}

/// What an event asks for, checked.
enum Plan {
    Message { to: String, subject: String, text: String, html: Option<String> },
    PasswordChanged { user_id: Option<String>, email: Option<String> },
    Document(DocumentEvent),
}

fn plan(body: &EventBody) -> Result<Plan, Error> {
    let mut errors = FieldErrors::new();
    let empty = Map::new();
    let data = body.data.as_ref().unwrap_or(&empty);
    if let Some(document) = body.kind.strip_prefix("document.")
        && TYPES.contains(&body.kind.as_str())
    {
        if body.recipient.is_some() {
            errors.add("recipient", "is not used by document events (they go to the senderIdentity)");
        }
        let event = documents::parse(document, body.sender_identity.as_deref(), data, &mut errors);
        errors.finish()?;
        // `parse` returns `None` only after recording why.
        return event.map(Plan::Document).ok_or_else(|| Error::field("senderIdentity", "is required"));
    }
    if body.sender_identity.is_some() {
        errors.add("senderIdentity", "is only used by document events");
    }
    let plan = match body.kind.as_str() {
        "message.send" => {
            if body.recipient.is_some() {
                errors.add("recipient", "is not used by message.send (the address goes in data.to)");
            }
            let to = text_field(data, "to", &mut errors);
            let subject = text_field(data, "subject", &mut errors);
            let text = text_field(data, "text", &mut errors);
            let html = text_field(data, "html", &mut errors);
            for key in data.keys() {
                if !["to", "subject", "text", "html"].contains(&key.as_str()) {
                    errors.add(format!("data.{key}"), "is not a known field (expected to, subject, text, html)");
                }
            }
            let to = match to {
                Some(to) => errors.take(parse_address("data.to", "data.to", &to)),
                None => {
                    errors.add("data.to", "is required");
                    None
                }
            };
            let subject = match subject {
                Some(s) => errors.take(parse_text("data.subject", "data.subject", &s, MAX_SUBJECT)),
                None => {
                    errors.add("data.subject", "is required");
                    None
                }
            };
            if text.is_none() {
                errors.add("data.text", "is required");
            }
            errors.finish()?;
            Plan::Message {
                to: to.unwrap_or_default(),
                subject: subject.unwrap_or_default(),
                text: text.unwrap_or_default(),
                html,
            }
        }
        "user.password_changed" => {
            let (user_id, email) = match &body.recipient {
                Some(Recipient { user_id: Some(id), email: None }) => (Some(id.clone()), None),
                Some(Recipient { user_id: None, email: Some(e) }) => {
                    (None, errors.take(parse_address("recipient.email", "recipient.email", e)))
                }
                _ => {
                    errors.add("recipient", "needs exactly one of userId and email");
                    (None, None)
                }
            };
            errors.finish()?;
            Plan::PasswordChanged { user_id, email }
        }
        _ => {
            return Err(Error::field("type", format!("must be one of {}", TYPES.join(", "))));
        }
    };
    Ok(plan)
}

fn notification(
    to_addr: String,
    to_name: Option<String>,
    subject: String,
    text: String,
    html: Option<String>,
    locale: String,
) -> NewNotification {
    NewNotification {
        id: uuid::Uuid::now_v7().to_string(),
        to_addr,
        to_name,
        subject,
        body_text: text,
        body_html: html,
        locale,
        attachments: None,
    }
}

/// Builds the event: who is notified (or why nobody is), rendered.
async fn build(store: &Store, org: &OrgId, kind: &str, plan: Plan, now: Millis) -> Result<NewEvent, Error> {
    let mut event = NewEvent {
        id: uuid::Uuid::now_v7().to_string(),
        org: org.clone(),
        kind: kind.to_owned(),
        suppressed: None,
        notifications: Vec::new(),
        created_at: now,
        not_before: None,
    };
    match plan {
        Plan::Message { to, subject, text, html } => {
            event.notifications.push(notification(to, None, subject, text, html, "Default".into()));
        }
        Plan::PasswordChanged { user_id, email } => {
            let user_id = match (user_id, &email) {
                (Some(id), _) => Some(id),
                (None, Some(email)) => store.user_id_by_email(org, email).await?,
                (None, None) => None,
            };
            let user = match user_id {
                Some(id) => Some(store.user(org, &id).await?.ok_or(Error::NotFound(Resource::User))?),
                None => None,
            };
            let (to, name, locale) = match (&user, email) {
                (Some(u), _) => (u.email.clone(), Some(u.name.clone()), u.locale.clone()),
                (None, Some(e)) => (e, None, "Default".to_owned()),
                (None, None) => return Err(Error::field("recipient", "needs exactly one of userId and email")),
            };
            let policy = policy::effective(store, org).await?;
            if !policy.password_change {
                event.suppressed = Some("the organisation's notification policy has passwordChange off".into());
                return Ok(event);
            }
            let org_name = store.org_name(org).await?.unwrap_or_default();
            let greeting = name.clone().unwrap_or_else(|| to.split('@').next().unwrap_or_default().to_owned());
            let ctx = minijinja::context! { name => greeting, email => &to, org => org_name, at => now.display_utc() };
            let rendered = templates::render("user.password_changed", &locale, ctx)?;
            event.notifications.push(notification(
                to,
                name,
                rendered.subject,
                rendered.text,
                Some(rendered.html),
                locale,
            ));
        }
        Plan::Document(document) => match documents::route(store, org, document, now).await? {
            documents::Routed::Mail(n) => event.notifications.push(n),
            documents::Routed::Suppressed(reason) => event.suppressed = Some(reason),
        },
    }
    Ok(event)
}

fn response_body(event: &NewEvent) -> String {
    let notifications: Vec<Value> =
        event.notifications.iter().map(|n| json!({ "id": n.id, "to": n.to_addr, "status": "queued" })).collect();
    let mut body = json!({ "id": event.id, "type": event.kind, "notifications": notifications });
    if let Some(reason) = &event.suppressed {
        body["suppressed"] = json!(reason);
    }
    if let Some(at) = event.not_before {
        // Over the org's quota in hold mode: queued, due then (issue 19).
        body["heldUntil"] = json!(at.rfc3339());
    }
    body.to_string()
}

/// Accepts one event for `org` (contract §8).
pub async fn accept(
    store: &Store,
    committer: &Committer,
    clock: &Clock,
    org: &OrgId,
    key: Option<String>,
    body: Value,
) -> Result<Accepted, Error> {
    let canonical = canonical(&body);
    let parsed: EventBody = crate::api::parse_json(canonical.as_bytes())?;
    let now = clock.now();
    // Field errors first: a request that can never succeed claims no key.
    let plan = plan(&parsed)?;
    // Then the key, before anything that reads current state: a replay
    // answers what the first request got, whatever changed since.
    if let Some(key) = &key {
        let claim =
            committer.claim_idempotency_key(org, key, &digest(&canonical), now, Millis(now.0 + CLAIM_MS)).await?;
        match claim {
            IdempotencyClaim::Claimed => {}
            IdempotencyClaim::Replay(body) => return Ok(Accepted { body, replayed: true }),
            IdempotencyClaim::OtherBody => {
                return Err(Error::Unprocessable("this Idempotency-Key was used with a different request body"));
            }
            IdempotencyClaim::InFlight => {
                return Err(Error::InProgress("a request with this Idempotency-Key is still being processed"));
            }
        }
    }
    let built = match build(store, org, &parsed.kind, plan, now).await {
        Ok(mut event) => crate::domain::suppressions::apply(store, org, &mut event).await.map(|()| event),
        Err(e) => Err(e),
    };
    let mut event = match built {
        Ok(event) => event,
        Err(e) => {
            release(store, org, key.as_deref()).await;
            return Err(e);
        }
    };
    // The org's quota (issue 19): counted, held for a later window, or 429.
    let n = i64::try_from(event.notifications.len()).unwrap_or(i64::MAX);
    let reserved = if n > 0 {
        match fairness::reserve(store, org, n, now).await {
            Ok(r) => Some(r),
            Err(e) => {
                release(store, org, key.as_deref()).await;
                return Err(e);
            }
        }
    } else {
        None
    };
    event.not_before = reserved.and_then(|r| r.release_at);
    let response = response_body(&event);
    let idempotency = key.clone().map(|k| (k, response.clone()));
    if let Err(e) = committer.commit(event.clone(), idempotency).await {
        release(store, org, key.as_deref()).await;
        if let Some(r) = &reserved {
            fairness::unreserve(store, org, r).await;
        }
        return Err(e.into());
    }
    metrics::counter!("herald_events_total", "type" => event.kind.clone()).increment(1);
    if event.suppressed.is_some() {
        metrics::counter!("herald_notifications_total", "status" => "suppressed").increment(1);
    } else {
        metrics::counter!("herald_notifications_total", "status" => "queued")
            .increment(event.notifications.len() as u64);
    }
    Ok(Accepted { body: response, replayed: false })
}

/// Gives a claimed key back after its request failed.
async fn release(store: &Store, org: &OrgId, key: Option<&str>) {
    if let Some(key) = key
        && let Err(e) = store.release_idempotency_key(org, key).await
    {
        tracing::warn!(error = %e, "could not release an idempotency key; it frees itself in a minute");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_form_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(r#"{"type":"message.send","data":{"to":"a@b.c","subject":"s"}}"#).unwrap();
        let b: Value =
            serde_json::from_str("{ \"data\" : { \"subject\":\"s\", \"to\":\"a@b.c\" },\n \"type\":\"message.send\" }")
                .unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(digest(&canonical(&a)), digest(&canonical(&json!({"type": "message.send"}))));
    }

    #[test]
    fn idempotency_keys() {
        assert!(parse_key("order-42/retry").is_ok());
        for bad in ["", " x", "a\r\nb", "ä", &"k".repeat(256)] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }
}
