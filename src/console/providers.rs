//! The console's "Providers" pages (issue 17): an org's providers
//! (`/console/orgs/{org}/providers`) and, for instance admins, the
//! instance's (`/console/providers`), in the order mail tries them, each
//! with its circuit-breaker state and last error. Add, edit, delete, move
//! up or down, and a test send that shows each step.
//!
//! The forms only translate: a posted form becomes the JSON body of
//! `POST/PUT /v1/providers` ([`ProviderBody`]) and goes through the same
//! parsing and domain functions, so the console cannot accept what the API
//! refuses. Secrets are write-only, as on the SMTP page: keep, set or clear,
//! never shown.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use minijinja::{Value, context};
use serde::Deserialize;
use serde_json::json;

use super::{Answer, Form, Signed, field_errors, org_ref, read_form, see_other};
use crate::api::native::providers::{ProviderBody, test_send};
use crate::api::{Path, Query};
use crate::domain::audit::Scope;
use crate::domain::orgs::Org;
use crate::domain::providers::{self, Provider, ProviderDraft, Settings};
use crate::domain::smtp::PasswordChange;
use crate::error::{Error, FieldError};
use crate::state::AppState;

/// Whose providers a page shows.
enum Place {
    Org(Org),
    Instance,
}

impl Place {
    fn scope(&self) -> Scope {
        match self {
            Place::Org(org) => Scope::Org(org.id.clone()),
            Place::Instance => Scope::Instance,
        }
    }
    fn base(&self) -> String {
        match self {
            Place::Org(org) => format!("/console/orgs/{}/providers", org.id),
            Place::Instance => "/console/providers".into(),
        }
    }
}

async fn org_place(user: &Signed, app: &AppState, org: &str) -> Result<Place, Error> {
    Ok(Place::Org(user.org(app, org).await?))
}

fn instance_place(user: &Signed) -> Result<Place, Error> {
    user.instance_admin()?;
    Ok(Place::Instance)
}

fn row(p: &Provider, now: crate::clock::Millis) -> Value {
    let target = match &p.settings {
        Settings::Smtp(s) => format!("{}:{}", s.host, s.port),
        Settings::Ses(s) => s.endpoint.clone().unwrap_or_else(|| s.region.clone()),
        Settings::Http(s) => s.url.clone(),
    };
    context! {
        id => &p.id,
        position => p.position,
        name => &p.name,
        kind => p.settings.kind(),
        source => p.source.as_str(),
        target,
        enabled => p.enabled,
        state => p.health.state(now),
        failures => p.health.failures,
        open_until => p.health.open_until.map(|t| t.display_utc()),
        last_error => &p.health.last_error,
        limit => p.max_per_minute,
        concurrent => p.max_concurrent,
    }
}

/// A provider's form fields, from its settings (never its secret).
fn form_view(p: &Provider) -> Value {
    let settings = serde_json::to_value(&p.settings).unwrap_or_default();
    let text = |k: &str| settings.get(k).and_then(serde_json::Value::as_str).unwrap_or("").to_owned();
    let port = settings.get("port").and_then(serde_json::Value::as_u64).filter(|p| *p > 0);
    context! {
        name => &p.name, kind => p.settings.kind(), enabled => p.enabled,
        max_per_minute => p.max_per_minute.map(|m| m.to_string()).unwrap_or_default(),
        max_concurrent => p.max_concurrent.map(|m| m.to_string()).unwrap_or_default(),
        host => text("host"), port => port.map(|p| p.to_string()).unwrap_or_default(),
        security => text("security"),
        accept_invalid_certs => settings.get("acceptInvalidCerts").and_then(serde_json::Value::as_bool),
        username => text("username"), auth => text("auth"), grant => text("grant"), token_url => text("tokenUrl"),
        client_id => text("clientId"), client_email => text("clientEmail"), subject => text("subject"),
        scope => text("scope"), region => text("region"),
        access_key_id => text("accessKeyId"), endpoint => text("endpoint"), url => text("url"),
        from_email => text("fromEmail"), from_name => text("fromName"), reply_to => text("replyTo"),
        secret_set => p.secret_set,
    }
}

/// The posted form again (without its secret), to show with its errors.
fn posted_view(form: &Form, secret_set: bool) -> Value {
    let f = |k: &str| form.get(k).to_owned();
    context! {
        name => f("name"), kind => f("kind"), enabled => form.checked("enabled"),
        max_per_minute => f("max_per_minute"), max_concurrent => f("max_concurrent"),
        preset => f("preset"), tenant => f("tenant"), host => f("host"), port => f("port"),
        security => f("security"), accept_invalid_certs => form.checked("accept_invalid_certs"),
        username => f("username"), auth => f("auth"), grant => f("grant"), token_url => f("token_url"),
        client_id => f("client_id"), client_email => f("client_email"), subject => f("subject"), scope => f("scope"),
        region => f("region"), access_key_id => f("access_key_id"),
        endpoint => f("endpoint"), url => f("url"), from_email => f("from_email"), from_name => f("from_name"),
        reply_to => f("reply_to"), secret_set,
    }
}

/// The posted form as the API's request body, then as a draft: the same
/// parsing and checks as `POST /v1/providers`.
fn draft_of(form: &Form) -> Result<ProviderDraft, Error> {
    let mut errors: Vec<FieldError> = Vec::new();
    let opt = |k: &str| match form.get(k).trim() {
        "" => serde_json::Value::Null,
        v => json!(v),
    };
    let mut number = |k: &str, label: &str| match form.get(k).trim() {
        "" => serde_json::Value::Null,
        v => match v.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => {
                errors.push(FieldError::new(k, format!("{label} must be a whole number")));
                serde_json::Value::Null
            }
        },
    };
    let max_per_minute = number("max_per_minute", "Rate limit");
    let max_concurrent = number("max_concurrent", "Concurrency limit");
    let port = number("port", "Port");
    let kind = form.get("kind");
    let xoauth2 = form.get("auth") == "xoauth2";
    // The Google preset means a service account; a pasted key is a "set".
    let jwt_bearer =
        kind == "smtp" && (form.get("preset") == "google" || (xoauth2 && form.get("grant") == "jwt_bearer"));
    let private_key = form.get("private_key").trim();
    let (action, value) = if jwt_bearer && !private_key.is_empty() {
        ("set", private_key)
    } else {
        (form.get("secret_action"), form.get("secret"))
    };
    let secret = match action {
        "set" if value.is_empty() => {
            let field = if jwt_bearer { "private_key" } else { "secret" };
            errors.push(FieldError::new(field, "Enter the secret to set or change it"));
            serde_json::Value::Null
        }
        "set" => json!(value),
        "clear" => json!(""),
        _ => serde_json::Value::Null,
    };
    let settings = match kind {
        "smtp" => {
            let preset = opt("preset");
            // A preset chooses the grant; the form's grant is for custom servers.
            let grant = if xoauth2 && preset.is_null() { opt("grant") } else { serde_json::Value::Null };
            let mut s = json!({
                "preset": preset, "tenant": opt("tenant"), "host": opt("host"), "port": port,
                "security": opt("security"), "acceptInvalidCerts": form.checked("accept_invalid_certs"),
                "username": opt("username"), "auth": if xoauth2 { "xoauth2" } else { "password" },
                "grant": grant, "tokenUrl": opt("token_url"), "scope": opt("scope"),
                "fromEmail": opt("from_email"), "fromName": opt("from_name"), "replyTo": opt("reply_to"),
            });
            if jwt_bearer {
                s["clientEmail"] = opt("client_email");
                s["subject"] = opt("subject");
            } else {
                s["clientId"] = opt("client_id");
            }
            let secret_field = match (jwt_bearer, xoauth2) {
                (true, _) => "privateKey",
                (false, true) => "clientSecret",
                (false, false) => "password",
            };
            s[secret_field] = secret;
            s
        }
        "ses" => json!({
            "region": form.get("region").trim(), "accessKeyId": form.get("access_key_id").trim(),
            "secretAccessKey": secret, "endpoint": opt("endpoint"), "fromEmail": form.get("from_email").trim(),
            "fromName": opt("from_name"), "replyTo": opt("reply_to"),
        }),
        "http" => json!({
            "url": form.get("url").trim(), "secret": secret,
            "fromEmail": opt("from_email"), "fromName": opt("from_name"),
        }),
        _ => {
            errors.push(FieldError::new("kind", "Kind must be one of smtp, ses, http"));
            serde_json::Value::Null
        }
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    let mut body = json!({
        "name": form.get("name").trim(), "kind": kind, "enabled": form.checked("enabled"),
        "maxPerMinute": max_per_minute, "maxConcurrent": max_concurrent,
    });
    body[kind] = settings;
    let body: ProviderBody = serde_json::from_value(body)
        .map_err(|_| Error::Invalid(vec![FieldError::new("kind", "The form does not describe a provider")]))?;
    body.into_draft()
}

#[derive(Deserialize)]
pub struct SavedQuery {
    saved: Option<String>,
}

/// The list page, with `extra` (a test result, or the add form's errors).
async fn show(
    app: &AppState,
    headers: &HeaderMap,
    user: &Signed,
    place: &Place,
    status: StatusCode,
    extra: Value,
) -> Answer {
    let now = app.clock().now();
    let rows: Vec<Value> = providers::list(app.store(), &place.scope()).await?.iter().map(|p| row(p, now)).collect();
    let form = match extra.get_attr("posted") {
        Ok(posted) if !posted.is_undefined() => posted,
        _ => context! { kind => "smtp", enabled => true, security => "starttls", auth => "password" },
    };
    let ctx = context! { rows, base => place.base(), form, ..extra };
    match place {
        Place::Org(org) => user.org_page(app, headers, org, "providers.html", status, ctx),
        Place::Instance => user.page(app, headers, "providers.html", status, ctx),
    }
}

async fn list_page(app: AppState, headers: HeaderMap, user: Signed, place: Place, query: SavedQuery) -> Answer {
    show(&app, &headers, &user, &place, StatusCode::OK, context! { saved => query.saved.is_some() }).await
}

/// GET /console/orgs/{org}/providers
pub async fn page(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    Query(query): Query<SavedQuery>,
    headers: HeaderMap,
) -> Answer {
    let place = org_place(&user, &app, &org).await?;
    list_page(app, headers, user, place, query).await
}

/// GET /console/providers (instance admins)
pub async fn instance_page(
    user: Signed,
    State(app): State<AppState>,
    Query(query): Query<SavedQuery>,
    headers: HeaderMap,
) -> Answer {
    let place = instance_place(&user)?;
    list_page(app, headers, user, place, query).await
}

async fn add(app: AppState, headers: HeaderMap, user: Signed, place: Place, body: Bytes) -> Answer {
    let form = read_form(&headers, &body)?;
    let (actor, now) = (user.0.actor(), app.clock().now());
    let created = match draft_of(&form) {
        Ok(draft) => providers::create(app.store(), app.cipher(), &actor, &place.scope(), draft, now).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(_) => Ok(see_other(&format!("{}?saved=1", place.base()))),
        Err(Error::Invalid(errors)) => {
            let extra = context! { errors => field_errors(&errors), error_list => errors_of(&errors), posted => posted_view(&form, false) };
            show(&app, &headers, &user, &place, StatusCode::BAD_REQUEST, extra).await
        }
        Err(e) => Err(e.into()),
    }
}

fn errors_of(errors: &[FieldError]) -> Vec<Value> {
    errors.iter().map(|e| context! { field => &e.field, message => &e.message }).collect()
}

/// POST /console/orgs/{org}/providers: add one.
pub async fn create(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let place = org_place(&user, &app, &org).await?;
    add(app, headers, user, place, body).await
}

/// POST /console/providers: add one to the instance.
pub async fn instance_create(user: Signed, State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Answer {
    let place = instance_place(&user)?;
    add(app, headers, user, place, body).await
}

/// A provider of the list (the legacy configuration is edited on its own page).
async fn editable(app: &AppState, place: &Place, id: &str) -> Result<Provider, Error> {
    let p = providers::get(app.store(), &place.scope(), id).await?;
    if p.source.as_str() != "providers" {
        return Err(Error::NotFound(crate::error::Resource::Provider));
    }
    Ok(p)
}

async fn show_edit(
    app: &AppState,
    headers: &HeaderMap,
    user: &Signed,
    place: &Place,
    p: &Provider,
    status: StatusCode,
    extra: Value,
) -> Answer {
    let form = match extra.get_attr("posted") {
        Ok(posted) if !posted.is_undefined() => posted,
        _ => form_view(p),
    };
    let ctx = context! { edit => true, id => &p.id, base => place.base(), form, ..extra };
    match place {
        Place::Org(org) => user.page(app, headers, "providers.html", status, context! { org => org_ref(org), ..ctx }),
        Place::Instance => user.page(app, headers, "providers.html", status, ctx),
    }
}

async fn edit_page_in(app: AppState, headers: HeaderMap, user: Signed, place: Place, id: &str) -> Answer {
    let p = editable(&app, &place, id).await?;
    show_edit(&app, &headers, &user, &place, &p, StatusCode::OK, context! {}).await
}

/// GET /console/orgs/{org}/providers/{id}
pub async fn edit_page(
    user: Signed,
    State(app): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let place = org_place(&user, &app, &org).await?;
    edit_page_in(app, headers, user, place, &id).await
}

/// GET /console/providers/{id}
pub async fn instance_edit_page(
    user: Signed,
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let place = instance_place(&user)?;
    edit_page_in(app, headers, user, place, &id).await
}

/// The same provider one place up or down (its settings and secret kept).
fn moved(p: &Provider, by: i64) -> ProviderDraft {
    ProviderDraft {
        name: p.name.clone(),
        enabled: p.enabled,
        position: Some((p.position + by).max(1)),
        settings: p.settings.clone(),
        secret: PasswordChange::Keep,
        bounce_domain: p.bounce_domain.clone(),
        max_per_minute: p.max_per_minute,
        max_concurrent: p.max_concurrent,
    }
}

async fn change_in(app: AppState, headers: HeaderMap, user: Signed, place: Place, id: &str, body: Bytes) -> Answer {
    let p = editable(&app, &place, id).await?;
    let form = read_form(&headers, &body)?;
    let (actor, now, scope) = (user.0.actor(), app.clock().now(), place.scope());
    let draft = match form.get("action") {
        "delete" => {
            providers::delete(app.store(), &actor, &scope, &p.id, now).await?;
            return Ok(see_other(&format!("{}?saved=1", place.base())));
        }
        "up" => Ok(moved(&p, -1)),
        "down" => Ok(moved(&p, 1)),
        _ => draft_of(&form).map(|mut d| {
            // The form does not move it.
            d.position = None;
            d
        }),
    };
    let saved = match draft {
        Ok(d) => providers::replace(app.store(), app.cipher(), &actor, &scope, &p.id, d, now).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(_) => Ok(see_other(&format!("{}?saved=1", place.base()))),
        Err(Error::Invalid(errors)) => {
            let extra = context! { errors => field_errors(&errors), error_list => errors_of(&errors), posted => posted_view(&form, p.secret_set) };
            show_edit(&app, &headers, &user, &place, &p, StatusCode::BAD_REQUEST, extra).await
        }
        Err(e) => Err(e.into()),
    }
}

/// POST /console/orgs/{org}/providers/{id}: save, delete, up or down.
pub async fn change(
    user: Signed,
    State(app): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let place = org_place(&user, &app, &org).await?;
    change_in(app, headers, user, place, &id, body).await
}

/// POST /console/providers/{id}: save, delete, up or down.
pub async fn instance_change(
    user: Signed,
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let place = instance_place(&user)?;
    change_in(app, headers, user, place, &id, body).await
}

async fn test_in(app: AppState, headers: HeaderMap, user: Signed, place: Place, id: &str, body: Bytes) -> Answer {
    // Unknown (or another org's) provider: 404 before the form is judged.
    let p = providers::get(app.store(), &place.scope(), id).await?;
    let form = read_form(&headers, &body)?;
    let to = form.get("to").trim().to_owned();
    match test_send(&app, &place.scope(), &p.id, &to).await {
        Ok(report) => {
            let steps: Vec<Value> =
                report.steps.iter().map(|s| context! { name => &s.step, ok => s.ok, reply => &s.reply }).collect();
            let test = context! { provider => &p.name, success => report.success, message => report.message, steps };
            show(&app, &headers, &user, &place, StatusCode::OK, context! { test, to }).await
        }
        Err(Error::Invalid(errors)) => {
            let extra = context! { error_list => errors_of(&errors), to };
            show(&app, &headers, &user, &place, StatusCode::BAD_REQUEST, extra).await
        }
        Err(e) => Err(e.into()),
    }
}

/// POST /console/orgs/{org}/providers/{id}/test: one mail now, each step shown.
pub async fn test(
    user: Signed,
    State(app): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let place = org_place(&user, &app, &org).await?;
    test_in(app, headers, user, place, &id, body).await
}

/// POST /console/providers/{id}/test
pub async fn instance_test(
    user: Signed,
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let place = instance_place(&user)?;
    test_in(app, headers, user, place, &id, body).await
}
