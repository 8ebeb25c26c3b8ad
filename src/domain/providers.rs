//! Providers (issue 17): an org's, and the instance's, ordered list of ways
//! to send mail, the failover rule that walks it, the circuit breaker that
//! skips a failing provider, and per-provider rate limits.
//!
//! The org's Leegality notification-config and the instance's Dbvisit
//! email-settings stay where they are (`smtp_servers`) and keep working
//! exactly as before; they are listed as provider #1 of their scope
//! (`source` `notification-config` / `email-settings`, position 0) and are
//! changed through their own APIs only. Every further provider is a row of
//! `providers`, ordered by `position` (1, 2, …).
//!
//! Secrets (SMTP password, OAuth2 client secret, SES secret access key,
//! HTTP signing secret) are write-only, encrypted like SMTP passwords and
//! bound to their scope and row; an update without the secret keeps it only
//! where it would go to exactly the same place ([`may_keep_secret`]).
//!
//! The order a mail tries is [`routes`]: the org's providers before the
//! instance's. Which one an attempt uses is [`pick`]; what a failure means
//! for the next attempt is [`after_failure`]. The delivery machinery
//! ([`crate::delivery::providers`]) does the sending.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::{AuditEntry, Scope};
use super::smtp::{
    self, PasswordChange, SecretUse, Security, SmtpServer, SmtpSettings, parse_address, parse_host, parse_text,
};
use super::{Actor, OrgId};
use crate::clock::Millis;
use crate::crypto::Cipher;
use crate::error::{Error, FieldError, FieldErrors, Resource};
use crate::secret::Secret;
use crate::store::{HealthRow, ProviderRow, Store};

/// Most providers one scope may have (besides its legacy configuration).
pub const MAX_PROVIDERS: usize = 20;

/// Where a listed provider is kept and changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A row of `providers`, managed by `/v1/providers`.
    Providers,
    /// The org's Leegality configuration (`/api/v1/notification-config`).
    NotificationConfig,
    /// The instance's Dbvisit settings (`/email-settings/…`).
    EmailSettings,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Providers => "providers",
            Source::NotificationConfig => "notification-config",
            Source::EmailSettings => "email-settings",
        }
    }
}

/// SMTP authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpAuth {
    Password,
    Xoauth2,
}

/// How an XOAUTH2 provider gets its access token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthGrant {
    /// RFC 6749 §4.4 with `clientId` and the client secret (Microsoft 365).
    #[default]
    ClientCredentials,
    /// RFC 7523 with a service account's `clientEmail` and private key
    /// (Google Workspace with domain-wide delegation).
    JwtBearer,
}

/// Settings of an SMTP provider (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmtpProvider {
    pub host: String,
    /// 0: the security mode's default port.
    pub port: u16,
    /// `plain`, `starttls` or `tls`.
    pub security: String,
    pub accept_invalid_certs: bool,
    pub username: Option<String>,
    pub auth: SmtpAuth,
    /// XOAUTH2 only (stored settings from before it: client credentials).
    #[serde(default)]
    pub grant: OAuthGrant,
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    /// JWT bearer: the service account (`iss`).
    #[serde(default)]
    pub client_email: Option<String>,
    /// JWT bearer: the mailbox the token is for (`sub`); `None`: `username`.
    #[serde(default)]
    pub subject: Option<String>,
    pub scope: Option<String>,
    pub from_email: Option<String>,
    pub from_name: Option<String>,
    pub reply_to: Option<String>,
}

/// Settings of an Amazon SES (v2 API) provider (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SesProvider {
    pub region: String,
    pub access_key_id: String,
    pub endpoint: Option<String>,
    pub from_email: Option<String>,
    pub from_name: Option<String>,
    pub reply_to: Option<String>,
}

/// Settings of an HTTP provider (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpProvider {
    pub url: String,
    pub from_email: Option<String>,
    pub from_name: Option<String>,
}

/// A provider's kind and settings, as stored (JSON, tagged by `kind`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Settings {
    Smtp(SmtpProvider),
    Ses(SesProvider),
    Http(HttpProvider),
}

impl Settings {
    pub fn kind(&self) -> &'static str {
        match self {
            Settings::Smtp(_) => "smtp",
            Settings::Ses(_) => "ses",
            Settings::Http(_) => "http",
        }
    }

    /// Whether sending needs the secret (an SMTP password is optional).
    fn needs_secret(&self) -> bool {
        match self {
            Settings::Smtp(s) => s.auth == SmtpAuth::Xoauth2,
            Settings::Ses(_) | Settings::Http(_) => true,
        }
    }

    /// The SMTP server these settings describe (SMTP only), with `secret`
    /// as the password (password auth only).
    pub fn smtp_server(&self, scope: Scope, id: &str, version: i64, secret: Option<&Secret>) -> Option<SmtpServer> {
        let Settings::Smtp(s) = self else { return None };
        let security = security_from(&s.security);
        Some(SmtpServer {
            scope,
            config_id: id.to_owned(),
            version,
            host: s.host.clone(),
            port: if s.port == 0 { security.default_port() } else { s.port },
            security,
            accept_invalid_certs: s.accept_invalid_certs,
            username: s.username.clone(),
            password: if s.auth == SmtpAuth::Password { secret.cloned() } else { None },
            from_email: s.from_email.clone(),
            from_name: s.from_name.clone(),
            reply_to: s.reply_to.clone(),
            oauth_token: None,
        })
    }

    /// The sender fields of any kind, as an SMTP server description the
    /// message builder reads (from, name, reply-to) for SES and HTTP.
    pub fn sender(&self, scope: Scope, id: &str) -> SmtpServer {
        let (from_email, from_name, reply_to) = match self {
            Settings::Smtp(s) => (s.from_email.clone(), s.from_name.clone(), s.reply_to.clone()),
            Settings::Ses(s) => (s.from_email.clone(), s.from_name.clone(), s.reply_to.clone()),
            Settings::Http(s) => (s.from_email.clone(), s.from_name.clone(), None),
        };
        SmtpServer {
            scope,
            config_id: id.to_owned(),
            version: 0,
            host: String::new(),
            port: 0,
            security: Security::Unrecognised,
            accept_invalid_certs: false,
            username: None,
            password: None,
            from_email,
            from_name,
            reply_to,
            oauth_token: None,
        }
    }
}

fn security_from(raw: &str) -> Security {
    match raw {
        "plain" => Security::Plain,
        "starttls" => Security::StartTls,
        "tls" => Security::Tls,
        _ => Security::Unrecognised,
    }
}

fn security_name(s: Security) -> &'static str {
    match s {
        Security::Plain => "plain",
        Security::StartTls => "starttls",
        Security::Tls => "tls",
        Security::Unrecognised => "unrecognised",
    }
}

/// The circuit breaker's view of a provider.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Consecutive failures (0 after a success).
    pub failures: i64,
    /// Skipped until then (the circuit is open); after it, one attempt
    /// probes the provider.
    pub open_until: Option<Millis>,
    pub last_error: Option<String>,
    pub last_failure_at: Option<Millis>,
}

impl Health {
    /// `closed`, `open` (skipped until `open_until`) or `half-open` (the
    /// cool-down is over: the next attempt probes it).
    pub fn state(&self, now: Millis) -> &'static str {
        match self.open_until {
            None => "closed",
            Some(t) if t > now => "open",
            Some(_) => "half-open",
        }
    }
}

impl From<&HealthRow> for Health {
    fn from(h: &HealthRow) -> Self {
        Health {
            failures: h.failures,
            open_until: h.open_until.map(Millis),
            last_error: h.last_error.clone(),
            last_failure_at: h.last_failure_at.map(Millis),
        }
    }
}

/// A provider as the APIs show it: the secret only as "set".
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    pub source: Source,
    /// 0 for the legacy configuration, then 1, 2, …
    pub position: i64,
    pub name: String,
    pub enabled: bool,
    pub settings: Settings,
    pub secret_set: bool,
    pub bounce_domain: Option<String>,
    pub max_per_minute: Option<i64>,
    pub max_concurrent: Option<i64>,
    pub health: Health,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A provider as a request wants it (validated).
#[derive(Debug, Clone)]
pub struct ProviderDraft {
    pub name: String,
    pub enabled: bool,
    /// Where in the list (1 = first after the legacy configuration);
    /// `None`: at the end (new) or where it is (update).
    pub position: Option<i64>,
    pub settings: Settings,
    pub secret: PasswordChange,
    pub bounce_domain: Option<String>,
    pub max_per_minute: Option<i64>,
    pub max_concurrent: Option<i64>,
}

// ---- presets ---------------------------------------------------------------

/// Microsoft 365 (Exchange Online) SMTP AUTH with OAuth2 client credentials:
/// smtp.office365.com:587 with STARTTLS, the v2.0 token endpoint of the
/// tenant, the scope `https://outlook.office365.com/.default`.
pub fn microsoft365(tenant: &str) -> (String, u16, Security, String, String) {
    (
        "smtp.office365.com".into(),
        587,
        Security::StartTls,
        format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"),
        "https://outlook.office365.com/.default".into(),
    )
}

/// Google Workspace with a service account (JWT-bearer grant):
/// smtp.gmail.com:465 with implicit TLS (or 587 with STARTTLS when `port`
/// is 587), Google's token endpoint, the scope `https://mail.google.com/`.
pub fn google(port: u16) -> (String, u16, Security, String, String) {
    let (port, security) = if port == 587 { (587, Security::StartTls) } else { (465, Security::Tls) };
    (
        "smtp.gmail.com".into(),
        port,
        security,
        "https://oauth2.googleapis.com/token".into(),
        "https://mail.google.com/".into(),
    )
}

/// Fills an SMTP provider from a preset (`microsoft365` needs `tenant`):
/// host, port, security, auth `xoauth2`, grant, token URL and scope.
pub fn apply_preset(errors: &mut FieldErrors, preset: &str, tenant: Option<&str>, s: &mut SmtpProvider) {
    let filled = match preset {
        "microsoft365" => match tenant {
            Some(t)
                if !t.is_empty()
                    && t.len() <= 100
                    && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)) =>
            {
                microsoft365(t)
            }
            _ => {
                errors.add(
                    "smtp.tenant",
                    "tenant (the Microsoft Entra tenant id or domain) is required for the microsoft365 preset",
                );
                return;
            }
        },
        "google" => google(s.port),
        _ => {
            errors.add("smtp.preset", "preset must be one of microsoft365, google");
            return;
        }
    };
    let (host, port, security, token_url, scope) = filled;
    s.host = host;
    s.port = port;
    s.security = security_name(security).into();
    s.auth = SmtpAuth::Xoauth2;
    s.grant = if preset == "google" { OAuthGrant::JwtBearer } else { OAuthGrant::ClientCredentials };
    s.token_url = Some(token_url);
    s.scope = Some(scope);
}

// ---- validation ------------------------------------------------------------

/// An `https://` (or, for local test servers, `http://`) URL, ≤ 2048 chars.
pub fn parse_url(field: &str, label: &str, raw: &str) -> Result<String, FieldError> {
    let invalid = || FieldError::new(field, format!("{label} must be an http:// or https:// URL"));
    if raw.len() > 2048 || raw.chars().any(char::is_control) {
        return Err(invalid());
    }
    match url::Url::parse(raw) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => {
            Ok(raw.to_owned())
        }
        _ => Err(invalid()),
    }
}

/// The longest private key accepted (a 8192-bit RSA key in PEM is ~6.5 KB).
pub const MAX_PRIVATE_KEY: usize = 16 * 1024;

/// Signs `claims` as an RS256 JWT (RFC 7515 compact form) with a PEM RSA
/// private key (PKCS#8, as in a Google service-account JSON's
/// `private_key`, or PKCS#1). The key is read and the signature made by
/// rustls's ring provider (the TLS stack's own RSA signer, 2048 to 8192
/// bits); what is left here is the compact form's three base64url parts.
/// Not the `jsonwebtoken` crate: 9.x has GHSA-h395-gr6q-cpjc, and 10.x
/// signs with aws-lc-rs (a C build) or the `rsa` crate (RUSTSEC-2023-0071).
/// The error names no part of the key.
pub fn sign_rs256<T: Serialize>(pem: &str, claims: &T) -> Result<String, &'static str> {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    const NOT_RSA: &str = "the private key is not an RSA private key in PEM form (-----BEGIN PRIVATE KEY-----)";
    const CANNOT_SIGN: &str = "the private key cannot sign: it must be an RSA private key of 2048 to 8192 bits";
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| NOT_RSA)?;
    if matches!(der, PrivateKeyDer::Sec1(_)) {
        return Err(NOT_RSA);
    }
    let key = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|_| CANNOT_SIGN)?;
    let signer = key.choose_scheme(&[rustls::SignatureScheme::RSA_PKCS1_SHA256]).ok_or(NOT_RSA)?;
    let claims = serde_json::to_vec(claims).map_err(|_| "the token's claims could not be written")?;
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#), URL_SAFE_NO_PAD.encode(claims));
    let signature = signer.sign(input.as_bytes()).map_err(|_| CANNOT_SIGN)?;
    Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// A service account's private key for the JWT-bearer grant: a PEM RSA
/// private key that can sign (tried once, so a bad key is refused when it
/// is saved, not when mail is sent). The error names no part of the key.
pub fn parse_private_key(field: &str, raw: &str) -> Result<String, FieldError> {
    if raw.len() > MAX_PRIVATE_KEY {
        return Err(FieldError::new(field, format!("privateKey must be at most {MAX_PRIVATE_KEY} bytes")));
    }
    // JSON strings carry the PEM's line breaks as `\n`; one pasted with the
    // escapes left in is read the same.
    let pem = if raw.contains("\\n") && !raw.contains('\n') { raw.replace("\\n", "\n") } else { raw.to_owned() };
    sign_rs256(&pem, &json!({ "probe": true })).map_err(|why| FieldError::new(field, why))?;
    Ok(pem)
}

fn opt_address(errors: &mut FieldErrors, field: &str, label: &str, v: &Option<String>) -> Option<String> {
    v.as_deref().filter(|s| !s.is_empty()).and_then(|s| errors.take(parse_address(field, label, s)))
}

fn opt_text(errors: &mut FieldErrors, field: &str, label: &str, v: &Option<String>, max: usize) -> Option<String> {
    v.as_deref().filter(|s| !s.is_empty()).and_then(|s| errors.take(parse_text(field, label, s, max)))
}

/// Validates and normalises `settings`, recording every bad field.
pub fn validate(errors: &mut FieldErrors, settings: Settings) -> Settings {
    match settings {
        Settings::Smtp(s) => {
            let host = errors.take(parse_host("smtp.host", "host", &s.host)).unwrap_or_default();
            if security_from(&s.security) == Security::Unrecognised {
                errors.add("smtp.security", "security must be one of plain, starttls, tls");
            }
            let username = opt_text(errors, "smtp.username", "username", &s.username, 255);
            let (token_url, client_id, client_email, subject, scope) = match s.auth {
                SmtpAuth::Password => (None, None, None, None, None),
                SmtpAuth::Xoauth2 => {
                    let token_url = match s.token_url.as_deref().filter(|u| !u.is_empty()) {
                        Some(u) => errors.take(parse_url("smtp.tokenUrl", "tokenUrl", u)),
                        None => {
                            errors.add("smtp.tokenUrl", "tokenUrl is required for xoauth2");
                            None
                        }
                    };
                    if username.is_none() {
                        errors.add("smtp.username", "username (the mailbox to send as) is required for xoauth2");
                    }
                    let scope = opt_text(errors, "smtp.scope", "scope", &s.scope, 1024);
                    match s.grant {
                        OAuthGrant::ClientCredentials => {
                            let client_id = match s.client_id.as_deref().filter(|c| !c.is_empty()) {
                                Some(c) => errors.take(parse_text("smtp.clientId", "clientId", c, 255)),
                                None => {
                                    errors.add("smtp.clientId", "clientId is required for xoauth2");
                                    None
                                }
                            };
                            for (field, v) in [("smtp.clientEmail", &s.client_email), ("smtp.subject", &s.subject)] {
                                if v.as_deref().is_some_and(|v| !v.is_empty()) {
                                    errors.add(field, "this field belongs to grant jwt_bearer");
                                }
                            }
                            (token_url, client_id, None, None, scope)
                        }
                        OAuthGrant::JwtBearer => {
                            if s.client_id.as_deref().is_some_and(|c| !c.is_empty()) {
                                errors.add("smtp.clientId", "clientId belongs to grant client_credentials");
                            }
                            let client_email = match s.client_email.as_deref().filter(|c| !c.is_empty()) {
                                Some(c) => errors.take(parse_address("smtp.clientEmail", "clientEmail", c)),
                                None => {
                                    errors.add(
                                        "smtp.clientEmail",
                                        "clientEmail (the service account's client_email) is required for grant jwt_bearer",
                                    );
                                    None
                                }
                            };
                            let subject = opt_address(errors, "smtp.subject", "subject", &s.subject);
                            if scope.is_none() {
                                errors.add(
                                    "smtp.scope",
                                    "scope is required for grant jwt_bearer (Google: https://mail.google.com/)",
                                );
                            }
                            (token_url, None, client_email, subject, scope)
                        }
                    }
                }
            };
            Settings::Smtp(SmtpProvider {
                host,
                port: s.port,
                security: s.security,
                accept_invalid_certs: s.accept_invalid_certs,
                username,
                auth: s.auth,
                grant: if s.auth == SmtpAuth::Xoauth2 { s.grant } else { OAuthGrant::ClientCredentials },
                token_url,
                client_id,
                client_email,
                subject,
                scope,
                from_email: opt_address(errors, "smtp.fromEmail", "fromEmail", &s.from_email),
                from_name: opt_text(errors, "smtp.fromName", "fromName", &s.from_name, 255),
                reply_to: opt_address(errors, "smtp.replyTo", "replyTo", &s.reply_to),
            })
        }
        Settings::Ses(s) => {
            let region_ok = !s.region.is_empty()
                && s.region.len() <= 32
                && s.region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !region_ok {
                errors.add("ses.region", "region must be an AWS region name such as eu-west-1");
            }
            let key_ok = !s.access_key_id.is_empty()
                && s.access_key_id.len() <= 128
                && s.access_key_id.bytes().all(|b| b.is_ascii_alphanumeric());
            if !key_ok {
                errors.add("ses.accessKeyId", "accessKeyId must be 1–128 letters and digits");
            }
            let endpoint = s
                .endpoint
                .as_deref()
                .filter(|e| !e.is_empty())
                .and_then(|e| errors.take(parse_url("ses.endpoint", "endpoint", e)));
            let from_email = match s.from_email.as_deref().filter(|f| !f.is_empty()) {
                Some(f) => errors.take(parse_address("ses.fromEmail", "fromEmail", f)),
                None => {
                    errors.add("ses.fromEmail", "fromEmail is required for SES (a verified identity)");
                    None
                }
            };
            Settings::Ses(SesProvider {
                region: s.region,
                access_key_id: s.access_key_id,
                endpoint,
                from_email,
                from_name: opt_text(errors, "ses.fromName", "fromName", &s.from_name, 255),
                reply_to: opt_address(errors, "ses.replyTo", "replyTo", &s.reply_to),
            })
        }
        Settings::Http(s) => Settings::Http(HttpProvider {
            url: errors.take(parse_url("http.url", "url", &s.url)).unwrap_or_default(),
            from_email: opt_address(errors, "http.fromEmail", "fromEmail", &s.from_email),
            from_name: opt_text(errors, "http.fromName", "fromName", &s.from_name, 255),
        }),
    }
}

/// Name, limits and bounce domain of a draft.
pub fn validate_common(
    errors: &mut FieldErrors,
    name: &str,
    position: Option<i64>,
    max_per_minute: Option<i64>,
    max_concurrent: Option<i64>,
    bounce_domain: Option<&str>,
) -> Option<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 100 || trimmed.chars().any(char::is_control) {
        errors.add("name", "name must be 1–100 characters without line breaks");
    }
    if position.is_some_and(|p| !(1..=1000).contains(&p)) {
        errors.add("position", "position must be between 1 and 1000");
    }
    if max_per_minute.is_some_and(|m| !(1..=1_000_000).contains(&m)) {
        errors.add("maxPerMinute", "maxPerMinute must be between 1 and 1000000");
    }
    if max_concurrent.is_some_and(|m| !(1..=10_000).contains(&m)) {
        errors.add("maxConcurrent", "maxConcurrent must be between 1 and 10000");
    }
    bounce_domain.filter(|d| !d.is_empty()).and_then(|d| errors.take(parse_host("bounceDomain", "bounceDomain", d)))
}

// ---- secrets ---------------------------------------------------------------

fn secret_aad(scope_id: &str, id: &str) -> Vec<u8> {
    format!("herald:provider-secret:v1:{scope_id}:{id}").into_bytes()
}

/// Whether a secret stored for `old` may be used for `new` (an update
/// without the secret): only where it goes to exactly the same place over
/// no weaker transport (for SMTP [`smtp::may_lend`], plus the same
/// authentication, token endpoint and client; for SES the same region,
/// key id and endpoint; for HTTP the same URL).
pub fn may_keep_secret(old: &Settings, new: &Settings) -> bool {
    match (old, new) {
        (Settings::Smtp(a), Settings::Smtp(b)) => {
            let used = |s: &SmtpProvider| -> (String, u16, Security, bool, Option<String>) {
                (s.host.clone(), s.port, security_from(&s.security), s.accept_invalid_certs, s.username.clone())
            };
            let (ah, ap, asec, ai, au) = used(a);
            let (bh, bp, bsec, bi, bu) = used(b);
            let lend = smtp::may_lend(
                &SecretUse { host: &ah, port: ap, security: asec, accept_invalid_certs: ai, username: au.as_deref() },
                &SecretUse { host: &bh, port: bp, security: bsec, accept_invalid_certs: bi, username: bu.as_deref() },
            );
            lend && a.auth == b.auth
                && a.grant == b.grant
                && a.token_url == b.token_url
                && a.client_id == b.client_id
                && a.client_email == b.client_email
                && a.subject == b.subject
        }
        (Settings::Ses(a), Settings::Ses(b)) => {
            a.region == b.region && a.access_key_id == b.access_key_id && a.endpoint == b.endpoint
        }
        (Settings::Http(a), Settings::Http(b)) => a.url == b.url,
        _ => false,
    }
}

fn decrypt_secret(cipher: &Cipher, row: &ProviderRow) -> Result<Option<Secret>, Error> {
    let Some(sealed) = &row.secret else { return Ok(None) };
    let plain = cipher
        .decrypt(sealed, &secret_aad(&row.scope_id, &row.id))
        .map_err(|e| anyhow::Error::new(e).context(format!("provider {}", row.id)))?;
    let text = String::from_utf8(plain).map_err(|_| anyhow::anyhow!("stored provider secret is not UTF-8"))?;
    Ok(Some(Secret::new(text)))
}

// ---- reading ---------------------------------------------------------------

fn parse_settings(row: &ProviderRow) -> Result<Settings, Error> {
    serde_json::from_str(&row.settings)
        .map_err(|e| anyhow::anyhow!("stored settings of provider {} unreadable: {e}", row.id).into())
}

fn from_row(row: &ProviderRow, health: Health) -> Result<Provider, Error> {
    Ok(Provider {
        id: row.id.clone(),
        source: Source::Providers,
        position: row.position,
        name: row.name.clone(),
        enabled: row.enabled,
        settings: parse_settings(row)?,
        secret_set: row.secret.is_some(),
        bounce_domain: row.bounce_domain.clone(),
        max_per_minute: row.max_per_minute,
        max_concurrent: row.max_concurrent,
        health,
        created_at: Millis(row.created_at),
        updated_at: Millis(row.updated_at),
    })
}

fn legacy_settings(s: &SmtpSettings) -> Settings {
    Settings::Smtp(SmtpProvider {
        host: s.host.clone(),
        port: s.effective_port(),
        security: security_name(s.security).into(),
        accept_invalid_certs: s.accept_invalid_certs,
        username: s.username.clone(),
        auth: SmtpAuth::Password,
        grant: OAuthGrant::ClientCredentials,
        token_url: None,
        client_id: None,
        client_email: None,
        subject: None,
        scope: None,
        from_email: s.from_email.clone(),
        from_name: s.from_name.clone(),
        reply_to: s.reply_to.clone(),
    })
}

fn legacy(s: &SmtpSettings, source: Source, health: Health) -> Provider {
    Provider {
        id: s.id.clone(),
        source,
        position: 0,
        name: source.as_str().into(),
        enabled: s.enabled,
        settings: legacy_settings(s),
        secret_set: s.password_set,
        bounce_domain: None,
        max_per_minute: None,
        max_concurrent: None,
        health,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

async fn scope_id(store: &Store, scope: &Scope) -> Result<String, Error> {
    Ok(match scope {
        Scope::Org(org) => org.as_str().to_owned(),
        Scope::Instance => store.instance_id().await?,
    })
}

/// The scope's providers in order: its legacy configuration (if any) first.
pub async fn list(store: &Store, scope: &Scope) -> Result<Vec<Provider>, Error> {
    let id = scope_id(store, scope).await?;
    let health = store.provider_health(&id).await?;
    let health_of = |pid: &str| health.iter().find(|h| h.provider_id == pid).map(Health::from).unwrap_or_default();
    let mut out = Vec::new();
    if let Some(row) = store.smtp_row(&id).await? {
        let s = SmtpSettings::from(&row);
        let source = if matches!(scope, Scope::Org(_)) { Source::NotificationConfig } else { Source::EmailSettings };
        out.push(legacy(&s, source, health_of(&s.id)));
    }
    for row in store.provider_rows(&id).await? {
        out.push(from_row(&row, health_of(&row.id))?);
    }
    Ok(out)
}

/// One provider of the scope; another scope's id is `NotFound` like an unknown one.
pub async fn get(store: &Store, scope: &Scope, id: &str) -> Result<Provider, Error> {
    list(store, scope).await?.into_iter().find(|p| p.id == id).ok_or(Error::NotFound(Resource::Provider))
}

// ---- changing --------------------------------------------------------------

fn audit(
    scope: &Scope,
    actor: &Actor,
    now: Millis,
    action: &'static str,
    id: &str,
    detail: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        scope: scope.clone(),
        actor: actor.clone(),
        at: now,
        action,
        resource_type: "provider",
        resource_id: id.to_owned(),
        detail,
    }
}

fn detail(row: &ProviderRow, secret_changed: bool) -> serde_json::Value {
    json!({
        "name": row.name,
        "kind": row.kind,
        "position": row.position,
        "enabled": row.enabled,
        "secretSet": row.secret.is_some(),
        "secretChanged": secret_changed,
    })
}

fn check_secret(errors: &mut FieldErrors, settings: &Settings, secret: &Option<Vec<u8>>) {
    if settings.needs_secret() && secret.is_none() {
        let field = match settings {
            Settings::Smtp(s) if s.grant == OAuthGrant::JwtBearer => "smtp.privateKey",
            Settings::Smtp(_) => "smtp.clientSecret",
            Settings::Ses(_) => "ses.secretAccessKey",
            Settings::Http(_) => "http.secret",
        };
        errors.add(field, "this secret is required (it is write-only: send it again after changing where it goes)");
    }
}

/// Adds a provider to the scope.
pub async fn create(
    store: &Store,
    cipher: &Cipher,
    actor: &Actor,
    scope: &Scope,
    draft: ProviderDraft,
    now: Millis,
) -> Result<Provider, Error> {
    let sid = scope_id(store, scope).await?;
    if store.provider_rows(&sid).await?.len() >= MAX_PROVIDERS {
        return Err(Error::Precondition("a scope has at most 20 providers"));
    }
    let id = uuid::Uuid::now_v7().to_string();
    let secret = match &draft.secret {
        PasswordChange::Set(s) => Some(cipher.encrypt(s.expose().as_bytes(), &secret_aad(&sid, &id))?),
        PasswordChange::Keep | PasswordChange::Clear => None,
    };
    let mut errors = FieldErrors::new();
    check_secret(&mut errors, &draft.settings, &secret);
    errors.finish()?;
    let row = ProviderRow {
        id: id.clone(),
        scope_id: sid,
        position: draft.position.unwrap_or(i64::MAX),
        name: draft.name.trim().to_owned(),
        kind: draft.settings.kind().to_owned(),
        enabled: draft.enabled,
        settings: serde_json::to_string(&draft.settings).map_err(anyhow::Error::from)?,
        secret,
        bounce_domain: draft.bounce_domain,
        max_per_minute: draft.max_per_minute,
        max_concurrent: draft.max_concurrent,
        version: 1,
        created_at: now.0,
        updated_at: now.0,
    };
    let entry = audit(scope, actor, now, "provider.created", &id, detail(&row, row.secret.is_some()));
    store.save_provider(row, None, entry).await?;
    get(store, scope, &id).await
}

/// The legacy configurations are changed through their own APIs.
fn legacy_refusal(p: &Provider) -> Result<(), Error> {
    match p.source {
        Source::Providers => Ok(()),
        Source::NotificationConfig => Err(Error::Precondition(
            "this provider is the notification-config: change it at /api/v1/notification-config",
        )),
        Source::EmailSettings => {
            Err(Error::Precondition("this provider is the email-settings: change it at /email-settings/edit"))
        }
    }
}

/// Replaces a provider's settings; the secret follows [`may_keep_secret`].
pub async fn replace(
    store: &Store,
    cipher: &Cipher,
    actor: &Actor,
    scope: &Scope,
    id: &str,
    draft: ProviderDraft,
    now: Millis,
) -> Result<Provider, Error> {
    let current = get(store, scope, id).await?;
    legacy_refusal(&current)?;
    let sid = scope_id(store, scope).await?;
    let row =
        store.provider_rows(&sid).await?.into_iter().find(|r| r.id == id).ok_or(Error::NotFound(Resource::Provider))?;
    let secret = match &draft.secret {
        PasswordChange::Set(s) => Some(cipher.encrypt(s.expose().as_bytes(), &secret_aad(&sid, id))?),
        PasswordChange::Clear => None,
        PasswordChange::Keep => {
            if may_keep_secret(&current.settings, &draft.settings) {
                row.secret.clone()
            } else {
                None
            }
        }
    };
    let mut errors = FieldErrors::new();
    check_secret(&mut errors, &draft.settings, &secret);
    errors.finish()?;
    let changed = secret != row.secret;
    let new = ProviderRow {
        id: id.to_owned(),
        scope_id: sid,
        position: draft.position.unwrap_or(row.position),
        name: draft.name.trim().to_owned(),
        kind: draft.settings.kind().to_owned(),
        enabled: draft.enabled,
        settings: serde_json::to_string(&draft.settings).map_err(anyhow::Error::from)?,
        secret,
        bounce_domain: draft.bounce_domain,
        max_per_minute: draft.max_per_minute,
        max_concurrent: draft.max_concurrent,
        version: row.version + 1,
        created_at: row.created_at,
        updated_at: now.0,
    };
    let entry = audit(scope, actor, now, "provider.replaced", id, detail(&new, changed));
    if !store.save_provider(new, Some(row.version), entry).await? {
        return Err(Error::Conflict(Resource::Provider));
    }
    get(store, scope, id).await
}

/// Removes a provider.
pub async fn delete(store: &Store, actor: &Actor, scope: &Scope, id: &str, now: Millis) -> Result<(), Error> {
    let current = get(store, scope, id).await?;
    legacy_refusal(&current)?;
    let sid = scope_id(store, scope).await?;
    let entry = audit(scope, actor, now, "provider.deleted", id, json!({ "name": current.name }));
    if !store.delete_provider(&sid, id, entry).await? {
        return Err(Error::NotFound(Resource::Provider));
    }
    Ok(())
}

// ---- routing: which provider sends -------------------------------------------

/// A provider a mail can be sent through, secret decrypted.
#[derive(Debug, Clone)]
pub struct Route {
    pub id: String,
    pub name: String,
    pub scope: Scope,
    pub version: i64,
    pub settings: Settings,
    pub secret: Option<Secret>,
    pub max_per_minute: Option<i64>,
    /// At most this many sends in flight through it, across all nodes.
    pub max_concurrent: Option<i64>,
    pub health: Health,
    /// The bounce domain: mail through this route gets its notification's
    /// VERP address as envelope sender (`domain::bounces::verp_address`).
    pub bounce_domain: Option<String>,
}

impl Route {
    /// The SMTP server of an SMTP route (password auth: with the password).
    pub fn smtp_server(&self) -> Option<SmtpServer> {
        self.settings.smtp_server(self.scope.clone(), &self.id, self.version, self.secret.as_ref())
    }
}

async fn scope_routes(
    store: &Store,
    cipher: &Cipher,
    scope: Scope,
    sid: &str,
    out: &mut Vec<Route>,
) -> Result<(), Error> {
    // Read together: one round trip's wait, not three, on a busy database.
    let (health, smtp, rows) =
        tokio::try_join!(store.provider_health(sid), store.smtp_row(sid), store.provider_rows(sid))?;
    let health_of = |pid: &str| health.iter().find(|h| h.provider_id == pid).map(Health::from).unwrap_or_default();
    if let Some(row) = smtp
        && row.enabled
    {
        let s = SmtpSettings::from(&row);
        let server = smtp_server_of(cipher, &row, scope.clone())?;
        out.push(Route {
            id: s.id.clone(),
            name: if matches!(scope, Scope::Org(_)) { "notification-config" } else { "email-settings" }.into(),
            scope: scope.clone(),
            version: s.version,
            settings: legacy_settings(&s),
            secret: server.password,
            max_per_minute: None,
            max_concurrent: None,
            health: health_of(&s.id),
            bounce_domain: None,
        });
    }
    for row in rows {
        if !row.enabled {
            continue;
        }
        out.push(Route {
            id: row.id.clone(),
            name: row.name.clone(),
            scope: scope.clone(),
            version: row.version,
            settings: parse_settings(&row)?,
            secret: decrypt_secret(cipher, &row)?,
            max_per_minute: row.max_per_minute,
            max_concurrent: row.max_concurrent,
            health: health_of(&row.id),
            bounce_domain: row.bounce_domain.clone().filter(|d| !d.is_empty()),
        });
    }
    Ok(())
}

fn smtp_server_of(cipher: &Cipher, row: &crate::store::SmtpRow, scope: Scope) -> Result<SmtpServer, Error> {
    // The legacy configurations decrypt exactly as the SMTP module does.
    smtp::server_from_row(cipher, row, scope)
}

/// The providers `org`'s mail tries, in order: the org's (its
/// notification-config first), then the instance's (its email-settings
/// first). Disabled ones are left out. Empty: the file transport.
pub async fn routes(store: &Store, cipher: &Cipher, org: &OrgId) -> Result<Vec<Route>, Error> {
    let instance = store.instance_id().await?;
    // Both scopes read at once (a send's first step: its wait is the
    // mail's latency).
    let (mut out, mut theirs) = (Vec::new(), Vec::new());
    tokio::try_join!(
        scope_routes(store, cipher, Scope::Org(org.clone()), org.as_str(), &mut out),
        scope_routes(store, cipher, Scope::Instance, &instance, &mut theirs),
    )?;
    out.append(&mut theirs);
    Ok(out)
}

/// The routes of one scope only (a test send of one provider).
pub async fn route(store: &Store, cipher: &Cipher, scope: &Scope, id: &str) -> Result<Route, Error> {
    let sid = scope_id(store, scope).await?;
    let mut out = Vec::new();
    scope_routes(store, cipher, scope.clone(), &sid, &mut out).await?;
    if let Some(r) = out.into_iter().find(|r| r.id == id) {
        return Ok(r);
    }
    // A disabled provider can still be tested.
    let p = get(store, scope, id).await?;
    let row = store.provider_rows(&sid).await?.into_iter().find(|r| r.id == p.id);
    let secret = match &row {
        Some(row) => decrypt_secret(cipher, row)?,
        None => match store.smtp_row(&sid).await? {
            Some(r) => smtp_server_of(cipher, &r, scope.clone())?.password,
            None => None,
        },
    };
    Ok(Route {
        id: p.id,
        name: p.name,
        scope: scope.clone(),
        version: row.as_ref().map_or(0, |r| r.version),
        settings: p.settings,
        secret,
        max_per_minute: p.max_per_minute,
        max_concurrent: p.max_concurrent,
        health: p.health,
        bounce_domain: p.bounce_domain.filter(|d| !d.is_empty()),
    })
}

/// Which route an attempt uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// This one (index into the routes); `probe` when its cool-down is
    /// over and this attempt tests whether it works again.
    Use { index: usize, probe: bool },
    /// Every route's circuit is open: wait until the first closes (the
    /// attempt is not counted).
    Wait(Millis),
}

/// The first route from `start` on (wrapping) whose circuit is not open,
/// given each route's `open_until`.
pub fn pick(open_until: &[Option<Millis>], start: usize, now: Millis) -> Pick {
    let n = open_until.len();
    let mut earliest: Option<Millis> = None;
    for k in 0..n {
        let i = (start + k) % n;
        match open_until[i] {
            None => return Pick::Use { index: i, probe: false },
            Some(t) if t <= now => return Pick::Use { index: i, probe: true },
            Some(t) => earliest = Some(earliest.map_or(t, |e| e.min(t))),
        }
    }
    Pick::Wait(earliest.unwrap_or(now))
}

/// Where the attempt after one made by route `previous` starts: the next
/// route when `previous` failed (failover), else the first.
pub fn start_after(routes: &[Route], previous: Option<&str>) -> usize {
    match previous.and_then(|p| routes.iter().position(|r| r.id == p)) {
        Some(i) if !routes.is_empty() => (i + 1) % routes.len(),
        _ => 0,
    }
}

/// What a failed attempt means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The provider's fault or a passing condition (network, TLS, 4xx,
    /// throttling, authentication, unusable settings): counts against the
    /// provider's circuit, and the next attempt goes to the next provider.
    Provider,
    /// The recipient was refused for good (550 and other 5xx): dead, no failover.
    Recipient,
}

/// How the next attempt after a provider failure is timed: at once on the
/// next provider while the list has not been walked round, else after the
/// retry policy's back-off (the caller's).
pub fn failover_now(routes: &[Route], failed: usize) -> bool {
    failed + 1 < routes.len()
}

/// The GCRA spacing of a provider's sends: `window / maxPerMinute`.
pub fn rate_interval_ms(max_per_minute: i64, window_ms: i64) -> i64 {
    (window_ms / max_per_minute.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: &str, open_until: Option<i64>) -> Route {
        Route {
            id: id.into(),
            name: id.into(),
            scope: Scope::Instance,
            version: 1,
            settings: Settings::Http(HttpProvider {
                url: "https://x.example".into(),
                from_email: None,
                from_name: None,
            }),
            secret: None,
            max_per_minute: None,
            max_concurrent: None,
            health: Health { open_until: open_until.map(Millis), ..Health::default() },
            bounce_domain: None,
        }
    }

    #[test]
    fn pick_skips_open_circuits_and_probes_after_the_cool_down() {
        let now = Millis(1000);
        let routes = [Some(Millis(2000)), None, Some(Millis(500))];
        assert_eq!(pick(&routes, 0, now), Pick::Use { index: 1, probe: false });
        assert_eq!(pick(&routes, 2, now), Pick::Use { index: 2, probe: true });
        let all_open = [Some(Millis(3000)), Some(Millis(2000))];
        assert_eq!(pick(&all_open, 0, now), Pick::Wait(Millis(2000)));
    }

    #[test]
    fn failover_moves_to_the_next_provider_and_wraps() {
        let routes = [route("a", None), route("b", None)];
        assert_eq!(start_after(&routes, None), 0);
        assert_eq!(start_after(&routes, Some("a")), 1);
        assert_eq!(start_after(&routes, Some("b")), 0);
        assert_eq!(start_after(&routes, Some("gone")), 0);
        assert!(failover_now(&routes, 0));
        assert!(!failover_now(&routes, 1));
    }

    #[test]
    fn secrets_stay_only_with_the_same_destination() {
        let smtp = |host: &str, client: &str| {
            Settings::Smtp(SmtpProvider {
                host: host.into(),
                port: 587,
                security: "starttls".into(),
                accept_invalid_certs: false,
                username: Some("u@example.com".into()),
                auth: SmtpAuth::Xoauth2,
                grant: OAuthGrant::ClientCredentials,
                token_url: Some("https://login.example/token".into()),
                client_id: Some(client.into()),
                client_email: None,
                subject: None,
                scope: None,
                from_email: None,
                from_name: None,
                reply_to: None,
            })
        };
        assert!(may_keep_secret(&smtp("a.example", "c"), &smtp("A.example", "c")));
        assert!(!may_keep_secret(&smtp("a.example", "c"), &smtp("b.example", "c")));
        assert!(!may_keep_secret(&smtp("a.example", "c"), &smtp("a.example", "d")));
        let jwt = |email: &str, subject: Option<&str>| {
            let Settings::Smtp(mut s) = smtp("a.example", "c") else { unreachable!() };
            (s.grant, s.client_id, s.client_email, s.subject) =
                (OAuthGrant::JwtBearer, None, Some(email.into()), subject.map(Into::into));
            Settings::Smtp(s)
        };
        assert!(may_keep_secret(&jwt("sa@p.iam.example", None), &jwt("sa@p.iam.example", None)));
        assert!(!may_keep_secret(&jwt("sa@p.iam.example", None), &jwt("other@p.iam.example", None)));
        assert!(!may_keep_secret(&jwt("sa@p.iam.example", None), &jwt("sa@p.iam.example", Some("x@y.example"))));
        assert!(!may_keep_secret(&smtp("a.example", "c"), &jwt("sa@p.iam.example", None)));
        let http = |url: &str| Settings::Http(HttpProvider { url: url.into(), from_email: None, from_name: None });
        assert!(may_keep_secret(&http("https://h.example/x"), &http("https://h.example/x")));
        assert!(!may_keep_secret(&http("https://h.example/x"), &http("https://evil.example/x")));
        assert!(!may_keep_secret(&http("https://h.example/x"), &smtp("h.example", "c")));
    }

    #[test]
    fn presets_fill_vendor_settings() {
        let mut errors = FieldErrors::new();
        let mut s = SmtpProvider {
            host: String::new(),
            port: 0,
            security: "plain".into(),
            accept_invalid_certs: false,
            username: Some("mailer@contoso.com".into()),
            auth: SmtpAuth::Password,
            grant: OAuthGrant::ClientCredentials,
            token_url: None,
            client_id: Some("id".into()),
            client_email: None,
            subject: None,
            scope: None,
            from_email: None,
            from_name: None,
            reply_to: None,
        };
        apply_preset(&mut errors, "microsoft365", Some("contoso.onmicrosoft.com"), &mut s);
        assert!(errors.finish().is_ok());
        assert_eq!((s.host.as_str(), s.port, s.security.as_str()), ("smtp.office365.com", 587, "starttls"));
        assert_eq!(
            s.token_url.as_deref(),
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token")
        );
        assert_eq!(s.scope.as_deref(), Some("https://outlook.office365.com/.default"));
        let mut errors = FieldErrors::new();
        s.port = 0;
        apply_preset(&mut errors, "google", None, &mut s);
        assert_eq!((s.host.as_str(), s.port, s.security.as_str()), ("smtp.gmail.com", 465, "tls"));
        assert_eq!(s.scope.as_deref(), Some("https://mail.google.com/"));
        assert_eq!(s.token_url.as_deref(), Some("https://oauth2.googleapis.com/token"));
        assert_eq!(s.grant, OAuthGrant::JwtBearer);
        s.port = 587;
        apply_preset(&mut errors, "google", None, &mut s);
        assert_eq!((s.port, s.security.as_str()), (587, "starttls"), "587 is STARTTLS");
        let mut errors = FieldErrors::new();
        apply_preset(&mut errors, "microsoft365", None, &mut s);
        assert!(errors.finish().is_err(), "a tenant is required");
    }

    #[test]
    fn a_private_key_must_be_an_rsa_key_that_signs() {
        for bad in ["", "garbage", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"] {
            let e = parse_private_key("smtp.privateKey", bad).unwrap_err();
            assert_eq!(e.field, "smtp.privateKey");
            assert!(!e.message.contains("AAAA"));
        }
        let huge = "A".repeat(MAX_PRIVATE_KEY + 1);
        assert!(parse_private_key("smtp.privateKey", &huge).unwrap_err().message.contains("at most"));
    }

    #[test]
    fn gcra_interval() {
        assert_eq!(rate_interval_ms(60, 60_000), 1000);
        assert_eq!(rate_interval_ms(30, 60_000), 2000);
        assert_eq!(rate_interval_ms(1_000_000, 60_000), 1);
    }
}
