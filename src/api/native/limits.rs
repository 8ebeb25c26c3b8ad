//! Limits of an org (issue 19): `/admin/v1/orgs/{orgId}/limits` for
//! instance admins, `/v1/usage` for the org itself. The rules are in
//! `domain/fairness.rs`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{Json, Path};
use crate::auth::{Admin, OrgScope};
use crate::domain::OrgId;
use crate::domain::fairness::{self, OrgLimits, WindowUsage};
use crate::error::{Error, Resource};
use crate::state::AppState;

/// An org's limits. `PUT` replaces all of them: a field left out takes its
/// default (weight 1, no quota, hold, the instance's API rate).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LimitsBody {
    /// Share of the sending capacity while several orgs have due mail.
    #[schema(minimum = 1, maximum = 100)]
    weight: Option<i64>,
    /// Notifications accepted per clock hour (UTC); null: no quota.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    hourly_quota: Option<i64>,
    /// Notifications accepted per UTC day; null: no quota.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    daily_quota: Option<i64>,
    /// `hold`: mail over quota waits for a window with room; `reject`: 429.
    #[schema(pattern = "^(hold|reject)$")]
    quota_mode: Option<String>,
    /// API requests per minute per token of this org; null: the instance default.
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    api_rate_per_minute: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsView {
    weight: i64,
    hourly_quota: Option<i64>,
    daily_quota: Option<i64>,
    quota_mode: &'static str,
    api_rate_per_minute: Option<i64>,
    /// True when the org has no limits of its own (these are the defaults).
    is_default: bool,
}

fn view(l: &OrgLimits, is_default: bool) -> LimitsView {
    LimitsView {
        weight: l.weight,
        hourly_quota: l.hourly_quota,
        daily_quota: l.daily_quota,
        quota_mode: l.quota_mode.as_str(),
        api_rate_per_minute: l.api_rate_per_minute,
        is_default,
    }
}

fn org_id(raw: &str) -> Result<OrgId, Error> {
    OrgId::parse(raw).ok_or(Error::NotFound(Resource::Org))
}

/// GET /admin/v1/orgs/{orgId}/limits
#[utoipa::path(get, path = "/admin/v1/orgs/{orgId}/limits", tag = "native",
    params(("orgId" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = LimitsView), (status = 401), (status = 403), (status = 404), (status = 429)))]
pub async fn get_limits(
    _: Admin,
    State(app): State<AppState>,
    Path(raw_org): Path<String>,
) -> Result<axum::Json<LimitsView>, Error> {
    let org = org_id(&raw_org)?;
    let (limits, own) = fairness::limits_of(app.store(), &org).await?;
    Ok(axum::Json(view(&limits, !own)))
}

/// PUT /admin/v1/orgs/{orgId}/limits
#[utoipa::path(put, path = "/admin/v1/orgs/{orgId}/limits", tag = "native", request_body = LimitsBody,
    params(("orgId" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = LimitsView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 413), (status = 415), (status = 429)))]
pub async fn put_limits(
    Admin(caller): Admin,
    State(app): State<AppState>,
    Path(raw_org): Path<String>,
    Json(body): Json<LimitsBody>,
) -> Result<axum::Json<LimitsView>, Error> {
    let LimitsBody { weight, hourly_quota, daily_quota, quota_mode, api_rate_per_minute } = body;
    let limits = OrgLimits::parse(weight, hourly_quota, daily_quota, quota_mode.as_deref(), api_rate_per_minute)?;
    let org = org_id(&raw_org)?;
    fairness::set_limits(app.store(), app.api_limits(), &caller.actor, &org, &limits, app.clock().now()).await?;
    Ok(axum::Json(view(&limits, false)))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowView {
    start: String,
    end: String,
    /// Notifications counted in this window.
    used: i64,
    /// The quota of this window; null: none.
    quota: Option<i64>,
}

fn window(w: &WindowUsage) -> WindowView {
    WindowView { start: w.start.rfc3339(), end: w.end.rfc3339(), used: w.used, quota: w.quota }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageView {
    hour: WindowView,
    day: WindowView,
    /// Notifications held for later hours (hold mode).
    held: i64,
    quota_mode: &'static str,
    weight: i64,
    /// Requests per minute per token; null: the instance default.
    api_rate_per_minute: Option<i64>,
    /// The instance default (0: unlimited).
    instance_api_rate_per_minute: i64,
}

/// GET /v1/usage: the org's usage of its quotas.
#[utoipa::path(get, path = "/v1/usage", tag = "native",
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = UsageView), (status = 400), (status = 401), (status = 403), (status = 429)))]
pub async fn get_usage(scope: OrgScope, State(app): State<AppState>) -> Result<axum::Json<UsageView>, Error> {
    let r = fairness::usage(app.store(), &scope.org, app.clock().now()).await?;
    Ok(axum::Json(UsageView {
        hour: window(&r.hour),
        day: window(&r.day),
        held: r.held,
        quota_mode: r.limits.quota_mode.as_str(),
        weight: r.limits.weight,
        api_rate_per_minute: r.limits.api_rate_per_minute,
        instance_api_rate_per_minute: app.api_limits().default_per_minute,
    }))
}
