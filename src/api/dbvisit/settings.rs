//! `/email-settings/edit|show|clear` (seed 002, contract §5).

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::Json;
use crate::auth::Admin;
use crate::domain::smtp::{
    self, PasswordChange, Security, SmtpPatch, SmtpSettings, parse_address, parse_host, parse_password, parse_text,
};
use crate::error::{Error, FieldError, FieldErrors};
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
pub struct EditRequest {
    params: EditParams,
}

/// Parameters of `edit`; any not sent keep their value.
#[derive(Deserialize, ToSchema, Default)]
#[serde(default)]
pub struct EditParams {
    /// Accept self-signed or otherwise invalid certificates from this server only.
    allow_selfsigned_certs: Option<bool>,
    /// `Plain`, `StartTLS` or `TLS`.
    encryption: Option<String>,
    /// `""` clears it.
    #[schema(max_length = 254)]
    from_email: Option<String>,
    /// Write-only; `""` clears it.
    #[schema(max_length = 1024, format = Password, write_only)]
    password: Option<String>,
    #[schema(max_length = 253)]
    smtp_host: Option<String>,
    /// 0–65535; 0 means the mode's default (25, 587, 465).
    #[schema(minimum = 0, maximum = 65535)]
    smtp_port: Option<i64>,
    /// `""` clears it.
    #[schema(max_length = 255)]
    username: Option<String>,
}

fn parse_encryption(raw: &str) -> Result<Security, FieldError> {
    match raw {
        "Plain" => Ok(Security::Plain),
        "StartTLS" => Ok(Security::StartTls),
        "TLS" => Ok(Security::Tls),
        _ => Err(FieldError::new("encryption", "encryption must be one of Plain, StartTLS, TLS")),
    }
}

fn encryption_name(security: Security) -> &'static str {
    match security {
        Security::Plain => "Plain",
        Security::StartTls => "StartTLS",
        Security::Tls => "TLS",
        // A stored value Herald does not know: shown as such, never sent through.
        Security::Unrecognised => "Unknown",
    }
}

impl EditParams {
    fn into_patch(self) -> Result<SmtpPatch, Error> {
        let EditParams { allow_selfsigned_certs, encryption, from_email, password, smtp_host, smtp_port, username } =
            self;
        let mut errors = FieldErrors::new();
        let host = smtp_host.and_then(|h| errors.take(parse_host("smtp_host", "smtp_host", &h)));
        let port = smtp_port.and_then(|p| {
            let parsed = u16::try_from(p)
                .map_err(|_| FieldError::new("smtp_port", "smtp_port must be an integer between 0 and 65535"));
            errors.take(parsed)
        });
        let security = encryption.and_then(|e| errors.take(parse_encryption(&e)));
        let from_email = from_email.and_then(|a| {
            if a.is_empty() { Some(a) } else { errors.take(parse_address("from_email", "from_email", &a)) }
        });
        let username = username.and_then(|u| errors.take(parse_text("username", "username", &u, 255)));
        if let Some(p) = password.as_deref().filter(|p| !p.is_empty()) {
            errors.take(parse_password("password", "password", p));
        }
        errors.finish()?;
        Ok(SmtpPatch {
            host,
            port,
            security,
            accept_invalid_certs: allow_selfsigned_certs,
            username,
            password: password.map(|p| PasswordChange::from_field(Some(p))),
            from_email,
        })
    }
}

/// `email_settings`: never the password; `password_set` says whether one is stored.
#[derive(Serialize, ToSchema)]
pub struct EmailSettings {
    allow_selfsigned_certs: bool,
    encryption: &'static str,
    from_email: String,
    smtp_host: String,
    smtp_port: u16,
    username: String,
    password_set: bool,
}

impl EmailSettings {
    /// What `show` answers when nothing is configured: the original always
    /// has a settings object, so clients get an empty one rather than a 404.
    fn unset() -> Self {
        EmailSettings {
            allow_selfsigned_certs: false,
            encryption: "Plain",
            from_email: String::new(),
            smtp_host: String::new(),
            smtp_port: 0,
            username: String::new(),
            password_set: false,
        }
    }
}

impl From<SmtpSettings> for EmailSettings {
    fn from(s: SmtpSettings) -> Self {
        EmailSettings {
            allow_selfsigned_certs: s.accept_invalid_certs,
            encryption: encryption_name(s.security),
            from_email: s.from_email.unwrap_or_default(),
            smtp_host: s.host,
            smtp_port: s.port,
            username: s.username.unwrap_or_default(),
            password_set: s.password_set,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SettingsResponse {
    successful: bool,
    result: EmailSettings,
    /// Always null on success.
    error: Option<String>,
}

fn ok(result: EmailSettings) -> axum::Json<SettingsResponse> {
    axum::Json(SettingsResponse { successful: true, result, error: None })
}

/// POST /email-settings/edit: change the instance settings; params not sent keep their value.
#[utoipa::path(post, path = "/email-settings/edit", tag = "dbvisit", request_body = EditRequest,
    security(("bearer" = [])),
    responses((status = 200, body = SettingsResponse), (status = 400), (status = 401), (status = 403)))]
pub async fn edit(
    Admin(caller): Admin,
    State(app): State<AppState>,
    Json(body): Json<EditRequest>,
) -> Result<axum::Json<SettingsResponse>, Error> {
    let patch = body.params.into_patch()?;
    let settings =
        smtp::edit_instance_settings(app.store(), app.cipher(), &caller.actor, patch, app.clock().now()).await?;
    Ok(ok(settings.into()))
}

async fn show(app: &AppState) -> Result<axum::Json<SettingsResponse>, Error> {
    let settings = smtp::instance_settings(app.store()).await?;
    Ok(ok(settings.map_or_else(EmailSettings::unset, EmailSettings::from)))
}

/// GET /email-settings/show: the instance settings (empty values when unset).
#[utoipa::path(get, path = "/email-settings/show", tag = "dbvisit", security(("bearer" = [])),
    responses((status = 200, body = SettingsResponse), (status = 401), (status = 403)))]
pub async fn show_get(_: Admin, State(app): State<AppState>) -> Result<axum::Json<SettingsResponse>, Error> {
    show(&app).await
}

/// POST /email-settings/show: the same as GET (any body is ignored).
#[utoipa::path(post, path = "/email-settings/show", tag = "dbvisit", security(("bearer" = [])),
    responses((status = 200, body = SettingsResponse), (status = 401), (status = 403)))]
pub async fn show_post(_: Admin, State(app): State<AppState>) -> Result<axum::Json<SettingsResponse>, Error> {
    show(&app).await
}

/// POST /email-settings/clear: remove the instance settings.
#[utoipa::path(post, path = "/email-settings/clear", tag = "dbvisit", security(("bearer" = [])),
    responses((status = 200, body = SettingsResponse), (status = 401), (status = 403)))]
pub async fn clear(Admin(caller): Admin, State(app): State<AppState>) -> Result<axum::Json<SettingsResponse>, Error> {
    smtp::clear_instance_settings(app.store(), &caller.actor, app.clock().now()).await?;
    Ok(ok(EmailSettings::unset()))
}
