//! `/admin/v1/orgs…`: organisations and their tokens (instance admins only).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{Json, Path};
use crate::auth::Admin;
use crate::domain::tokens::TokenRecord;
use crate::domain::{OrgId, orgs, tokens};
use crate::error::{Error, Resource};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgBody {
    /// 1–255 characters after trimming.
    #[schema(min_length = 1, max_length = 255)]
    name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgView {
    id: String,
    name: String,
    created_at: String,
}

impl From<orgs::Org> for OrgView {
    fn from(org: orgs::Org) -> Self {
        let orgs::Org { id, name, created_at } = org;
        OrgView { id: id.to_string(), name, created_at: created_at.rfc3339() }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrgList {
    orgs: Vec<OrgView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenBody {
    /// A label for people: where the token is used. 1–255 characters.
    #[schema(min_length = 1, max_length = 255)]
    name: String,
}

/// A token as listed: never its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    id: String,
    name: String,
    created_at: String,
    revoked_at: Option<String>,
}

impl From<TokenRecord> for TokenView {
    fn from(t: TokenRecord) -> Self {
        let TokenRecord { id, org_id: _, name, created_at, revoked_at } = t;
        TokenView { id, name, created_at: created_at.rfc3339(), revoked_at: revoked_at.map(|r| r.rfc3339()) }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TokenList {
    tokens: Vec<TokenView>,
}

/// A new token with its secret, shown this once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    id: String,
    name: String,
    token: String,
    created_at: String,
}

/// An org id from the path; a malformed one names no org.
fn org_id(raw: &str) -> Result<OrgId, Error> {
    OrgId::parse(raw).ok_or(Error::NotFound(Resource::Org))
}

/// POST /admin/v1/orgs (contract §2).
#[utoipa::path(post, path = "/admin/v1/orgs", tag = "native", request_body = CreateOrgBody,
    security(("bearer" = [])),
    responses((status = 201, body = OrgView), (status = 400), (status = 401), (status = 403)))]
pub async fn create_org(
    Admin(caller): Admin,
    State(app): State<AppState>,
    Json(body): Json<CreateOrgBody>,
) -> Result<(StatusCode, axum::Json<OrgView>), Error> {
    let org = orgs::create(app.store(), &caller.actor, &body.name, app.clock().now()).await?;
    Ok((StatusCode::CREATED, axum::Json(org.into())))
}

/// GET /admin/v1/orgs (contract §2).
#[utoipa::path(get, path = "/admin/v1/orgs", tag = "native", security(("bearer" = [])),
    responses((status = 200, body = OrgList), (status = 401), (status = 403)))]
pub async fn list_orgs(_: Admin, State(app): State<AppState>) -> Result<axum::Json<OrgList>, Error> {
    let orgs = orgs::list(app.store()).await?;
    Ok(axum::Json(OrgList { orgs: orgs.into_iter().map(OrgView::from).collect() }))
}

/// POST /admin/v1/orgs/{orgId}/tokens: the token is in this response only.
#[utoipa::path(post, path = "/admin/v1/orgs/{orgId}/tokens", tag = "native", request_body = CreateTokenBody,
    params(("orgId" = String, Path)), security(("bearer" = [])),
    responses((status = 201, body = CreatedToken), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn create_token(
    Admin(caller): Admin,
    State(app): State<AppState>,
    Path(raw_org): Path<String>,
    Json(body): Json<CreateTokenBody>,
) -> Result<(StatusCode, axum::Json<CreatedToken>), Error> {
    let org = org_id(&raw_org)?;
    let issued = tokens::create_for_org(app.store(), &caller.actor, &org, &body.name, app.clock().now()).await?;
    let created = CreatedToken {
        id: issued.record.id,
        name: issued.record.name,
        token: issued.secret.expose().to_owned(),
        created_at: issued.record.created_at.rfc3339(),
    };
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// GET /admin/v1/orgs/{orgId}/tokens: every token, newest first, never a secret.
#[utoipa::path(get, path = "/admin/v1/orgs/{orgId}/tokens", tag = "native",
    params(("orgId" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = TokenList), (status = 401), (status = 403), (status = 404)))]
pub async fn list_tokens(
    _: Admin,
    State(app): State<AppState>,
    Path(raw_org): Path<String>,
) -> Result<axum::Json<TokenList>, Error> {
    let org = org_id(&raw_org)?;
    let list = tokens::list(app.store(), &org).await?;
    Ok(axum::Json(TokenList { tokens: list.into_iter().map(TokenView::from).collect() }))
}

/// DELETE /admin/v1/orgs/{orgId}/tokens/{id}: the token fails from the next request on.
#[utoipa::path(delete, path = "/admin/v1/orgs/{orgId}/tokens/{id}", tag = "native",
    params(("orgId" = String, Path), ("id" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn revoke_token(
    Admin(caller): Admin,
    State(app): State<AppState>,
    Path((raw_org, id)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    let org = org_id(&raw_org)?;
    tokens::revoke(app.store(), &caller.actor, &org, &id, app.clock().now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
