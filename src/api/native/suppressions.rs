//! `/v1/suppressions` (issue 18): an org's suppression list. The rules
//! (what is listed, which types bypass it) are in
//! [`crate::domain::suppressions`].

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::{Json, Path, Query};
use crate::auth::OrgScope;
use crate::domain::suppressions::{self, DEFAULT_PAGE, Suppression, email_key};
use crate::error::Error;
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuppressionQuery {
    /// Only addresses containing this text (case-insensitive).
    search: Option<String>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionView {
    email: String,
    /// `manual`, `hard_bounce` or `complaint`.
    reason: String,
    /// What the bounce or complaint said, or the note given when listed by hand.
    detail: Option<String>,
    /// The notification whose bounce or complaint listed the address.
    notification_id: Option<String>,
    created_at: String,
}

impl From<Suppression> for SuppressionView {
    fn from(s: Suppression) -> Self {
        let Suppression { email, reason, detail, notification_id, created_at } = s;
        SuppressionView {
            email,
            reason: reason.as_str().to_owned(),
            detail,
            notification_id,
            created_at: created_at.rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuppressionPage {
    items: Vec<SuppressionView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SuppressionBody {
    /// The address to stop mailing.
    email: String,
    /// A note for people (≤ 1000 characters).
    detail: Option<String>,
}

/// GET /v1/suppressions: the org's list in address order, searchable.
#[utoipa::path(get, path = "/v1/suppressions", tag = "native", params(SuppressionQuery),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = SuppressionPage), (status = 400), (status = 401), (status = 403)))]
pub async fn list_suppressions(
    scope: OrgScope,
    State(app): State<AppState>,
    Query(query): Query<SuppressionQuery>,
) -> Result<axum::Json<SuppressionPage>, Error> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    let after = query.cursor.as_deref().map(email_key);
    let rows = suppressions::page(app.store(), &scope.org, query.search.as_deref(), after.as_deref(), limit).await?;
    let next_cursor = if rows.len() == limit as usize { rows.last().map(|s| email_key(&s.email)) } else { None };
    Ok(axum::Json(SuppressionPage { items: rows.into_iter().map(Into::into).collect(), next_cursor }))
}

/// POST /v1/suppressions: lists an address by hand. 201 when added, 200
/// with the existing entry when it was listed already.
#[utoipa::path(post, path = "/v1/suppressions", tag = "native", request_body = SuppressionBody,
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 201, body = SuppressionView), (status = 200, body = SuppressionView), (status = 400),
        (status = 401), (status = 403), (status = 413), (status = 415)))]
pub async fn add_suppression(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<SuppressionBody>,
) -> Result<(StatusCode, axum::Json<SuppressionView>), Error> {
    let SuppressionBody { email, detail } = body;
    let (entry, added) =
        suppressions::add(app.store(), &scope.actor, &scope.org, &email, detail, app.clock().now()).await?;
    let status = if added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, axum::Json(entry.into())))
}

/// GET /v1/suppressions/{email}: one listed address.
#[utoipa::path(get, path = "/v1/suppressions/{email}", tag = "native", params(("email" = String, Path)),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = SuppressionView), (status = 401), (status = 403), (status = 404)))]
pub async fn get_suppression(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(email): Path<String>,
) -> Result<axum::Json<SuppressionView>, Error> {
    Ok(axum::Json(suppressions::get(app.store(), &scope.org, &email).await?.into()))
}

/// DELETE /v1/suppressions/{email}: mail goes to the address again.
#[utoipa::path(delete, path = "/v1/suppressions/{email}", tag = "native", params(("email" = String, Path)),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn remove_suppression(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(email): Path<String>,
) -> Result<StatusCode, Error> {
    suppressions::remove(app.store(), &scope.actor, &scope.org, &email, app.clock().now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
