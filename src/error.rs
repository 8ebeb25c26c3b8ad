//! The domain error: what went wrong, in domain words.
//!
//! No status codes and no wire shapes here: each API family renders an
//! [`Error`] in its own envelope (`crate::api::Family::render`). Nothing in
//! an `Error` may carry a secret; `Internal` causes are logged once by the
//! envelope middleware and never reach a response body.

use std::fmt;

/// One invalid input field, named as the client spelled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// The kinds of thing a request can name; used to word not-found and
/// conflict errors per family (Leegality's detail codes hang off these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// No route matches the request path.
    Route,
    Org,
    Token,
    NotificationPolicy,
    /// An org's own SMTP configuration (Leegality notification-config).
    NotificationConfig,
    Department,
    User,
    /// A notification of the delivery log.
    Notification,
    /// A BoldSign sender identity.
    SenderIdentity,
    /// An address on an org's suppression list.
    Suppression,
    /// An org's webhook endpoint.
    Webhook,
    /// A delivery provider (issue 17).
    Provider,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Route => "resource",
            Resource::Org => "organisation",
            Resource::Token => "token",
            Resource::NotificationPolicy => "notification policy",
            Resource::NotificationConfig => "notification configuration",
            Resource::Department => "department",
            Resource::User => "user",
            Resource::Notification => "notification",
            Resource::SenderIdentity => "sender identity",
            Resource::Suppression => "suppression",
            Resource::Webhook => "webhook endpoint",
            Resource::Provider => "provider",
        })
    }
}

/// Why a caller with a valid token may still not do something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The named org does not exist or is not the token's own: one answer
    /// for both, so a token cannot probe for other orgs (contract §1).
    OrgNotAccessible,
    /// An instance admin token is required.
    AdminOnly,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every invalid field of the request, all at once.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The body is not JSON at all; the detail is the parser's position
    /// message, which never quotes the input.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("{0} not found")]
    NotFound(Resource),
    #[error("{0} already exists")]
    Conflict(Resource),
    /// The request is well-formed but the current state forbids it.
    #[error("{0}")]
    Precondition(&'static str),
    #[error("missing, unknown or revoked token")]
    Unauthenticated,
    #[error("forbidden")]
    Forbidden(Denial),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body too large")]
    PayloadTooLarge,
    /// The request's body did not arrive within the body timeout.
    #[error("request body too slow")]
    RequestTimeout,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Too many requests (an API rate limit, a quota in reject mode, busy
    /// sign-in hashing); the seconds after which a retry may succeed
    /// (`Retry-After`).
    #[error("too many requests")]
    RateLimited(u32),
    /// An idempotency key reused with a different request.
    #[error("{0}")]
    Unprocessable(&'static str),
    /// The same request is still being processed by another call.
    #[error("{0}")]
    InProgress(&'static str),
    /// A dependency (the database) is unreachable or not taking work just
    /// now; worth retrying. Logged with its cause chain, shown as a bare 503
    /// with `Retry-After`.
    #[error("a dependency is unavailable: {0}")]
    Unavailable(anyhow::Error),
    /// A fault of ours. Logged with its cause chain, shown as a bare 500.
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// The one place store failures become domain errors: an outage of the
/// database is [`Error::Unavailable`], anything else [`Error::Internal`].
impl From<anyhow::Error> for Error {
    fn from(err: anyhow::Error) -> Self {
        if crate::store::is_unavailable(&err) { Error::Unavailable(err) } else { Error::Internal(err) }
    }
}

impl Error {
    /// A single invalid field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)])
    }
}

/// Collects field errors so a request reports every bad field at once.
#[derive(Debug, Default)]
pub struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Keeps the value of a parse, or records its error and keeps `None`.
    pub fn take<T>(&mut self, parsed: Result<T, FieldError>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }

    /// `Ok(())` when nothing was recorded, else every recorded error.
    pub fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() { Ok(()) } else { Err(Error::Invalid(self.0)) }
    }
}
