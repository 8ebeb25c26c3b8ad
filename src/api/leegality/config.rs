//! `GET|POST|PUT|DELETE /api/v1/notification-config` (seed 000, contract §3).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::LeOk;
use crate::api::Json;
use crate::auth::OrgScope;
use crate::domain::smtp::{
    self, PasswordChange, Security, SmtpDraft, SmtpSettings, parse_address, parse_host, parse_password, parse_text,
};
use crate::error::{Error, FieldError, FieldErrors};
use crate::state::AppState;

/// `NotificationConfigRequest`. Unknown properties are ignored, as the
/// original does, so a UI can send back what it read (`id`, `passwordSet` …).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigBody {
    /// Hostname or IP literal, ≤ 253 characters. Required.
    #[schema(max_length = 253)]
    email_server_host: Option<String>,
    /// Decimal string 1–65535; absent: 587 with TLS, else 25. 465 means implicit TLS.
    #[schema(pattern = "^[0-9]{1,5}$")]
    email_server_port: Option<String>,
    #[schema(max_length = 255)]
    username: Option<String>,
    /// Write-only. Absent or null keeps the stored one (unless host or port
    /// change); `""` clears it.
    #[schema(max_length = 1024, format = Password, write_only)]
    password: Option<String>,
    #[schema(max_length = 254, format = Email)]
    from_email: Option<String>,
    #[schema(max_length = 255)]
    from_name: Option<String>,
    #[schema(max_length = 254, format = Email)]
    reply_to: Option<String>,
    /// TLS required: implicit on 465, STARTTLS otherwise.
    tls_enabled: Option<bool>,
    /// Absent: true on create, unchanged on update.
    enabled: Option<bool>,
}

/// `""` for an optional text field means "none".
fn optional(raw: Option<String>) -> Option<String> {
    raw.filter(|s| !s.trim().is_empty())
}

fn parse_port(raw: &str) -> Result<u16, FieldError> {
    let raw = raw.trim();
    match raw.parse::<u16>() {
        Ok(port) if port >= 1 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(FieldError::new("emailServerPort", "Email server port must be a number between 1 and 65535")),
    }
}

impl ConfigBody {
    /// Validates every field, reporting all bad ones at once.
    pub fn into_draft(self) -> Result<SmtpDraft, Error> {
        let ConfigBody {
            email_server_host,
            email_server_port,
            username,
            password,
            from_email,
            from_name,
            reply_to,
            tls_enabled,
            enabled,
        } = self;
        let mut errors = FieldErrors::new();
        let host =
            errors.take(parse_host("emailServerHost", "Email server host", email_server_host.as_deref().unwrap_or("")));
        let port = match email_server_port.as_deref() {
            Some(p) if !p.trim().is_empty() => errors.take(parse_port(p)),
            _ => None,
        };
        let username = optional(username).and_then(|u| errors.take(parse_text("username", "Username", &u, 255)));
        let from_email = optional(from_email).and_then(|a| errors.take(parse_address("fromEmail", "From email", &a)));
        let from_name = optional(from_name).and_then(|n| errors.take(parse_text("fromName", "From name", &n, 255)));
        let reply_to = optional(reply_to).and_then(|a| errors.take(parse_address("replyTo", "Reply to", &a)));
        if let Some(p) = password.as_deref().filter(|p| !p.is_empty()) {
            errors.take(parse_password("password", "Password", p));
        }
        errors.finish()?;

        let tls = tls_enabled.unwrap_or(false);
        let port = port.unwrap_or(if tls { 587 } else { 25 });
        let security = match (tls, port) {
            (false, _) => Security::Plain,
            (true, 465) => Security::Tls,
            (true, _) => Security::StartTls,
        };
        Ok(SmtpDraft {
            enabled,
            host: host.unwrap_or_default(),
            port,
            security,
            accept_invalid_certs: false,
            username,
            password: PasswordChange::from_field(password),
            from_email,
            from_name,
            reply_to,
        })
    }
}

/// `NotificationConfigVO`: the password never, `passwordSet` instead.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationConfigVo {
    id: String,
    email_server_host: String,
    email_server_port: String,
    username: Option<String>,
    from_email: Option<String>,
    from_name: Option<String>,
    reply_to: Option<String>,
    tls_enabled: bool,
    enabled: bool,
    password_set: bool,
    /// UTC, to the second, without zone (as the seed shows it).
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$", example = "2025-10-10T15:42:45")]
    created_at: String,
    #[schema(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}$", example = "2025-10-10T15:42:45")]
    updated_at: String,
}

impl From<SmtpSettings> for NotificationConfigVo {
    fn from(s: SmtpSettings) -> Self {
        NotificationConfigVo {
            id: s.id.clone(),
            email_server_port: s.effective_port().to_string(),
            tls_enabled: s.security != Security::Plain,
            email_server_host: s.host,
            username: s.username,
            from_email: s.from_email,
            from_name: s.from_name,
            reply_to: s.reply_to,
            enabled: s.enabled,
            password_set: s.password_set,
            // The seed's form: UTC, to the second, no zone (`2025-10-10T15:42:45`).
            created_at: s.created_at.local_seconds_utc(),
            updated_at: s.updated_at.local_seconds_utc(),
        }
    }
}

/// The envelope as documented (utoipa cannot see through `LeOk<T>`).
#[derive(Serialize, ToSchema)]
pub struct ConfigResponse {
    /// `LE_SCS_SS_200`
    code: String,
    message: String,
    data: Option<NotificationConfigVo>,
}

/// GET /api/v1/notification-config: the org's configuration, or 404
/// `LE_ERR_SS_1301`.
#[utoipa::path(get, path = "/api/v1/notification-config", tag = "leegality",
    security(("x-auth-token" = [])),
    responses((status = 200, body = ConfigResponse), (status = 401), (status = 404)))]
pub async fn get_config(scope: OrgScope, State(app): State<AppState>) -> Result<LeOk<NotificationConfigVo>, Error> {
    let settings = smtp::org_config(app.store(), &scope.org).await?;
    Ok(LeOk::new("Notification configuration fetched successfully", settings.into()))
}

/// POST /api/v1/notification-config: create it; 409 if the org has one.
#[utoipa::path(post, path = "/api/v1/notification-config", tag = "leegality", request_body = ConfigBody,
    security(("x-auth-token" = [])),
    responses((status = 200, body = ConfigResponse), (status = 400), (status = 401), (status = 409)))]
pub async fn create_config(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<ConfigBody>,
) -> Result<LeOk<NotificationConfigVo>, Error> {
    let draft = body.into_draft()?;
    let settings =
        smtp::create_org_config(app.store(), app.cipher(), &scope.actor, &scope.org, draft, app.clock().now()).await?;
    Ok(LeOk::new("Notification configuration created successfully", settings.into()))
}

/// PUT /api/v1/notification-config: replace it; never creates (404 `LE_ERR_SS_1301`).
#[utoipa::path(put, path = "/api/v1/notification-config", tag = "leegality", request_body = ConfigBody,
    security(("x-auth-token" = [])),
    responses((status = 200, body = ConfigResponse), (status = 400), (status = 401), (status = 404)))]
pub async fn replace_config(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<ConfigBody>,
) -> Result<LeOk<NotificationConfigVo>, Error> {
    let draft = body.into_draft()?;
    let settings =
        smtp::replace_org_config(app.store(), app.cipher(), &scope.actor, &scope.org, draft, app.clock().now()).await?;
    Ok(LeOk::new("Notification configuration updated successfully", settings.into()))
}

/// DELETE /api/v1/notification-config: remove it; mail falls back to the
/// instance settings (contract §5).
#[utoipa::path(delete, path = "/api/v1/notification-config", tag = "leegality",
    security(("x-auth-token" = [])),
    responses((status = 200, body = ConfigResponse), (status = 401), (status = 404)))]
pub async fn delete_config(scope: OrgScope, State(app): State<AppState>) -> Result<LeOk<NotificationConfigVo>, Error> {
    smtp::delete_org_config(app.store(), &scope.actor, &scope.org, app.clock().now()).await?;
    Ok(LeOk::empty("Notification configuration deleted successfully"))
}
