//! Leegality: the org's SMTP configuration (seed 000, contract §3); later
//! departments and users (seed 001, §4). Success is
//! `{"code":"LE_SCS_SS_200","message":…,"data":…}`; errors are in `error.rs`.

pub mod config;
pub mod departments;
pub mod error;
pub mod users;

use axum::extract::Request;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(config::get_config, config::create_config, config::replace_config, config::delete_config))
        .routes(routes!(departments::create, departments::list))
        .routes(routes!(departments::get, departments::replace, departments::delete))
        .routes(routes!(users::create))
        .routes(routes!(users::search))
        .routes(routes!(users::get, users::replace, users::delete))
}

/// Leegality documents its base URL as `…/api/api/v1/…` (production and
/// sandbox, seeds 000 and 001), while its paths and error `path`s read
/// `/api/v1/…`. A client configured with the documented base must work, so
/// requests under `/api/api/v1` are routed as the same request under
/// `/api/v1`: one route table, one OpenAPI entry per operation.
pub const ALIAS_BASE: &str = "/api/api/v1";

/// Rewrites a request under [`ALIAS_BASE`] to `/api/v1`, before routing.
pub async fn base_path_alias(mut req: Request) -> Request {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix(ALIAS_BASE).filter(|r| r.is_empty() || r.starts_with('/')) else {
        return req;
    };
    let target = match req.uri().query() {
        Some(q) => format!("/api/v1{rest}?{q}"),
        None => format!("/api/v1{rest}"),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = target.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Leegality's success envelope.
#[derive(Serialize)]
pub struct LeOk<T: Serialize> {
    code: &'static str,
    message: &'static str,
    data: Option<T>,
}

impl<T: Serialize> LeOk<T> {
    pub fn new(message: &'static str, data: T) -> Self {
        LeOk { code: "LE_SCS_SS_200", message, data: Some(data) }
    }

    pub fn empty(message: &'static str) -> Self {
        LeOk { code: "LE_SCS_SS_200", message, data: None }
    }
}

/// `DELETE` of a department or user: `{"code":"LE_SS_002","message":"Requested record has been deleted."}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LeDeleted {
    code: &'static str,
    message: &'static str,
}

impl Default for LeDeleted {
    fn default() -> Self {
        LeDeleted { code: "LE_SS_002", message: "Requested record has been deleted." }
    }
}

impl IntoResponse for LeDeleted {
    fn into_response(self) -> Response {
        axum::Json(self).into_response()
    }
}

impl<T: Serialize> IntoResponse for LeOk<T> {
    fn into_response(self) -> Response {
        axum::Json(self).into_response()
    }
}
