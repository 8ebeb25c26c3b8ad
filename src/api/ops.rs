//! Operational endpoints, open to anyone: liveness, readiness, metrics and
//! the OpenAPI document (contract §2).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}

/// GET /healthz: the process is up. Touches nothing else.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, description = "alive", body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

#[derive(Serialize, ToSchema)]
struct Readiness {
    /// `ready` or `unavailable`.
    status: &'static str,
}

/// GET /readyz: the database answers and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, description = "ready", body = Readiness),
    (status = 503, description = "database unreachable or migrations missing", body = Readiness),
))]
async fn readyz(State(app): State<AppState>) -> Response {
    match app.store().ready().await {
        Ok(()) => axum::Json(Readiness { status: "ready" }).into_response(),
        Err(err) => {
            tracing::warn!(error = format!("{err:#}"), "not ready");
            let retry = [(header::RETRY_AFTER, crate::api::RETRY_AFTER_SECONDS.to_string())];
            (StatusCode::SERVICE_UNAVAILABLE, retry, axum::Json(Readiness { status: "unavailable" })).into_response()
        }
    }
}

/// GET /metrics: Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics() -> Response {
    let text = crate::telemetry::metrics().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// GET /openapi.json: the OpenAPI 3.1 document of every endpoint, generated
/// from the routes themselves.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi(State(app): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], app.openapi_json().to_owned()).into_response()
}
