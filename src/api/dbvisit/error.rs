//! Dbvisit StandbyMP envelope (seed 002, contract §5):
//! `{"successful":false,"error":{"message":"…"}}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::{public_message, status_of};
use crate::error::Error;

pub fn render(err: &Error) -> Response {
    let body = json!({ "successful": false, "error": { "message": public_message(err) } });
    (status_of(err), Json(body)).into_response()
}
