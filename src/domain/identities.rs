//! Sender identities (BoldSign, contract §7): the people an org may send
//! documents on behalf of, once they have approved it by email, and the
//! notification settings that decide which document events reach them (§8).
//!
//! Decided here: every rule of §7 (lengths, locales, the twelve flags and
//! their defaults, the MetaData merge), which status changes are allowed,
//! and the mailed links of the approval flow: a *review* link (Approve or
//! Deny) while Pending, a *revoke* link once Approved. A link is used once,
//! expires after seven days, and is replaced by the next one mailed for the
//! same identity. Its token is the link's id signed with a key derived from
//! `HERALD_SECRET_KEY` ([`Cipher::sign_link`]). The link's address is
//! rendered when the mail is queued, with the `HERALD_PUBLIC_URL` of the node
//! that serves the page; its token is signed only by the worker that sends
//! the mail, so a body stored in the outbox holds [`TOKEN_MARKER`], never a
//! usable link.
//!
//! Not decided here: the wire shapes (`api::boldsign`) and the HTML page
//! (`api::approval`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::audit::{AuditEntry, Scope};
use super::delivery::templates;
use super::delivery::{NewEvent, NewNotification};
use super::smtp::parse_address;
use super::users::LOCALES;
use super::{Actor, OrgId, contains_pattern};
use crate::clock::Millis;
use crate::crypto::Cipher;
use crate::error::{Error, FieldError, FieldErrors, Resource};
use crate::store::{IdentityWrite, LinkUse, Store};

// Lengths as in BoldSign's published OpenAPI (the `boldsign` SDKs 3.2.0:
// `Name` 0–80, `Email` 0–250; `BrandId`, `RedirectUrl` and `MetaData` have
// none, so only the body limit bounds them).
pub const NAME_MAX: usize = 80;
pub const EMAIL_MAX: usize = 250;
/// Herald's own bound: MetaData merges across updates, so without one an
/// identity's metadata could grow without end.
pub const META_KEYS_MAX: usize = 50;
pub const PAGE_SIZE_MAX: u32 = 100;
pub const PAGE_SIZE_DEFAULT: u32 = 10;

/// How long a mailed link works: seven days.
pub const LINK_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// Stands for the link's token in a stored mail body until a worker signs
/// it. Tokens and the marker need no escaping in text or HTML.
pub const TOKEN_MARKER: &str = "{herald:token}";
/// The path of the approval page; the token follows it.
pub const LINK_PATH: &str = "/sender-identity/";
/// Separates these signatures from any other kind Herald may make.
const LINK_PURPOSE: &str = "sender-identity";

/// The notification kinds of the approval flow (their templates carry the link).
pub const KIND_APPROVAL_REQUESTED: &str = "identity.approval_requested";
pub const KIND_APPROVED: &str = "identity.approved";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::Approved => "Approved",
            Status::Denied => "Denied",
            Status::Revoked => "Revoked",
        }
    }

    pub fn parse(raw: &str) -> Option<Status> {
        [Status::Pending, Status::Approved, Status::Denied, Status::Revoked].into_iter().find(|s| s.as_str() == raw)
    }
}

/// The twelve notification settings of contract §7, in BoldSign's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Viewed,
    Sent,
    DeliveryFailed,
    Declined,
    Revoked,
    Reassigned,
    Completed,
    Signed,
    Expired,
    AuthenticationFailed,
    Reminders,
    AttachSignedDocument,
}

impl Flag {
    pub const ALL: [Flag; 12] = [
        Flag::Viewed,
        Flag::Sent,
        Flag::DeliveryFailed,
        Flag::Declined,
        Flag::Revoked,
        Flag::Reassigned,
        Flag::Completed,
        Flag::Signed,
        Flag::Expired,
        Flag::AuthenticationFailed,
        Flag::Reminders,
        Flag::AttachSignedDocument,
    ];

    /// The name BoldSign's documents use (`DeliveryFailed`).
    pub fn name(self) -> &'static str {
        match self {
            Flag::Viewed => "Viewed",
            Flag::Sent => "Sent",
            Flag::DeliveryFailed => "DeliveryFailed",
            Flag::Declined => "Declined",
            Flag::Revoked => "Revoked",
            Flag::Reassigned => "Reassigned",
            Flag::Completed => "Completed",
            Flag::Signed => "Signed",
            Flag::Expired => "Expired",
            Flag::AuthenticationFailed => "AuthenticationFailed",
            Flag::Reminders => "Reminders",
            Flag::AttachSignedDocument => "AttachSignedDocument",
        }
    }

    /// Contract §7: everything on but Sent and AttachSignedDocument.
    pub fn default_value(self) -> bool {
        !matches!(self, Flag::Sent | Flag::AttachSignedDocument)
    }

    fn index(self) -> usize {
        Flag::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }

    /// The flag a request names, ignoring case. `DeliveryFailedFor` is the
    /// spelling of some of BoldSign's own examples.
    pub fn parse(raw: &str) -> Option<Flag> {
        if raw.eq_ignore_ascii_case("DeliveryFailedFor") {
            return Some(Flag::DeliveryFailed);
        }
        Flag::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(raw))
    }
}

/// The document events of contract §8 (`document.<name>`) and the flag that
/// lets each through.
pub const DOCUMENT_EVENTS: [(&str, Flag); 11] = [
    ("viewed", Flag::Viewed),
    ("sent", Flag::Sent),
    ("delivery_failed", Flag::DeliveryFailed),
    ("declined", Flag::Declined),
    ("revoked", Flag::Revoked),
    ("reassigned", Flag::Reassigned),
    ("completed", Flag::Completed),
    ("signed", Flag::Signed),
    ("expired", Flag::Expired),
    ("authentication_failed", Flag::AuthenticationFailed),
    ("reminder", Flag::Reminders),
];

/// The flag of document event `name` (`viewed`, `delivery_failed`, …).
pub fn flag_of_event(name: &str) -> Option<Flag> {
    DOCUMENT_EVENTS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// An identity's twelve flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationSettings([bool; 12]);

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings(Flag::ALL.map(Flag::default_value))
    }
}

/// Flags a request sets; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsPatch(pub [Option<bool>; 12]);

impl SettingsPatch {
    pub fn set(&mut self, flag: Flag, on: bool) {
        self.0[flag.index()] = Some(on);
    }
}

impl NotificationSettings {
    pub fn get(&self, flag: Flag) -> bool {
        self.0[flag.index()]
    }

    pub fn apply(&mut self, patch: &SettingsPatch) {
        for (value, change) in self.0.iter_mut().zip(patch.0) {
            if let Some(on) = change {
                *value = on;
            }
        }
    }

    /// Stored form: a JSON object of the flags by name.
    pub fn to_json(&self) -> String {
        let map: BTreeMap<&str, bool> = Flag::ALL.iter().map(|f| (f.name(), self.get(*f))).collect();
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads the stored form; a flag missing from it has its default.
    pub fn from_json(raw: &str) -> anyhow::Result<NotificationSettings> {
        let map: BTreeMap<String, bool> = serde_json::from_str(raw)?;
        let mut settings = NotificationSettings::default();
        for flag in Flag::ALL {
            if let Some(on) = map.get(flag.name()) {
                settings.0[flag.index()] = *on;
            }
        }
        Ok(settings)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderIdentity {
    pub id: String,
    pub name: String,
    pub email: String,
    pub status: Status,
    /// The actor that created it (`token:<id>`, `cli`, …).
    pub created_by: String,
    /// When the current approval was given; `None` unless Approved.
    pub approved_at: Option<Millis>,
    pub settings: NotificationSettings,
    pub brand_id: Option<String>,
    pub redirect_url: Option<String>,
    pub meta_data: BTreeMap<String, String>,
    pub locale: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// MetaData as a request sends it: `None` (null or `""`) removes the key.
pub type MetaPatch = Vec<(String, Option<String>)>;

/// What a create or update request holds, type-checked by the wire layer
/// and not yet validated. `Some("")` is a value like any other here.
#[derive(Debug, Clone, Default)]
pub struct IdentityInput {
    pub name: Option<String>,
    pub email: Option<String>,
    pub brand_id: Option<String>,
    pub redirect_url: Option<String>,
    pub settings: Option<SettingsPatch>,
    pub meta_data: Option<MetaPatch>,
    pub locale: Option<String>,
}

/// A validated create request.
#[derive(Debug, Clone)]
pub struct NewIdentity {
    pub name: Option<String>,
    pub email: String,
    pub brand_id: Option<String>,
    pub redirect_url: Option<String>,
    pub settings: SettingsPatch,
    pub meta_data: MetaPatch,
    pub locale: Option<String>,
}

/// A validated update: `None` keeps the stored value; `redirect_url:
/// Some(None)` (sent as `""`) removes it.
#[derive(Debug, Clone, Default)]
pub struct IdentityChange {
    pub name: Option<String>,
    pub redirect_url: Option<Option<String>>,
    pub settings: Option<SettingsPatch>,
    pub meta_data: Option<MetaPatch>,
    pub locale: Option<String>,
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn max_length(field: &str, max: usize) -> FieldError {
    FieldError::new(field, format!("The field {field} must be a string with a maximum length of {max}."))
}

fn no_control(field: &str) -> FieldError {
    FieldError::new(field, format!("The {field} field must not contain line breaks or control characters."))
}

/// An identity's name: trimmed, at most 80 characters, one line (it goes
/// into mails). Empty means
/// "not given".
pub fn parse_name(raw: &str) -> Result<Option<String>, FieldError> {
    let name = raw.trim();
    if name.chars().count() > NAME_MAX {
        return Err(max_length("Name", NAME_MAX));
    }
    if has_control(name) {
        return Err(no_control("Name"));
    }
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

/// An identity's email address: required, at most 250 characters.
pub fn parse_email(field: &str, raw: Option<&str>) -> Result<String, FieldError> {
    let email = raw.map(str::trim).unwrap_or_default();
    if email.is_empty() {
        return Err(FieldError::new(field, format!("The {field} field is required.")));
    }
    if email.chars().count() > EMAIL_MAX {
        return Err(max_length(field, EMAIL_MAX));
    }
    parse_address(field, field, email)
        .map_err(|_| FieldError::new(field, format!("The {field} field is not a valid e-mail address.")))
}

/// A redirect target: an absolute `http`/`https` URL with a host. Herald
/// sends browsers there, so nothing else (`javascript:`, relative paths) is
/// taken, nor forms that browsers and parsers read differently: userinfo
/// (`https://example.com@evil.test/` goes to evil.test), a scheme without
/// `//` (`http:evil.test`) and backslashes (`https:/\evil.test`). The URL is
/// stored as the `url` crate writes it, so what is echoed and put in
/// `Location` is what was checked. `""` means none.
pub fn parse_redirect_url(raw: &str) -> Result<Option<String>, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let invalid = || FieldError::new("RedirectUrl", "The RedirectUrl field must be an absolute http or https URL.");
    if raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Err(invalid());
    }
    // Only `http://` or `https://` (any case), written with the two slashes.
    let scheme = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    let after_scheme = if scheme.starts_with("https://") {
        8
    } else if scheme.starts_with("http://") {
        7
    } else {
        return Err(invalid());
    };
    let authority = raw[after_scheme..].split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(FieldError::new("RedirectUrl", "The RedirectUrl field must not contain a user name or password."));
    }
    match url::Url::parse(raw) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            Ok(Some(String::from(u)))
        }
        _ => Err(invalid()),
    }
}

/// A brand id, stored as given (contract §7); BoldSign's OpenAPI gives it
/// no length or format.
pub fn parse_brand_id(raw: &str) -> Result<Option<String>, FieldError> {
    let id = raw.trim();
    Ok((!id.is_empty()).then(|| id.to_owned()))
}

/// One of the locales of contract §7, in its canonical spelling.
pub fn parse_locale(raw: &str) -> Result<String, FieldError> {
    LOCALES
        .iter()
        .find(|l| l.eq_ignore_ascii_case(raw.trim()))
        .map(|l| (*l).to_owned())
        .ok_or_else(|| FieldError::new("Locale", format!("The Locale field must be one of {}.", LOCALES.join(", "))))
}

/// Reads MetaData entries: `""` and null mean "remove". BoldSign's OpenAPI
/// limits neither keys nor values; an empty key names nothing, so it is
/// refused.
fn parse_meta(patch: MetaPatch, errors: &mut FieldErrors) -> MetaPatch {
    let mut out = Vec::with_capacity(patch.len());
    for (key, value) in patch {
        if key.trim().is_empty() {
            errors.add("MetaData", "MetaData keys must not be empty.");
            continue;
        }
        out.push((key, value.filter(|v| !v.is_empty())));
    }
    out
}

/// Merges `patch` into `meta` (contract §7): new keys are added, existing
/// ones replaced, and a key without a value removed.
pub fn merge_meta(meta: &mut BTreeMap<String, String>, patch: &MetaPatch) -> Result<(), FieldError> {
    for (key, value) in patch {
        match value {
            Some(v) => meta.insert(key.clone(), v.clone()),
            None => meta.remove(key),
        };
    }
    if meta.len() > META_KEYS_MAX {
        return Err(FieldError::new("MetaData", format!("MetaData can hold at most {META_KEYS_MAX} keys.")));
    }
    Ok(())
}

/// Validates a create request, every bad field at once.
pub fn parse_new(input: IdentityInput) -> Result<NewIdentity, Error> {
    let IdentityInput { name, email, brand_id, redirect_url, settings, meta_data, locale } = input;
    let mut errors = FieldErrors::new();
    let name = name.and_then(|n| errors.take(parse_name(&n))).flatten();
    let email = errors.take(parse_email("Email", email.as_deref()));
    let brand_id = brand_id.and_then(|b| errors.take(parse_brand_id(&b))).flatten();
    let redirect_url = redirect_url.and_then(|u| errors.take(parse_redirect_url(&u))).flatten();
    let locale = locale.and_then(|l| errors.take(parse_locale(&l)));
    let meta_data = parse_meta(meta_data.unwrap_or_default(), &mut errors);
    errors.finish()?;
    Ok(NewIdentity {
        name,
        email: email.unwrap_or_default(),
        brand_id,
        redirect_url,
        settings: settings.unwrap_or_default(),
        meta_data,
        locale,
    })
}

/// Validates an update request: at least one of name, redirectUrl,
/// metaData, notificationSettings and locale (seed 004).
pub fn parse_change(input: IdentityInput) -> Result<IdentityChange, Error> {
    // Email and BrandId are not part of an update; the original ignores them.
    let IdentityInput { name, email: _, brand_id: _, redirect_url, settings, meta_data, locale } = input;
    if name.is_none() && redirect_url.is_none() && settings.is_none() && meta_data.is_none() && locale.is_none() {
        return Err(Error::field(
            "Request",
            "At least one of Name, RedirectUrl, MetaData, NotificationSettings or Locale is required.",
        ));
    }
    let mut errors = FieldErrors::new();
    // An empty name would leave the identity nameless: refuse it.
    let name = match name {
        None => None,
        Some(n) => match errors.take(parse_name(&n)) {
            Some(Some(n)) => Some(n),
            Some(None) => {
                errors.add("Name", "The Name field must not be empty.");
                None
            }
            None => None,
        },
    };
    let redirect_url = redirect_url.and_then(|u| errors.take(parse_redirect_url(&u)));
    let locale = locale.and_then(|l| errors.take(parse_locale(&l)));
    let meta_data = meta_data.map(|m| parse_meta(m, &mut errors));
    errors.finish()?;
    Ok(IdentityChange { name, redirect_url, settings, meta_data, locale })
}

/// The lower-cased address identities are found by.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

// ---- links -------------------------------------------------------------------

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
    fn outcome(self) -> &'static str {
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

// ---- mails -------------------------------------------------------------------

/// Where a mail is written from: the org's name and the base of its links
/// (`HERALD_PUBLIC_URL` of the node that serves the approval page).
#[derive(Debug, Clone, Copy)]
pub struct Sender<'a> {
    pub org_name: &'a str,
    pub public_url: &'a str,
}

/// Builds the mail that carries a new link of `purpose` for `identity`.
fn issue(
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

/// Counts mails the approval flow queued, as `POST /v1/events` counts its own.
fn count_queued(kind: &'static str) {
    metrics::counter!("herald_events_total", "type" => kind).increment(1);
    metrics::counter!("herald_notifications_total", "status" => "queued").increment(1);
}

// ---- operations ----------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_default_and_parse_in_any_case() {
        let d = NotificationSettings::default();
        for flag in Flag::ALL {
            assert_eq!(d.get(flag), !matches!(flag, Flag::Sent | Flag::AttachSignedDocument), "{flag:?}");
            assert_eq!(Flag::parse(&flag.name().to_lowercase()), Some(flag));
            assert_eq!(Flag::parse(&flag.name().to_uppercase()), Some(flag));
        }
        assert_eq!(Flag::parse("deliveryFailedFor"), Some(Flag::DeliveryFailed));
        assert_eq!(Flag::parse("nope"), None);
        assert_eq!(DOCUMENT_EVENTS.len(), 11, "every flag but AttachSignedDocument has its event");
        assert_eq!(flag_of_event("reminder"), Some(Flag::Reminders));
    }

    #[test]
    fn settings_round_trip_and_patches_keep_unsent_flags() {
        let mut s = NotificationSettings::default();
        let mut patch = SettingsPatch::default();
        patch.set(Flag::Viewed, false);
        patch.set(Flag::Sent, true);
        s.apply(&patch);
        assert!(!s.get(Flag::Viewed) && s.get(Flag::Sent) && s.get(Flag::Completed));
        assert_eq!(NotificationSettings::from_json(&s.to_json()).unwrap(), s);
        let partial = NotificationSettings::from_json(r#"{"Viewed": false}"#).unwrap();
        assert!(!partial.get(Flag::Viewed) && partial.get(Flag::Signed));
    }

    #[test]
    fn metadata_merges_replaces_and_deletes() {
        let mut meta =
            BTreeMap::from([("AccountPlan".to_owned(), "Free".to_owned()), ("Tenant".to_owned(), "t".to_owned())]);
        let patch = vec![
            ("AccountPlan".to_owned(), Some("Paid".to_owned())),
            ("Tenant".to_owned(), None),
            ("New".to_owned(), Some("n".to_owned())),
        ];
        merge_meta(&mut meta, &patch).unwrap();
        assert_eq!(
            meta,
            BTreeMap::from([("AccountPlan".to_owned(), "Paid".to_owned()), ("New".to_owned(), "n".to_owned())])
        );
        let many: MetaPatch = (0..51).map(|i| (format!("k{i}"), Some("v".to_owned()))).collect();
        assert!(merge_meta(&mut BTreeMap::new(), &many).is_err());
    }

    #[test]
    fn fields_follow_the_contract() {
        assert_eq!(parse_name(&"n".repeat(80)).unwrap().map(|n| n.len()), Some(80));
        assert!(parse_name(&"n".repeat(81)).unwrap_err().message.contains("80"));
        assert_eq!(parse_name(&"ü".repeat(80)).unwrap().map(|n| n.chars().count()), Some(80), "characters, not bytes");
        let long = format!("https://example.com/{}", "p".repeat(4000));
        assert_eq!(parse_redirect_url(&long).unwrap().as_deref(), Some(long.as_str()), "no length limit");
        assert_eq!(parse_brand_id(&"b".repeat(1000)).unwrap().map(|b| b.len()), Some(1000));
        assert!(parse_name("Luther\r\nBcc: x@y.z").is_err());
        assert_eq!(parse_name("  ").unwrap(), None);
        let long = format!("{}@example.com", "a".repeat(240));
        assert!(parse_email("Email", Some(&long)).unwrap_err().message.contains("250"));
        assert!(parse_email("Email", None).unwrap_err().message.contains("required"));
        assert!(parse_email("Email", Some("not-an-address")).unwrap_err().message.contains("valid"));
        assert_eq!(parse_locale("zh_cn").unwrap(), "ZH_CN");
        assert!(parse_locale("XX").is_err());
        assert_eq!(
            parse_redirect_url("https://boldsign.com/x?y=1").unwrap().as_deref(),
            Some("https://boldsign.com/x?y=1")
        );
        // Stored as the url crate writes it: what was checked is what is sent.
        for (raw, stored) in [
            ("HTTPS://BoldSign.COM", "https://boldsign.com/"),
            ("https://boldsign.com:443/a/../b", "https://boldsign.com/b"),
            ("http://example.com/ä?q=ü", "http://example.com/%C3%A4?q=%C3%BC"),
        ] {
            assert_eq!(parse_redirect_url(raw).unwrap().as_deref(), Some(stored), "{raw}");
        }
        for bad in [
            "javascript:alert(1)",
            "/relative",
            "ftp://x.example",
            "https://",
            "https://a b.example",
            "https://example.com@evil.test/",
            "https://user:pw@example.com/",
            "https://@evil.test/",
            "http:evil.test",
            "https:evil.test/x",
            "https:/evil.test",
            "https:/\\evil.test",
            "https://\\evil.test",
            "https://example.com\\@evil.test/",
            "//evil.test/",
        ] {
            assert!(parse_redirect_url(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_redirect_url("").unwrap(), None);
    }

    #[test]
    fn updates_need_something_to_update() {
        assert!(parse_change(IdentityInput { email: Some("x@y.z".into()), ..Default::default() }).is_err());
        assert!(parse_change(IdentityInput { name: Some("Luther".into()), ..Default::default() }).is_ok());
        assert!(parse_change(IdentityInput { name: Some(" ".into()), ..Default::default() }).is_err());
    }

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
