//! `POST /v1/inbound/bounces` (issue 18): bounces and complaints over
//! HTTP, for operators who pipe them from their own MTA or from Amazon SES.
//! Parsing is `domain::bounces`, applying is `domain::feedback`: the same
//! code as the inbound SMTP listener.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::OrgScope;
use crate::domain::bounces::{self, ParseError};
use crate::domain::feedback::{self, Applied, Reporter, Source};
use crate::error::Error;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedView {
    notification_id: String,
    /// `hard_bounce`, `soft_bounce` or `complaint`.
    kind: String,
    /// The notification's status afterwards (`bounced`, `complained`, or
    /// unchanged for a soft bounce).
    status: String,
    /// False when the same report had been applied before (nothing changed).
    changed: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboundResult {
    /// One entry per failed or complaining recipient the report names;
    /// empty for a report of success (`Action: delivered`) or `not-spam`.
    applied: Vec<AppliedView>,
}

impl From<Applied> for AppliedView {
    fn from(a: Applied) -> Self {
        AppliedView {
            notification_id: a.notification_id,
            kind: a.kind.to_owned(),
            status: a.status,
            changed: a.changed,
        }
    }
}

/// What the body is, by its Content-Type.
fn source_of(headers: &HeaderMap) -> Result<Source, Error> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    match ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase().as_str() {
        "message/rfc822" => Ok(Source::Http),
        // SNS posts its JSON as text/plain.
        "application/json" | "text/plain" => Ok(Source::Ses),
        _ => Err(Error::UnsupportedMediaType),
    }
}

pub(crate) fn parse_error(e: ParseError) -> Error {
    match e {
        ParseError::TooLarge => Error::PayloadTooLarge,
        other => Error::field("body", other.to_string()),
    }
}

/// POST /v1/inbound/bounces: applies a bounce or complaint to the org's
/// notification it names. Body: a raw RFC 5322 message
/// (`Content-Type: message/rfc822`: an RFC 3464 DSN or an RFC 5965 ARF
/// report) or an Amazon SES bounce/complaint notification
/// (`application/json`, or SNS's `text/plain`; the SNS envelope or the bare
/// notification). At most 1000 KiB.
#[utoipa::path(post, path = "/v1/inbound/bounces", tag = "native",
    request_body(content((String = "message/rfc822"), (Object = "application/json")),
        description = "A DSN/ARF message, or Amazon SES notification JSON"),
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = InboundResult), (status = 400), (status = 401), (status = 403),
        (status = 404, description = "The notification the report names is not one of this org's"),
        (status = 413), (status = 415)))]
pub async fn inbound_bounces(
    scope: OrgScope,
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<axum::Json<InboundResult>, Error> {
    let source = source_of(&headers)?;
    // Read here, not by the `Bytes` extractor: that one obeys the router's
    // default limit for JSON bodies (256 KiB); `api::buffer_body` already
    // bounded this body by `MAX_REPORT_BYTES`.
    let body = axum::body::to_bytes(body, bounces::MAX_REPORT_BYTES + 1).await.map_err(|_| Error::PayloadTooLarge)?;
    let domain = app.engine().mailer.config().domain.clone();
    let parsed = match source {
        Source::Ses => bounces::parse_ses(app.cipher(), &domain, &body),
        _ => bounces::parse_message(app.cipher(), &domain, &body),
    }
    .map_err(parse_error)?;
    let applied =
        feedback::apply(app.store(), Reporter::Org(&scope.org), &scope.actor, source, &parsed, app.clock().now())
            .await?;
    Ok(axum::Json(InboundResult { applied: applied.into_iter().map(Into::into).collect() }))
}
