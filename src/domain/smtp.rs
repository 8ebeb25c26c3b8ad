//! SMTP servers: the one domain type behind Leegality's org configuration
//! (contract §3) and Dbvisit's instance settings (§5), and the one question
//! the delivery engine asks: [`effective_server`].
//!
//! Passwords are write-only. They are encrypted before they reach the store,
//! bound to their scope and row, and decrypted only into an [`SmtpServer`]
//! for sending. Whether a stored secret may be used for another server
//! description ([`may_lend`]: an update without a password, an unsaved
//! config in a test send) is decided here, once, for every caller.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde_json::json;

use super::audit::Scope;
use super::{Actor, OrgId};
use crate::clock::Millis;
use crate::crypto::Cipher;
use crate::error::{Error, FieldError, Resource};
use crate::secret::Secret;
use crate::store::{Decided, SmtpDecision, SmtpRow, Store};

/// How Herald talks to the server. Mapped once onto the mail library:
/// `StartTls` means STARTTLS *required*, never opportunistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    StartTls,
    /// Implicit TLS (SMTPS).
    Tls,
    /// A stored value Herald does not know (written by something else, or a
    /// newer version): never sent through, never treated as plain.
    Unrecognised,
}

impl Security {
    pub fn default_port(self) -> u16 {
        match self {
            Security::Plain => 25,
            Security::StartTls => 587,
            Security::Tls => 465,
            // Nothing is sent through it; the port only has to be a number.
            Security::Unrecognised => 0,
        }
    }

    fn as_db(self) -> &'static str {
        match self {
            Security::Plain => "plain",
            Security::StartTls => "starttls",
            Security::Tls => "tls",
            Security::Unrecognised => "unrecognised",
        }
    }

    /// Fails closed: anything but the three known values is `Unrecognised`.
    fn from_db(raw: &str) -> Security {
        match raw {
            "plain" => Security::Plain,
            "starttls" => Security::StartTls,
            "tls" => Security::Tls,
            _ => Security::Unrecognised,
        }
    }
}

/// Stored SMTP settings as the APIs show them: the password only as "set".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub id: String,
    pub enabled: bool,
    pub host: String,
    /// As configured; 0 means the security mode's default port.
    pub port: u16,
    pub security: Security,
    pub accept_invalid_certs: bool,
    pub username: Option<String>,
    pub password_set: bool,
    pub from_email: Option<String>,
    pub from_name: Option<String>,
    pub reply_to: Option<String>,
    /// Grows with every change (connection pools key on it).
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl SmtpSettings {
    /// The port to connect to.
    pub fn effective_port(&self) -> u16 {
        if self.port == 0 { self.security.default_port() } else { self.port }
    }
}

impl From<&SmtpRow> for SmtpSettings {
    fn from(row: &SmtpRow) -> Self {
        SmtpSettings {
            id: row.id.clone(),
            enabled: row.enabled,
            host: row.host.clone(),
            port: u16::try_from(row.port).unwrap_or(0),
            security: Security::from_db(&row.security),
            accept_invalid_certs: row.accept_invalid_certs,
            username: row.username.clone(),
            password_set: row.password.is_some(),
            from_email: row.from_email.clone(),
            from_name: row.from_name.clone(),
            reply_to: row.reply_to.clone(),
            version: row.version,
            created_at: Millis(row.created_at),
            updated_at: Millis(row.updated_at),
        }
    }
}

/// What a request says about the password.
#[derive(Debug, Clone)]
pub enum PasswordChange {
    /// Absent (or null): keep the stored one where [`may_lend`] allows it.
    Keep,
    /// `""`: remove it.
    Clear,
    Set(Secret),
}

impl PasswordChange {
    /// The contract's reading of a password field: absent/null keeps, `""` clears.
    pub fn from_field(value: Option<String>) -> PasswordChange {
        match value {
            None => PasswordChange::Keep,
            Some(p) if p.is_empty() => PasswordChange::Clear,
            Some(p) => PasswordChange::Set(Secret::new(p)),
        }
    }
}

/// Complete settings as a request wants them (every field validated).
#[derive(Debug, Clone)]
pub struct SmtpDraft {
    /// `None`: keep the current value (true for a new configuration).
    pub enabled: Option<bool>,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub accept_invalid_certs: bool,
    pub username: Option<String>,
    pub password: PasswordChange,
    pub from_email: Option<String>,
    pub from_name: Option<String>,
    pub reply_to: Option<String>,
}

/// A partial change of the instance settings (Dbvisit `edit`): `None` keeps.
#[derive(Debug, Clone, Default)]
pub struct SmtpPatch {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub security: Option<Security>,
    pub accept_invalid_certs: Option<bool>,
    /// `Some("")` clears.
    pub username: Option<String>,
    pub password: Option<PasswordChange>,
    /// `Some("")` clears.
    pub from_email: Option<String>,
}

/// An SMTP server Herald can send through, password decrypted.
#[derive(Debug, Clone)]
pub struct SmtpServer {
    /// Whose settings these are: an org's own, or the instance's.
    pub scope: Scope,
    pub config_id: String,
    pub version: i64,
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub accept_invalid_certs: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// An OAuth2 access token: when set, AUTH is XOAUTH2 (username and
    /// token) instead of PLAIN/LOGIN with the password. Fetched by the
    /// caller ([`crate::delivery::oauth2::TokenCache`]), never stored.
    pub oauth_token: Option<Secret>,
    pub from_email: Option<String>,
    pub from_name: Option<String>,
    pub reply_to: Option<String>,
}

// ---- validation shared by the families -------------------------------------

/// No CR, LF or other control characters: these values end up in SMTP
/// commands and mail headers.
fn has_control(raw: &str) -> bool {
    raw.chars().any(char::is_control)
}

/// A hostname (RFC 1123 labels) or an IPv4/IPv6 literal, at most 253 characters.
pub fn parse_host(field: &str, label: &str, raw: &str) -> Result<String, FieldError> {
    let host = raw.trim();
    let invalid = || FieldError::new(field, format!("{label} must be a valid hostname or IP address"));
    if host.is_empty() {
        return Err(FieldError::new(field, format!("{label} is required")));
    }
    if has_control(host) || host.len() > 253 {
        return Err(invalid());
    }
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if Ipv4Addr::from_str(bare).is_ok() || Ipv6Addr::from_str(bare).is_ok() {
        return Ok(bare.to_owned());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    let labels_ok = name.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    // An all-numeric name that is not a valid IPv4 address (999.1.1.1) is neither.
    let numeric = name.split('.').all(|l| l.bytes().all(|b| b.is_ascii_digit()));
    if labels_ok && !numeric { Ok(name.to_ascii_lowercase()) } else { Err(invalid()) }
}

/// A mailbox address (`user@example.com`), at most 254 characters.
pub fn parse_address(field: &str, label: &str, raw: &str) -> Result<String, FieldError> {
    let addr = raw.trim();
    let invalid = || FieldError::new(field, format!("{label} must be a valid email address"));
    if addr.len() > 254 || has_control(addr) {
        return Err(invalid());
    }
    lettre::Address::from_str(addr).map(|_| addr.to_owned()).map_err(|_| invalid())
}

/// Free text bound for a header or an SMTP command: at most `max`
/// characters, no line breaks or other control characters.
pub fn parse_text(field: &str, label: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    if raw.chars().count() > max {
        return Err(FieldError::new(field, format!("{label} must be at most {max} characters")));
    }
    if has_control(raw) {
        return Err(FieldError::new(field, format!("{label} must not contain line breaks or control characters")));
    }
    Ok(raw.to_owned())
}

/// Password limits: at most 1024 characters, no control characters (it is
/// sent in an SMTP AUTH command).
pub fn parse_password(field: &str, label: &str, raw: &str) -> Result<String, FieldError> {
    parse_text(field, label, raw, 1024)
}

// ---- decisions -------------------------------------------------------------

/// Associated data of a password: it decrypts only for this scope and row.
fn password_aad(scope_id: &str, config_id: &str) -> Vec<u8> {
    format!("herald:smtp-password:v1:{scope_id}:{config_id}").into_bytes()
}

/// Where a secret would be sent: the server, the account, and how the
/// connection is protected.
#[derive(Debug, Clone, Copy)]
pub struct SecretUse<'a> {
    pub host: &'a str,
    /// As configured: 0 means the security mode's default port.
    pub port: u16,
    pub security: Security,
    pub accept_invalid_certs: bool,
    pub username: Option<&'a str>,
}

impl SecretUse<'_> {
    fn effective_port(&self) -> u16 {
        if self.port == 0 { self.security.default_port() } else { self.port }
    }
}

/// The lending rule (contract §3, §8): a secret stored for `stored` may be
/// used for `target` only when `target` is exactly that server (host,
/// ignoring case, and port), the same username, the same security mode, and
/// certificate checking is not turned off where it was on. Anything else
/// could carry the secret to another server, another account or over
/// weaker transport. An unrecognised security mode never matches.
pub fn may_lend(stored: &SecretUse<'_>, target: &SecretUse<'_>) -> bool {
    stored.security != Security::Unrecognised
        && stored.security == target.security
        && stored.host.eq_ignore_ascii_case(target.host)
        && stored.effective_port() == target.effective_port()
        && stored.username == target.username
        && (stored.accept_invalid_certs || !target.accept_invalid_certs)
}

impl SmtpServer {
    /// Where this server's password goes.
    pub fn secret_use(&self) -> SecretUse<'_> {
        SecretUse {
            host: &self.host,
            port: self.port,
            security: self.security,
            accept_invalid_certs: self.accept_invalid_certs,
            username: self.username.as_deref(),
        }
    }
}

/// The password ciphertext a change leaves behind. An absent password keeps
/// the stored one only where [`may_lend`] allows it: it was given for the
/// old server, account and transport.
fn next_password(
    cipher: &Cipher,
    current: Option<&SmtpRow>,
    draft: &SmtpDraft,
    aad: &[u8],
) -> Result<Option<Vec<u8>>, Error> {
    Ok(match &draft.password {
        PasswordChange::Set(secret) => Some(cipher.encrypt(secret.expose().as_bytes(), aad)?),
        PasswordChange::Clear => None,
        PasswordChange::Keep => match current {
            Some(row) => {
                let stored = SmtpSettings::from(row);
                let was = SecretUse {
                    host: &stored.host,
                    port: stored.port,
                    security: stored.security,
                    accept_invalid_certs: stored.accept_invalid_certs,
                    username: stored.username.as_deref(),
                };
                let will = SecretUse {
                    host: &draft.host,
                    port: draft.port,
                    security: draft.security,
                    accept_invalid_certs: draft.accept_invalid_certs,
                    username: draft.username.as_deref(),
                };
                if may_lend(&was, &will) { row.password.clone() } else { None }
            }
            None => None,
        },
    })
}

/// What the audit log says about a change: never a secret.
fn audit_detail(row: &SmtpRow, before: Option<&SmtpRow>) -> serde_json::Value {
    let password_changed = before.map(|b| b.password != row.password).unwrap_or(row.password.is_some());
    json!({
        "host": row.host,
        "port": row.port,
        "security": row.security,
        "enabled": row.enabled,
        "passwordSet": row.password.is_some(),
        "passwordChanged": password_changed,
    })
}

fn row_from_draft(
    cipher: &Cipher,
    draft: &SmtpDraft,
    current: Option<&SmtpRow>,
    scope_id: &str,
    now: Millis,
) -> Result<SmtpRow, Error> {
    let id = current.map_or_else(|| uuid::Uuid::now_v7().to_string(), |c| c.id.clone());
    let aad = password_aad(scope_id, &id);
    let password = next_password(cipher, current, draft, &aad)?;
    Ok(SmtpRow {
        id,
        scope_id: scope_id.to_owned(),
        enabled: draft.enabled.or(current.map(|c| c.enabled)).unwrap_or(true),
        host: draft.host.clone(),
        port: i64::from(draft.port),
        security: draft.security.as_db().to_owned(),
        accept_invalid_certs: draft.accept_invalid_certs,
        username: draft.username.clone(),
        password,
        from_email: draft.from_email.clone(),
        from_name: draft.from_name.clone(),
        reply_to: draft.reply_to.clone(),
        version: current.map_or(1, |c| c.version + 1),
        created_at: current.map_or(now.0, |c| c.created_at),
        updated_at: now.0,
    })
}

fn saved(row: Option<SmtpRow>) -> Result<SmtpSettings, Error> {
    row.as_ref().map(SmtpSettings::from).ok_or_else(|| anyhow::anyhow!("saved SMTP row missing").into())
}

// ---- org configuration (Leegality) -----------------------------------------

/// The org's own configuration, or `NotFound`.
pub async fn org_config(store: &Store, org: &OrgId) -> Result<SmtpSettings, Error> {
    let row = store.smtp_row(org.as_str()).await?;
    row.as_ref().map(SmtpSettings::from).ok_or(Error::NotFound(Resource::NotificationConfig))
}

/// Creates the org's configuration; `Conflict` if it has one.
pub async fn create_org_config(
    store: &Store,
    cipher: &Cipher,
    actor: &Actor,
    org: &OrgId,
    draft: SmtpDraft,
    now: Millis,
) -> Result<SmtpSettings, Error> {
    let row = store
        .change_smtp(&Scope::Org(org.clone()), actor, now, |current, scope_id| {
            if current.is_some() {
                return Err(Error::Conflict(Resource::NotificationConfig));
            }
            let row = row_from_draft(cipher, &draft, None, scope_id, now)?;
            let detail = audit_detail(&row, None);
            Ok(Decided { decision: SmtpDecision::Save(Box::new(row)), action: "smtp_config.created", detail })
        })
        .await?;
    saved(row)
}

/// Replaces the org's configuration; `NotFound` if it has none (never upserts).
pub async fn replace_org_config(
    store: &Store,
    cipher: &Cipher,
    actor: &Actor,
    org: &OrgId,
    draft: SmtpDraft,
    now: Millis,
) -> Result<SmtpSettings, Error> {
    let row = store
        .change_smtp(&Scope::Org(org.clone()), actor, now, |current, scope_id| {
            let Some(current) = current else { return Err(Error::NotFound(Resource::NotificationConfig)) };
            let row = row_from_draft(cipher, &draft, Some(&current), scope_id, now)?;
            let detail = audit_detail(&row, Some(&current));
            Ok(Decided { decision: SmtpDecision::Save(Box::new(row)), action: "smtp_config.replaced", detail })
        })
        .await?;
    saved(row)
}

/// Deletes the org's configuration: its mail falls back to the instance settings.
pub async fn delete_org_config(store: &Store, actor: &Actor, org: &OrgId, now: Millis) -> Result<(), Error> {
    store
        .change_smtp(&Scope::Org(org.clone()), actor, now, |current, _| {
            if current.is_none() {
                return Err(Error::NotFound(Resource::NotificationConfig));
            }
            Ok(Decided { decision: SmtpDecision::Delete, action: "smtp_config.deleted", detail: json!({}) })
        })
        .await?;
    Ok(())
}

// ---- instance settings (Dbvisit) -------------------------------------------

/// The instance settings, if configured.
pub async fn instance_settings(store: &Store) -> Result<Option<SmtpSettings>, Error> {
    let instance = store.instance_id().await?;
    Ok(store.smtp_row(&instance).await?.as_ref().map(SmtpSettings::from))
}

/// Applies a partial change to the instance settings; fields not sent keep
/// their value. The result must name a host.
pub async fn edit_instance_settings(
    store: &Store,
    cipher: &Cipher,
    actor: &Actor,
    patch: SmtpPatch,
    now: Millis,
) -> Result<SmtpSettings, Error> {
    let row = store
        .change_smtp(&Scope::Instance, actor, now, |current, scope_id| {
            let base = current.as_ref().map(SmtpSettings::from);
            let keep = |v: Option<String>, old: Option<String>| match v {
                Some(s) if s.is_empty() => None,
                Some(s) => Some(s),
                None => old,
            };
            let host = patch.host.clone().or(base.as_ref().map(|b| b.host.clone())).unwrap_or_default();
            if host.is_empty() {
                return Err(Error::field("smtp_host", "smtp_host is required: no email settings exist yet"));
            }
            let draft = SmtpDraft {
                enabled: Some(true),
                host,
                port: patch.port.or(base.as_ref().map(|b| b.port)).unwrap_or(0),
                security: patch.security.or(base.as_ref().map(|b| b.security)).unwrap_or(Security::Plain),
                accept_invalid_certs: patch
                    .accept_invalid_certs
                    .or(base.as_ref().map(|b| b.accept_invalid_certs))
                    .unwrap_or(false),
                username: keep(patch.username.clone(), base.as_ref().and_then(|b| b.username.clone())),
                password: patch.password.clone().unwrap_or(PasswordChange::Keep),
                from_email: keep(patch.from_email.clone(), base.as_ref().and_then(|b| b.from_email.clone())),
                from_name: None,
                reply_to: None,
            };
            let row = row_from_draft(cipher, &draft, current.as_ref(), scope_id, now)?;
            let detail = audit_detail(&row, current.as_ref());
            Ok(Decided { decision: SmtpDecision::Save(Box::new(row)), action: "instance_smtp.edited", detail })
        })
        .await?;
    saved(row)
}

/// Removes the instance settings (idempotent).
pub async fn clear_instance_settings(store: &Store, actor: &Actor, now: Millis) -> Result<(), Error> {
    store
        .change_smtp(&Scope::Instance, actor, now, |_, _| {
            Ok(Decided { decision: SmtpDecision::Delete, action: "instance_smtp.cleared", detail: json!({}) })
        })
        .await?;
    Ok(())
}

// ---- the delivery engine's question ----------------------------------------

fn server_from(cipher: &Cipher, row: &SmtpRow, scope: Scope) -> Result<SmtpServer, Error> {
    let settings = SmtpSettings::from(row);
    let password = match &row.password {
        None => None,
        Some(sealed) => {
            let plain = cipher
                .decrypt(sealed, &password_aad(&row.scope_id, &row.id))
                .map_err(|e| anyhow::Error::new(e).context(format!("SMTP settings {}", row.id)))?;
            let text = String::from_utf8(plain).map_err(|_| anyhow::anyhow!("stored SMTP password is not UTF-8"))?;
            Some(Secret::new(text))
        }
    };
    Ok(SmtpServer {
        scope,
        config_id: settings.id.clone(),
        version: settings.version,
        host: settings.host.clone(),
        port: settings.effective_port(),
        security: settings.security,
        accept_invalid_certs: settings.accept_invalid_certs,
        username: settings.username.clone(),
        password,
        oauth_token: None,
        from_email: settings.from_email.clone(),
        from_name: settings.from_name.clone(),
        reply_to: settings.reply_to.clone(),
    })
}

/// An SMTP row as a server to send through, password decrypted (the
/// providers module lists the legacy configurations as providers).
pub fn server_from_row(cipher: &Cipher, row: &SmtpRow, scope: Scope) -> Result<SmtpServer, Error> {
    server_from(cipher, row, scope)
}

/// Which server `org` sends through right now: its own configuration if
/// enabled, else the instance settings, else none (the caller's fallback).
pub async fn effective_server(store: &Store, cipher: &Cipher, org: &OrgId) -> Result<Option<SmtpServer>, Error> {
    if let Some(row) = store.smtp_row(org.as_str()).await?
        && row.enabled
    {
        return server_from(cipher, &row, Scope::Org(org.clone())).map(Some);
    }
    let instance = store.instance_id().await?;
    match store.smtp_row(&instance).await? {
        Some(row) if row.enabled => server_from(cipher, &row, Scope::Instance).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in ["smtp.example.com", "SMTP.Example.COM.", "localhost", "10.0.0.1", "::1", "[2001:db8::1]", "a-b.c"] {
            assert!(parse_host("h", "Host", ok).is_ok(), "{ok}");
        }
        let long = format!("{}.com", "a".repeat(64));
        for bad in ["", " ", "smtp example.com", "smtp.example.com\r\nRCPT", "-a.com", "a..b", "999.1.1.1", &long] {
            assert!(parse_host("h", "Host", bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_host("h", "Host", "SMTP.Example.COM.").unwrap(), "smtp.example.com");
        assert!(parse_host("h", "Host", &"a.".repeat(127)).is_err(), "over 253");
    }

    #[test]
    fn addresses_and_text() {
        assert!(parse_address("f", "From email", "ops@example.com").is_ok());
        for bad in ["", "ops", "ops@", "@example.com", "ops@example.com\r\nBcc: x@y.z", "a b@example.com"] {
            let err = parse_address("replyTo", "Reply to", bad).unwrap_err();
            assert_eq!(err.message, "Reply to must be a valid email address", "{bad:?}");
        }
        assert!(parse_text("fromName", "From name", &"x".repeat(255), 255).is_ok());
        assert!(parse_text("fromName", "From name", &"x".repeat(256), 255).is_err());
        assert!(parse_text("fromName", "From name", "Ops\nBcc: x", 255).is_err());
        assert!(parse_password("password", "Password", &"p".repeat(1025)).is_err());
    }

    #[test]
    fn a_stored_secret_is_lent_only_to_the_same_server_account_and_transport() {
        let stored = SecretUse {
            host: "smtp.example.com",
            port: 0,
            security: Security::StartTls,
            accept_invalid_certs: false,
            username: Some("mailer"),
        };
        let same = |f: fn(&mut SecretUse<'static>)| {
            let mut t = stored;
            f(&mut t);
            may_lend(&stored, &t)
        };
        assert!(same(|_| {}), "exactly the stored server");
        assert!(same(|t| t.host = "SMTP.Example.COM"), "host names ignore case");
        assert!(same(|t| t.port = 587), "0 is the mode's default port");
        for (weakened, why) in [
            (same(|t| t.host = "smtp.elsewhere.example"), "another host"),
            (same(|t| t.port = 2525), "another port"),
            (same(|t| t.username = Some("other")), "another username"),
            (same(|t| t.username = Some("Mailer")), "usernames are compared exactly"),
            (same(|t| t.username = None), "no username"),
            (same(|t| t.security = Security::Plain), "TLS switched off"),
            (same(|t| t.security = Security::Tls), "another security mode"),
            (same(|t| t.accept_invalid_certs = true), "certificate checking turned off"),
            (same(|t| t.security = Security::Unrecognised), "an unrecognised mode"),
        ] {
            assert!(!weakened, "{why}");
        }
        // Turning certificate checking on is not weaker.
        let lax = SecretUse { accept_invalid_certs: true, ..stored };
        assert!(may_lend(&lax, &stored));
        // A stored mode Herald does not know lends to nothing, not even itself.
        let unknown = SecretUse { security: Security::Unrecognised, ..stored };
        assert!(!may_lend(&unknown, &unknown));
    }

    #[test]
    fn unknown_stored_security_fails_closed() {
        assert_eq!(Security::from_db("plain"), Security::Plain);
        assert_eq!(Security::from_db("starttls"), Security::StartTls);
        assert_eq!(Security::from_db("tls"), Security::Tls);
        for other in ["", "PLAIN", "ssl", "none", "starttls-optional"] {
            assert_eq!(Security::from_db(other), Security::Unrecognised, "{other:?}");
        }
    }

    #[test]
    fn default_ports() {
        assert_eq!([Security::Plain, Security::StartTls, Security::Tls].map(Security::default_port), [25, 587, 465]);
    }
}
