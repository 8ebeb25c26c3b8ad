//! `/management/v1/policies/notification…` and `/admin/v1/policies/notification`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::Json;
use crate::auth::{Admin, Caller, OrgScope};
use crate::domain::policy::{self, Details, Policy};
use crate::error::Error;
use crate::state::AppState;

/// `AddNotificationPolicyRequest` / `UpdateNotificationPolicyRequest`. As in
/// proto3 JSON, an absent `passwordChange` is `false`, and the proto field
/// name `password_change` is accepted too.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// Notify users whenever their password has been changed.
    #[serde(default, rename = "passwordChange", alias = "password_change")]
    password_change: bool,
}

/// Zitadel's `ObjectDetails`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectDetails {
    /// The owner's change counter (decimal string, as Zitadel's uint64).
    sequence: String,
    creation_date: String,
    change_date: String,
    resource_owner: String,
}

impl From<Details> for ObjectDetails {
    fn from(d: Details) -> Self {
        let Details { sequence, created_at, changed_at, resource_owner } = d;
        ObjectDetails {
            sequence: sequence.to_string(),
            creation_date: created_at.rfc3339(),
            change_date: changed_at.rfc3339(),
            resource_owner,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DetailsResponse {
    details: ObjectDetails,
}

impl From<Details> for DetailsResponse {
    fn from(d: Details) -> Self {
        DetailsResponse { details: d.into() }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPolicy {
    details: ObjectDetails,
    password_change: bool,
    is_default: bool,
}

#[derive(Serialize, ToSchema)]
pub struct PolicyResponse {
    policy: NotificationPolicy,
}

impl From<Policy> for PolicyResponse {
    fn from(p: Policy) -> Self {
        let Policy { password_change, is_default, details } = p;
        PolicyResponse { policy: NotificationPolicy { details: details.into(), password_change, is_default } }
    }
}

/// GET /management/v1/policies/notification: the org's custom policy, else
/// the instance default with `isDefault: true` (contract §6).
#[utoipa::path(get, path = "/management/v1/policies/notification", tag = "zitadel",
    params(("x-zitadel-orgid" = Option<String>, Header, description = "org to act on (admin tokens)")),
    security(("bearer" = [])), responses((status = 200, body = PolicyResponse)))]
pub async fn get_policy(scope: OrgScope, State(app): State<AppState>) -> Result<axum::Json<PolicyResponse>, Error> {
    Ok(axum::Json(policy::effective(app.store(), &scope.org).await?.into()))
}

/// POST /management/v1/policies/notification: add a custom policy;
/// `ALREADY_EXISTS` when the org has one.
#[utoipa::path(post, path = "/management/v1/policies/notification", tag = "zitadel", request_body = PolicyBody,
    params(("x-zitadel-orgid" = Option<String>, Header, description = "org to act on (admin tokens)")),
    security(("bearer" = [])), responses((status = 200, body = DetailsResponse), (status = 409)))]
pub async fn add_policy(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<PolicyBody>,
) -> Result<axum::Json<DetailsResponse>, Error> {
    let details =
        policy::create(app.store(), &scope.actor, &scope.org, body.password_change, app.clock().now()).await?;
    Ok(axum::Json(details.into()))
}

/// PUT /management/v1/policies/notification: change the custom policy;
/// `NOT_FOUND` without one, `FAILED_PRECONDITION` when nothing changes.
#[utoipa::path(put, path = "/management/v1/policies/notification", tag = "zitadel", request_body = PolicyBody,
    params(("x-zitadel-orgid" = Option<String>, Header, description = "org to act on (admin tokens)")),
    security(("bearer" = [])), responses((status = 200, body = DetailsResponse), (status = 400), (status = 404)))]
pub async fn update_policy(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<PolicyBody>,
) -> Result<axum::Json<DetailsResponse>, Error> {
    let details =
        policy::update(app.store(), &scope.actor, &scope.org, body.password_change, app.clock().now()).await?;
    Ok(axum::Json(details.into()))
}

/// DELETE /management/v1/policies/notification: back to the instance default.
#[utoipa::path(delete, path = "/management/v1/policies/notification", tag = "zitadel",
    params(("x-zitadel-orgid" = Option<String>, Header, description = "org to act on (admin tokens)")),
    security(("bearer" = [])), responses((status = 200, body = DetailsResponse), (status = 404)))]
pub async fn reset_policy(scope: OrgScope, State(app): State<AppState>) -> Result<axum::Json<DetailsResponse>, Error> {
    let details = policy::reset(app.store(), &scope.actor, &scope.org, app.clock().now()).await?;
    Ok(axum::Json(details.into()))
}

/// GET /management/v1/policies/default/notification: the instance default,
/// readable with any valid token.
#[utoipa::path(get, path = "/management/v1/policies/default/notification", tag = "zitadel",
    security(("bearer" = [])), responses((status = 200, body = PolicyResponse)))]
pub async fn get_default_policy(_: Caller, State(app): State<AppState>) -> Result<axum::Json<PolicyResponse>, Error> {
    Ok(axum::Json(policy::instance_default(app.store()).await?.into()))
}

/// GET /admin/v1/policies/notification: the instance default (admins).
#[utoipa::path(get, path = "/admin/v1/policies/notification", tag = "zitadel",
    security(("bearer" = [])), responses((status = 200, body = PolicyResponse), (status = 403)))]
pub async fn admin_get_default_policy(
    _: Admin,
    State(app): State<AppState>,
) -> Result<axum::Json<PolicyResponse>, Error> {
    Ok(axum::Json(policy::instance_default(app.store()).await?.into()))
}

/// POST /admin/v1/policies/notification (`AddNotificationPolicy`): the
/// instance default exists from the start, so this is `ALREADY_EXISTS`, as
/// on a Zitadel instance; PUT changes it.
#[utoipa::path(post, path = "/admin/v1/policies/notification", tag = "zitadel", request_body = PolicyBody,
    security(("bearer" = [])), responses((status = 200, body = DetailsResponse), (status = 403), (status = 409)))]
pub async fn admin_add_default_policy(
    Admin(caller): Admin,
    State(app): State<AppState>,
    Json(body): Json<PolicyBody>,
) -> Result<axum::Json<DetailsResponse>, Error> {
    let details = policy::create_default(app.store(), &caller.actor, body.password_change, app.clock().now()).await?;
    Ok(axum::Json(details.into()))
}

/// PUT /admin/v1/policies/notification: change the instance default, seen
/// at once by every org without a custom policy.
#[utoipa::path(put, path = "/admin/v1/policies/notification", tag = "zitadel", request_body = PolicyBody,
    security(("bearer" = [])), responses((status = 200, body = DetailsResponse), (status = 400), (status = 403)))]
pub async fn admin_update_default_policy(
    Admin(caller): Admin,
    State(app): State<AppState>,
    Json(body): Json<PolicyBody>,
) -> Result<axum::Json<DetailsResponse>, Error> {
    let details = policy::update_default(app.store(), &caller.actor, body.password_change, app.clock().now()).await?;
    Ok(axum::Json(details.into()))
}
