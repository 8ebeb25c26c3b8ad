//! `/v1/providers…` (an org's) and `/admin/v1/providers…` (the instance's):
//! delivery providers, their order and health, and a test send through one
//! (issue 17). Translation only: `domain::providers` decides.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{Json, Path};
use crate::auth::{Admin, OrgScope};
use crate::delivery::mailer::MailParts;
use crate::delivery::providers::{Transports, test_via};
use crate::domain::audit::Scope;
use crate::domain::providers::{
    self, HttpProvider, OAuthGrant, Provider, ProviderDraft, SesProvider, Settings, SmtpAuth, SmtpProvider,
};
use crate::domain::smtp::{PasswordChange, parse_address, parse_password};
use crate::domain::{Actor, bounces};
use crate::error::{Error, FieldErrors};
use crate::state::AppState;

/// The kind of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Smtp,
    Ses,
    Http,
}

/// SMTP authentication: `password` or `xoauth2` (OAuth2 client credentials).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    Password,
    Xoauth2,
}

impl From<Auth> for SmtpAuth {
    fn from(a: Auth) -> Self {
        match a {
            Auth::Password => SmtpAuth::Password,
            Auth::Xoauth2 => SmtpAuth::Xoauth2,
        }
    }
}

impl From<SmtpAuth> for Auth {
    fn from(a: SmtpAuth) -> Self {
        match a {
            SmtpAuth::Password => Auth::Password,
            SmtpAuth::Xoauth2 => Auth::Xoauth2,
        }
    }
}

/// How an XOAUTH2 provider gets its token: `client_credentials` (the
/// default; Microsoft 365) or `jwt_bearer` (RFC 7523: a Google Workspace
/// service account with domain-wide delegation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    ClientCredentials,
    JwtBearer,
}

impl From<Grant> for OAuthGrant {
    fn from(g: Grant) -> Self {
        match g {
            Grant::ClientCredentials => OAuthGrant::ClientCredentials,
            Grant::JwtBearer => OAuthGrant::JwtBearer,
        }
    }
}

impl From<OAuthGrant> for Grant {
    fn from(g: OAuthGrant) -> Self {
        match g {
            OAuthGrant::ClientCredentials => Grant::ClientCredentials,
            OAuthGrant::JwtBearer => Grant::JwtBearer,
        }
    }
}

/// A Google service-account key file (the JSON Google Cloud downloads), as
/// a shortcut for `clientEmail`, `privateKey` and `tokenUrl` (fields given
/// alongside win); the rest of the file (`type`, `project_id`, …) is
/// ignored. Write-only: its key is stored like `privateKey`.
#[derive(Deserialize, ToSchema)]
pub struct ServiceAccountBody {
    client_email: Option<String>,
    /// PEM, PKCS#8.
    private_key: Option<String>,
    token_uri: Option<String>,
}

/// SMTP settings. With `preset` (`microsoft365` needs `tenant`, `google`)
/// host, port, security, auth `xoauth2`, grant, token URL and scope are
/// filled in.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmtpBody {
    /// `microsoft365` (client credentials) or `google` (a service account:
    /// grant `jwt_bearer`; port 465 with implicit TLS, or 587 with STARTTLS
    /// when `port` is 587).
    preset: Option<String>,
    /// The Microsoft Entra tenant (id or domain) of the `microsoft365` preset.
    tenant: Option<String>,
    host: Option<String>,
    /// 0 or absent: the security mode's default port.
    port: Option<u16>,
    /// `plain`, `starttls` (required; the default) or `tls` (implicit).
    security: Option<String>,
    accept_invalid_certs: Option<bool>,
    username: Option<String>,
    /// `password` (default) or `xoauth2`.
    auth: Option<Auth>,
    /// Write-only (password auth). Absent or null: kept where allowed; `""` clears.
    password: Option<String>,
    /// xoauth2: `client_credentials` (default) or `jwt_bearer`.
    grant: Option<Grant>,
    token_url: Option<String>,
    /// client_credentials.
    client_id: Option<String>,
    /// Write-only (client_credentials). Absent or null: kept where allowed; `""` clears.
    client_secret: Option<String>,
    /// jwt_bearer: the service account's `client_email` (the JWT's `iss`).
    client_email: Option<String>,
    /// jwt_bearer: the mailbox the token is for (the JWT's `sub`); default `username`.
    subject: Option<String>,
    /// Write-only (jwt_bearer): the service account's RSA private key, PEM
    /// (`-----BEGIN PRIVATE KEY-----`, as in the key file's `private_key`).
    /// Checked when saved. Absent or null: kept where allowed; `""` clears.
    private_key: Option<String>,
    /// jwt_bearer: the whole service-account key file instead of
    /// `clientEmail`, `privateKey` and `tokenUrl`.
    service_account: Option<ServiceAccountBody>,
    scope: Option<String>,
    from_email: Option<String>,
    from_name: Option<String>,
    reply_to: Option<String>,
}

/// Amazon SES (v2 API) settings.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SesBody {
    region: String,
    access_key_id: String,
    /// Write-only. Absent or null: kept where allowed; `""` clears.
    secret_access_key: Option<String>,
    /// For SES-compatible services (and emulators).
    endpoint: Option<String>,
    /// A verified identity.
    from_email: String,
    from_name: Option<String>,
    reply_to: Option<String>,
}

/// HTTP provider settings.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpBody {
    url: String,
    /// The signing secret (Standard Webhooks), write-only. Absent or null:
    /// kept where allowed; `""` clears.
    secret: Option<String>,
    from_email: Option<String>,
    from_name: Option<String>,
}

/// A provider to create or replace: `kind` and its settings object.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProviderBody {
    /// 1–100 characters.
    name: String,
    kind: Kind,
    /// Default true.
    enabled: Option<bool>,
    /// 1 = first after the scope's legacy configuration. Absent: last (new)
    /// or unchanged (replace).
    #[schema(minimum = 1, maximum = 1000)]
    position: Option<i64>,
    /// Sends per minute across every node; mail over it waits in the outbox.
    #[schema(minimum = 1, maximum = 1000000)]
    max_per_minute: Option<i64>,
    /// Sends in flight at once across every node; mail over it waits in the outbox.
    #[schema(minimum = 1, maximum = 10000)]
    max_concurrent: Option<i64>,
    /// The bounce domain: mail through this provider gets the envelope
    /// sender `bounces+<notification>.<tag>@<bounceDomain>` (VERP), see
    /// docs/feedback.md.
    bounce_domain: Option<String>,
    smtp: Option<SmtpBody>,
    ses: Option<SesBody>,
    http: Option<HttpBody>,
}

fn secret_field(errors: &mut FieldErrors, field: &str, raw: Option<String>) -> PasswordChange {
    match raw {
        Some(s) if !s.is_empty() => match errors.take(parse_password(field, field, &s)) {
            Some(_) => PasswordChange::from_field(Some(s)),
            None => PasswordChange::Keep,
        },
        other => PasswordChange::from_field(other),
    }
}

impl ProviderBody {
    pub(crate) fn into_draft(self) -> Result<ProviderDraft, Error> {
        let ProviderBody {
            name,
            kind,
            enabled,
            position,
            max_per_minute,
            max_concurrent,
            bounce_domain,
            smtp,
            ses,
            http,
        } = self;
        let mut errors = FieldErrors::new();
        let bounce_domain = providers::validate_common(
            &mut errors,
            &name,
            position,
            max_per_minute,
            max_concurrent,
            bounce_domain.as_deref(),
        );
        let present = [(Kind::Smtp, smtp.is_some()), (Kind::Ses, ses.is_some()), (Kind::Http, http.is_some())];
        for (k, there) in present {
            if there && k != kind {
                errors.add(format!("{k:?}").to_lowercase(), "only the settings object of `kind` may be sent");
            }
        }
        let (settings, secret) = match kind {
            Kind::Smtp => match smtp {
                None => {
                    errors.add("smtp", "smtp settings are required for kind smtp");
                    (None, PasswordChange::Keep)
                }
                Some(b) => {
                    let SmtpBody {
                        preset,
                        tenant,
                        host,
                        port,
                        security,
                        accept_invalid_certs,
                        username,
                        auth,
                        password,
                        grant,
                        mut token_url,
                        client_id,
                        client_secret,
                        mut client_email,
                        subject,
                        mut private_key,
                        service_account,
                        scope,
                        from_email,
                        from_name,
                        reply_to,
                    } = b;
                    if let Some(file) = service_account {
                        client_email = client_email.or(file.client_email);
                        private_key = private_key.or(file.private_key);
                        token_url = token_url.or(file.token_uri);
                    }
                    let mut s = SmtpProvider {
                        host: host.unwrap_or_default(),
                        port: port.unwrap_or(0),
                        security: security.map(|s| s.to_ascii_lowercase()).unwrap_or_else(|| "starttls".into()),
                        accept_invalid_certs: accept_invalid_certs.unwrap_or(false),
                        username,
                        auth: auth.map_or(SmtpAuth::Password, SmtpAuth::from),
                        grant: grant.map_or(OAuthGrant::ClientCredentials, OAuthGrant::from),
                        token_url,
                        client_id,
                        client_email,
                        subject,
                        scope,
                        from_email,
                        from_name,
                        reply_to,
                    };
                    if let Some(p) = preset.as_deref() {
                        providers::apply_preset(&mut errors, p, tenant.as_deref(), &mut s);
                    }
                    let jwt = s.auth == SmtpAuth::Xoauth2 && s.grant == OAuthGrant::JwtBearer;
                    let misplaced = [
                        ("smtp.password", password.is_some() && s.auth != SmtpAuth::Password, "auth password"),
                        (
                            "smtp.clientSecret",
                            client_secret.is_some() && (s.auth != SmtpAuth::Xoauth2 || jwt),
                            "auth xoauth2 with grant client_credentials",
                        ),
                        ("smtp.privateKey", private_key.is_some() && !jwt, "auth xoauth2 with grant jwt_bearer"),
                    ];
                    for (field, wrong, belongs) in misplaced {
                        if wrong {
                            errors.add(field, format!("{} belongs to {belongs}", &field[5..]));
                        }
                    }
                    let secret = match (s.auth, jwt) {
                        (SmtpAuth::Password, _) => secret_field(&mut errors, "smtp.password", password),
                        (SmtpAuth::Xoauth2, false) => secret_field(&mut errors, "smtp.clientSecret", client_secret),
                        (SmtpAuth::Xoauth2, true) => match private_key {
                            Some(k) if !k.is_empty() => {
                                match errors.take(providers::parse_private_key("smtp.privateKey", &k)) {
                                    Some(pem) => PasswordChange::from_field(Some(pem)),
                                    None => PasswordChange::Keep,
                                }
                            }
                            other => PasswordChange::from_field(other),
                        },
                    };
                    (Some(Settings::Smtp(s)), secret)
                }
            },
            Kind::Ses => match ses {
                None => {
                    errors.add("ses", "ses settings are required for kind ses");
                    (None, PasswordChange::Keep)
                }
                Some(b) => {
                    let SesBody { region, access_key_id, secret_access_key, endpoint, from_email, from_name, reply_to } =
                        b;
                    let secret = secret_field(&mut errors, "ses.secretAccessKey", secret_access_key);
                    let s = SesProvider {
                        region,
                        access_key_id,
                        endpoint,
                        from_email: Some(from_email),
                        from_name,
                        reply_to,
                    };
                    (Some(Settings::Ses(s)), secret)
                }
            },
            Kind::Http => match http {
                None => {
                    errors.add("http", "http settings are required for kind http");
                    (None, PasswordChange::Keep)
                }
                Some(b) => {
                    let HttpBody { url, secret, from_email, from_name } = b;
                    let secret = secret_field(&mut errors, "http.secret", secret);
                    (Some(Settings::Http(HttpProvider { url, from_email, from_name })), secret)
                }
            },
        };
        let settings = settings.map(|s| providers::validate(&mut errors, s));
        errors.finish()?;
        let settings = settings.ok_or_else(|| anyhow::anyhow!("validated settings missing"))?;
        Ok(ProviderDraft {
            name,
            enabled: enabled.unwrap_or(true),
            position,
            settings,
            secret,
            bounce_domain,
            max_per_minute,
            max_concurrent,
        })
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpView {
    host: String,
    port: u16,
    security: String,
    accept_invalid_certs: bool,
    username: Option<String>,
    auth: Auth,
    /// xoauth2 only.
    #[serde(skip_serializing_if = "Option::is_none")]
    grant: Option<Grant>,
    token_url: Option<String>,
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    scope: Option<String>,
    from_email: Option<String>,
    from_name: Option<String>,
    reply_to: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SesView {
    region: String,
    access_key_id: String,
    endpoint: Option<String>,
    from_email: Option<String>,
    from_name: Option<String>,
    reply_to: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpView {
    url: String,
    from_email: Option<String>,
    from_name: Option<String>,
}

/// The circuit breaker's state of a provider.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthView {
    /// `closed`, `open` (skipped until `openUntil`) or `half-open` (the next
    /// attempt probes it).
    state: String,
    consecutive_failures: i64,
    open_until: Option<String>,
    last_error: Option<String>,
    last_failure_at: Option<String>,
}

/// A provider: secrets only as `secretSet`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderView {
    id: String,
    /// `providers` (managed here), `notification-config` (the org's
    /// Leegality configuration) or `email-settings` (the instance's).
    source: String,
    /// 0 for the legacy configuration, then 1, 2, … in the order mail tries them.
    position: i64,
    name: String,
    kind: Kind,
    enabled: bool,
    secret_set: bool,
    bounce_domain: Option<String>,
    max_per_minute: Option<i64>,
    max_concurrent: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    smtp: Option<SmtpView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ses: Option<SesView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<HttpView>,
    health: HealthView,
    created_at: String,
    updated_at: String,
}

fn view(p: Provider, now: crate::clock::Millis) -> ProviderView {
    let Provider {
        id,
        source,
        position,
        name,
        enabled,
        settings,
        secret_set,
        bounce_domain,
        max_per_minute,
        max_concurrent,
        health,
        created_at,
        updated_at,
    } = p;
    let (kind, smtp, ses, http) = match settings {
        Settings::Smtp(s) => (
            Kind::Smtp,
            Some(SmtpView {
                host: s.host,
                port: s.port,
                security: s.security,
                accept_invalid_certs: s.accept_invalid_certs,
                username: s.username,
                auth: s.auth.into(),
                grant: (s.auth == SmtpAuth::Xoauth2).then(|| s.grant.into()),
                token_url: s.token_url,
                client_id: s.client_id,
                client_email: s.client_email,
                subject: s.subject,
                scope: s.scope,
                from_email: s.from_email,
                from_name: s.from_name,
                reply_to: s.reply_to,
            }),
            None,
            None,
        ),
        Settings::Ses(s) => (
            Kind::Ses,
            None,
            Some(SesView {
                region: s.region,
                access_key_id: s.access_key_id,
                endpoint: s.endpoint,
                from_email: s.from_email,
                from_name: s.from_name,
                reply_to: s.reply_to,
            }),
            None,
        ),
        Settings::Http(s) => {
            (Kind::Http, None, None, Some(HttpView { url: s.url, from_email: s.from_email, from_name: s.from_name }))
        }
    };
    ProviderView {
        id,
        source: source.as_str().into(),
        position,
        name,
        kind,
        enabled,
        secret_set,
        bounce_domain,
        max_per_minute,
        max_concurrent,
        smtp,
        ses,
        http,
        health: HealthView {
            state: health.state(now).into(),
            consecutive_failures: health.failures,
            open_until: health.open_until.map(|t| t.rfc3339()),
            last_error: health.last_error,
            last_failure_at: health.last_failure_at.map(|t| t.rfc3339()),
        },
        created_at: created_at.rfc3339(),
        updated_at: updated_at.rfc3339(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProviderList {
    /// In the order mail tries them.
    providers: Vec<ProviderView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderTestBody {
    /// Where the test message goes.
    to: String,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderTestStep {
    /// `token`, `policy`, `connect`, `tls`, `auth`, `sender`, `recipient`,
    /// `data` (SMTP) or `api` (SES, HTTP).
    step: String,
    ok: bool,
    /// The server's or API's reply, where there is one.
    reply: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ProviderTestResult {
    success: bool,
    message: String,
    /// Every step taken, in order; when `success` is false the last one failed.
    steps: Vec<ProviderTestStep>,
}

// ---- shared handlers --------------------------------------------------------

async fn list_in(app: &AppState, scope: &Scope) -> Result<axum::Json<ProviderList>, Error> {
    let now = app.clock().now();
    let all = providers::list(app.store(), scope).await?;
    Ok(axum::Json(ProviderList { providers: all.into_iter().map(|p| view(p, now)).collect() }))
}

async fn create_in(
    app: &AppState,
    actor: &Actor,
    scope: &Scope,
    body: ProviderBody,
) -> Result<(StatusCode, axum::Json<ProviderView>), Error> {
    let draft = body.into_draft()?;
    let now = app.clock().now();
    let p = providers::create(app.store(), app.cipher(), actor, scope, draft, now).await?;
    Ok((StatusCode::CREATED, axum::Json(view(p, now))))
}

async fn get_in(app: &AppState, scope: &Scope, id: &str) -> Result<axum::Json<ProviderView>, Error> {
    let p = providers::get(app.store(), scope, id).await?;
    Ok(axum::Json(view(p, app.clock().now())))
}

async fn replace_in(
    app: &AppState,
    actor: &Actor,
    scope: &Scope,
    id: &str,
    body: ProviderBody,
) -> Result<axum::Json<ProviderView>, Error> {
    // An unknown id is 404 before the body is judged.
    providers::get(app.store(), scope, id).await?;
    let draft = body.into_draft()?;
    let now = app.clock().now();
    let p = providers::replace(app.store(), app.cipher(), actor, scope, id, draft, now).await?;
    Ok(axum::Json(view(p, now)))
}

async fn test_in(
    app: &AppState,
    scope: &Scope,
    id: &str,
    body: ProviderTestBody,
) -> Result<axum::Json<ProviderTestResult>, Error> {
    let report = test_send(app, scope, id, &body.to).await?;
    Ok(axum::Json(ProviderTestResult {
        success: report.success,
        message: report.message,
        steps: report.steps.into_iter().map(|s| ProviderTestStep { step: s.step, ok: s.ok, reply: s.reply }).collect(),
    }))
}

/// Sends one test message to `to` through provider `id` of `scope` now
/// (the API's and the console's test send).
pub(crate) async fn test_send(
    app: &AppState,
    scope: &Scope,
    id: &str,
    to: &str,
) -> Result<crate::delivery::providers::ProviderTest, Error> {
    let route = providers::route(app.store(), app.cipher(), scope, id).await?;
    let mut errors = FieldErrors::new();
    let to = errors.take(parse_address("to", "to", to));
    errors.finish()?;
    let to = to.unwrap_or_default();
    let engine = app.engine();
    let message_id = uuid::Uuid::now_v7().to_string();
    // The test mail carries a VERP sender like real mail (its id is no
    // notification's, so a bounce of it is refused as unknown).
    let verp = route.bounce_domain.as_deref().map(|d| bounces::verp_address(app.cipher(), &message_id, d));
    let text = format!(
        "This is a test message from Herald through the provider {}.\n\nIf you can read it, this provider works.",
        route.name
    );
    let parts = MailParts {
        id: &message_id,
        to_addr: &to,
        to_name: None,
        subject: "Herald test message",
        text: &text,
        html: None,
        attachments: &[],
        envelope_from: verp.as_deref(),
    };
    let transports = Transports { mailer: &engine.mailer, http: &engine.http, tokens: &engine.oauth_tokens };
    Ok(test_via(&transports, &route, &parts).await)
}

// ---- org: /v1/providers --------------------------------------------------------

/// GET /v1/providers: the org's providers in the order mail tries them
/// (its notification-config first; the instance's come after all of them).
#[utoipa::path(get, path = "/v1/providers", tag = "native",
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = ProviderList), (status = 401), (status = 403)))]
pub async fn list_providers(scope: OrgScope, State(app): State<AppState>) -> Result<axum::Json<ProviderList>, Error> {
    list_in(&app, &Scope::Org(scope.org)).await
}

/// POST /v1/providers: adds a provider.
#[utoipa::path(post, path = "/v1/providers", tag = "native", request_body = ProviderBody,
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 201, body = ProviderView), (status = 400), (status = 401), (status = 403), (status = 415)))]
pub async fn create_provider(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<ProviderBody>,
) -> Result<(StatusCode, axum::Json<ProviderView>), Error> {
    create_in(&app, &scope.actor, &Scope::Org(scope.org), body).await
}

/// GET /v1/providers/{id}: one provider with its health.
#[utoipa::path(get, path = "/v1/providers/{id}", tag = "native", params(("id" = String, Path)),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = ProviderView), (status = 401), (status = 403), (status = 404)))]
pub async fn get_provider(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<ProviderView>, Error> {
    get_in(&app, &Scope::Org(scope.org), &id).await
}

/// PUT /v1/providers/{id}: replaces a provider (secrets: absent keeps where
/// allowed, `""` clears).
#[utoipa::path(put, path = "/v1/providers/{id}", tag = "native", params(("id" = String, Path)),
    request_body = ProviderBody,
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = ProviderView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 409), (status = 415)))]
pub async fn replace_provider(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ProviderBody>,
) -> Result<axum::Json<ProviderView>, Error> {
    replace_in(&app, &scope.actor, &Scope::Org(scope.org), &id, body).await
}

/// DELETE /v1/providers/{id}.
#[utoipa::path(delete, path = "/v1/providers/{id}", tag = "native", params(("id" = String, Path)),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn delete_provider(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    providers::delete(app.store(), &scope.actor, &Scope::Org(scope.org), &id, app.clock().now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /v1/providers/{id}/test: sends one mail through this provider now
/// (the code path of real delivery) and reports each step. A failed send
/// is still a 200 with `success: false`.
#[utoipa::path(post, path = "/v1/providers/{id}/test", tag = "native", params(("id" = String, Path)),
    request_body = ProviderTestBody,
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = ProviderTestResult), (status = 400), (status = 401), (status = 403),
        (status = 404), (status = 415)))]
pub async fn test_provider(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ProviderTestBody>,
) -> Result<axum::Json<ProviderTestResult>, Error> {
    test_in(&app, &Scope::Org(scope.org), &id, body).await
}

// ---- instance: /admin/v1/providers ---------------------------------------------

/// GET /admin/v1/providers: the instance's providers (its email-settings first).
#[utoipa::path(get, path = "/admin/v1/providers", tag = "native", security(("bearer" = [])),
    responses((status = 200, body = ProviderList), (status = 401), (status = 403)))]
pub async fn list_instance_providers(_: Admin, State(app): State<AppState>) -> Result<axum::Json<ProviderList>, Error> {
    list_in(&app, &Scope::Instance).await
}

/// POST /admin/v1/providers.
#[utoipa::path(post, path = "/admin/v1/providers", tag = "native", request_body = ProviderBody,
    security(("bearer" = [])),
    responses((status = 201, body = ProviderView), (status = 400), (status = 401), (status = 403), (status = 415)))]
pub async fn create_instance_provider(
    Admin(caller): Admin,
    State(app): State<AppState>,
    Json(body): Json<ProviderBody>,
) -> Result<(StatusCode, axum::Json<ProviderView>), Error> {
    create_in(&app, &caller.actor, &Scope::Instance, body).await
}

/// GET /admin/v1/providers/{id}.
#[utoipa::path(get, path = "/admin/v1/providers/{id}", tag = "native", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 200, body = ProviderView), (status = 401), (status = 403), (status = 404)))]
pub async fn get_instance_provider(
    _: Admin,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<ProviderView>, Error> {
    get_in(&app, &Scope::Instance, &id).await
}

/// PUT /admin/v1/providers/{id}.
#[utoipa::path(put, path = "/admin/v1/providers/{id}", tag = "native", params(("id" = String, Path)),
    request_body = ProviderBody, security(("bearer" = [])),
    responses((status = 200, body = ProviderView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 409), (status = 415)))]
pub async fn replace_instance_provider(
    Admin(caller): Admin,
    State(app): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ProviderBody>,
) -> Result<axum::Json<ProviderView>, Error> {
    replace_in(&app, &caller.actor, &Scope::Instance, &id, body).await
}

/// DELETE /admin/v1/providers/{id}.
#[utoipa::path(delete, path = "/admin/v1/providers/{id}", tag = "native", params(("id" = String, Path)),
    security(("bearer" = [])),
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn delete_instance_provider(
    Admin(caller): Admin,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    providers::delete(app.store(), &caller.actor, &Scope::Instance, &id, app.clock().now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /admin/v1/providers/{id}/test.
#[utoipa::path(post, path = "/admin/v1/providers/{id}/test", tag = "native", params(("id" = String, Path)),
    request_body = ProviderTestBody, security(("bearer" = [])),
    responses((status = 200, body = ProviderTestResult), (status = 400), (status = 401), (status = 403),
        (status = 404), (status = 415)))]
pub async fn test_instance_provider(
    _: Admin,
    State(app): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ProviderTestBody>,
) -> Result<axum::Json<ProviderTestResult>, Error> {
    test_in(&app, &Scope::Instance, &id, body).await
}
