//! `/v1/webhooks` (issue 18): an org's webhook endpoints, their delivery
//! log and a test send. Rules and secrets are [`crate::domain::webhooks`];
//! delivery is [`crate::delivery::webhooks`].

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::api::{Json, Path, Query};
use crate::auth::OrgScope;
use crate::domain::OrgId;
use crate::domain::webhooks::{self, Endpoint, Message};
use crate::error::Error;
use crate::secret::Secret;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    id: String,
    url: String,
    description: String,
    /// The subscribed event types.
    event_types: Vec<String>,
    enabled: bool,
    /// Why Herald disabled the endpoint (it failed for 24 hours).
    disabled_reason: Option<String>,
    /// Since when every delivery has failed.
    failing_since: Option<String>,
    created_at: String,
    updated_at: String,
    /// The signing secret (`whsec_…`): only in the answer that made it
    /// (creation, or a PUT with `rotateSecret`), never again.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

fn view(e: Endpoint, secret: Option<Secret>) -> WebhookView {
    let Endpoint {
        id,
        org: _,
        url,
        description,
        event_types,
        enabled,
        disabled_reason,
        failing_since,
        created_at,
        updated_at,
    } = e;
    WebhookView {
        id,
        url,
        description,
        event_types,
        enabled,
        disabled_reason,
        failing_since: failing_since.map(|t| t.rfc3339()),
        created_at: created_at.rfc3339(),
        updated_at: updated_at.rfc3339(),
        secret: secret.map(|s| s.expose().to_owned()),
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    items: Vec<WebhookView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookBody {
    /// Where events are POSTed: an absolute https:// or http:// URL
    /// (≤ 2048 characters), subject to the outbound host policy.
    url: Option<String>,
    /// ≤ 500 characters.
    description: Option<String>,
    /// notification.sent, notification.deferred, notification.dead,
    /// notification.bounced, notification.complained,
    /// notification.suppressed, sender_identity.approved,
    /// sender_identity.denied, sender_identity.revoked, alert.opened,
    /// alert.resolved.
    event_types: Option<Vec<String>>,
    /// Default true. Enabling a disabled endpoint clears its failure record.
    enabled: Option<bool>,
    /// PUT only: make a new secret (returned once); the old one stays valid
    /// for 24 hours, and messages meanwhile carry both signatures.
    rotate_secret: Option<bool>,
}

/// GET /v1/webhooks: the org's endpoints.
#[utoipa::path(get, path = "/v1/webhooks", tag = "native",
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = WebhookList), (status = 401), (status = 403)))]
pub async fn list_webhooks(scope: OrgScope, State(app): State<AppState>) -> Result<axum::Json<WebhookList>, Error> {
    let items = webhooks::list(app.store(), &scope.org).await?.into_iter().map(|e| view(e, None)).collect();
    Ok(axum::Json(WebhookList { items }))
}

/// POST /v1/webhooks: a new endpoint; its secret is in this answer only.
#[utoipa::path(post, path = "/v1/webhooks", tag = "native", request_body = WebhookBody,
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 201, body = WebhookView), (status = 400), (status = 401), (status = 403), (status = 413),
        (status = 415)))]
pub async fn create_webhook(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<WebhookBody>,
) -> Result<(StatusCode, axum::Json<WebhookView>), Error> {
    let WebhookBody { url, description, event_types, enabled, rotate_secret } = body;
    if rotate_secret.is_some() {
        return Err(Error::field("rotateSecret", "is only used when updating an endpoint"));
    }
    let draft = webhooks::parse_draft(url, description, event_types, enabled)?;
    let (endpoint, secret) =
        webhooks::create(app.store(), app.cipher(), &scope.actor, &scope.org, draft, app.clock().now()).await?;
    Ok((StatusCode::CREATED, axum::Json(view(endpoint, Some(secret)))))
}

/// GET /v1/webhooks/{id}: one endpoint (never its secret).
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "native", params(("id" = String, Path)),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = WebhookView), (status = 401), (status = 403), (status = 404)))]
pub async fn get_webhook(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookView>, Error> {
    Ok(axum::Json(view(webhooks::get(app.store(), &scope.org, &id).await?, None)))
}

/// PUT /v1/webhooks/{id}: replaces url, description, eventTypes and
/// enabled; `rotateSecret: true` makes a new secret (in this answer only).
#[utoipa::path(put, path = "/v1/webhooks/{id}", tag = "native", params(("id" = String, Path)),
    request_body = WebhookBody,
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = WebhookView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 413), (status = 415)))]
pub async fn update_webhook(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<WebhookBody>,
) -> Result<axum::Json<WebhookView>, Error> {
    let WebhookBody { url, description, event_types, enabled, rotate_secret } = body;
    // An unknown id is a 404 before any field error.
    webhooks::get(app.store(), &scope.org, &id).await?;
    let mut draft = webhooks::parse_draft(url, description, event_types, enabled)?;
    draft.rotate_secret = rotate_secret.unwrap_or(false);
    let (endpoint, secret) =
        webhooks::update(app.store(), app.cipher(), &scope.actor, &scope.org, &id, draft, app.clock().now()).await?;
    Ok(axum::Json(view(endpoint, secret)))
}

/// DELETE /v1/webhooks/{id}: the endpoint and its undelivered messages go.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "native", params(("id" = String, Path)),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn delete_webhook(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Error> {
    webhooks::delete(app.store(), &scope.actor, &scope.org, &id, app.clock().now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookTestResult {
    pub(crate) success: bool,
    /// The endpoint's HTTP status, when it answered.
    pub(crate) status_code: Option<i64>,
    pub(crate) latency_ms: i64,
    /// Why it failed (names the host, never an internal address).
    pub(crate) error: Option<String>,
}

/// POST /v1/webhooks/{id}/test: sends a signed `webhook.test` message now
/// (outside the queue, so it never delays queued messages) and reports the
/// answer. A failed send is still a 200 with `success: false`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "native", params(("id" = String, Path)),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = WebhookTestResult), (status = 401), (status = 403), (status = 404)))]
pub async fn test_webhook(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookTestResult>, Error> {
    Ok(axum::Json(test_send(&app, &scope.org, &id).await?))
}

/// Sends a signed `webhook.test` message to endpoint `id` of `org` now and
/// reports the answer (the API's and the console's test send).
pub(crate) async fn test_send(app: &AppState, org: &OrgId, id: &str) -> Result<WebhookTestResult, Error> {
    let endpoint = webhooks::get(app.store(), org, id).await?;
    let now = app.clock().now();
    let sealed =
        app.store().webhook_secrets(&endpoint.id).await?.ok_or(Error::NotFound(crate::error::Resource::Webhook))?;
    let keys = webhooks::signing_keys(app.cipher(), org, &endpoint.id, &sealed, now)?;
    let message_id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let body =
        json!({ "type": "webhook.test", "timestamp": now.rfc3339(), "data": { "webhookId": endpoint.id } }).to_string();
    let started = Instant::now();
    let result = crate::delivery::webhooks::send_signed(
        &app.engine().http,
        &endpoint.url,
        &message_id,
        now.0 / 1000,
        body.as_bytes(),
        &keys,
    )
    .await;
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    Ok(match result {
        Ok(code) => WebhookTestResult {
            success: (200..300).contains(&code),
            status_code: Some(code),
            latency_ms,
            error: (!(200..300).contains(&code)).then(|| format!("the endpoint answered HTTP {code}")),
        },
        Err(error) => WebhookTestResult { success: false, status_code: None, latency_ms, error: Some(error) },
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessageView {
    /// The `webhook-id` header's value.
    id: String,
    event_type: String,
    /// pending or delivered.
    status: String,
    attempts: i64,
    created_at: String,
    delivered_at: Option<String>,
    /// The last attempt's HTTP status, when the endpoint answered.
    last_status_code: Option<i64>,
    last_latency_ms: Option<i64>,
    last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookMessageList {
    items: Vec<WebhookMessageView>,
}

/// GET /v1/webhooks/{id}/messages: the endpoint's delivery log, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/messages", tag = "native", params(("id" = String, Path), MessageQuery),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = WebhookMessageList), (status = 400), (status = 401), (status = 403),
        (status = 404)))]
pub async fn webhook_messages(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<MessageQuery>,
) -> Result<axum::Json<WebhookMessageList>, Error> {
    let rows = webhooks::messages(app.store(), &scope.org, &id, query.limit.unwrap_or(50)).await?;
    let items = rows
        .into_iter()
        .map(|m| {
            let Message {
                id,
                event_type,
                status,
                attempts,
                created_at,
                finished_at,
                last_status_code,
                last_latency_ms,
                last_error,
            } = m;
            WebhookMessageView {
                id,
                event_type,
                status,
                attempts,
                created_at: created_at.rfc3339(),
                delivered_at: finished_at.map(|t| t.rfc3339()),
                last_status_code,
                last_latency_ms,
                last_error,
            }
        })
        .collect();
    Ok(axum::Json(WebhookMessageList { items }))
}
