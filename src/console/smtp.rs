//! An org's SMTP settings: edit them (the password write-only: keep, set or
//! clear, never shown) and send a test mail that reports each step.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{Answer, Form, Signed, field_errors, read_form, see_other};
use crate::api::{Path, Query};
use crate::delivery::mailer::Step;
use crate::delivery::{self, TestOutcome};
use crate::domain::orgs::Org;
use crate::domain::smtp::{
    self, PasswordChange, Security, SmtpDraft, SmtpPatch, SmtpSettings, parse_address, parse_host, parse_password,
    parse_text,
};
use crate::error::{Error, FieldError, FieldErrors, Resource};
use crate::secret::Secret;
use crate::state::AppState;

fn security_name(s: Security) -> &'static str {
    match s {
        Security::Plain => "plain",
        Security::StartTls => "starttls",
        Security::Tls => "tls",
        // Shown as no choice, so saving the form sets a known mode.
        Security::Unrecognised => "",
    }
}

fn settings_view(s: &SmtpSettings) -> Value {
    context! {
        enabled => s.enabled, host => &s.host, port => if s.port == 0 { String::new() } else { s.port.to_string() },
        security => security_name(s.security), accept_invalid_certs => s.accept_invalid_certs,
        username => s.username.as_deref().unwrap_or(""), password_set => s.password_set,
        from_email => s.from_email.as_deref().unwrap_or(""), from_name => s.from_name.as_deref().unwrap_or(""),
        reply_to => s.reply_to.as_deref().unwrap_or(""), updated => s.updated_at.display_utc(),
    }
}

/// The form as it was posted with its errors, to show it again (never the password).
fn posted_view(form: &Form, errors: &[FieldError], password_set: bool) -> Value {
    let posted = context! {
        enabled => form.checked("enabled"), host => form.get("host"), port => form.get("port"),
        security => form.get("security"), accept_invalid_certs => form.checked("accept_invalid_certs"),
        username => form.get("username"), password_set, from_email => form.get("from_email"),
        from_name => form.get("from_name"), reply_to => form.get("reply_to"),
    };
    context! { errors => field_errors(errors), posted }
}

/// The posted form as a draft, every bad field reported at once.
fn draft_of(form: &Form) -> Result<SmtpDraft, Error> {
    let mut errors = FieldErrors::new();
    let host = errors.take(parse_host("host", "Host", form.get("host")));
    let port = match form.get("port").trim() {
        "" => 0,
        raw => match raw.parse::<u16>() {
            Ok(p) if p >= 1 => p,
            _ => {
                errors.add("port", "Port must be a number between 1 and 65535");
                0
            }
        },
    };
    let security = match form.get("security") {
        "plain" => Security::Plain,
        "tls" => Security::Tls,
        "starttls" => Security::StartTls,
        _ => {
            errors.add("security", "Security must be one of plain, starttls, tls");
            Security::StartTls
        }
    };
    let optional = |errors: &mut FieldErrors, name: &str, parsed: fn(&str) -> Result<String, _>| {
        let raw = form.get(name).trim();
        if raw.is_empty() { None } else { errors.take(parsed(raw)) }
    };
    let username = optional(&mut errors, "username", |v| parse_text("username", "Username", v, 255));
    let from_email = optional(&mut errors, "from_email", |v| parse_address("from_email", "From email", v));
    let from_name = optional(&mut errors, "from_name", |v| parse_text("from_name", "From name", v, 255));
    let reply_to = optional(&mut errors, "reply_to", |v| parse_address("reply_to", "Reply to", v));
    let password = match form.get("password_action") {
        "set" => match errors.take(parse_password("password", "Password", form.get("password"))) {
            Some(p) if !p.is_empty() => PasswordChange::Set(Secret::new(p)),
            Some(_) => {
                errors.add("password", "Password is required to set or change it");
                PasswordChange::Keep
            }
            None => PasswordChange::Keep,
        },
        "clear" => PasswordChange::Clear,
        _ => PasswordChange::Keep,
    };
    errors.finish()?;
    Ok(SmtpDraft {
        enabled: Some(form.checked("enabled")),
        host: host.unwrap_or_default(),
        port,
        security,
        accept_invalid_certs: form.checked("accept_invalid_certs"),
        username,
        password,
        from_email,
        from_name,
        reply_to,
    })
}

async fn current(app: &AppState, org: &Org) -> Result<Option<SmtpSettings>, Error> {
    match smtp::org_config(app.store(), &org.id).await {
        Ok(s) => Ok(Some(s)),
        Err(Error::NotFound(Resource::NotificationConfig)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the form shows: the posted form (in `extra`), else the saved
/// settings, else `fresh`.
fn form_of(extra: &Value, settings: Option<&SmtpSettings>, fresh: Value) -> Value {
    match extra.get_attr("posted") {
        Ok(posted) if !posted.is_undefined() => posted,
        _ => settings.map_or(fresh, settings_view),
    }
}

async fn show(
    app: &AppState,
    headers: &HeaderMap,
    user: &Signed,
    org: &Org,
    status: StatusCode,
    extra: Value,
) -> Answer {
    let settings = current(app, org).await?;
    let instance = smtp::instance_settings(app.store()).await?.is_some();
    let form = form_of(&extra, settings.as_ref(), context! { enabled => true, security => "starttls" });
    let ctx = context! { exists => settings.is_some(), instance, form, ..extra };
    user.org_page(app, headers, org, "smtp.html", status, ctx)
}

#[derive(Deserialize)]
pub struct SavedQuery {
    saved: Option<String>,
}

/// GET /console/orgs/{org}/smtp
pub async fn page(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    Query(query): Query<SavedQuery>,
    headers: HeaderMap,
) -> Answer {
    let org = user.org(&app, &org).await?;
    show(&app, &headers, &user, &org, StatusCode::OK, context! { saved => query.saved.is_some() }).await
}

async fn show_instance(app: &AppState, headers: &HeaderMap, user: &Signed, status: StatusCode, extra: Value) -> Answer {
    let settings = smtp::instance_settings(app.store()).await?;
    let form = form_of(&extra, settings.as_ref(), context! { security => "starttls" });
    let ctx = context! { exists => settings.is_some(), form, ..extra };
    user.page(app, headers, "smtp.html", status, ctx)
}

/// GET /console/smtp (instance admins): the instance's SMTP server.
pub async fn instance_page(
    user: Signed,
    State(app): State<AppState>,
    Query(query): Query<SavedQuery>,
    headers: HeaderMap,
) -> Answer {
    user.instance_admin()?;
    show_instance(&app, &headers, &user, StatusCode::OK, context! { saved => query.saved.is_some() }).await
}

/// POST /console/smtp: edit (as Dbvisit's `edit`, every field given) or clear.
pub async fn instance_save(user: Signed, State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Answer {
    user.instance_admin()?;
    let form = read_form(&headers, &body)?;
    let (actor, now) = (user.0.actor(), app.clock().now());
    if form.get("action") == "delete" {
        smtp::clear_instance_settings(app.store(), &actor, now).await?;
        return Ok(see_other("/console/smtp"));
    }
    let saved = match draft_of(&form) {
        Ok(d) => {
            let patch = SmtpPatch {
                host: Some(d.host),
                port: Some(d.port),
                security: Some(d.security),
                accept_invalid_certs: Some(d.accept_invalid_certs),
                username: Some(d.username.unwrap_or_default()),
                password: Some(d.password),
                from_email: Some(d.from_email.unwrap_or_default()),
            };
            smtp::edit_instance_settings(app.store(), app.cipher(), &actor, patch, now).await
        }
        Err(e) => Err(e),
    };
    match saved {
        Ok(_) => Ok(see_other("/console/smtp?saved=1")),
        Err(Error::Invalid(errors)) => {
            let password_set = smtp::instance_settings(app.store()).await?.is_some_and(|s| s.password_set);
            show_instance(&app, &headers, &user, StatusCode::BAD_REQUEST, posted_view(&form, &errors, password_set))
                .await
        }
        Err(e) => Err(e.into()),
    }
}

/// POST /console/orgs/{org}/smtp: save (create or replace), or remove.
pub async fn save(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let form = read_form(&headers, &body)?;
    let (actor, now) = (user.0.actor(), app.clock().now());
    let back = format!("/console/orgs/{}/smtp", org.id);
    if form.get("action") == "delete" {
        match smtp::delete_org_config(app.store(), &actor, &org.id, now).await {
            Ok(()) | Err(Error::NotFound(Resource::NotificationConfig)) => return Ok(see_other(&back)),
            Err(e) => return Err(e.into()),
        }
    }
    let saved = match draft_of(&form) {
        Ok(draft) => match current(&app, &org).await? {
            Some(_) => smtp::replace_org_config(app.store(), app.cipher(), &actor, &org.id, draft, now).await,
            None => smtp::create_org_config(app.store(), app.cipher(), &actor, &org.id, draft, now).await,
        },
        Err(e) => Err(e),
    };
    match saved {
        Ok(_) => Ok(see_other(&format!("{back}?saved=1"))),
        Err(Error::Invalid(errors)) => {
            let password_set = current(&app, &org).await?.is_some_and(|s| s.password_set);
            show(&app, &headers, &user, &org, StatusCode::BAD_REQUEST, posted_view(&form, &errors, password_set)).await
        }
        Err(e) => Err(e.into()),
    }
}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::Policy => "policy",
        Step::Connect => "connect",
        Step::Tls => "tls",
        Step::Auth => "auth",
        Step::Sender => "sender",
        Step::Recipient => "recipient",
        Step::Data => "data",
        Step::File => "file",
    }
}

/// POST /console/orgs/{org}/smtp/test: one mail now, through the saved
/// settings, each step shown with the server's reply.
pub async fn test(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let form = read_form(&headers, &body)?;
    let to = match parse_address("to", "Recipient", form.get("to")) {
        Ok(to) => to,
        Err(e) => {
            let extra = context! { errors => field_errors(&[e]), to => form.get("to") };
            return show(&app, &headers, &user, &org, StatusCode::BAD_REQUEST, extra).await;
        }
    };
    let mailer = &app.engine().mailer;
    let outcome = delivery::test_send(app.store(), app.cipher(), mailer, &org.id, &to, None).await?;
    let result = match outcome {
        TestOutcome::File { written, detail } => {
            context! { success => written, file => detail, steps => Vec::<Value>::new() }
        }
        TestOutcome::Smtp(report) => {
            // Each step that passed with the server's reply to it, then the
            // one that failed with its reply.
            let mut steps: Vec<Value> =
                report.passed.iter().map(|(s, reply)| context! { name => step_name(*s), ok => true, reply }).collect();
            if let Some(failed) = report.failed_step {
                steps.push(context! { name => step_name(failed), ok => false, reply => &report.reply });
            }
            context! {
                success => report.failed_step.is_none(), steps, message => report.message,
                reply => report.reply, failed => report.failed_step.map(step_name),
            }
        }
    };
    show(&app, &headers, &user, &org, StatusCode::OK, context! { test => result, to }).await
}
