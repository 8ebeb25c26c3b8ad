//! `/api/v1/departments…` (seed 001, contract §4).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{LeDeleted, LeOk};
use crate::api::{Json, Path, Query};
use crate::auth::OrgScope;
use crate::domain::PageRequest;
use crate::domain::departments::{self, Department};
use crate::error::{Error, FieldError};
use crate::state::AppState;

/// `{name, enabled?}`; unknown properties are ignored, as the original does.
#[derive(Deserialize, ToSchema)]
pub struct DepartmentBody {
    /// 2–255 characters after trimming; unique in the org, ignoring case.
    #[schema(min_length = 2, max_length = 255)]
    name: Option<String>,
    /// Create: default true. Update: absent keeps the current value.
    enabled: Option<bool>,
}

impl DepartmentBody {
    fn name(&self) -> Result<&str, Error> {
        self.name.as_deref().ok_or_else(|| Error::Invalid(vec![FieldError::new("name", "Department name is required")]))
    }
}

/// `DepartmentVO`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentVo {
    id: String,
    name: String,
    enabled: bool,
    created_at: String,
    total_users: i64,
}

impl From<Department> for DepartmentVo {
    fn from(d: Department) -> Self {
        let Department { id, name, enabled, created_at, total_users } = d;
        DepartmentVo { id, name, enabled, created_at: created_at.rfc3339(), total_users }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DepartmentPage {
    items: Vec<DepartmentVo>,
    page: u32,
    size: u32,
    total: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DepartmentResponse {
    /// `LE_SCS_SS_200`
    code: String,
    message: String,
    data: DepartmentVo,
}

#[derive(Serialize, ToSchema)]
pub struct DepartmentPageResponse {
    code: String,
    message: String,
    data: DepartmentPage,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-based page (default 1).
    #[param(minimum = 1)]
    page: Option<i64>,
    /// Page size 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    size: Option<i64>,
    /// Case-insensitive part of the name.
    search: Option<String>,
}

/// POST /api/v1/departments
#[utoipa::path(post, path = "/api/v1/departments", tag = "leegality", request_body = DepartmentBody,
    security(("x-auth-token" = [])),
    responses((status = 200, body = DepartmentResponse), (status = 400), (status = 401), (status = 409)))]
pub async fn create(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<DepartmentBody>,
) -> Result<LeOk<DepartmentVo>, Error> {
    let dept =
        departments::create(app.store(), &scope.actor, &scope.org, body.name()?, body.enabled, app.clock().now())
            .await?;
    Ok(LeOk::new("Department created successfully", dept.into()))
}

/// GET /api/v1/departments?page=&size=&search=
#[utoipa::path(get, path = "/api/v1/departments", tag = "leegality", params(ListQuery),
    security(("x-auth-token" = [])),
    responses((status = 200, body = DepartmentPageResponse), (status = 400), (status = 401)))]
pub async fn list(
    scope: OrgScope,
    State(app): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<LeOk<DepartmentPage>, Error> {
    let page = PageRequest::parse(query.page, query.size)?;
    let found = departments::list(app.store(), &scope.org, page, query.search.as_deref().unwrap_or("")).await?;
    let data = DepartmentPage {
        items: found.items.into_iter().map(DepartmentVo::from).collect(),
        page: found.page,
        size: found.size,
        total: found.total,
    };
    Ok(LeOk::new("Departments fetched successfully", data))
}

/// GET /api/v1/departments/{id}
#[utoipa::path(get, path = "/api/v1/departments/{id}", tag = "leegality", params(("id" = String, Path)),
    security(("x-auth-token" = [])),
    responses((status = 200, body = DepartmentResponse), (status = 401), (status = 404)))]
pub async fn get(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<LeOk<DepartmentVo>, Error> {
    let dept = departments::get(app.store(), &scope.org, &id).await?;
    Ok(LeOk::new("Department fetched successfully", dept.into()))
}

/// PUT /api/v1/departments/{id}: replace the writable fields.
#[utoipa::path(put, path = "/api/v1/departments/{id}", tag = "leegality", params(("id" = String, Path)),
    request_body = DepartmentBody, security(("x-auth-token" = [])),
    responses((status = 200, body = DepartmentResponse), (status = 400), (status = 401), (status = 404), (status = 409)))]
pub async fn replace(
    scope: OrgScope,
    State(app): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<DepartmentBody>,
) -> Result<LeOk<DepartmentVo>, Error> {
    let dept =
        departments::replace(app.store(), &scope.actor, &scope.org, &id, body.name()?, body.enabled, app.clock().now())
            .await?;
    Ok(LeOk::new("Department updated successfully", dept.into()))
}

/// DELETE /api/v1/departments/{id}: `LE_SS_002`; its users stay.
#[utoipa::path(delete, path = "/api/v1/departments/{id}", tag = "leegality", params(("id" = String, Path)),
    security(("x-auth-token" = [])), responses((status = 200, body = LeDeleted), (status = 401), (status = 404)))]
pub async fn delete(scope: OrgScope, State(app): State<AppState>, Path(id): Path<String>) -> Result<LeDeleted, Error> {
    departments::delete(app.store(), &scope.actor, &scope.org, &id, app.clock().now()).await?;
    Ok(LeDeleted::default())
}
