//! Native envelope: RFC 9457 `application/problem+json`, with the invalid
//! fields listed in an `errors` extension member.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::{public_message, status_of};
use crate::error::{Error, Resource};

/// A stable machine-readable slug per kind of problem (the `type` URI's tail).
fn slug(err: &Error) -> &'static str {
    match err {
        Error::Invalid(_) => "invalid-input",
        Error::MalformedJson(_) => "malformed-json",
        Error::NotFound(Resource::Route) => "no-such-endpoint",
        Error::NotFound(_) => "not-found",
        Error::Conflict(_) => "conflict",
        Error::Precondition(_) => "failed-precondition",
        Error::Unauthenticated => "unauthenticated",
        Error::Forbidden(_) => "forbidden",
        Error::MethodNotAllowed => "method-not-allowed",
        Error::PayloadTooLarge => "payload-too-large",
        Error::RequestTimeout => "request-timeout",
        Error::UnsupportedMediaType => "unsupported-media-type",
        Error::RateLimited(_) => "rate-limited",
        Error::Unprocessable(_) => "idempotency-key-reused",
        Error::InProgress(_) => "request-in-progress",
        Error::Unavailable(_) => "unavailable",
        Error::Internal(_) => "internal",
    }
}

pub fn render(err: &Error, path: &str) -> Response {
    let status = status_of(err);
    let mut body = json!({
        "type": format!("urn:herald:problem:{}", slug(err)),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": public_message(err),
        "instance": path,
    });
    if let Error::Invalid(fields) = err {
        body["errors"] =
            fields.iter().map(|f| json!({ "field": f.field, "message": f.message })).collect::<Vec<_>>().into();
    }
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}
