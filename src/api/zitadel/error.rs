//! Zitadel envelope (seed 003, contract §6): the gRPC gateway's status JSON
//! `{"code":<gRPC code>,"message":"…","details":[{"@type":…,"id":…,"message":…}]}`
//! with the gateway's HTTP mapping.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::api::{public_message, status_of};
use crate::error::{Error, Resource};

const DETAIL_TYPE: &str = "type.googleapis.com/zitadel.v1.ErrorDetail";

/// gRPC status code and Zitadel-style error id for each error.
fn code_and_id(err: &Error) -> (u8, &'static str) {
    match err {
        Error::Invalid(_) => (3, "HERALD-INVALID"),
        Error::MalformedJson(_) => (3, "HERALD-JSON"),
        Error::PayloadTooLarge => (3, "HERALD-TOOLARGE"),
        // DEADLINE_EXCEEDED; the status stays 408, which says the client was slow.
        Error::RequestTimeout => (4, "HERALD-TIMEOUT"),
        Error::UnsupportedMediaType => (3, "HERALD-MEDIATYPE"),
        Error::NotFound(Resource::Route) => (5, "HERALD-ROUTE"),
        Error::NotFound(_) => (5, "HERALD-NOTFOUND"),
        Error::Conflict(_) => (6, "HERALD-EXISTS"),
        Error::Forbidden(_) => (7, "HERALD-DENIED"),
        Error::RateLimited(_) => (8, "HERALD-RATE"),
        Error::Unprocessable(_) => (3, "HERALD-UNPROCESSABLE"),
        Error::InProgress(_) => (10, "HERALD-IN-PROGRESS"),
        Error::Precondition(_) => (9, "HERALD-PRECONDITION"),
        Error::MethodNotAllowed => (12, "HERALD-METHOD"),
        Error::Unavailable(_) => (14, "HERALD-UNAVAILABLE"),
        Error::Internal(_) => (13, "HERALD-INTERNAL"),
        Error::Unauthenticated => (16, "HERALD-AUTH"),
    }
}

pub fn render(err: &Error) -> Response {
    let (code, id) = code_and_id(err);
    let message = public_message(err);
    let body = json!({
        "code": code,
        "message": format!("{message} ({id})"),
        "details": [{ "@type": DETAIL_TYPE, "id": id, "message": message }],
    });
    (status_of(err), Json(body)).into_response()
}

/// The same error as a gRPC status, for Zitadel's own transports (gRPC,
/// gRPC-web, Connect): the code and message the REST envelope carries.
pub fn status(err: &Error) -> tonic::Status {
    if let Error::Internal(cause) = err {
        // The transports answer without the `envelope` middleware seeing an
        // error, so the cause is written down here, once; never sent.
        tracing::error!(error = format!("{cause:#}"), "internal error");
    }
    let (code, id) = code_and_id(err);
    let mut status =
        tonic::Status::new(tonic::Code::from_i32(i32::from(code)), format!("{} ({id})", public_message(err)));
    if let Error::RateLimited(seconds) = err {
        // RESOURCE_EXHAUSTED says when to come back, as the REST 429 does.
        status.metadata_mut().insert("retry-after", tonic::metadata::MetadataValue::from(*seconds));
    }
    status
}
