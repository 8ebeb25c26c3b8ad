//! `/api/v1/users…`: the people notifications are addressed to (contract §4).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{LeDeleted, LeOk};
use crate::api::{Json, Path};
use crate::auth::OrgScope;
use crate::domain::PageRequest;
use crate::domain::users::{self, User, UserDraft};
use crate::error::Error;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserBody {
    /// Required, ≤ 255 characters.
    #[schema(min_length = 1, max_length = 255)]
    name: Option<String>,
    /// Required; unique in the org, ignoring case.
    #[schema(max_length = 254, format = Email)]
    email: Option<String>,
    /// The org's departments. Update: absent keeps the current ones.
    #[schema(max_items = 100)]
    department_ids: Option<Vec<String>>,
    /// One of the locales of contract §7 (default `Default`, i.e. English).
    /// Update: absent keeps the current one.
    locale: Option<String>,
}

impl UserBody {
    fn into_draft(self) -> Result<UserDraft, Error> {
        let UserBody { name, email, department_ids, locale } = self;
        users::parse_draft(name.as_deref(), email.as_deref(), department_ids, locale.as_deref())
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserVo {
    id: String,
    name: String,
    email: String,
    department_ids: Vec<String>,
    locale: String,
    created_at: String,
    updated_at: String,
}

impl From<User> for UserVo {
    fn from(u: User) -> Self {
        let User { id, name, email, locale, department_ids, created_at, updated_at } = u;
        UserVo {
            id,
            name,
            email,
            department_ids,
            locale,
            created_at: created_at.rfc3339(),
            updated_at: updated_at.rfc3339(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchBody {
    /// Case-insensitive part of the name or email.
    search: Option<String>,
    /// Only users in this department.
    department_id: Option<String>,
    /// 1-based page (default 1).
    #[schema(minimum = 1)]
    page: Option<i64>,
    /// Page size 1–100 (default 20).
    #[schema(minimum = 1, maximum = 100)]
    size: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct UserPage {
    items: Vec<UserVo>,
    page: u32,
    size: u32,
    total: i64,
}

#[derive(Serialize, ToSchema)]
pub struct UserResponse {
    /// `LE_SCS_SS_200`
    code: String,
    message: String,
    data: UserVo,
}

#[derive(Serialize, ToSchema)]
pub struct UserPageResponse {
    code: String,
    message: String,
    data: UserPage,
}

/// POST /api/v1/users
#[utoipa::path(post, path = "/api/v1/users", tag = "leegality", request_body = UserBody,
    security(("x-auth-token" = [])),
    responses((status = 200, body = UserResponse), (status = 400), (status = 401), (status = 409)))]
pub async fn create(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<UserBody>,
) -> Result<LeOk<UserVo>, Error> {
    let user = users::create(app.store(), &scope.actor, &scope.org, body.into_draft()?, app.clock().now()).await?;
    Ok(LeOk::new("User created successfully", user.into()))
}

/// GET /api/v1/users/{id}
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "leegality", params(("id" = String, Path)),
    security(("x-auth-token" = [])), responses((status = 200, body = UserResponse), (status = 401), (status = 404)))]
pub async fn get(scope: OrgScope, State(app): State<AppState>, Path(id): Path<String>) -> Result<LeOk<UserVo>, Error> {
    let user = users::get(app.store(), &scope.org, &id).await?;
    Ok(LeOk::new("User fetched successfully", user.into()))
}

/// PUT /api/v1/users/{id}
#[utoipa::path(put, path = "/api/v1/users/{id}", tag = "leegality", params(("id" = String, Path)),
    request_body = UserBody, security(("x-auth-token" = [])),
    responses((status = 200, body = UserResponse), (status = 400), (status = 401), (status = 404), (status = 409)))]
pub async fn replace(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<UserBody>,
) -> Result<LeOk<UserVo>, Error> {
    let draft = body.into_draft()?;
    let user = users::replace(app.store(), &scope.actor, &scope.org, &id, draft, app.clock().now()).await?;
    Ok(LeOk::new("User updated successfully", user.into()))
}

/// DELETE /api/v1/users/{id}
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "leegality", params(("id" = String, Path)),
    security(("x-auth-token" = [])), responses((status = 200, body = LeDeleted), (status = 401), (status = 404)))]
pub async fn delete(scope: OrgScope, State(app): State<AppState>, Path(id): Path<String>) -> Result<LeDeleted, Error> {
    users::delete(app.store(), &scope.actor, &scope.org, &id, app.clock().now()).await?;
    Ok(LeDeleted::default())
}

/// POST /api/v1/users/search: by text and department, paged.
#[utoipa::path(post, path = "/api/v1/users/search", tag = "leegality", request_body = SearchBody,
    security(("x-auth-token" = [])), responses((status = 200, body = UserPageResponse), (status = 400), (status = 401)))]
pub async fn search(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<SearchBody>,
) -> Result<LeOk<UserPage>, Error> {
    let page = PageRequest::parse(body.page, body.size)?;
    let found = users::search(
        app.store(),
        &scope.org,
        body.search.as_deref().unwrap_or(""),
        body.department_id.as_deref(),
        page,
    )
    .await?;
    let data = UserPage {
        items: found.items.into_iter().map(UserVo::from).collect(),
        page: found.page,
        size: found.size,
        total: found.total,
    };
    Ok(LeOk::new("Users fetched successfully", data))
}
