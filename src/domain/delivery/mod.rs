//! What delivery decides (contract §8): events become notifications, which
//! wait in a durable outbox until a worker sends them through the org's
//! effective SMTP server (or writes them to the outbox directory). This
//! module holds the rules and the types; the machinery that sends, loops
//! and batches commits is [`crate::delivery`].
//!
//! - [`events`]: `POST /v1/events`, idempotency, recipients and policy.
//! - [`documents`]: document events for sender identities, attachments.
//! - [`templates`]: subjects and bodies from the files in `templates/`
//!   (pure rendering of files compiled into the binary, so it stays here).
//! - [`overview`]: the delivery log and dashboard numbers of the console.
//! - Here: the notification's life ([`Status`]), the retry policy's
//!   arithmetic ([`RetryPolicy`]), and the log's reads and retry.

pub mod documents;
pub mod events;
pub mod overview;
pub mod templates;

use std::time::Duration;

use crate::clock::Millis;
use crate::domain::audit::{AuditEntry, Scope};
use crate::domain::{Actor, OrgId};
use crate::error::{Error, Resource};
use crate::store::Store;

/// How long an idempotency key is remembered: 24 hours.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Where a notification is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// In the outbox, never tried.
    Queued,
    /// Leased by a worker that is sending it now.
    Sending,
    Sent,
    /// Failed transiently; in the outbox again, due after a back-off.
    Retrying,
    /// Failed permanently or ran out of attempts; `retry` requeues it.
    Dead,
    /// Accepted, then bounced hard (a DSN or SES bounce, issue 18).
    Bounced,
    /// Accepted, then reported as spam by its recipient (issue 18).
    Complained,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Queued,
        Status::Sending,
        Status::Sent,
        Status::Retrying,
        Status::Dead,
        Status::Bounced,
        Status::Complained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Retrying => "retrying",
            Status::Dead => "dead",
            Status::Bounced => "bounced",
            Status::Complained => "complained",
        }
    }

    pub fn parse(raw: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// A notification as written when its event is accepted: rendered once, so
/// every attempt sends the same mail.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub id: String,
    pub to_addr: String,
    pub to_name: Option<String>,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    pub locale: String,
    /// Files to attach, as stored: JSON `[{fileName, contentType, content}]`
    /// with base64 content (document.completed with AttachSignedDocument).
    pub attachments: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub org: OrgId,
    pub kind: String,
    /// Why no notification was made, when none was.
    pub suppressed: Option<String>,
    pub notifications: Vec<NewNotification>,
    pub created_at: Millis,
    /// When its mail becomes due, if not at once: mail over a quota in hold
    /// mode waits for a window with room (issue 19).
    pub not_before: Option<Millis>,
}

impl NewEvent {
    /// When its outbox rows become due.
    pub fn due_at(&self) -> Millis {
        self.not_before.map_or(self.created_at, |at| Millis(at.0.max(self.created_at.0)))
    }
}

/// A notification in the delivery log.
#[derive(Debug, Clone)]
pub struct Notification {
    pub id: String,
    pub event_id: String,
    pub kind: String,
    pub to: String,
    pub subject: String,
    pub locale: String,
    pub status: Status,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub smtp_response: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub sent_at: Option<Millis>,
    /// When retention dropped the body and attachments (issue 20).
    pub body_pruned_at: Option<Millis>,
}

/// One send attempt and how it ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub attempt: i64,
    pub at: Millis,
    /// The status it left the notification in: sent, retrying or dead.
    pub outcome: String,
    pub error: Option<String>,
    pub smtp_response: Option<String>,
    /// The provider that made the attempt (none: the file transport, or
    /// an attempt recorded before providers existed).
    pub provider: Option<Via>,
}

/// The provider an attempt went through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub id: String,
    pub name: String,
}

/// An outbox row a worker holds a lease on, with what it needs to send.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub org: OrgId,
    /// The notification's type (its event's): the approval flow's mails get
    /// their signed link when sent.
    pub kind: String,
    pub to_addr: String,
    pub to_name: Option<String>,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    /// As stored in [`NewNotification::attachments`].
    pub attachments: Option<String>,
    /// This attempt's number (1 for the first).
    pub attempt: i64,
    pub queued_at: Millis,
}

/// How one send ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent { response: String },
    Retry { error: String, response: Option<String>, at: Millis },
    Dead { error: String, response: Option<String> },
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key is ours: write the event.
    Claimed,
    /// The same request already succeeded: its response, to replay.
    Replay(String),
    /// The key was used with another body.
    OtherBody,
    /// The first request with this key is still being processed.
    InFlight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    Done,
    NotFound,
    NotDead,
    /// Dead, but retention dropped its body: nothing left to send.
    BodyPruned,
}

/// Retry policy: exponential back-off with jitter, bounded by a number of
/// attempts and an age.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: i64,
    pub max_age: Duration,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            max_age: Duration::from_secs(24 * 3600),
            base: Duration::from_secs(30),
            cap: Duration::from_secs(3600),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`: `base · 2^(attempt-1)`, capped,
    /// then scaled by a random factor in [0.5, 1.0) ("equal jitter"), so
    /// mails that failed together do not come back together.
    pub fn backoff(&self, attempt: i64, jitter: f64) -> Duration {
        let exp = u32::try_from((attempt - 1).clamp(0, 30)).unwrap_or(30);
        let raw = self.base.saturating_mul(2u32.saturating_pow(exp)).min(self.cap);
        raw.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// What a transient failure of `claimed` at `now` turns into.
    pub fn after_transient(&self, claimed: &Claimed, now: Millis, error: String, response: Option<String>) -> Outcome {
        let age_ms = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        if claimed.attempt >= self.max_attempts {
            return Outcome::Dead { error: format!("gave up after {} attempts: {error}", claimed.attempt), response };
        }
        let delay = self.backoff(claimed.attempt, rand::random::<f64>());
        let at = Millis(now.0 + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2));
        if at.0 - claimed.queued_at.0 > age_ms {
            return Outcome::Dead {
                error: format!("gave up after {} attempts (too old): {error}", claimed.attempt),
                response,
            };
        }
        Outcome::Retry { error, response, at }
    }
}

/// One notification of the org's delivery log, with its attempts.
pub async fn get(store: &Store, org: &OrgId, id: &str) -> Result<(Notification, Vec<Attempt>), Error> {
    let n = store.notification(org, id).await?.ok_or(Error::NotFound(Resource::Notification))?;
    let attempts = store.attempts(&n.id).await?;
    Ok((n, attempts))
}

/// A page of the delivery log, newest first.
pub async fn page(
    store: &Store,
    org: &OrgId,
    status: Option<Status>,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Notification>, Error> {
    // Every id sorts below "~", so no cursor means "from the newest".
    Ok(store.notifications(org, status, before.unwrap_or("~"), limit).await?)
}

/// Requeues a dead notification (audited: an operator decided to send it again).
pub async fn retry(store: &Store, actor: &Actor, org: &OrgId, id: &str, now: Millis) -> Result<(), Error> {
    let audit = AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action: "notification.retried",
        resource_type: "notification",
        resource_id: id.to_owned(),
        detail: serde_json::json!({}),
    };
    match store.requeue(org, id, now, &audit).await? {
        Requeue::Done => {
            metrics::counter!("herald_notifications_total", "status" => "queued").increment(1);
            Ok(())
        }
        Requeue::NotFound => Err(Error::NotFound(Resource::Notification)),
        Requeue::NotDead => Err(Error::Precondition("only a dead notification can be retried")),
        Requeue::BodyPruned => {
            Err(Error::Precondition("this notification's body was removed by retention; it cannot be retried"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 1.0), Duration::from_secs(30));
        assert_eq!(p.backoff(1, 0.0), Duration::from_secs(15));
        assert_eq!(p.backoff(3, 1.0), Duration::from_secs(120));
        assert_eq!(p.backoff(20, 1.0), Duration::from_secs(3600));
        assert_eq!(p.backoff(20, 0.0), Duration::from_secs(1800));
    }

    fn claimed(attempt: i64, queued_at: i64) -> Claimed {
        Claimed {
            id: "n".into(),
            org: OrgId::generate(),
            kind: "message.send".into(),
            to_addr: "a@example.com".into(),
            to_name: None,
            subject: "s".into(),
            body_text: "t".into(),
            body_html: None,
            attachments: None,
            attempt,
            queued_at: Millis(queued_at),
        }
    }

    #[test]
    fn transient_failures_retry_until_attempts_or_age_run_out() {
        let p = RetryPolicy::default();
        let now = Millis(1_000_000_000);
        match p.after_transient(&claimed(1, now.0), now, "451".into(), None) {
            Outcome::Retry { at, .. } => assert!(at.0 >= now.0 + 15_000 && at.0 <= now.0 + 30_000, "{at:?}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(p.after_transient(&claimed(10, now.0), now, "451".into(), None), Outcome::Dead { .. }));
        let old = now.0 - 24 * 3600 * 1000;
        assert!(matches!(p.after_transient(&claimed(2, old), now, "451".into(), None), Outcome::Dead { .. }));
    }
}
