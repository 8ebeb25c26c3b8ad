//! The mailed links of the approval flow (contract §7) and the mails that
//! carry them: a *review* link (Approve or Deny) while Pending, a *revoke*
//! link once Approved. A link is used once, expires after seven days, and is
//! replaced by the next one mailed for the same identity. Its token is the
//! link's id signed with a key derived from `HERALD_SECRET_KEY`
//! ([`Cipher::sign_link`]). The link's address is rendered when the mail is
//! queued, with the `HERALD_PUBLIC_URL` of the node that serves the page;
//! its token is signed only by the worker that sends the mail, so a body
//! stored in the outbox holds [`TOKEN_MARKER`], never a usable link.

use std::borrow::Cow;

use super::values::{SenderIdentity, Status};
use crate::clock::Millis;
use crate::crypto::Cipher;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::delivery::templates;
use crate::domain::delivery::{NewEvent, NewNotification};
use crate::error::Error;

/// How long a mailed link works: seven days.
pub const LINK_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Stands for the link's token in a stored mail body until a worker signs
/// it. Tokens and the marker need no escaping in text or HTML.
pub const TOKEN_MARKER: &str = "{herald:token}";
/// The path of the approval page; the token follows it.
pub const LINK_PATH: &str = "/sender-identity/";
/// Separates these signatures from any other kind Herald may make.
pub(super) const LINK_PURPOSE: &str = "sender-identity";

/// The notification kinds of the approval flow (their templates carry the link).
pub const KIND_APPROVAL_REQUESTED: &str = "identity.approval_requested";
pub const KIND_APPROVED: &str = "identity.approved";

/// What a mailed link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkPurpose {
    /// Approve or deny a Pending identity.
    Review,
    /// Revoke an Approved identity.
    Revoke,
}

impl LinkPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkPurpose::Review => "review",
            LinkPurpose::Revoke => "revoke",
        }
    }

    pub fn parse(raw: &str) -> Option<LinkPurpose> {
        [LinkPurpose::Review, LinkPurpose::Revoke].into_iter().find(|p| p.as_str() == raw)
    }

    /// The status the identity must have for the link to be usable.
    pub fn status(self) -> Status {
        match self {
            LinkPurpose::Review => Status::Pending,
            LinkPurpose::Revoke => Status::Approved,
        }
    }
}

/// A mailed link, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Also the id of the notification that carries it.
    pub id: String,
    pub org: OrgId,
    pub identity_id: String,
    pub purpose: LinkPurpose,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
    /// approved, denied, revoked, renewed or replaced.
    pub outcome: Option<String>,
}

/// A link to mail, with the notification that carries it.
#[derive(Debug, Clone)]
pub struct Issue {
    pub link: Link,
    pub event: NewEvent,
}

/// A mail body with the token of its link (notification `id`) signed in.
/// Only the approval flow's own mails carry links: in any other mail the
/// marker is text like any other, so no client can have Herald sign an id.
pub fn sign_link<'a>(kind: &str, id: &str, body: &'a str, cipher: &Cipher) -> Cow<'a, str> {
    if (kind == KIND_APPROVAL_REQUESTED || kind == KIND_APPROVED) && body.contains(TOKEN_MARKER) {
        Cow::Owned(body.replace(TOKEN_MARKER, &cipher.sign_link(LINK_PURPOSE, id)))
    } else {
        Cow::Borrowed(body)
    }
}

/// Where a link stands, for the page that opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStage {
    /// Usable now.
    Open,
    /// Used, or replaced by a newer link (`Link::outcome` tells which).
    Used,
    /// The identity's status moved on: the request it was for is closed.
    Stale,
    /// Past its seven days, unused, and its request still open: the holder
    /// may ask for a fresh link.
    Expired,
}

/// The stage of `link` for an identity in `status`, at `now`.
pub fn stage(link: &Link, status: Status, now: Millis) -> LinkStage {
    if link.used_at.is_some() {
        LinkStage::Used
    } else if status != link.purpose.status() {
        LinkStage::Stale
    } else if link.expires_at <= now {
        LinkStage::Expired
    } else {
        LinkStage::Open
    }
}

/// A link with what its page shows.
#[derive(Debug, Clone)]
pub struct LinkView {
    pub link: Link,
    pub identity: SenderIdentity,
    pub org_name: String,
    pub stage: LinkStage,
}

/// What the holder of a link asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkAction {
    Approve,
    Deny,
    Revoke,
    /// Mail a fresh link in place of an expired one.
    Renew,
}

impl LinkAction {
    pub fn parse(raw: &str) -> Option<LinkAction> {
        match raw {
            "approve" => Some(LinkAction::Approve),
            "deny" => Some(LinkAction::Deny),
            "revoke" => Some(LinkAction::Revoke),
            "renew" => Some(LinkAction::Renew),
            _ => None,
        }
    }

    /// Whether this action fits a link of `purpose` at `stage`.
    pub fn fits(self, purpose: LinkPurpose, stage: LinkStage) -> bool {
        match self {
            LinkAction::Approve | LinkAction::Deny => purpose == LinkPurpose::Review && stage == LinkStage::Open,
            LinkAction::Revoke => purpose == LinkPurpose::Revoke && stage == LinkStage::Open,
            LinkAction::Renew => stage == LinkStage::Expired,
        }
    }

    /// The outcome recorded on the link.
    pub(super) fn outcome(self) -> &'static str {
        match self {
            LinkAction::Approve => "approved",
            LinkAction::Deny => "denied",
            LinkAction::Revoke => "revoked",
            LinkAction::Renew => "renewed",
        }
    }
}

/// Using up a link, as one transaction: the link (only if still unused,
/// and unexpired unless renewing), the identity (only if still in
/// `expected`), the audit row, and the follow-up mail.
#[derive(Debug)]
pub struct LinkChange<'a> {
    pub link: &'a Link,
    pub outcome: &'static str,
    /// Renewing uses an *expired* link and leaves the identity as it is.
    pub renew: bool,
    pub expected: Status,
    pub next: &'a SenderIdentity,
    pub issue: Option<&'a Issue>,
    pub audit: &'a AuditEntry,
    pub now: Millis,
}

/// What following a link did.
#[derive(Debug, Clone)]
pub enum LinkResult {
    /// Done; the view shows the identity as it is now.
    Done(LinkView),
    /// Not possible (anymore): the link as it stands.
    Refused(Option<LinkView>),
}

/// Where a mail is written from: the org's name and the base of its links
/// (`HERALD_PUBLIC_URL` of the node that serves the approval page).
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    pub org_name: &'a str,
    pub public_url: &'a str,
}

/// Builds the mail that carries a new link of `purpose` for `identity`.
pub(super) fn issue(
    org: &OrgId,
    from: Sender<'_>,
    identity: &SenderIdentity,
    purpose: LinkPurpose,
    now: Millis,
) -> Result<Issue, Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let expires_at = Millis(now.0 + LINK_TTL_MS);
    let kind = match purpose {
        LinkPurpose::Review => KIND_APPROVAL_REQUESTED,
        LinkPurpose::Revoke => KIND_APPROVED,
    };
    let ctx = minijinja::context! {
        org => from.org_name,
        name => &identity.name,
        email => &identity.email,
        link => format!("{}{LINK_PATH}{TOKEN_MARKER}", from.public_url),
        expires => expires_at.display_utc(),
    };
    let rendered = templates::render(kind, &identity.locale, ctx)?;
    let notification = NewNotification {
        id: id.clone(),
        to_addr: identity.email.clone(),
        to_name: Some(identity.name.clone()),
        subject: rendered.subject,
        body_text: rendered.text,
        body_html: Some(rendered.html),
        locale: identity.locale.clone(),
        attachments: None,
    };
    let event = NewEvent {
        id: uuid::Uuid::now_v7().to_string(),
        org: org.clone(),
        kind: kind.to_owned(),
        suppressed: None,
        notifications: vec![notification],
        created_at: now,
        not_before: None,
    };
    let link = Link {
        id,
        org: org.clone(),
        identity_id: identity.id.clone(),
        purpose,
        created_at: now,
        expires_at,
        used_at: None,
        outcome: None,
    };
    Ok(Issue { link, event })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(purpose: LinkPurpose, expires_at: i64, used: bool) -> Link {
        Link {
            id: "l".into(),
            org: OrgId::generate(),
            identity_id: "i".into(),
            purpose,
            created_at: Millis(0),
            expires_at: Millis(expires_at),
            used_at: used.then_some(Millis(1)),
            outcome: None,
        }
    }
    #[test]
    fn link_stages_and_the_actions_they_allow() {
        let now = Millis(100);
        let open = link(LinkPurpose::Review, 200, false);
        assert_eq!(stage(&open, Status::Pending, now), LinkStage::Open);
        assert_eq!(stage(&open, Status::Approved, now), LinkStage::Stale);
        assert_eq!(stage(&link(LinkPurpose::Review, 100, false), Status::Pending, now), LinkStage::Expired);
        assert_eq!(stage(&link(LinkPurpose::Review, 200, true), Status::Pending, now), LinkStage::Used);
        assert_eq!(stage(&link(LinkPurpose::Revoke, 200, false), Status::Approved, now), LinkStage::Open);
        assert!(LinkAction::Approve.fits(LinkPurpose::Review, LinkStage::Open));
        assert!(!LinkAction::Approve.fits(LinkPurpose::Revoke, LinkStage::Open));
        assert!(!LinkAction::Revoke.fits(LinkPurpose::Review, LinkStage::Open));
        assert!(!LinkAction::Deny.fits(LinkPurpose::Review, LinkStage::Expired));
        assert!(LinkAction::Renew.fits(LinkPurpose::Revoke, LinkStage::Expired));
        assert!(!LinkAction::Renew.fits(LinkPurpose::Review, LinkStage::Open));
    }
    #[test]
    fn only_the_approval_flow_mails_get_signed_links() {
        let cipher = Cipher::from_key(&[9; 32]).unwrap();
        let body = format!("Open https://h.example{LINK_PATH}{TOKEN_MARKER} now");
        let signed = sign_link(KIND_APPROVAL_REQUESTED, "n1", &body, &cipher);
        let token = signed.trim_start_matches("Open https://h.example/sender-identity/").trim_end_matches(" now");
        assert!(token.starts_with("n1."), "{signed}");
        assert_eq!(cipher.verify_link(LINK_PURPOSE, token).as_deref(), Some("n1"));
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "safe in text and HTML");
        assert_eq!(sign_link("message.send", "n1", &body, &cipher), body);
    }
}
