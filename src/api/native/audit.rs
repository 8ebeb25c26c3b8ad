//! `GET /v1/audit` (an org's log) and `GET /admin/v1/audit` (the instance's).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::api::Query;
use crate::auth::{Admin, OrgScope};
use crate::domain::audit::{self, AuditRecord, Scope};
use crate::error::{Error, FieldErrors};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `nextCursor` of the previous page; absent for the first page.
    cursor: Option<String>,
    /// Rows per page, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditItem {
    /// The scope's gapless change counter.
    sequence: i64,
    at: String,
    /// `token:<id>`, `env:HERALD_ADMIN_TOKEN`, `cli`, or `link:<id>` (a mailed
    /// link of the sender identity approval flow).
    actor: String,
    action: String,
    resource_type: String,
    resource_id: String,
    detail: Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPageView {
    items: Vec<AuditItem>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

fn parse(query: AuditQuery) -> Result<(i64, u32), Error> {
    let mut errors = FieldErrors::new();
    let after = match query.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).unwrap_or_else(|| {
            errors.add("cursor", "is not a cursor this API returned");
            0
        }),
    };
    let limit = query.limit.unwrap_or(audit::DEFAULT_PAGE);
    if !(1..=audit::MAX_PAGE).contains(&limit) {
        errors.add("limit", format!("must be between 1 and {}", audit::MAX_PAGE));
    }
    errors.finish()?;
    Ok((after, limit))
}

async fn page(app: &AppState, scope: &Scope, query: AuditQuery) -> Result<axum::Json<AuditPageView>, Error> {
    let (after, limit) = parse(query)?;
    let rows = audit::page(app.store(), scope, after, limit).await?;
    let next_cursor = if rows.len() == limit as usize { rows.last().map(|r| r.seq.to_string()) } else { None };
    let items = rows
        .into_iter()
        .map(|r| {
            let AuditRecord { seq, at, actor, action, resource_type, resource_id, detail } = r;
            AuditItem { sequence: seq, at: at.rfc3339(), actor, action, resource_type, resource_id, detail }
        })
        .collect();
    Ok(axum::Json(AuditPageView { items, next_cursor }))
}

/// GET /v1/audit: the org's audit log in sequence order.
#[utoipa::path(get, path = "/v1/audit", tag = "native", params(AuditQuery),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = AuditPageView), (status = 400), (status = 401), (status = 403)))]
pub async fn org_audit(
    scope: OrgScope,
    State(app): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<AuditPageView>, Error> {
    page(&app, &Scope::Org(scope.org), query).await
}

/// GET /admin/v1/audit: instance-level changes (admin tokens, instance settings).
#[utoipa::path(get, path = "/admin/v1/audit", tag = "native", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = AuditPageView), (status = 400), (status = 401), (status = 403)))]
pub async fn instance_audit(
    _: Admin,
    State(app): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<AuditPageView>, Error> {
    page(&app, &Scope::Instance, query).await
}
