//! `GET /v1/alerts` (issue 18): the org's alerts. Conditions and their
//! evaluation are [`crate::domain::alerts`].

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::Query;
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
    /// dead_mail, queue_stalled or webhook_disabled.
    kind: String,
    /// What the alert is about within its kind (a webhook endpoint's id), or "".
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
