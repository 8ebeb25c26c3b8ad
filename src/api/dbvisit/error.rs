//! Dbvisit StandbyMP envelope (seed 002, contract §5):
//! `{"successful":false,"error":{"message":"…"}}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::{public_message, status_of};
use crate::error::Error;

/// Dbvisit names fields in its messages (`smtp_port must be …`); a message
/// that does not (a JSON type error) gets its field in front.
fn message(err: &Error) -> String {
    match err {
        Error::Invalid(fields) => fields
            .iter()
            .map(|f| {
                let name = f.field.rsplit('.').next().unwrap_or(&f.field);
                if f.message.starts_with(name) { f.message.clone() } else { format!("{}: {}", f.field, f.message) }
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => public_message(other),
    }
}

pub fn render(err: &Error) -> Response {
    let body = json!({ "successful": false, "error": { "message": message(err) } });
    (status_of(err), Json(body)).into_response()
}
