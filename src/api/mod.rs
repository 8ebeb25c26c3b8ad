//! HTTP: five vendor API families plus Herald's native API, over one domain.
//!
//! Handlers return the domain [`Error`]; they never pick an envelope. The
//! [`envelope`] middleware finds the route's [`Family`] from the request path
//! and renders every error (the handlers', the extractors', and the
//! framework's own 404/405/413/415 and caught panics) in that family's shape.
//! So an error can never come out in the wrong envelope, or as a bare
//! framework body, and an internal cause is logged exactly once.

pub mod approval;
pub mod boldsign;
pub mod dbvisit;
pub mod forms;
pub mod leegality;
pub mod native;
pub mod openapi;
pub mod ops;
pub mod zitadel;

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Bytes, HttpBody};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::domain::identities;
use crate::error::{Denial, Error, FieldError, Resource};

/// Largest JSON body any endpoint accepts unless its route raises it.
pub const BODY_LIMIT: usize = 64 * 1024;

/// `POST /v1/events` takes bodies up to 256 KiB (contract §8, §9).
pub const EVENTS_BODY_LIMIT: usize = 256 * 1024;

/// The largest body a request to `path` may carry.
pub fn body_limit(path: &str) -> usize {
    if path == "/v1/events" {
        EVENTS_BODY_LIMIT
    } else if path == "/v1/inbound/bounces" {
        crate::domain::bounces::MAX_REPORT_BYTES
    } else {
        BODY_LIMIT
    }
}

/// How long, and how much of, an oversized body is still read and dropped
/// after its 413 went out (see [`too_large`]).
const LINGER: Duration = Duration::from_secs(5);
const LINGER_LIMIT: usize = 16 * 1024 * 1024;

/// Reads the whole request body (up to [`body_limit`]) before routing.
///
/// A handler may refuse a request before it reads the body (a bad token, a
/// wrong content type). If the body were left unread, hyper would close the
/// connection under a client that is still sending, and the client would see
/// a reset instead of the 401 or 415. A body over the limit, declared or
/// found while reading, is answered 413 at once ([`too_large`]).
/// A body that takes longer than `body_timeout` (`--http-body-timeout-seconds`)
/// to arrive is answered 408 and its connection closed: a client dribbling
/// bytes would otherwise hold the connection and its buffer for ever.
pub async fn buffer_body(State(body_timeout): State<Duration>, req: Request, next: Next) -> Response {
    use http_body_util::BodyExt;

    let (parts, mut body) = req.into_parts();
    let limit = body_limit(parts.uri.path());
    let declared =
        parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large(&parts, body, body_timeout);
    }
    let mut kept = Vec::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return Err(Error::MalformedJson("the body could not be read".into()));
            };
            if let Ok(data) = frame.into_data() {
                if kept.len() + data.len() > limit {
                    return Ok(false);
                }
                kept.extend_from_slice(&data);
            }
        }
        Ok(true)
    };
    match tokio::time::timeout(body_timeout, read).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return too_large(&parts, body, body_timeout),
        Ok(Err(err)) => return err.into_response(),
        Err(_) => return Error::RequestTimeout.into_response(),
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(kept))).await
}

/// Answers 413 and closes the connection after it. A client still sending
/// its body must still read the answer: were the connection closed with its
/// bytes unread, the client would get a reset, often instead of the 413 (a
/// test saw it). So the rest of the body is read and dropped in the
/// background, for at most [`LINGER`] (or the body timeout, if shorter) and
/// [`LINGER_LIMIT`] bytes, as nginx's "lingering close" does. Not for a
/// client that waits for `100 Continue`: it gets the 413 instead and sends
/// nothing more.
fn too_large(parts: &Parts, mut body: axum::body::Body, body_timeout: Duration) -> Response {
    use http_body_util::BodyExt;

    let waits_for_continue =
        parts.headers.get(header::EXPECT).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if !waits_for_continue {
        tokio::spawn(async move {
            let drain = async {
                let mut seen = 0usize;
                while let Some(Ok(frame)) = body.frame().await {
                    seen += frame.data_ref().map_or(0, Bytes::len);
                    if seen > LINGER_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(LINGER.min(body_timeout), drain).await;
        });
    }
    let mut res = Error::PayloadTooLarge.into_response();
    // HTTP/2 has no such header: there only the stream ends.
    if parts.version <= axum::http::Version::HTTP_11 {
        res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// What a 503 asks clients to wait (`Retry-After`), in seconds: about the
/// time a restarting database takes to accept connections again.
pub const RETRY_AFTER_SECONDS: u32 = 5;

/// The API families, each with its own error envelope (contract §2–§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `/v1`, `/admin/v1` and operational endpoints: RFC 9457 problem+json.
    Native,
    /// Leegality, `/api/v1/…`: `{code:"LE_ERR_SS_…", errors:[…]}`.
    Leegality,
    /// Dbvisit StandbyMP, `/email-settings/…`: `{successful:false, error:{message}}`.
    Dbvisit,
    /// Zitadel, `/management/v1/…` and `/admin/v1/policies/…`: gRPC-status JSON.
    Zitadel,
    /// BoldSign, `/v1/senderIdentities/…`: validation problem or `{error}`.
    BoldSign,
    /// The approval pages of mailed links, `/sender-identity/…`: HTML.
    Page,
    /// The operator console, `/console/…`: HTML pages.
    Console,
}

/// True when `path` is `prefix` or lies below it (segment-wise).
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

impl Family {
    /// The family that owns a request path. This table and the routers'
    /// mount points must agree; `tests/api/envelopes.rs` checks each family.
    pub fn of_path(path: &str) -> Family {
        if under(path, "/api") {
            Family::Leegality
        } else if under(path, "/email-settings") {
            Family::Dbvisit
        } else if under(path, "/management") || under(path, "/admin/v1/policies") {
            Family::Zitadel
        } else if under(path, "/v1/senderIdentities") {
            Family::BoldSign
        } else if under(path, identities::LINK_PATH.trim_end_matches('/')) {
            Family::Page
        } else if under(path, crate::console::PREFIX) {
            Family::Console
        } else {
            Family::Native
        }
    }

    /// The family's error response for `err` on a request to `path`. A 503
    /// says when to come back, in every family.
    pub fn render(self, err: &Error, path: &str) -> Response {
        let mut res = match self {
            Family::Native => native::error::render(err, path),
            Family::Leegality => leegality::error::render(err, path),
            Family::Dbvisit => dbvisit::error::render(err),
            Family::Zitadel => zitadel::error::render(err),
            Family::BoldSign => boldsign::error::render(err),
            Family::Page => approval::render_error(err),
            Family::Console => crate::console::render_error(err),
        };
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        if let Error::RateLimited(seconds) = err {
            // Every family's 429 says when to come back (issue 19).
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*seconds));
        }
        if let Error::RequestTimeout = err {
            // The rest of the body may still come; the connection cannot be reused.
            res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        res
    }
}

/// A request path as it may be logged: the path of an approval page holds
/// a link's token, which is a secret (contract §7), so it is cut off.
pub fn loggable_path(path: &str) -> &str {
    let prefix = identities::LINK_PATH;
    if path.len() > prefix.len() && path.starts_with(prefix) { "/sender-identity/{token}" } else { path }
}

/// The HTTP status of an error; every family agrees on it (Zitadel's gateway
/// mapping of its gRPC codes lands on the same statuses).
pub fn status_of(err: &Error) -> StatusCode {
    match err {
        Error::Invalid(_) | Error::MalformedJson(_) | Error::Precondition(_) => StatusCode::BAD_REQUEST,
        Error::Unauthenticated => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Error::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::InProgress(_) => StatusCode::CONFLICT,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A short, client-safe sentence for errors that have no field list. Never
/// includes an internal cause.
pub fn public_message(err: &Error) -> String {
    match err {
        Error::Invalid(fields) => {
            fields.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; ")
        }
        Error::MalformedJson(detail) => format!("malformed JSON body: {detail}"),
        Error::NotFound(Resource::Route) => "no such endpoint".into(),
        Error::NotFound(r) => format!("{r} not found"),
        Error::Conflict(r) => format!("{r} already exists"),
        Error::Precondition(why) => (*why).into(),
        Error::Unauthenticated => "missing, invalid or revoked token".into(),
        Error::Forbidden(Denial::OrgNotAccessible) => "organisation not found or not accessible with this token".into(),
        Error::Forbidden(Denial::AdminOnly) => "this endpoint needs an instance admin token".into(),
        Error::MethodNotAllowed => "method not allowed on this endpoint".into(),
        Error::PayloadTooLarge => "request body is too large".into(),
        Error::RequestTimeout => "the request body did not arrive in time".into(),
        Error::UnsupportedMediaType => {
            "request body must be JSON (Content-Type: application/json; POST /v1/inbound/bounces also takes \
             message/rfc822)"
                .into()
        }
        Error::RateLimited(_) => "too many requests; retry later".into(),
        Error::Unprocessable(why) | Error::InProgress(why) => (*why).into(),
        Error::Unavailable(_) => "the service is temporarily unavailable; retry later".into(),
        Error::Internal(_) => "internal server error".into(),
    }
}

/// Carries a handler's error to the [`envelope`] middleware.
#[derive(Clone)]
struct ErrorSlot(Arc<Error>);

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        // The status is provisional: `envelope` replaces the whole response.
        let mut res = status_of(&self).into_response();
        res.extensions_mut().insert(ErrorSlot(Arc::new(self)));
        res
    }
}

/// Renders every error response in the family envelope of its route.
pub async fn envelope(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut res = next.run(req).await;
    let err = match res.extensions_mut().remove::<ErrorSlot>() {
        Some(ErrorSlot(err)) => err,
        // An error status with an empty body was made by the framework (no
        // route, wrong method …); one with a body was meant as it is (the
        // 503 of `/readyz`).
        None if (res.status().is_client_error() || res.status().is_server_error())
            && res.body().size_hint().exact() == Some(0) =>
        {
            Arc::new(framework_error(res.status()))
        }
        None => return res,
    };
    match &*err {
        // The one place an internal cause is written down; never in a body.
        Error::Internal(cause) => tracing::error!(error = format!("{cause:#}"), "internal error"),
        Error::Unavailable(cause) => tracing::warn!(error = format!("{cause:#}"), "database unavailable"),
        _ => {}
    }
    let mut out = Family::of_path(&path).render(&err, &path);
    // What the error response says about the request and its connection.
    for name in [header::ALLOW, header::CONNECTION] {
        if let Some(value) = res.headers().get(&name) {
            out.headers_mut().insert(name, value.clone());
        }
    }
    out
}

/// An error response the framework made itself (no route, wrong method, a
/// caught panic …), as a domain error.
fn framework_error(status: StatusCode) -> Error {
    match status {
        StatusCode::UNAUTHORIZED => Error::Unauthenticated,
        StatusCode::NOT_FOUND => Error::NotFound(Resource::Route),
        StatusCode::METHOD_NOT_ALLOWED => Error::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UnsupportedMediaType,
        StatusCode::TOO_MANY_REQUESTS => Error::RateLimited(RETRY_AFTER_SECONDS),
        s if s.is_client_error() => Error::field("request", "the request could not be understood"),
        s => Error::Internal(anyhow::anyhow!("framework answered {s}")),
    }
}

/// The fallback of every router: an unknown path in its family's envelope.
pub async fn no_route() -> Error {
    Error::NotFound(Resource::Route)
}

/// A JSON body. Unlike `axum::Json` its rejections are domain errors: a
/// wrong content type is 415, an oversized body 413, broken syntax
/// `MalformedJson`, and a wrong type or missing field an `Invalid` naming
/// the field by its JSON path (values are never echoed back).
pub struct Json<T>(pub T);

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        if !is_json(req.headers()) {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection: BytesRejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::MalformedJson("the body could not be read".into())
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON object into `T` with field-level errors. Every request
/// body of every family is an object; serde would otherwise also build a
/// struct from an array (`["Acme"]`), which no client means.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
            return Err(Error::field("body", "must be a JSON object"));
        }
        _ => {
            let err = serde_json::from_slice::<serde::de::IgnoredAny>(bytes).err();
            return Err(Error::MalformedJson(
                err.map_or_else(|| "expected a JSON object".into(), |e| position_message(&e)),
            ));
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_data() { data_error(&path, &inner) } else { Error::MalformedJson(position_message(&inner)) }
    })?;
    de.end().map_err(|e| Error::MalformedJson(position_message(&e)))?;
    Ok(value)
}

/// serde_json's message for syntax errors ("expected value at line 1 column
/// 7") names positions, never input.
fn position_message(err: &serde_json::Error) -> String {
    err.to_string()
}

/// A data error as a field error. serde quotes the offending value in its
/// messages (`invalid type: string "hunter2", expected …`); the value might
/// be a secret, so only the expectation is kept.
fn data_error(path: &str, err: &serde_json::Error) -> Error {
    let full = err.to_string();
    let msg = full.split(" at line ").next().unwrap_or(&full);
    let path = if path == "." { "" } else { path };
    if let Some(name) = msg.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
        let field = if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
        return Error::field(field, "is required");
    }
    let field = if path.is_empty() { "body".to_owned() } else { path.to_owned() };
    let message = if let Some(known) = msg.strip_prefix("unknown field `") {
        // The unknown name is the client's own key; keep only the expectation.
        match known.split_once(", expected ") {
            Some((_, expected)) => format!("is not a known field (expected {expected})"),
            None => "is not a known field".to_owned(),
        }
    } else if let Some((_, expected)) = msg.split_once(", expected ") {
        format!("must be {}", plain_expectation(expected))
    } else {
        "has an invalid value".to_owned()
    };
    Error::Invalid(vec![FieldError::new(field, message)])
}

/// serde names Rust types (`i64`, `u16`); clients know JSON's words.
fn plain_expectation(expected: &str) -> &str {
    match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        other => other,
    }
}

/// Path parameters with domain-error rejections.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|_: PathRejection| Error::NotFound(Resource::Route))
    }
}

/// Query parameters with domain-error rejections.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(Query).map_err(|err: serde_path_to_error::Error<_>| {
            let field = err.path().to_string();
            let field = if field == "." { "query".to_owned() } else { field };
            Error::field(field, "has an invalid value")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_family() {
        assert_eq!(Family::of_path("/api/v1/notification-config"), Family::Leegality);
        assert_eq!(Family::of_path("/email-settings/show"), Family::Dbvisit);
        assert_eq!(Family::of_path("/management/v1/policies/notification"), Family::Zitadel);
        assert_eq!(Family::of_path("/admin/v1/policies/notification"), Family::Zitadel);
        assert_eq!(Family::of_path("/admin/v1/orgs"), Family::Native);
        assert_eq!(Family::of_path("/v1/senderIdentities/list"), Family::BoldSign);
        assert_eq!(Family::of_path("/sender-identity/abc.def"), Family::Page);
        assert_eq!(Family::of_path("/console/orgs/x"), Family::Console);
        assert_eq!(Family::of_path("/console"), Family::Console);
        assert_eq!(Family::of_path("/consoles"), Family::Native);
        assert_eq!(loggable_path("/sender-identity/0193.c2VjcmV0"), "/sender-identity/{token}");
        assert_eq!(loggable_path("/v1/events"), "/v1/events");
        assert_eq!(Family::of_path("/v1/events"), Family::Native);
        assert_eq!(Family::of_path("/apixyz"), Family::Native);
        assert_eq!(Family::of_path("/"), Family::Native);
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        password: String,
        password_change: bool,
    }

    fn fields(err: Error) -> Vec<FieldError> {
        match err {
            Error::Invalid(f) => f,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn json_errors_name_the_field_and_never_echo_values() {
        let err = parse_json::<Body>(br#"{"password": 12345678, "passwordChange": true}"#).unwrap_err();
        let f = fields(err);
        assert_eq!(f[0].field, "password");
        assert!(!f[0].message.contains("12345678"), "{}", f[0].message);

        let f = fields(parse_json::<Body>(br#"{"password": "x", "passwordChange": "canary"}"#).unwrap_err());
        assert_eq!(f[0].field, "passwordChange");
        assert_eq!(f[0].message, "must be a boolean");

        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Port {
            port: u16,
        }
        let f = fields(parse_json::<Port>(br#"{"port": "abc"}"#).unwrap_err());
        assert_eq!(f[0].message, "must be an integer");

        let f = fields(parse_json::<Body>(br#"{"password": "x"}"#).unwrap_err());
        assert_eq!((f[0].field.as_str(), f[0].message.as_str()), ("passwordChange", "is required"));

        let f =
            fields(parse_json::<Body>(br#"{"password": "x", "passwordChange": true, "secretish": 1}"#).unwrap_err());
        assert!(!f[0].message.contains("secretish"));

        assert!(matches!(parse_json::<Body>(b"{\"password\": "), Err(Error::MalformedJson(_))));
        let f = fields(parse_json::<Body>(br#"["x", true]"#).unwrap_err());
        assert_eq!((f[0].field.as_str(), f[0].message.as_str()), ("body", "must be a JSON object"));
        assert!(matches!(parse_json::<Body>(b"  \x01"), Err(Error::MalformedJson(_))));
        assert!(matches!(parse_json::<Body>(b""), Err(Error::MalformedJson(_))));
        assert!(matches!(
            parse_json::<Body>(br#"{"password": "x", "passwordChange": true} trailing"#),
            Err(Error::MalformedJson(_))
        ));
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        for (ct, ok) in [
            ("application/json", true),
            ("application/json; charset=utf-8", true),
            ("application/json;odata.metadata=minimal;odata.streaming=true", true),
            ("application/problem+json", true),
            ("application/grpc", false),
            ("application/grpc-web+proto", false),
            ("text/plain", false),
        ] {
            h.insert(header::CONTENT_TYPE, ct.parse().unwrap());
            assert_eq!(is_json(&h), ok, "{ct}");
        }
    }
}
