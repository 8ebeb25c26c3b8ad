//! `GET /v1/alerts` (issue 18): the org's alerts, and
//! `GET|PUT /v1/alerts/contacts`: who is mailed when one opens or resolves.
//! Conditions and their evaluation are [`crate::domain::alerts`].

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::{Json, Query};
use crate::auth::OrgScope;
use crate::domain::alerts::{self, Alert};
use crate::error::Error;
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `open` (default) or `all`.
    status: Option<String>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertView {
    id: String,
    /// dead_mail, queue_stalled, webhook_disabled or provider_circuit_open.
    kind: String,
    /// What the alert is about within its kind (a webhook endpoint's or a
    /// provider's id), or "".
    subject: String,
    detail: String,
    opened_at: String,
    resolved_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AlertList {
    items: Vec<AlertView>,
}

/// GET /v1/alerts: the org's alerts, newest first.
#[utoipa::path(get, path = "/v1/alerts", tag = "native", params(AlertQuery),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = AlertList), (status = 400), (status = 401), (status = 403)))]
pub async fn list_alerts(
    scope: OrgScope,
    State(app): State<AppState>,
    Query(query): Query<AlertQuery>,
) -> Result<axum::Json<AlertList>, Error> {
    let open_only = match query.status.as_deref() {
        None | Some("open") => true,
        Some("all") => false,
        Some(_) => return Err(Error::field("status", "must be open or all")),
    };
    let rows = alerts::list(app.store(), &scope.org, open_only, query.limit.unwrap_or(50)).await?;
    let items = rows
        .into_iter()
        .map(|a| {
            let Alert { id, org: _, kind, subject, detail, opened_at, resolved_at } = a;
            AlertView {
                id,
                kind: kind.as_str().to_owned(),
                subject,
                detail,
                opened_at: opened_at.rfc3339(),
                resolved_at: resolved_at.map(|t| t.rfc3339()),
            }
        })
        .collect();
    Ok(axum::Json(AlertList { items }))
}

/// The org's alert contacts.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactsBody {
    /// Up to 20 addresses (duplicates in any case are dropped); `[]` mails no one.
    #[schema(max_items = 20)]
    emails: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactsView {
    emails: Vec<String>,
    /// When they were last set; null if never.
    updated_at: Option<String>,
}

/// GET /v1/alerts/contacts: who is mailed when an alert of the org opens
/// or resolves.
#[utoipa::path(get, path = "/v1/alerts/contacts", tag = "native",
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = ContactsView), (status = 401), (status = 403)))]
pub async fn get_alert_contacts(
    scope: OrgScope,
    State(app): State<AppState>,
) -> Result<axum::Json<ContactsView>, Error> {
    let (emails, at) = alerts::contacts(app.store(), &scope.org).await?;
    Ok(axum::Json(ContactsView { emails, updated_at: at.map(|t| t.rfc3339()) }))
}

/// PUT /v1/alerts/contacts: replaces the org's alert contacts. Each gets a
/// mail (through the instance's providers) when an alert opens and when it
/// resolves. Audited (the number of contacts, not the addresses).
#[utoipa::path(put, path = "/v1/alerts/contacts", tag = "native", request_body = ContactsBody,
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = ContactsView), (status = 400), (status = 401), (status = 403), (status = 413),
        (status = 415)))]
pub async fn put_alert_contacts(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<ContactsBody>,
) -> Result<axum::Json<ContactsView>, Error> {
    let now = app.clock().now();
    let emails = alerts::set_contacts(app.store(), &scope.actor, &scope.org, &body.emails, now).await?;
    Ok(axum::Json(ContactsView { emails, updated_at: Some(now.rfc3339()) }))
}
