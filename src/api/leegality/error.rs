//! Leegality envelope (seeds 000/001, contract §3–§4):
//! `{"code":"LE_ERR_SS_<status>","errors":[{"message","path","code"}]}`,
//! one entry per invalid field.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::api::{public_message, status_of};
use crate::error::{Denial, Error, Resource};

fn entry(message: impl Into<String>, path: Value, code: Value) -> Value {
    json!({ "message": message.into(), "path": path, "code": code })
}

pub fn render(err: &Error, path: &str) -> Response {
    let status = status_of(err);
    let errors: Vec<Value> = match err {
        Error::Invalid(fields) => fields
            .iter()
            .map(|f| entry(format!("Invalid value for field [{}], {}", f.field, f.message), path.into(), Value::Null))
            .collect(),
        Error::Unauthenticated => {
            vec![entry("Invalid or expired token", "/api/v1/*".into(), "LE_ERR_SS_303".into())]
        }
        Error::Forbidden(Denial::OrgNotAccessible) => {
            vec![entry("Organisation not found or not accessible.", path.into(), "LE_ERR_SS_403".into())]
        }
        Error::Forbidden(Denial::AdminOnly) => {
            vec![entry("Instance admin token required.", path.into(), "LE_ERR_SS_403".into())]
        }
        Error::NotFound(Resource::NotificationConfig) => {
            vec![entry("Configuration not found.", path.into(), "LE_ERR_SS_1301".into())]
        }
        Error::Conflict(Resource::NotificationConfig) => {
            vec![entry("Configuration already exists.", path.into(), Value::Null)]
        }
        Error::NotFound(Resource::Department) => {
            vec![entry("Department does not exist.", path.into(), "LE_ERR_SS_001".into())]
        }
        Error::NotFound(Resource::User) => vec![entry("User does not exist.", path.into(), "LE_ERR_SS_002".into())],
        Error::Conflict(Resource::Department) => {
            vec![entry("Department with this name already exists.", path.into(), Value::Null)]
        }
        Error::Conflict(Resource::User) => {
            vec![entry("User with this email already exists.", path.into(), Value::Null)]
        }
        // The 500 says nothing about its cause (seed: path and code null).
        Error::Internal(_) => vec![entry("Internal Server Error", Value::Null, Value::Null)],
        Error::Unavailable(_) => vec![entry("Service Unavailable", Value::Null, Value::Null)],
        other => vec![entry(public_message(other), path.into(), Value::Null)],
    };
    let body = json!({ "code": format!("LE_ERR_SS_{}", status.as_u16()), "errors": errors });
    (status, Json(body)).into_response()
}
