//! The operator console (issue 14): server-rendered HTML at `/console/`, on
//! the API's port. Sign-in with console accounts ([`crate::domain::console`]),
//! then the dashboard, orgs and their API tokens, console accounts, SMTP
//! settings (an org's and the instance's) with the test send, the delivery
//! log with Retry, the notification policy, departments and users, sender
//! identities, providers, webhooks, the suppression list, alerts and their
//! contacts, and the audit logs.
//!
//! Pages only translate: every change goes through the same domain function
//! the APIs call, with the console user as the audit actor. The HTML has no
//! scripts and loads nothing from anywhere: one stylesheet inline, allowed
//! by the response's CSP nonce; `frame-ancestors 'none'`. Every form works
//! as a plain POST with a CSRF value (double-submit cookie, and the browser's
//! `Sec-Fetch-Site`/`Origin` must not say cross-site), then redirects or
//! shows its field errors. An org admin asking for another org's page gets
//! the same 404 as for an org that does not exist. The page texts are in
//! `templates/console/en.json`.

mod auth;
mod feedback;
mod log;
mod pages;
mod providers;
mod settings;
mod smtp;

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Environment, Value, context};

use crate::api::forms::{self, random_token};
use crate::domain::OrgId;
use crate::domain::console::{self as accounts, ConsoleUser};
use crate::domain::delivery::templates::{self, template_files};
use crate::domain::orgs::{self, Org};
use crate::error::{Error, FieldError, Resource};
use crate::state::AppState;

/// Where the console lives.
pub const PREFIX: &str = "/console";
const SESSION_COOKIE: &str = "herald_session";
const CSRF_COOKIE: &str = "herald_console_csrf";

const FILES: &[(&str, &str)] = template_files!["console":
    "layout.html", "error.html", "login.html", "setup.html", "dashboard.html", "orgs.html", "org.html",
    "smtp.html", "log.html", "notification.html", "audit.html", "policy.html", "people.html", "identities.html", "users.html",
    "providers.html", "webhook_fields.html", "webhooks.html", "webhook.html", "suppressions.html", "alerts.html",
];

/// The page texts, English (one file, so more languages can follow).
static TEXTS: LazyLock<Value> = LazyLock::new(|| {
    let raw = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/console/en.json"));
    serde_json::from_str::<serde_json::Value>(raw).map(Value::from_serialize).unwrap_or_else(|e| {
        tracing::error!(error = %e, "templates/console/en.json is not valid JSON");
        Value::UNDEFINED
    })
});

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = templates::environment(FILES);
    // Pages show optional parts (`errors.host`, a test result) only when set.
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env
});

pub fn router() -> Router<AppState> {
    Router::new()
        .route(PREFIX, get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(pages::dashboard))
        .route("/console/login", get(auth::login_page).post(auth::login))
        .route("/console/logout", post(auth::logout))
        .route("/console/setup", get(auth::setup_page).post(auth::setup))
        .route("/console/orgs", get(pages::orgs).post(pages::create_org))
        .route("/console/orgs/{org}", get(pages::org))
        .route("/console/orgs/{org}/tokens", post(pages::create_token))
        .route("/console/orgs/{org}/tokens/{id}/revoke", post(pages::revoke_token))
        .route("/console/orgs/{org}/smtp", get(smtp::page).post(smtp::save))
        .route("/console/orgs/{org}/smtp/test", post(smtp::test))
        .route("/console/orgs/{org}/log", get(log::list))
        .route("/console/orgs/{org}/log/{id}", get(log::show))
        .route("/console/orgs/{org}/log/{id}/retry", post(log::retry))
        .route("/console/orgs/{org}/audit", get(pages::org_audit))
        .route("/console/orgs/{org}/providers", get(providers::page).post(providers::create))
        .route("/console/orgs/{org}/providers/{id}", get(providers::edit_page).post(providers::change))
        .route("/console/orgs/{org}/providers/{id}/test", post(providers::test))
        .route("/console/orgs/{org}/webhooks", get(feedback::webhooks_page).post(feedback::webhook_create))
        .route("/console/orgs/{org}/webhooks/{id}", get(feedback::webhook_page).post(feedback::webhook_change))
        .route("/console/orgs/{org}/webhooks/{id}/test", post(feedback::webhook_test))
        .route("/console/orgs/{org}/suppressions", get(feedback::suppressions_page).post(feedback::suppression_add))
        .route("/console/orgs/{org}/suppressions/remove", post(feedback::suppression_remove))
        .route("/console/orgs/{org}/alerts", get(feedback::alerts_page))
        .route("/console/orgs/{org}/alerts/contacts", post(feedback::contacts_save))
        .route("/console/orgs/{org}/policy", get(settings::policy_page).post(settings::policy_save))
        .route("/console/orgs/{org}/people", get(settings::people))
        .route("/console/orgs/{org}/departments", post(settings::department))
        .route("/console/orgs/{org}/users", post(settings::user_change))
        .route("/console/orgs/{org}/identities", get(settings::identities_page).post(settings::identity_change))
        .route("/console/audit", get(pages::instance_audit))
        .route("/console/smtp", get(smtp::instance_page).post(smtp::instance_save))
        .route("/console/users", get(pages::users).post(pages::create_user))
        .route("/console/providers", get(providers::instance_page).post(providers::instance_create))
        .route("/console/providers/{id}", get(providers::instance_edit_page).post(providers::instance_change))
        .route("/console/providers/{id}/test", post(providers::instance_test))
}

/// A signed-in console user. Without a live session a request is sent to
/// the sign-in page.
pub struct Signed(pub ConsoleUser);

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let token = forms::cookie(&parts.headers, SESSION_COOKIE).unwrap_or_default();
        match accounts::session(app.store(), &token, app.clock().now()).await {
            Ok(Some(user)) => Ok(Signed(user)),
            Ok(None) => Err(see_other("/console/login")),
            Err(e) => Err(e.into_response()),
        }
    }
}

impl Signed {
    /// The org of a path, if this user may manage it; else 404, the same as
    /// for an org that does not exist.
    async fn org(&self, app: &AppState, raw: &str) -> Result<Org, Error> {
        let id = OrgId::parse(raw).ok_or(Error::NotFound(Resource::Org))?;
        if !self.0.may_manage(&id) {
            return Err(Error::NotFound(Resource::Org));
        }
        orgs::get(app.store(), &id).await
    }

    /// Instance admins only; others get 404 (the page does not exist for them).
    fn instance_admin(&self) -> Result<(), Error> {
        if self.0.is_instance_admin() { Ok(()) } else { Err(Error::NotFound(Resource::Route)) }
    }

    /// Renders `template` for this user.
    fn page(&self, app: &AppState, headers: &HeaderMap, template: &str, status: StatusCode, ctx: Value) -> Answer {
        Ok(render(app, headers, Some(&self.0), template, status, ctx))
    }

    /// Renders one of `org`'s pages for this user: `org` is in the context.
    fn org_page(
        &self,
        app: &AppState,
        headers: &HeaderMap,
        org: &Org,
        template: &str,
        status: StatusCode,
        ctx: Value,
    ) -> Answer {
        self.page(app, headers, template, status, context! { org => org_ref(org), ..ctx })
    }
}

/// An org as its pages name it.
fn org_ref(org: &Org) -> Value {
    context! { id => org.id.as_str(), name => &org.name }
}

fn see_other(to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Sets one of the console's cookies on `res`, `Secure` when the public URL
/// is https.
fn set_cookie(res: &mut Response, app: &AppState, name: &str, value: &str, max_age: i64) {
    let secure = app.public_url().starts_with("https://");
    if let Some(cookie) = forms::set_cookie(name, value, PREFIX, max_age, secure) {
        res.headers_mut().append(header::SET_COOKIE, cookie);
    }
}

/// The fields of a posted form, after its CSRF check.
pub struct Form(HashMap<String, String>);

impl Form {
    fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
    fn checked(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// What a console handler answers in place of its page: an error (shown by
/// [`render_error`]) or a page made already, such as the refused CSRF check.
pub enum Halt {
    Error(Error),
    Page(Box<Response>),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Halt::Error(e)
    }
}

impl IntoResponse for Halt {
    fn into_response(self) -> Response {
        match self {
            Halt::Error(e) => e.into_response(),
            Halt::Page(res) => *res,
        }
    }
}

/// What a console handler returns.
type Answer = Result<Response, Halt>;

/// Reads an urlencoded form and checks its CSRF value. A failed check is a
/// 403 page that asks to reload; nothing is changed.
fn read_form(headers: &HeaderMap, body: &Bytes) -> Result<Form, Halt> {
    if !forms::is_form(headers) {
        return Err(Error::UnsupportedMediaType.into());
    }
    let fields: HashMap<String, String> = form_urlencoded::parse(body).into_owned().collect();
    if !forms::csrf_ok(headers, CSRF_COOKIE, fields.get("csrf").map(String::as_str)) {
        return Err(Halt::Page(Box::new(render_status(StatusCode::FORBIDDEN, "forbidden"))));
    }
    Ok(Form(fields))
}

/// Field errors by field name, for the templates.
fn field_errors(errors: &[FieldError]) -> Value {
    let map: HashMap<&str, &str> = errors.iter().map(|e| (e.field.as_str(), e.message.as_str())).collect();
    Value::from_serialize(map)
}

/// Renders `template` for `user` (none on the sign-in pages).
fn render(
    app: &AppState,
    headers: &HeaderMap,
    user: Option<&ConsoleUser>,
    template: &str,
    status: StatusCode,
    ctx: Value,
) -> Response {
    let nonce = random_token();
    let kept = forms::cookie(headers, CSRF_COOKIE).filter(|c| forms::is_token_value(c));
    let csrf = kept.clone().unwrap_or_else(random_token);
    let me = user.map(|u| {
        context! { email => &u.email, admin => u.is_instance_admin(), org => u.org.as_ref().map(OrgId::as_str) }
    });
    let base = context! { t => &*TEXTS, nonce => &nonce, csrf => &csrf, me => me, ..ctx };
    let mut res = page_response(template, status, base, &nonce);
    if kept.is_none() {
        set_cookie(&mut res, app, CSRF_COOKIE, &csrf, 12 * 3600);
    }
    res
}

fn page_response(template: &str, status: StatusCode, ctx: Value, nonce: &str) -> Response {
    let html = match ENV.get_template(template).and_then(|t| t.render(ctx)) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(template, error = %e, "a console page could not be rendered");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong. Please try again later.")
                .into_response();
        }
    };
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}

/// A page that says what went wrong, in words, with `status`.
fn render_status(status: StatusCode, kind: &str) -> Response {
    render_status_with(status, kind, None)
}

fn render_status_with(status: StatusCode, kind: &str, detail: Option<&str>) -> Response {
    let nonce = random_token();
    let ctx = context! { t => &*TEXTS, nonce => &nonce, kind, detail, code => status.as_u16() };
    page_response("error.html", status, ctx, &nonce)
}

/// An error of a request under `/console` (no route, another org's page, a
/// fault …), as a page: never JSON, never a cause.
pub fn render_error(err: &Error) -> Response {
    let status = crate::api::status_of(err);
    let kind = match err {
        Error::NotFound(_) => "not_found",
        Error::Unauthenticated => "unauthenticated",
        Error::Forbidden(_) => "forbidden",
        Error::MethodNotAllowed => "method",
        Error::PayloadTooLarge | Error::UnsupportedMediaType | Error::Invalid(_) | Error::MalformedJson(_) => {
            "bad_request"
        }
        Error::Precondition(_) | Error::Conflict(_) => "conflict",
        Error::RateLimited(_) => "rate_limited",
        _ if status.is_server_error() => "error",
        _ => "bad_request",
    };
    // A precondition's words are written for people; nothing else is shown.
    let detail = match err {
        Error::Precondition(why) => Some(*why),
        _ => None,
    };
    let mut res = render_status_with(status, kind, detail);
    if matches!(err, Error::RateLimited(_)) {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::api::RETRY_AFTER_SECONDS));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_every_text_is_there() {
        for (name, _) in FILES {
            assert!(ENV.get_template(name).is_ok(), "{name}");
        }
        assert!(TEXTS.get_attr("app").is_ok_and(|v| !v.is_undefined()));
    }

    #[test]
    fn error_pages_are_html_with_the_headers() {
        for err in
            [Error::NotFound(Resource::Org), Error::Internal(anyhow::anyhow!("secret cause")), Error::MethodNotAllowed]
        {
            let res = render_error(&err);
            let csp = res.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
            assert!(csp.contains("frame-ancestors 'none'") && csp.contains("'nonce-"), "{csp}");
            let body =
                futures_util::FutureExt::now_or_never(axum::body::to_bytes(res.into_body(), 1 << 20)).unwrap().unwrap();
            let html = String::from_utf8(body.to_vec()).unwrap();
            assert!(html.starts_with("<!DOCTYPE html>") && !html.contains("secret cause"), "{html}");
        }
    }
}
