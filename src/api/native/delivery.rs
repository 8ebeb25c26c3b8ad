//! Delivery endpoints of the native API (contract §8): `POST /v1/events`,
//! the delivery log and `POST /v1/smtp/test`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::api::{Json, Path, Query};
use crate::auth::OrgScope;
use crate::delivery::mailer::Step;
use crate::delivery::{TestOutcome, TestServer};
use crate::domain::delivery::events::{self, EventBody};
use crate::domain::delivery::{self, Attempt, Notification, Status};
use crate::domain::smtp::{Security, parse_address, parse_host, parse_password, parse_text};
use crate::error::{Error, FieldErrors};
use crate::secret::Secret;
use crate::state::AppState;

const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

#[derive(Serialize, ToSchema)]
pub struct AcceptedNotification {
    id: String,
    to: String,
    /// Always `queued` in this answer.
    status: String,
}

/// The 202 answer of `POST /v1/events`.
#[derive(Serialize, ToSchema)]
pub struct EventAccepted {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    notifications: Vec<AcceptedNotification>,
    /// Why no notification was made, when none was.
    suppressed: Option<String>,
    /// Over the org's quota in hold mode: when the mail becomes due.
    #[serde(rename = "heldUntil")]
    held_until: Option<String>,
}

/// POST /v1/events: accept an event; its notifications are durable before
/// the 202. With `Idempotency-Key`, a repeat of the same request replays the
/// first answer (header `Idempotent-Replayed: true`).
#[utoipa::path(post, path = "/v1/events", tag = "native", request_body = EventBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII characters; remembered per org for 24 h")),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 202, body = EventAccepted), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "the first request with this key is still in flight"),
        (status = 429, description = "over the org's quota (reject mode) or the token's rate limit; see Retry-After"),
        (status = 413), (status = 415),
        (status = 422, description = "the key was used with a different body")))]
pub async fn post_event(
    scope: OrgScope,
    State(app): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Result<Response, Error> {
    let key = match headers.get(IDEMPOTENCY_HEADER) {
        None => None,
        Some(v) => Some(events::parse_key(v.to_str().unwrap_or("\u{0}"))?),
    };
    let accepted = events::accept(app.store(), app.committer(), app.clock(), &scope.org, key, body).await?;
    let mut res = (StatusCode::ACCEPTED, [(header::CONTENT_TYPE, "application/json")], accepted.body).into_response();
    if accepted.replayed {
        res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(res)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// queued, sending, sent, retrying, dead, bounced or complained.
    status: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    id: String,
    event_id: String,
    #[serde(rename = "type")]
    kind: String,
    to: String,
    subject: String,
    locale: String,
    /// queued, sending, sent, retrying, dead, bounced or complained.
    status: String,
    attempts: i64,
    last_error: Option<String>,
    smtp_response: Option<String>,
    created_at: String,
    updated_at: String,
    sent_at: Option<String>,
    /// When retention removed the body and attachments; null while kept.
    body_pruned_at: Option<String>,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        NotificationView {
            id: n.id,
            event_id: n.event_id,
            kind: n.kind,
            to: n.to,
            subject: n.subject,
            locale: n.locale,
            status: n.status.as_str().to_owned(),
            attempts: n.attempts,
            last_error: n.last_error,
            smtp_response: n.smtp_response,
            created_at: n.created_at.rfc3339(),
            updated_at: n.updated_at.rfc3339(),
            sent_at: n.sent_at.map(|t| t.rfc3339()),
            body_pruned_at: n.body_pruned_at.map(|t| t.rfc3339()),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    attempt: i64,
    at: String,
    /// The status the attempt left: sent, retrying or dead.
    outcome: String,
    error: Option<String>,
    smtp_response: Option<String>,
    /// The provider that made the attempt (its id); none for the file transport.
    provider_id: Option<String>,
    /// That provider's name (`notification-config` and `email-settings` for
    /// the legacy configurations).
    provider: Option<String>,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        let (provider_id, provider) = a.provider.map(|v| (v.id, v.name)).unzip();
        AttemptView {
            attempt: a.attempt,
            at: a.at.rfc3339(),
            outcome: a.outcome,
            error: a.error,
            smtp_response: a.smtp_response,
            provider_id,
            provider,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationDetail {
    #[serde(flatten)]
    notification: NotificationView,
    /// Every attempt, oldest first.
    attempt_log: Vec<AttemptView>,
    /// Bounces and complaints reported for it, oldest first (issue 18).
    feedback: Vec<FeedbackView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackView {
    /// `hard_bounce`, `soft_bounce` or `complaint`.
    kind: String,
    /// The address the report named (may differ from `to`).
    recipient: Option<String>,
    /// The DSN status (`5.1.1`), the ARF feedback type or SES's status.
    status: Option<String>,
    diagnostic: Option<String>,
    /// `smtp` (the inbound listener), `http` or `ses` (POST /v1/inbound/bounces).
    source: String,
    at: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPage {
    items: Vec<NotificationView>,
    next_cursor: Option<String>,
}

/// GET /v1/notifications: the org's delivery log, newest first.
#[utoipa::path(get, path = "/v1/notifications", tag = "native", params(NotificationQuery),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = NotificationPage), (status = 400), (status = 401), (status = 403)))]
pub async fn list_notifications(
    scope: OrgScope,
    State(app): State<AppState>,
    Query(query): Query<NotificationQuery>,
) -> Result<axum::Json<NotificationPage>, Error> {
    let mut errors = FieldErrors::new();
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(raw) => Status::parse(raw).or_else(|| {
            let known: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            errors.add("status", format!("must be one of {}", known.join(", ")));
            None
        }),
    };
    let cursor = match query.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => match uuid::Uuid::parse_str(c) {
            Ok(u) => Some(u.to_string()),
            Err(_) => {
                errors.add("cursor", "is not a cursor this API returned");
                None
            }
        },
    };
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        errors.add("limit", format!("must be between 1 and {MAX_PAGE}"));
    }
    errors.finish()?;
    let rows = delivery::page(app.store(), &scope.org, status, cursor.as_deref(), limit).await?;
    let next_cursor = if rows.len() == limit as usize { rows.last().map(|n| n.id.clone()) } else { None };
    Ok(axum::Json(NotificationPage { items: rows.into_iter().map(Into::into).collect(), next_cursor }))
}

/// GET /v1/notifications/{id}: one notification with every attempt.
#[utoipa::path(get, path = "/v1/notifications/{id}", tag = "native", params(("id" = String, Path)),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = NotificationDetail), (status = 401), (status = 403), (status = 404)))]
pub async fn get_notification(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<NotificationDetail>, Error> {
    let (n, attempts) = delivery::get(app.store(), &scope.org, &id).await?;
    let feedback = crate::domain::feedback::log(app.store(), &scope.org, &n.id).await?;
    Ok(axum::Json(NotificationDetail {
        notification: n.into(),
        attempt_log: attempts.into_iter().map(Into::into).collect(),
        feedback: feedback
            .into_iter()
            .map(|f| FeedbackView {
                kind: f.kind().to_owned(),
                recipient: f.recipient().map(str::to_owned),
                status: f.status().map(str::to_owned),
                diagnostic: f.diagnostic().map(str::to_owned),
                source: f.source().to_owned(),
                at: f.created_at().rfc3339(),
            })
            .collect(),
    }))
}

/// POST /v1/notifications/{id}/retry: puts a dead notification back in the
/// queue, due now. Anything but a dead one is refused (400).
#[utoipa::path(post, path = "/v1/notifications/{id}/retry", tag = "native", params(("id" = String, Path)),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 202, body = NotificationView), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn retry_notification(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, axum::Json<NotificationView>), Error> {
    delivery::retry(app.store(), &scope.actor, &scope.org, &id, app.clock().now()).await?;
    app.engine().wake.notify_waiters();
    let (n, _) = delivery::get(app.store(), &scope.org, &id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(n.into())))
}

/// An unsaved SMTP server to test.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestConfigBody {
    host: String,
    port: Option<u16>,
    /// `none` (plain), `starttls` (required) or `tls` (implicit). Default `starttls`.
    security: Option<String>,
    username: Option<String>,
    /// Needed for any server but exactly the org's own stored one (same host,
    /// port, username and security, certificate checking not turned off).
    password: Option<String>,
    from_email: Option<String>,
    from_name: Option<String>,
    /// Accept a self-signed or otherwise invalid certificate from this server.
    allow_selfsigned_certs: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpTestBody {
    to: String,
    config: Option<TestConfigBody>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpTestResult {
    success: bool,
    /// The step that failed: policy, connect, tls, auth, sender, recipient or
    /// data; `file` when the outbox directory could not be written.
    failed_step: Option<Step>,
    message: String,
    /// The server's reply to the last command.
    smtp_response: Option<String>,
    /// Steps that succeeded, in order.
    steps: Vec<Step>,
    /// `smtp`, or `file` when no server is configured.
    transport: String,
}

fn parse_test_config(raw: TestConfigBody, errors: &mut FieldErrors) -> Option<TestServer> {
    let host = errors.take(parse_host("config.host", "config.host", &raw.host));
    let security = match raw.security.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("starttls") => Some(Security::StartTls),
        Some("none" | "plain") => Some(Security::Plain),
        Some("tls" | "ssl") => Some(Security::Tls),
        Some(_) => {
            errors.add("config.security", "must be one of none, starttls, tls");
            None
        }
    };
    if raw.port == Some(0) {
        errors.add("config.port", "must be between 1 and 65535");
    }
    let opt = |errors: &mut FieldErrors, field: &str, v: Option<String>, max: usize| {
        v.and_then(|s| errors.take(parse_text(field, field, &s, max)))
    };
    let username = opt(errors, "config.username", raw.username, 255);
    let password = raw.password.and_then(|p| errors.take(parse_password("config.password", "config.password", &p)));
    let from_email =
        raw.from_email.and_then(|e| errors.take(parse_address("config.fromEmail", "config.fromEmail", &e)));
    let from_name = opt(errors, "config.fromName", raw.from_name, 255);
    Some(TestServer {
        host: host?,
        port: raw.port,
        security: security?,
        accept_invalid_certs: raw.allow_selfsigned_certs.unwrap_or(false),
        username,
        password: password.map(Secret::new),
        from_email,
        from_name,
    })
}

/// POST /v1/smtp/test: sends one mail now and reports each step. A failed
/// send is still a 200 (`success: false`, the failing step and the reply).
#[utoipa::path(post, path = "/v1/smtp/test", tag = "native", request_body = SmtpTestBody,
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = SmtpTestResult), (status = 400), (status = 401), (status = 403), (status = 415)))]
pub async fn smtp_test(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<SmtpTestBody>,
) -> Result<axum::Json<SmtpTestResult>, Error> {
    let mut errors = FieldErrors::new();
    let to = errors.take(parse_address("to", "to", &body.to));
    let draft = body.config.and_then(|c| parse_test_config(c, &mut errors));
    errors.finish()?;
    let to = to.unwrap_or_default();
    let engine = app.engine();
    let outcome = crate::delivery::test_send(app.store(), app.cipher(), &engine.mailer, &scope.org, &to, draft).await?;
    Ok(axum::Json(match outcome {
        TestOutcome::File { written: true, detail } => SmtpTestResult {
            success: true,
            failed_step: None,
            message: format!("no SMTP server is configured; the message was {detail}"),
            smtp_response: None,
            steps: vec![Step::File],
            transport: "file".into(),
        },
        TestOutcome::File { written: false, detail } => SmtpTestResult {
            success: false,
            failed_step: Some(Step::File),
            message: format!("no SMTP server is configured, and {detail}"),
            smtp_response: None,
            steps: Vec::new(),
            transport: "file".into(),
        },
        TestOutcome::Smtp(report) => SmtpTestResult {
            success: report.failed_step.is_none(),
            failed_step: report.failed_step,
            message: report.message,
            smtp_response: report.reply,
            steps: report.passed.into_iter().map(|(step, _)| step).collect(),
            transport: "smtp".into(),
        },
    }))
}
