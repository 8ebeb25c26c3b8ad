//! Sender identities (BoldSign, contract §7): the people an org may send
//! documents on behalf of, once they have approved it by email, and the
//! notification settings that decide which document events reach them (§8).
//!
//! Decided here: every rule of §7 (lengths, locales, the twelve flags and
//! their defaults, the MetaData merge), which status changes are allowed,
//! and the mailed links of the approval flow. By concern:
//! - `values`: the identity, its flags, and the parsing of every field;
//! - `links`: the mailed links, their tokens and stages, and the mails
//!   that carry them;
//! - here: the operations (create, update, delete, ask again, follow a
//!   link), each one transaction with its audit row and its mail.
//!
//! Not decided here: the wire shapes (`api::boldsign`) and the HTML page
//! (`api::approval`).

mod links;
mod values;

pub use links::*;
pub use values::*;

use std::collections::BTreeMap;

use crate::clock::Millis;
use crate::crypto::Cipher;
use crate::domain::audit::{AuditEntry, Scope};
use crate::domain::{Actor, OrgId, contains_pattern};
use crate::error::{Error, Resource};
use crate::store::{IdentityWrite, LinkUse, Store};

/// Counts mails the approval flow queued, as `POST /v1/events` counts its own.
fn count_queued(kind: &'static str) {
    metrics::counter!("herald_events_total", "type" => kind).increment(1);
    metrics::counter!("herald_notifications_total", "status" => "queued").increment(1);
}

fn audit(
    org: &OrgId,
    actor: &Actor,
    now: Millis,
    action: &'static str,
    id: &str,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action,
        resource_type: "senderIdentity",
        resource_id: id.to_owned(),
        detail,
    }
}

fn outcome(write: IdentityWrite) -> Result<SenderIdentity, Error> {
    match write {
        IdentityWrite::Done(identity) => Ok(*identity),
        IdentityWrite::Missing => Err(Error::NotFound(Resource::SenderIdentity)),
        IdentityWrite::DuplicateEmail => Err(Error::Conflict(Resource::SenderIdentity)),
        IdentityWrite::Refused(e) => Err(e),
    }
}

/// Creates a Pending identity and mails its owner a review link, in one
/// transaction (contract §7).
pub async fn create(
    store: &Store,
    actor: &Actor,
    org: &OrgId,
    new: NewIdentity,
    now: Millis,
    public_url: &str,
) -> Result<SenderIdentity, Error> {
    let NewIdentity { name, email, brand_id, redirect_url, settings: patch, meta_data: meta_patch, locale } = new;
    let mut settings = NotificationSettings::default();
    settings.apply(&patch);
    let mut meta_data = BTreeMap::new();
    merge_meta(&mut meta_data, &meta_patch).map_err(|e| Error::Invalid(vec![e]))?;
    // Without a name, the address's local part stands in (the page and the
    // mails always name the identity).
    let name = name.unwrap_or_else(|| email.split('@').next().unwrap_or_default().chars().take(NAME_MAX).collect());
    let identity = SenderIdentity {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        email,
        status: Status::Pending,
        created_by: actor.as_str().to_owned(),
        approved_at: None,
        settings,
        brand_id,
        redirect_url,
        meta_data,
        locale: locale.unwrap_or_else(|| "Default".to_owned()),
        created_at: now,
        updated_at: now,
    };
    let org_name = store.org_name(org).await?.unwrap_or_default();
    let issue = issue(org, Sender { org_name: &org_name, public_url }, &identity, LinkPurpose::Review, now)?;
    let entry = audit(
        org,
        actor,
        now,
        "senderIdentity.created",
        &identity.id,
        serde_json::json!({ "email": identity.email, "name": identity.name }),
    );
    let created = outcome(store.insert_identity(org, &identity, &email_key(&identity.email), &issue, &entry).await?)?;
    count_queued(KIND_APPROVAL_REQUESTED);
    Ok(created)
}

pub async fn get_by_email(store: &Store, org: &OrgId, email: &str) -> Result<SenderIdentity, Error> {
    store.identity_by_email(org, &email_key(email)).await?.ok_or(Error::NotFound(Resource::SenderIdentity))
}

/// An identity by id; anything that is not a UUID names none.
pub async fn get_by_id(store: &Store, org: &OrgId, id: &str) -> Result<SenderIdentity, Error> {
    let id = uuid::Uuid::parse_str(id.trim()).map_err(|_| Error::NotFound(Resource::SenderIdentity))?;
    store.identity_by_id(org, &id.to_string()).await?.ok_or(Error::NotFound(Resource::SenderIdentity))
}

/// A page of the org's identities, newest first.
#[derive(Debug, Clone)]
pub struct IdentityPage {
    pub items: Vec<SenderIdentity>,
    pub page: u32,
    pub page_size: u32,
    pub total: i64,
}

/// Lists identities whose name or email contains `search` (ignoring case)
/// and, when `brand_ids` is not empty, whose brand is one of them.
pub async fn list(
    store: &Store,
    org: &OrgId,
    page: u32,
    page_size: u32,
    search: &str,
    brand_ids: &[String],
) -> Result<IdentityPage, Error> {
    let pattern = contains_pattern(&search.trim().to_lowercase());
    // A JSON array: the one bind both engines can filter a list with.
    let brands = serde_json::to_string(brand_ids).unwrap_or_else(|_| "[]".to_owned());
    let offset = (i64::from(page) - 1) * i64::from(page_size);
    let (items, total) = store.identities(org, &pattern, &brands, i64::from(page_size), offset).await?;
    Ok(IdentityPage { items, page, page_size, total })
}

/// Applies an update (contract §7): flags not sent keep their value,
/// MetaData merges.
pub async fn update(
    store: &Store,
    actor: &Actor,
    org: &OrgId,
    email: &str,
    change: IdentityChange,
    now: Millis,
) -> Result<SenderIdentity, Error> {
    let mut fields = Vec::new();
    if change.name.is_some() {
        fields.push("name");
    }
    if change.redirect_url.is_some() {
        fields.push("redirectUrl");
    }
    if change.settings.is_some() {
        fields.push("notificationSettings");
    }
    if change.meta_data.is_some() {
        fields.push("metaData");
    }
    if change.locale.is_some() {
        fields.push("locale");
    }
    let entry =
        audit(org, actor, now, "senderIdentity.updated", "", serde_json::json!({ "email": email, "fields": fields }));
    let write = store
        .change_identity(org, &email_key(email), entry, now, move |identity| {
            let IdentityChange { name, redirect_url, settings, meta_data, locale } = change;
            if let Some(patch) = &meta_data {
                merge_meta(&mut identity.meta_data, patch).map_err(|e| Error::Invalid(vec![e]))?;
            }
            if let Some(name) = name {
                identity.name = name;
            }
            if let Some(url) = redirect_url {
                identity.redirect_url = url;
            }
            if let Some(patch) = settings {
                identity.settings.apply(&patch);
            }
            if let Some(locale) = locale {
                identity.locale = locale;
            }
            Ok(None)
        })
        .await?;
    outcome(write)
}

/// Deletes an identity; its links stop working.
pub async fn delete(store: &Store, actor: &Actor, org: &OrgId, email: &str, now: Millis) -> Result<(), Error> {
    let entry = audit(org, actor, now, "senderIdentity.deleted", "", serde_json::json!({ "email": email }));
    if store.delete_identity(org, &email_key(email), &entry).await? {
        Ok(())
    } else {
        Err(Error::NotFound(Resource::SenderIdentity))
    }
}

/// What asks again for an identity's approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reissue {
    /// `resendInvitation`: a Pending identity gets a fresh review link;
    /// earlier links stop working.
    Resend,
    /// `rerequest`: Denied or Revoked → Pending, with a new review link.
    Rerequest,
}

impl Reissue {
    fn action(self) -> &'static str {
        match self {
            Reissue::Resend => "senderIdentity.invitationResent",
            Reissue::Rerequest => "senderIdentity.rerequested",
        }
    }

    fn allowed(self, status: Status) -> Result<(), Error> {
        match (self, status) {
            (Reissue::Resend, Status::Pending) | (Reissue::Rerequest, Status::Denied | Status::Revoked) => Ok(()),
            (Reissue::Resend, _) => {
                Err(Error::Precondition("Only a Pending sender identity's invitation can be resent."))
            }
            (Reissue::Rerequest, _) => {
                Err(Error::Precondition("Only a Denied or Revoked sender identity can be requested again."))
            }
        }
    }
}

/// Mails the identity with `email` a new review link (see [`Reissue`]).
pub async fn reissue(
    store: &Store,
    actor: &Actor,
    org: &OrgId,
    email: &str,
    kind: Reissue,
    now: Millis,
    public_url: &str,
) -> Result<(), Error> {
    let org_name = store.org_name(org).await?.unwrap_or_default();
    let entry = audit(org, actor, now, kind.action(), "", serde_json::json!({ "email": email }));
    let write = store
        .change_identity(org, &email_key(email), entry, now, move |identity| {
            kind.allowed(identity.status)?;
            identity.status = Status::Pending;
            identity.approved_at = None;
            issue(org, Sender { org_name: &org_name, public_url }, identity, LinkPurpose::Review, now).map(Some)
        })
        .await?;
    outcome(write)?;
    count_queued(KIND_APPROVAL_REQUESTED);
    Ok(())
}

/// Resolves a link token: `None` when it is not ours or names nothing
/// (anymore).
pub async fn open_link(store: &Store, cipher: &Cipher, token: &str, now: Millis) -> Result<Option<LinkView>, Error> {
    let Some(id) = cipher.verify_link(LINK_PURPOSE, token) else {
        return Ok(None);
    };
    let Some(link) = store.link(&id).await? else {
        return Ok(None);
    };
    let Some(identity) = store.identity_by_id(&link.org, &link.identity_id).await? else {
        return Ok(None);
    };
    let org_name = store.org_name(&link.org).await?.unwrap_or_default();
    let stage = stage(&link, identity.status, now);
    Ok(Some(LinkView { link, identity, org_name, stage }))
}

/// Does what the holder of a link asks, if the link allows it: approve or
/// deny (review link), revoke (revoke link), or mail a fresh link in place
/// of an expired one. The link is used up in the same transaction as the
/// change, so a link works exactly once, also under concurrent clicks.
pub async fn follow_link(
    store: &Store,
    cipher: &Cipher,
    token: &str,
    action: LinkAction,
    now: Millis,
    public_url: &str,
) -> Result<LinkResult, Error> {
    let Some(view) = open_link(store, cipher, token, now).await? else {
        return Ok(LinkResult::Refused(None));
    };
    if !action.fits(view.link.purpose, view.stage) {
        return Ok(LinkResult::Refused(Some(view)));
    }
    let LinkView { link, identity, org_name, .. } = &view;
    let (next_status, follow_up) = match action {
        LinkAction::Approve => (Status::Approved, Some(LinkPurpose::Revoke)),
        LinkAction::Deny => (Status::Denied, None),
        LinkAction::Revoke => (Status::Revoked, None),
        LinkAction::Renew => (identity.status, Some(link.purpose)),
    };
    let mut next = identity.clone();
    next.status = next_status;
    next.approved_at = match next_status {
        Status::Approved if identity.status != Status::Approved => Some(now),
        Status::Approved => identity.approved_at,
        _ => None,
    };
    next.updated_at = if action == LinkAction::Renew { identity.updated_at } else { now };
    let from = Sender { org_name, public_url };
    let issue = follow_up.map(|purpose| issue(&link.org, from, &next, purpose, now)).transpose()?;
    let entry = audit(
        &link.org,
        &Actor::link(&link.id),
        now,
        match action {
            LinkAction::Approve => "senderIdentity.approved",
            LinkAction::Deny => "senderIdentity.denied",
            LinkAction::Revoke => "senderIdentity.revoked",
            LinkAction::Renew => "senderIdentity.linkRenewed",
        },
        &identity.id,
        serde_json::json!({ "email": identity.email }),
    );
    let change = LinkChange {
        link,
        outcome: action.outcome(),
        renew: action == LinkAction::Renew,
        expected: identity.status,
        next: &next,
        issue: issue.as_ref(),
        audit: &entry,
        now,
    };
    match store.use_link(&change).await? {
        LinkUse::Done => {}
        // Someone else used it first, or the identity changed meanwhile.
        LinkUse::Gone => return Ok(LinkResult::Refused(open_link(store, cipher, token, now).await?)),
    }
    if let Some(issue) = &issue {
        count_queued(if issue.link.purpose == LinkPurpose::Review { KIND_APPROVAL_REQUESTED } else { KIND_APPROVED });
    }
    let mut done = view;
    done.identity = next;
    done.link.used_at = Some(now);
    done.link.outcome = Some(action.outcome().to_owned());
    done.stage = LinkStage::Used;
    Ok(LinkResult::Done(done))
}
