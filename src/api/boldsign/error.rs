//! BoldSign envelope (seed 004, contract §7): ASP.NET's validation problem
//! for 400, `{"error":"…"}` for everything else.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::{public_message, status_of};
use crate::error::{Error, Resource};

pub fn render(err: &Error) -> Response {
    let status = status_of(err);
    let errors: Option<BTreeMap<String, Vec<String>>> = match err {
        Error::Invalid(fields) => {
            let mut by_field: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for f in fields {
                by_field.entry(f.field.clone()).or_default().push(f.message.clone());
            }
            Some(by_field)
        }
        // ASP.NET reports unreadable bodies under the "$" key.
        Error::MalformedJson(detail) => Some(BTreeMap::from([("$".to_owned(), vec![detail.clone()])])),
        _ => None,
    };
    match errors {
        Some(errors) if status == StatusCode::BAD_REQUEST => {
            let body = json!({
                "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
                "title": "One or more validation errors occurred.",
                "status": 400,
                "errors": errors,
            });
            (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
        }
        _ => {
            let message = match err {
                Error::NotFound(Resource::SenderIdentity) => "Sender identity not found.".to_owned(),
                Error::Conflict(Resource::SenderIdentity) => {
                    "A sender identity with this email address already exists.".to_owned()
                }
                other => public_message(other),
            };
            (status, Json(json!({ "error": message }))).into_response()
        }
    }
}
