//! Applying bounces and complaints (issue 18): one function for every
//! intake (the inbound SMTP listener, `POST /v1/inbound/bounces` with a raw
//! report or SES JSON), after `domain::bounces` parsed the report.
//!
//! - A hard bounce or a complaint marks the notification `bounced` /
//!   `complained`, lists **the notification's recipient** on its org's
//!   suppression list (reason `hard_bounce` / `complaint`, with the
//!   notification id), writes the webhook event `notification.bounced` /
//!   `notification.complained` and an audit row, all in one transaction.
//!   The notification's own recipient, not the address the report names:
//!   that address is text anyone who received a mail can write, and
//!   listing it would let one recipient suppress another; the reported
//!   address is kept in the log and the suppression's detail.
//! - A soft bounce is recorded only: a row in the notification's feedback
//!   log (`GET /v1/notifications/{id}`, `feedback`) and an audit row.
//! - The same report twice changes nothing more (a fingerprint of what it
//!   says is the row's key).
//! - Which notification: over SMTP, only those whose signed VERP address
//!   was a recipient of the message (whatever org owns them: the signature
//!   proves Herald made the address for that notification); over HTTP, a
//!   signed VERP address or a Herald Message-ID, looked up **only within
//!   the calling org**, so another org's notification is a 404 like an
//!   unknown one.

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::clock::Millis;
use crate::domain::audit::{AuditEntry, Scope};
use crate::domain::bounces::{Feedback, Kind, NotificationRef};
use crate::domain::suppressions::{Reason, Suppression};
use crate::domain::webhooks::WebhookEvent;
use crate::domain::{Actor, OrgId};
use crate::error::{Error, Resource};
use crate::store::{FeedbackRow, FeedbackWrite, Store};

/// Where a report came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The inbound SMTP listener.
    Smtp,
    /// `POST /v1/inbound/bounces`, a raw message.
    Http,
    /// `POST /v1/inbound/bounces`, Amazon SES JSON.
    Ses,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Smtp => "smtp",
            Source::Http => "http",
            Source::Ses => "ses",
        }
    }
}

/// Who may be reported on.
#[derive(Debug, Clone)]
pub enum Reporter<'a> {
    /// The SMTP listener: only these notifications (the validly signed VERP
    /// recipients of the message), in whatever org.
    Verified(&'a [String]),
    /// An org's API token: only that org's notifications.
    Org(&'a OrgId),
}

/// What applying one report did to one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub notification_id: String,
    /// hard_bounce, soft_bounce or complaint.
    pub kind: &'static str,
    /// The notification's status afterwards.
    pub status: String,
    /// False when the same report had been applied already.
    pub changed: bool,
}

/// The notification a report names, or why it cannot be used.
fn target_id(reporter: &Reporter<'_>, f: &Feedback) -> Result<String, Error> {
    match reporter {
        Reporter::Verified(ids) => {
            // A reference inside the message counts only when it is one of
            // the verified recipients; a message for one recipient is about it.
            match f.notification.as_ref().map(NotificationRef::id) {
                Some(id) if ids.iter().any(|v| v == id) => Ok(id.to_owned()),
                _ if ids.len() == 1 => Ok(ids[0].clone()),
                _ => Err(Error::NotFound(Resource::Notification)),
            }
        }
        Reporter::Org(_) => match &f.notification {
            Some(r) => Ok(r.id().to_owned()),
            None => Err(Error::field(
                "body",
                "the report names no Herald notification (no signed bounce address and no Herald Message-ID)",
            )),
        },
    }
}

fn fingerprint(f: &Feedback) -> String {
    let mut h = Sha256::new();
    for part in [Some(f.kind.as_str()), f.recipient.as_deref(), f.status.as_deref(), f.diagnostic.as_deref()] {
        h.update(part.unwrap_or("").as_bytes());
        h.update([0u8]);
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Applies every recipient's feedback of one report. Nothing is applied
/// unless every notification it names is found (all or nothing per call is
/// not promised: each feedback is its own transaction, and applying again
/// is harmless).
pub async fn apply(
    store: &Store,
    reporter: Reporter<'_>,
    actor: &Actor,
    source: Source,
    feedback: &[Feedback],
    now: Millis,
) -> Result<Vec<Applied>, Error> {
    let mut targets = Vec::with_capacity(feedback.len());
    for f in feedback {
        let id = target_id(&reporter, f)?;
        let org = match &reporter {
            Reporter::Org(org) => Some(*org),
            Reporter::Verified(_) => None,
        };
        let Some(target) = store.feedback_target(&id, org).await? else {
            return Err(Error::NotFound(Resource::Notification));
        };
        targets.push((id, target));
    }
    let mut out = Vec::with_capacity(feedback.len());
    for (f, (id, target)) in feedback.iter().zip(targets) {
        let (new_status, reason, event) = match f.kind {
            Kind::HardBounce => (Some("bounced"), Some(Reason::HardBounce), Some("notification.bounced")),
            Kind::Complaint => (Some("complained"), Some(Reason::Complaint), Some("notification.complained")),
            Kind::SoftBounce => (None, None, None),
        };
        let detail = format!(
            "{} reported by {}{}{}",
            f.kind.as_str(),
            source.as_str(),
            f.recipient.as_deref().map(|r| format!(" for {r}")).unwrap_or_default(),
            f.status.as_deref().map(|s| format!(" ({s})")).unwrap_or_default(),
        );
        let suppression = reason.map(|reason| Suppression {
            email: target.to_addr.clone(),
            reason,
            detail: Some(detail.chars().take(1000).collect()),
            notification_id: Some(id.clone()),
            created_at: now,
        });
        let hook = event.map(|kind| {
            WebhookEvent::new(
                &target.org,
                kind,
                now,
                json!({
                    "notificationId": id,
                    "type": target.kind,
                    "to": target.to_addr,
                    "status": new_status,
                    "reportedRecipient": f.recipient,
                    "reportStatus": f.status,
                    "diagnostic": f.diagnostic,
                    "source": source.as_str(),
                }),
            )
        });
        let audit = AuditEntry {
            scope: Scope::Org(target.org.clone()),
            actor: actor.clone(),
            at: now,
            action: match f.kind {
                Kind::HardBounce => "notification.bounced",
                Kind::Complaint => "notification.complained",
                Kind::SoftBounce => "notification.soft_bounced",
            },
            resource_type: "notification",
            resource_id: id.clone(),
            detail: json!({ "source": source.as_str(), "status": f.status, "recipient": f.recipient }),
        };
        let write = FeedbackWrite {
            org: target.org.clone(),
            notification_id: id.clone(),
            fingerprint: fingerprint(f),
            kind: f.kind.as_str(),
            recipient: f.recipient.clone(),
            status: f.status.clone(),
            diagnostic: f.diagnostic.clone(),
            source: source.as_str(),
            at: now,
            new_status,
            suppression,
            hook,
            audit,
        };
        let changed = store.apply_feedback(&write).await?;
        let status = current_status(store, &target.org, &id).await?;
        out.push(Applied { notification_id: id, kind: f.kind.as_str(), status, changed });
    }
    Ok(out)
}

/// The reports applied to one of `org`'s notifications, oldest first (the
/// delivery log's `feedback`).
pub async fn log(store: &Store, org: &OrgId, id: &str) -> Result<Vec<FeedbackRow>, Error> {
    Ok(store.feedback_of(org, id).await?)
}

async fn current_status(store: &Store, org: &OrgId, id: &str) -> Result<String, Error> {
    Ok(store.feedback_target(id, Some(org)).await?.map(|t| t.status).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feedback(kind: Kind, status: &str) -> Feedback {
        Feedback {
            kind,
            recipient: Some("ada@example.com".into()),
            status: Some(status.into()),
            diagnostic: None,
            notification: None,
        }
    }

    #[test]
    fn the_same_report_has_the_same_fingerprint_and_another_does_not() {
        let a = feedback(Kind::HardBounce, "5.1.1");
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), fingerprint(&feedback(Kind::HardBounce, "5.1.2")));
        assert_ne!(fingerprint(&a), fingerprint(&feedback(Kind::SoftBounce, "5.1.1")));
        // Fields are separated: moving text between them is another report.
        let mut b = a.clone();
        b.recipient = Some("ada@example.com5.1.1".into());
        b.status = None;
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    #[test]
    fn a_verified_message_is_about_its_recipients_only() {
        let ids = vec!["a".to_owned(), "b".to_owned()];
        let mut f = feedback(Kind::HardBounce, "5.1.1");
        f.notification = Some(NotificationRef::MessageId("b".into()));
        assert_eq!(target_id(&Reporter::Verified(&ids), &f).unwrap(), "b");
        f.notification = Some(NotificationRef::MessageId("c".into()));
        assert!(target_id(&Reporter::Verified(&ids), &f).is_err());
        assert_eq!(target_id(&Reporter::Verified(&ids[..1]), &f).unwrap(), "a");
        let org = OrgId::from_db("o".into());
        f.notification = None;
        assert!(target_id(&Reporter::Org(&org), &f).is_err());
    }
}
