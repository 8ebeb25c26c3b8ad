//! OAuth2 access tokens for XOAUTH2 SMTP (Microsoft 365, Google Workspace),
//! cached until shortly before expiry, by one of two grants:
//!
//! - **client credentials** (RFC 6749 §4.4, Microsoft 365): the `oauth2`
//!   crate's (request building, response and error parsing). The client
//!   authenticates with `client_id`/`client_secret` in the form body
//!   (`client_secret_post`).
//! - **JWT bearer** (RFC 7523, a Google Workspace service account with
//!   domain-wide delegation): an RS256 JWT signed with the service
//!   account's private key (rustls's ring signer), `iss` the service
//!   account, `sub` the mailbox, `aud` the token URL, valid for one hour,
//!   posted as `assertion` with
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`. The answer is
//!   read with the `oauth2` crate's standard token and error types, so both
//!   grants report alike.
//!
//! Both grants' requests go through [`OutboundHttp`], so the token endpoint
//! obeys the outbound host policy like the SMTP host does, and redirects are
//! not followed; both share [`TokenCache`].
//!
//! Tokens, secrets, private keys and assertions are [`Secret`]s (or never
//! kept): never logged, never in an error. The cache key includes a digest
//! of the client secret or private key, so an org that names another org's
//! token endpoint and client id (which are not secret) does not get that
//! org's cached token: only the same secret shares it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::http::{HttpFailure, OutboundHttp};
use crate::clock::{Clock, Millis};
use crate::secret::Secret;

/// A token is fetched again when it expires within this margin (or within
/// half its lifetime, for tokens that live less than two minutes).
pub const REFRESH_MARGIN_MS: i64 = 60_000;
/// The lifetime assumed when the server does not say (`expires_in` absent).
pub const DEFAULT_LIFETIME_MS: i64 = 300_000;
/// Token responses larger than this are refused (they are a few KiB).
const MAX_RESPONSE: usize = 64 * 1024;

/// How a client gets its token.
#[derive(Debug, Clone)]
pub enum Grant {
    /// RFC 6749 §4.4 (Microsoft 365).
    ClientCredentials { client_id: String, client_secret: Secret },
    /// RFC 7523 (Google Workspace): a JWT from `issuer` (the service
    /// account's email) for `subject` (the mailbox), signed RS256 with
    /// `private_key` (PEM, PKCS#8 or PKCS#1).
    JwtBearer { issuer: String, subject: String, private_key: Secret },
}

/// A client of the token endpoint.
#[derive(Debug, Clone)]
pub struct OAuth2Client {
    pub token_url: String,
    /// Space-separated scopes (`https://outlook.office365.com/.default`,
    /// `https://mail.google.com/`).
    pub scope: Option<String>,
    pub grant: Grant,
}

impl OAuth2Client {
    /// The client secret or private key.
    fn secret(&self) -> &Secret {
        match &self.grant {
            Grant::ClientCredentials { client_secret, .. } => client_secret,
            Grant::JwtBearer { private_key, .. } => private_key,
        }
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    token_url: String,
    scope: Option<String>,
    /// The client id, or the issuer and subject of a JWT-bearer grant (a
    /// token for one mailbox is not one for another).
    who: (bool, String, String),
    /// SHA-256 of the client secret or private key (see the module comment).
    secret_digest: [u8; 32],
}

impl Key {
    fn of(client: &OAuth2Client) -> Key {
        let who = match &client.grant {
            Grant::ClientCredentials { client_id, .. } => (false, client_id.clone(), String::new()),
            Grant::JwtBearer { issuer, subject, .. } => (true, issuer.clone(), subject.clone()),
        };
        Key {
            token_url: client.token_url.clone(),
            scope: client.scope.clone(),
            who,
            secret_digest: Sha256::digest(client.secret().expose().as_bytes()).into(),
        }
    }
}

struct Cached {
    token: Secret,
    /// When a caller fetches a new one instead.
    refresh_at: Millis,
}

/// Access tokens by client; one per process. Concurrent callers for the
/// same client wait for one token request instead of each making one.
#[derive(Default)]
pub struct TokenCache {
    clock: Clock,
    slots: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<Option<Cached>>>>>,
}

impl TokenCache {
    /// A cache that reads the time from `clock` (tests move it).
    pub fn with_clock(clock: Clock) -> TokenCache {
        TokenCache { clock, slots: Mutex::new(HashMap::new()) }
    }

    /// The slot of `key`. Making a new one first drops the slots nobody
    /// is using whose token is due for refresh (clients that were removed or
    /// whose secret changed), so the map does not grow without bound.
    fn slot(&self, key: Key) -> Arc<tokio::sync::Mutex<Option<Cached>>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(&key) {
            return slot.clone();
        }
        let now = self.clock.now();
        slots.retain(|_, slot| {
            Arc::strong_count(slot) > 1
                || slot.try_lock().is_ok_and(|cached| cached.as_ref().is_some_and(|c| c.refresh_at > now))
        });
        slots.entry(key).or_default().clone()
    }

    /// A cached access token, fetched by the client's grant when
    /// missing or within [`REFRESH_MARGIN_MS`] of expiry. Errors carry no
    /// secret, and a failure is not cached (the next call asks again).
    pub async fn token(&self, http: &OutboundHttp, client: &OAuth2Client) -> Result<Secret, HttpFailure> {
        let slot = self.slot(Key::of(client));
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref()
            && c.refresh_at > self.clock.now()
        {
            return Ok(c.token.clone());
        }
        *cached = None;
        let requested_at = self.clock.now();
        let (token, lifetime_ms) = match &client.grant {
            Grant::ClientCredentials { .. } => fetch(http, client).await?,
            Grant::JwtBearer { .. } => fetch_jwt_bearer(http, client, requested_at).await?,
        };
        let usable_ms = lifetime_ms - REFRESH_MARGIN_MS.min(lifetime_ms / 2);
        *cached = Some(Cached { token: token.clone(), refresh_at: Millis(requested_at.0.saturating_add(usable_ms)) });
        Ok(token)
    }

    /// Drops a token the server refused (SMTP 535 after XOAUTH2): the next
    /// [`TokenCache::token`] fetches a new one.
    pub fn forget(&self, client: &OAuth2Client) {
        let key = Key::of(client);
        let slot = self.slots.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
        // A caller holding the slot keeps its token; later callers get a new slot.
        drop(slot);
    }
}

/// Why the `oauth2` crate's HTTP call failed (it needs an `Error` type).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Transport(HttpFailure);

/// The `oauth2` crate's outcome of a token request.
type Outcome =
    Result<oauth2::basic::BasicTokenResponse, oauth2::RequestTokenError<Transport, oauth2::basic::BasicErrorResponse>>;

fn host_of(client: &OAuth2Client) -> String {
    url::Url::parse(&client.token_url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default()
}

/// One client-credentials request: the token and its lifetime in ms.
async fn fetch(http: &OutboundHttp, client: &OAuth2Client) -> Result<(Secret, i64), HttpFailure> {
    use oauth2::basic::BasicClient;
    use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenUrl};

    let Grant::ClientCredentials { client_id, client_secret } = &client.grant else {
        return Err(config_failure("not a client-credentials client".into()));
    };
    let token_url = TokenUrl::new(client.token_url.clone())
        .map_err(|_| config_failure("the OAuth2 token URL is not a valid URL".into()))?;
    let oauth = BasicClient::new(ClientId::new(client_id.clone()))
        .set_client_secret(ClientSecret::new(client_secret.expose().to_owned()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(token_url);
    let mut request = oauth.exchange_client_credentials();
    if let Some(scope) = &client.scope {
        request = request.add_scopes(scope.split_whitespace().map(|s| Scope::new(s.to_owned())));
    }
    // The closure's futures own a clone of the client (cheap: reqwest's is
    // an `Arc`): borrowing it leaves a higher-ranked `Send` bound that the
    // compiler cannot prove where the workers spawn the send
    // (rust-lang/rust#102211).
    let send = |req: oauth2::HttpRequest| {
        let http = http.clone();
        async move { call(&http, req).await.map_err(Transport) }
    };
    let outcome = request.request_async(&send).await;
    token_of(outcome, client, &[])
}

/// The lifetime of the JWT-bearer assertion (RFC 7523; Google allows at most
/// one hour).
const ASSERTION_LIFETIME_S: i64 = 3600;

/// Claims of the JWT-bearer assertion.
#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// The signed assertion of a JWT-bearer client at `now`, or why the key
/// cannot sign (the message names no part of the key).
fn assertion(client: &OAuth2Client, now: Millis) -> Result<Secret, String> {
    let Grant::JwtBearer { issuer, subject, private_key } = &client.grant else {
        return Err("not a JWT-bearer client".into());
    };
    let iat = now.0.div_euclid(1000);
    let claims = Claims {
        iss: issuer,
        sub: subject,
        scope: client.scope.as_deref(),
        aud: &client.token_url,
        iat,
        exp: iat + ASSERTION_LIFETIME_S,
    };
    crate::domain::providers::sign_rs256(private_key.expose(), &claims).map(Secret::new).map_err(str::to_owned)
}

/// One JWT-bearer request (RFC 7523 §2.1): the token and its lifetime in ms.
async fn fetch_jwt_bearer(
    http: &OutboundHttp,
    client: &OAuth2Client,
    now: Millis,
) -> Result<(Secret, i64), HttpFailure> {
    use oauth2::RequestTokenError;

    if url::Url::parse(&client.token_url).is_err() {
        return Err(config_failure("the OAuth2 token URL is not a valid URL".into()));
    }
    let assertion = assertion(client, now).map_err(config_failure)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
        .append_pair("assertion", assertion.expose())
        .finish();
    let mut request = oauth2::HttpRequest::new(body.into_bytes());
    *request.method_mut() = oauth2::http::Method::POST;
    *request.uri_mut() =
        client.token_url.parse().map_err(|_| config_failure("the OAuth2 token URL is not a valid URL".into()))?;
    let headers = request.headers_mut();
    headers.insert(
        oauth2::http::header::CONTENT_TYPE,
        oauth2::http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(oauth2::http::header::ACCEPT, oauth2::http::HeaderValue::from_static("application/json"));
    // Read as the `oauth2` crate reads its own grants' answers: 200 a token
    // response, anything else an RFC 6749 §5.2 error.
    fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body))
    }
    let outcome: Outcome = match call(http, request).await {
        Err(failure) => Err(RequestTokenError::Request(Transport(failure))),
        Ok(response) if response.status() == oauth2::http::StatusCode::OK => {
            parse(response.body()).map_err(|e| RequestTokenError::Parse(e, Vec::new()))
        }
        Ok(response) => match parse(response.body()) {
            Ok(error) => Err(RequestTokenError::ServerResponse(error)),
            Err(_) => Err(RequestTokenError::Other(format!("HTTP status {}", response.status().as_u16()))),
        },
    };
    token_of(outcome, client, &[assertion.expose()])
}

/// The token and its lifetime (ms) from a token request's outcome, or a
/// failure naming neither the client's secret nor any of `also_secret`.
fn token_of(outcome: Outcome, client: &OAuth2Client, also_secret: &[&str]) -> Result<(Secret, i64), HttpFailure> {
    use oauth2::{RequestTokenError, TokenResponse};

    let host = host_of(client);
    match outcome {
        Ok(response) => {
            let lifetime = response
                .expires_in()
                .map_or(DEFAULT_LIFETIME_MS, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4));
            Ok((Secret::new(response.access_token().secret().clone()), lifetime))
        }
        Err(RequestTokenError::Request(Transport(failure))) => Err(failure),
        Err(RequestTokenError::ServerResponse(error)) => {
            // The server's own words (`invalid_client: ...`), without the
            // secret should a server echo it.
            let mut text = error.error().to_string();
            if let Some(description) = error.error_description() {
                text.push_str(": ");
                text.push_str(description);
            }
            let text = redact(&text, client, also_secret);
            // A refused client or grant will not work by retrying; a server
            // error might.
            let permanent = !matches!(error.error(), oauth2::basic::BasicErrorResponseType::Extension(_));
            Err(HttpFailure {
                class: "auth",
                permanent,
                message: format!("the OAuth2 token endpoint {host} refused the client: {text}"),
            })
        }
        // The body is not shown: it may be a token in a shape we did not
        // expect.
        Err(RequestTokenError::Parse(..)) => Err(HttpFailure {
            class: "auth",
            permanent: false,
            message: format!("the OAuth2 token endpoint {host} answered with something that is not a token response"),
        }),
        Err(RequestTokenError::Other(text)) => Err(HttpFailure {
            class: "auth",
            permanent: false,
            message: format!("the OAuth2 token endpoint {host} failed: {}", redact(&text, client, also_secret)),
        }),
    }
}

/// Sends one of the `oauth2` crate's requests through [`OutboundHttp`].
async fn call(http: &OutboundHttp, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, HttpFailure> {
    let (parts, body) = request.into_parts();
    let mut builder = http.request(parts.method, &parts.uri.to_string())?;
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let mut response = http.send(builder.body(body)).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > MAX_RESPONSE {
                    return Err(HttpFailure {
                        class: "auth",
                        permanent: false,
                        message: "the OAuth2 token endpoint's answer is too large".into(),
                    });
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => {
                return Err(HttpFailure {
                    class: "network",
                    permanent: false,
                    message: "the connection to the OAuth2 token endpoint failed while reading its answer".into(),
                });
            }
        }
    }
    let mut out = oauth2::HttpResponse::new(bytes);
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

fn config_failure(message: String) -> HttpFailure {
    HttpFailure { class: "config", permanent: true, message }
}

/// `text` with the client secret (and `also`) replaced, and at most 300
/// characters without control characters.
fn redact(text: &str, client: &OAuth2Client, also: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in std::iter::once(client.secret().expose()).chain(also.iter().copied()) {
        if !secret.is_empty() {
            text = text.replace(secret, "***");
        }
    }
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(secret: &str) -> OAuth2Client {
        OAuth2Client {
            token_url: "https://login.example.com/token".into(),
            scope: None,
            grant: Grant::ClientCredentials { client_id: "app".into(), client_secret: Secret::new(secret) },
        }
    }

    #[test]
    fn another_secret_is_another_cache_entry() {
        assert!(Key::of(&client("a")) == Key::of(&client("a")));
        assert!(Key::of(&client("a")) != Key::of(&client("b")));
    }

    #[test]
    fn unused_stale_slots_are_dropped_when_a_new_one_is_made() {
        let clock = Clock::default();
        let cache = TokenCache::with_clock(clock.clone());
        let old = cache.slot(Key::of(&client("old")));
        let refresh_at = Millis(clock.now().0 + 1000);
        *old.try_lock().unwrap() = Some(Cached { token: Secret::new("t"), refresh_at });
        drop(old);
        let held = cache.slot(Key::of(&client("held")));
        assert_eq!(cache.slots.lock().unwrap().len(), 2, "a usable token is kept");
        clock.advance(std::time::Duration::from_secs(2));
        let _newer = cache.slot(Key::of(&client("newer")));
        let slots = cache.slots.lock().unwrap();
        assert!(!slots.contains_key(&Key::of(&client("old"))), "stale and unused: dropped");
        assert!(slots.contains_key(&Key::of(&client("held"))), "in use: kept");
        assert_eq!(slots.len(), 2);
        drop(held);
    }

    #[test]
    fn redaction_removes_the_secret() {
        let c = client("canary-secret-77");
        assert_eq!(redact("bad secret canary-secret-77\n", &c, &[]), "bad secret ***");
        assert_eq!(redact("x canary-secret-77 y jwt", &c, &["jwt"]), "x *** y ***");
        assert!(!format!("{c:?}").contains("canary"));
    }

    #[tokio::test]
    async fn a_malformed_token_url_is_a_config_error() {
        let http = OutboundHttp::new(&super::super::http::OutboundHttpConfig::default()).unwrap();
        let cache = TokenCache::default();
        let mut c = client("s");
        c.token_url = "not a url".into();
        let failure = cache.token(&http, &c).await.unwrap_err();
        assert_eq!((failure.class, failure.permanent), ("config", true));
    }
}
