//! An org's suppression list (issue 18): addresses its mail no longer goes
//! to, because they bounced hard, complained, or an operator listed them.
//!
//! The list is applied when an event is accepted ([`apply`], called from
//! [`super::delivery::events`]), not when the mail is sent: the 202 then
//! already says the mail will not go out and why, nothing waits in the
//! outbox for an address that will be refused, and the check is one indexed
//! read. A suppressed event is recorded like a policy-suppressed one
//! (`events.suppressed`, the 202's `suppressed` member) and reported as a
//! `notification.suppressed` webhook event. The price: an address listed
//! after acceptance still gets mail already queued.
//!
//! Some types bypass the list ([`BYPASS`]): a security notice must reach its
//! owner even if an earlier mail to the address bounced.

use crate::clock::Millis;
use crate::domain::audit::{AuditEntry, Scope};
use crate::domain::delivery::NewEvent;
use crate::domain::smtp::parse_address;
use crate::domain::{Actor, OrgId};
use crate::error::{Error, FieldErrors, Resource};
use crate::store::Store;

/// Event types delivered even to suppressed addresses: the password-change
/// notice (a security message the account's owner must get).
pub const BYPASS: &[&str] = &["user.password_changed"];

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 500;
const MAX_DETAIL: usize = 1000;
const MAX_SEARCH: usize = 254;

/// Why an address is on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Added through the API or the console.
    Manual,
    /// A permanent delivery failure reported by a bounce.
    HardBounce,
    /// The recipient marked a mail as spam (an ARF report or SES complaint).
    Complaint,
}

impl Reason {
    pub const ALL: [Reason; 3] = [Reason::Manual, Reason::HardBounce, Reason::Complaint];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Manual => "manual",
            Reason::HardBounce => "hard_bounce",
            Reason::Complaint => "complaint",
        }
    }

    pub fn parse(raw: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == raw)
    }
}

/// A listed address.
#[derive(Debug, Clone)]
pub struct Suppression {
    pub email: String,
    pub reason: Reason,
    pub detail: Option<String>,
    /// The notification whose bounce or complaint listed it.
    pub notification_id: Option<String>,
    pub created_at: Millis,
}

/// The list's key for an address: case-insensitive as a whole (the local
/// part is case-sensitive in theory, never in practice, and a list that
/// misses `Ada@` after `ada@` bounced would mail a dead address again).
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Checks an address given to add or remove.
pub fn parse_email(field: &str, raw: &str) -> Result<String, Error> {
    parse_address(field, field, raw).map_err(|e| Error::Invalid(vec![e]))
}

/// A page of the list in address order, after `after` (an email key),
/// optionally only addresses containing `search`.
pub async fn page(
    store: &Store,
    org: &OrgId,
    search: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Suppression>, Error> {
    let mut errors = FieldErrors::new();
    if search.is_some_and(|s| s.chars().count() > MAX_SEARCH || s.chars().any(char::is_control)) {
        errors.add("search", format!("must be at most {MAX_SEARCH} characters without control characters"));
    }
    if !(1..=MAX_PAGE).contains(&limit) {
        errors.add("limit", format!("must be between 1 and {MAX_PAGE}"));
    }
    errors.finish()?;
    let pattern = match search.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => format!("%{}%", like_escape(&s.to_lowercase())),
        None => "%".to_owned(),
    };
    Ok(store.suppressions(org, &pattern, after.unwrap_or(""), limit).await?)
}

/// `s` as a literal inside a LIKE pattern with `\` as the escape character.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One listed address, or not found.
pub async fn get(store: &Store, org: &OrgId, email: &str) -> Result<Suppression, Error> {
    let marker = crate::domain::retention::erased_suppression_key(org, email);
    store.suppression_or_erased(org, &email_key(email), &marker).await?.ok_or(Error::NotFound(Resource::Suppression))
}

/// Lists an address by hand (audited). Listing a listed address again
/// keeps the first entry and says so.
pub async fn add(
    store: &Store,
    actor: &Actor,
    org: &OrgId,
    email: &str,
    detail: Option<String>,
    now: Millis,
) -> Result<(Suppression, bool), Error> {
    let email = parse_email("email", email)?;
    if detail.as_ref().is_some_and(|d| d.chars().count() > MAX_DETAIL || d.chars().any(char::is_control)) {
        return Err(Error::field(
            "detail",
            format!("must be at most {MAX_DETAIL} characters without control characters"),
        ));
    }
    let entry = Suppression { email, reason: Reason::Manual, detail, notification_id: None, created_at: now };
    let audit = AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action: "suppression.added",
        resource_type: "suppression",
        resource_id: email_key(&entry.email),
        detail: serde_json::json!({ "reason": entry.reason.as_str() }),
    };
    let created = store.insert_suppression(org, &entry, Some(&audit)).await?;
    if created {
        return Ok((entry, true));
    }
    Ok((get(store, org, &entry.email).await?, false))
}

/// Takes an address off the list (audited): mail goes to it again.
pub async fn remove(store: &Store, actor: &Actor, org: &OrgId, email: &str, now: Millis) -> Result<(), Error> {
    let key = email_key(email);
    let audit = AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action: "suppression.removed",
        resource_type: "suppression",
        resource_id: key.clone(),
        detail: serde_json::json!({}),
    };
    // An erased address is listed under its hashed marker (issue 20).
    let marker = crate::domain::retention::erased_suppression_key(org, email);
    let plain = store.delete_suppression(org, &key, &audit).await?;
    if store.delete_suppression(org, &marker, &audit).await? | plain {
        Ok(())
    } else {
        Err(Error::NotFound(Resource::Suppression))
    }
}

/// Drops the notifications of `event` whose recipient is on the org's list
/// (unless its type bypasses the list) and records why on the event.
pub async fn apply(store: &Store, org: &OrgId, event: &mut NewEvent) -> Result<(), Error> {
    if BYPASS.contains(&event.kind.as_str()) || event.notifications.is_empty() {
        return Ok(());
    }
    let mut reasons = Vec::new();
    let mut kept = Vec::with_capacity(event.notifications.len());
    for n in std::mem::take(&mut event.notifications) {
        // An erasure leaves a hashed marker in place of the address.
        let marker = crate::domain::retention::erased_suppression_key(org, &n.to_addr);
        match store.suppression_or_erased(org, &email_key(&n.to_addr), &marker).await? {
            Some(s) => reasons.push(format!("{} is on the suppression list ({})", n.to_addr, s.reason.as_str())),
            None => kept.push(n),
        }
    }
    event.notifications = kept;
    if !reasons.is_empty() {
        event.suppressed = Some(reasons.join("; "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_escape("a_b%c\\d"), "a\\_b\\%c\\\\d");
    }

    #[test]
    fn reasons_round_trip() {
        for r in Reason::ALL {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::parse("soft_bounce"), None);
    }
}
