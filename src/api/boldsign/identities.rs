//! `/v1/senderIdentities/…` (seed 004, contract §7). Each handler reads
//! BoldSign's shape, calls `domain::identities`, and answers in BoldSign's
//! shape: 201 `{senderIdentityId}` on create, 204 on the changes.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::wire::{BsQuery, PageDetails, SenderIdentityCreated, SenderIdentityList, SenderIdentityViewModel};
use crate::api::Json;
use crate::auth::OrgScope;
use crate::domain::identities::{self, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, Reissue};
use crate::error::{Error, FieldErrors};
use crate::state::AppState;

/// The identity's address from `?email=`: required and well-formed.
fn email_param(query: &BsQuery) -> Result<String, Error> {
    identities::parse_email("email", query.get("email")).map_err(|e| Error::Invalid(vec![e]))
}

/// POST /v1/senderIdentities/create: a Pending identity; its owner is
/// mailed a link to approve or deny.
#[utoipa::path(post, path = "/v1/senderIdentities/create", tag = "boldsign",
    request_body(content = super::wire::SenderIdentityRequest, description = "property names in any case"),
    security(("x-api-key" = []), ("bearer" = [])),
    responses((status = 201, body = SenderIdentityCreated), (status = 400), (status = 401), (status = 403),
        (status = 409, description = "the org has an identity with this email")))]
pub async fn create(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<Map<String, Value>>,
) -> Result<(StatusCode, axum::Json<SenderIdentityCreated>), Error> {
    let new = identities::parse_new(super::wire::identity_input(body)?)?;
    let identity =
        identities::create(app.store(), &scope.actor, &scope.org, new, app.clock().now(), app.public_url()).await?;
    app.wake_workers();
    Ok((StatusCode::CREATED, axum::Json(SenderIdentityCreated { sender_identity_id: identity.id })))
}

/// POST /v1/senderIdentities/update?email=: 204. Needs at least one of
/// name, redirectUrl, metaData, notificationSettings, locale; flags not
/// sent keep their value; MetaData merges (`""` removes a key).
#[utoipa::path(post, path = "/v1/senderIdentities/update", tag = "boldsign",
    params(("email" = String, Query, description = "the identity's email address")),
    request_body(content = super::wire::SenderIdentityRequest, description = "property names in any case"),
    security(("x-api-key" = []), ("bearer" = [])),
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn update(
    scope: OrgScope,
    State(app): State<AppState>,
    query: BsQuery,
    Json(body): Json<Map<String, Value>>,
) -> Result<StatusCode, Error> {
    let email = email_param(&query)?;
    let change = identities::parse_change(super::wire::identity_input(body)?)?;
    identities::update(app.store(), &scope.actor, &scope.org, &email, change, app.clock().now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// GET /v1/senderIdentities/list?Page=&PageSize=&Search=&BrandIds=: newest
/// first, with BoldSign's `pageDetails`.
#[utoipa::path(get, path = "/v1/senderIdentities/list", tag = "boldsign",
    params(("Page" = Option<u32>, Query, minimum = 1, description = "1-based page (default 1)"),
        ("PageSize" = Option<u32>, Query, minimum = 1, maximum = 100, description = "1–100 (default 10)"),
        ("Search" = Option<String>, Query, description = "part of the name or email, any case"),
        ("BrandIds" = Option<Vec<String>>, Query, description = "only these brands (repeat the parameter)")),
    security(("x-api-key" = []), ("bearer" = [])),
    responses((status = 200, body = SenderIdentityList), (status = 400), (status = 401), (status = 403)))]
pub async fn list(
    scope: OrgScope,
    State(app): State<AppState>,
    query: BsQuery,
) -> Result<axum::Json<SenderIdentityList>, Error> {
    let mut errors = FieldErrors::new();
    let page = query.int("Page", 1, 1..=1_000_000, &mut errors);
    let page_size = query.int("PageSize", PAGE_SIZE_DEFAULT, 1..=PAGE_SIZE_MAX, &mut errors);
    errors.finish()?;
    let search = query.get("Search").unwrap_or_default();
    let found = identities::list(app.store(), &scope.org, page, page_size, search, &query.all("BrandIds")).await?;
    let page_size = i64::from(found.page_size);
    Ok(axum::Json(SenderIdentityList {
        result: found.items.into_iter().map(SenderIdentityViewModel::from).collect(),
        page_details: PageDetails {
            page_size: found.page_size,
            page: found.page,
            total_records_count: found.total,
            total_pages: (found.total + page_size - 1) / page_size,
            sorted_column: "createdDate",
            sort_direction: "DESC",
        },
    }))
}

/// GET /v1/senderIdentities/properties?id=|email=: one identity.
#[utoipa::path(get, path = "/v1/senderIdentities/properties", tag = "boldsign",
    params(("id" = Option<String>, Query, description = "the identity's id"),
        ("email" = Option<String>, Query, description = "or its email address")),
    security(("x-api-key" = []), ("bearer" = [])),
    responses((status = 200, body = SenderIdentityViewModel), (status = 400), (status = 401), (status = 403),
        (status = 404)))]
pub async fn properties(
    scope: OrgScope,
    State(app): State<AppState>,
    query: BsQuery,
) -> Result<axum::Json<SenderIdentityViewModel>, Error> {
    let identity = match (query.get("id"), query.get("email")) {
        (Some(id), _) => identities::get_by_id(app.store(), &scope.org, id).await?,
        (None, Some(_)) => identities::get_by_email(app.store(), &scope.org, &email_param(&query)?).await?,
        (None, None) => return Err(Error::field("id", "The id or the email of the sender identity is required.")),
    };
    Ok(axum::Json(identity.into()))
}

/// DELETE /v1/senderIdentities/delete?email=: 204; its links stop working.
#[utoipa::path(delete, path = "/v1/senderIdentities/delete", tag = "boldsign",
    params(("email" = String, Query, description = "the identity's email address")),
    security(("x-api-key" = []), ("bearer" = [])),
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn delete(scope: OrgScope, State(app): State<AppState>, query: BsQuery) -> Result<StatusCode, Error> {
    let email = email_param(&query)?;
    identities::delete(app.store(), &scope.actor, &scope.org, &email, app.clock().now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /v1/senderIdentities/resendInvitation?email=: 204; a Pending
/// identity's owner gets a fresh link (earlier ones stop working).
#[utoipa::path(post, path = "/v1/senderIdentities/resendInvitation", tag = "boldsign",
    params(("email" = String, Query, description = "the identity's email address")),
    security(("x-api-key" = []), ("bearer" = [])),
    responses((status = 204), (status = 400, description = "not Pending"), (status = 401), (status = 403),
        (status = 404)))]
pub async fn resend_invitation(
    scope: OrgScope,
    State(app): State<AppState>,
    query: BsQuery,
) -> Result<StatusCode, Error> {
    let email = email_param(&query)?;
    let (store, now, public_url) = (app.store(), app.clock().now(), app.public_url());
    identities::reissue(store, &scope.actor, &scope.org, &email, Reissue::Resend, now, public_url).await?;
    app.wake_workers();
    Ok(StatusCode::NO_CONTENT)
}

/// POST /v1/senderIdentities/rerequest?email=: 204; a Denied or Revoked
/// identity is Pending again and its owner gets a new link.
#[utoipa::path(post, path = "/v1/senderIdentities/rerequest", tag = "boldsign",
    params(("email" = String, Query, description = "the identity's email address")),
    security(("x-api-key" = []), ("bearer" = [])),
    responses((status = 204), (status = 400, description = "not Denied or Revoked"), (status = 401),
        (status = 403), (status = 404)))]
pub async fn rerequest(scope: OrgScope, State(app): State<AppState>, query: BsQuery) -> Result<StatusCode, Error> {
    let email = email_param(&query)?;
    let (store, now, public_url) = (app.store(), app.clock().now(), app.public_url());
    identities::reissue(store, &scope.actor, &scope.org, &email, Reissue::Rerequest, now, public_url).await?;
    app.wake_workers();
    Ok(StatusCode::NO_CONTENT)
}
