//! The approval page of sender identities (contract §7): the page a mailed
//! link opens, in the identity's language, naming the org and the identity
//! and offering Approve / Deny (review link), Revoke (revoke link), or a
//! fresh link (expired link). Used, replaced, expired and unknown links get
//! a page that says so; errors are pages too, never a dump.
//!
//! A GET never changes anything (mail scanners open links); the buttons
//! POST a form. The page is plain HTML: no scripts, no external styles or
//! fonts, one inline stylesheet allowed by a per-response CSP nonce. It is
//! protected against clickjacking (`frame-ancestors 'none'`,
//! `X-Frame-Options: DENY`) and cross-site requests: a POST must carry the
//! CSRF value of the page's `SameSite=Strict` cookie, and is refused when
//! the browser says it came from another site. What a link may do is
//! decided in `domain::identities`.

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::Environment;

use crate::api::Path;
use crate::api::forms::{self, is_form, is_token_value, random_token};
use crate::domain::delivery::templates::{self, language, template_files};
use crate::domain::identities::{self, LinkAction, LinkPurpose, LinkResult, LinkStage, LinkView};
use crate::error::{Error, Resource};
use crate::state::AppState;

const FILES: &[(&str, &str)] = template_files!["pages": "page.html", "en/messages.html", "de/messages.html", "fr/messages.html", "es/messages.html"];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| templates::environment(FILES));

const CSRF_COOKIE: &str = "herald_csrf";
const FORM_LIMIT: usize = 4 * 1024;

/// What the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageState {
    Review,
    Revoke,
    Expired,
    Approved,
    Denied,
    Revoked,
    Renewed,
    Used,
    Replaced,
    Stale,
    Forbidden,
    Unknown,
    Error,
}

impl PageState {
    fn name(self) -> &'static str {
        match self {
            PageState::Review => "review",
            PageState::Revoke => "revoke",
            PageState::Expired => "expired",
            PageState::Approved => "approved",
            PageState::Denied => "denied",
            PageState::Revoked => "revoked",
            PageState::Renewed => "renewed",
            PageState::Used => "used",
            PageState::Replaced => "replaced",
            PageState::Stale => "stale",
            PageState::Forbidden => "forbidden",
            PageState::Unknown => "unknown",
            PageState::Error => "error",
        }
    }

    /// Whether the page holds a form (and so needs a CSRF cookie).
    fn has_form(self) -> bool {
        matches!(self, PageState::Review | PageState::Revoke | PageState::Expired)
    }

    fn of_view(view: &LinkView) -> PageState {
        match (view.stage, view.link.purpose) {
            (LinkStage::Open, LinkPurpose::Review) => PageState::Review,
            (LinkStage::Open, LinkPurpose::Revoke) => PageState::Revoke,
            (LinkStage::Expired, _) => PageState::Expired,
            (LinkStage::Stale, _) => PageState::Stale,
            (LinkStage::Used, _) if view.link.outcome.as_deref() == Some("replaced") => PageState::Replaced,
            (LinkStage::Used, _) => PageState::Used,
        }
    }

    fn status(self) -> StatusCode {
        match self {
            PageState::Review
            | PageState::Revoke
            | PageState::Approved
            | PageState::Denied
            | PageState::Revoked
            | PageState::Renewed => StatusCode::OK,
            PageState::Expired | PageState::Used | PageState::Replaced | PageState::Stale => StatusCode::GONE,
            PageState::Forbidden => StatusCode::FORBIDDEN,
            PageState::Unknown => StatusCode::NOT_FOUND,
            PageState::Error => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// One page to send.
struct Page<'a> {
    state: PageState,
    view: Option<&'a LinkView>,
    status: StatusCode,
    /// The CSRF value of the page's form (and cookie).
    csrf: Option<String>,
}

/// The origin of a redirect target, for the CSP's `form-action` (browsers
/// check a form's redirects against it).
fn origin_of(url: &str) -> Option<String> {
    url::Url::parse(url).ok().map(|u| u.origin().ascii_serialization()).filter(|o| o != "null")
}

fn render(page: Page<'_>, secure: bool) -> Response {
    let Page { state, view, status, csrf } = page;
    let nonce = random_token();
    let (lang, org, name, email, status_name, date, approved) = match view {
        Some(v) => (
            language(&v.identity.locale),
            v.org_name.as_str(),
            v.identity.name.as_str(),
            v.identity.email.as_str(),
            v.identity.status.as_str(),
            match state {
                PageState::Used => v.link.used_at.unwrap_or(v.link.created_at).display_utc(),
                _ => v.link.expires_at.display_utc(),
            },
            v.identity.approved_at.map(|t| t.display_utc()).unwrap_or_default(),
        ),
        None => ("en", "", "", "", "", String::new(), String::new()),
    };
    let ctx = minijinja::context! {
        lang, nonce => &nonce, state => state.name(), org, name, email, status => status_name, date, approved,
        csrf => csrf.as_deref().unwrap_or_default(),
    };
    let html = match ENV.get_template("page.html").and_then(|t| t.render(ctx)) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(error = %e, "the approval page could not be rendered");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong. Please try again later.")
                .into_response();
        }
    };
    let redirect = view.and_then(|v| v.identity.redirect_url.as_deref()).and_then(origin_of);
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'{}; frame-ancestors 'none'; base-uri 'none'",
        redirect.map(|o| format!(" {o}")).unwrap_or_default()
    );
    let mut res = (status, html).into_response();
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    if let Some(csrf) = csrf
        && let Some(cookie) =
            forms::set_cookie(CSRF_COOKIE, &csrf, identities::LINK_PATH.trim_end_matches('/'), 3600, secure)
    {
        headers.append(header::SET_COOKIE, cookie);
    }
    res
}

/// The page a link stands at now. A form keeps the CSRF value the browser
/// already holds (so pages open in other tabs stay valid), else gets a new one.
fn page_of<'a>(view: Option<&'a LinkView>, headers: &HeaderMap) -> Page<'a> {
    let state = view.map_or(PageState::Unknown, PageState::of_view);
    let csrf = state
        .has_form()
        .then(|| forms::cookie(headers, CSRF_COOKIE).filter(|c| is_token_value(c)).unwrap_or_else(random_token));
    Page { state, view, status: state.status(), csrf }
}

/// An error of a request to a page path (no route, wrong method, a body
/// too large …), as a page: never a JSON body, never a cause.
pub fn render_error(err: &Error) -> Response {
    let status = crate::api::status_of(err);
    let state = match err {
        Error::NotFound(Resource::Route) => PageState::Unknown,
        Error::Internal(_) => PageState::Error,
        _ if status.is_server_error() => PageState::Error,
        _ => PageState::Forbidden,
    };
    render(Page { state, view: None, status, csrf: None }, false)
}

fn secure(app: &AppState) -> bool {
    app.public_url().starts_with("https://")
}

/// GET /sender-identity/{token}: shows what the link offers. Changes nothing.
#[utoipa::path(get, path = "/sender-identity/{token}", tag = "approval",
    params(("token" = String, Path, description = "the token of a mailed link")),
    responses((status = 200, description = "the request, with Approve / Deny or Revoke", content_type = "text/html"),
        (status = 404, description = "not a valid link", content_type = "text/html"),
        (status = 410, description = "used, replaced, expired or closed", content_type = "text/html")))]
pub async fn show(
    State(app): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
) -> Result<Response, Error> {
    let now = app.clock().now();
    let attempt = link_attempt(&app, &ext, now)?;
    let view = identities::open_link(app.store(), app.cipher(), &token, now).await?;
    if view.is_none() {
        attempt.failed();
    }
    Ok(render(page_of(view.as_ref(), &headers), secure(&app)))
}

/// Guessing links (issue 19): an address that opened too many unknown links
/// in a window (the console's sign-in limits: `ATTEMPTS_PER_ADDRESS` per
/// `ADDRESS_WINDOW_MS`, counted per process) gets 429 until it ends.
fn link_attempt<'a>(
    app: &'a AppState,
    ext: &axum::http::Extensions,
    now: crate::clock::Millis,
) -> Result<crate::domain::console::Attempt<'a>, Error> {
    let addr = ext
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let window = u32::try_from(crate::domain::console::ADDRESS_WINDOW_MS / 1000).unwrap_or(300);
    app.link_limiter().attempt(addr, now).ok_or(Error::RateLimited(window))
}

/// The form the page posts.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct ActionForm {
    /// The CSRF value of the page (also in its cookie).
    csrf: String,
    /// approve, deny, revoke or renew.
    action: String,
}

/// POST /sender-identity/{token}: approve, deny, revoke, or renew an
/// expired link; then a redirect to the identity's RedirectUrl when set.
#[utoipa::path(post, path = "/sender-identity/{token}", tag = "approval",
    params(("token" = String, Path, description = "the token of a mailed link")),
    request_body(content = ActionForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "done", content_type = "text/html"),
        (status = 303, description = "done; on to the identity's RedirectUrl"),
        (status = 403, description = "no valid CSRF value, or a cross-site request", content_type = "text/html"),
        (status = 404, description = "not a valid link", content_type = "text/html"),
        (status = 410, description = "used, replaced, expired or closed", content_type = "text/html")))]
pub async fn act(
    State(app): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    body: Bytes,
) -> Result<Response, Error> {
    if !is_form(&headers) {
        return Err(Error::UnsupportedMediaType);
    }
    if body.len() > FORM_LIMIT {
        return Err(Error::PayloadTooLarge);
    }
    let form: Option<ActionForm> = serde_urlencoded::from_bytes(&body).ok();
    if !forms::csrf_ok(&headers, CSRF_COOKIE, form.as_ref().map(|f| f.csrf.as_str())) {
        let page = Page { state: PageState::Forbidden, view: None, status: StatusCode::FORBIDDEN, csrf: None };
        return Ok(render(page, secure(&app)));
    }
    let Some(action) = form.as_ref().and_then(|f| LinkAction::parse(&f.action)) else {
        return Err(Error::field("action", "must be approve, deny, revoke or renew"));
    };
    let now = app.clock().now();
    let attempt = link_attempt(&app, &ext, now)?;
    let result = identities::follow_link(app.store(), app.cipher(), &token, action, now, app.public_url()).await?;
    let view = match result {
        LinkResult::Refused(view) => {
            if view.is_none() {
                attempt.failed();
            }
            return Ok(render(page_of(view.as_ref(), &headers), secure(&app)));
        }
        LinkResult::Done(view) => view,
    };
    app.wake_workers();
    let state = match action {
        LinkAction::Approve => PageState::Approved,
        LinkAction::Deny => PageState::Denied,
        LinkAction::Revoke => PageState::Revoked,
        LinkAction::Renew => PageState::Renewed,
    };
    if action != LinkAction::Renew
        && let Some(target) = view.identity.redirect_url.as_deref()
        && let Ok(location) = HeaderValue::from_str(target)
    {
        let mut res = StatusCode::SEE_OTHER.into_response();
        res.headers_mut().insert(header::LOCATION, location);
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        return Ok(res);
    }
    Ok(render(Page { state, view: Some(&view), status: StatusCode::OK, csrf: None }, secure(&app)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_renders_in_every_language_without_scripts() {
        use crate::clock::Millis;
        use crate::domain::OrgId;
        use crate::domain::identities::{Link, NotificationSettings, SenderIdentity, Status};
        let states = [
            PageState::Review,
            PageState::Revoke,
            PageState::Expired,
            PageState::Approved,
            PageState::Denied,
            PageState::Revoked,
            PageState::Renewed,
            PageState::Used,
            PageState::Replaced,
            PageState::Stale,
            PageState::Forbidden,
            PageState::Unknown,
            PageState::Error,
        ];
        for locale in ["EN", "DE", "FR", "ES", "JA"] {
            let view = LinkView {
                link: Link {
                    id: "l".into(),
                    org: OrgId::generate(),
                    identity_id: "i".into(),
                    purpose: LinkPurpose::Review,
                    created_at: Millis(0),
                    expires_at: Millis(1_000_000),
                    used_at: None,
                    outcome: None,
                },
                identity: SenderIdentity {
                    id: "i".into(),
                    name: "Luther <b>Cooper</b>".into(),
                    email: "luther@example.com".into(),
                    status: Status::Pending,
                    created_by: "cli".into(),
                    approved_at: None,
                    settings: NotificationSettings::default(),
                    brand_id: None,
                    redirect_url: Some("https://boldsign.com/done".into()),
                    meta_data: Default::default(),
                    locale: locale.into(),
                    created_at: Millis(0),
                    updated_at: Millis(0),
                },
                org_name: "Acme & Co".into(),
                stage: LinkStage::Open,
            };
            for state in states {
                let page = Page { state, view: Some(&view), status: StatusCode::OK, csrf: Some("c".into()) };
                let res = render(page, false);
                let csp = res.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_owned();
                assert!(csp.contains("frame-ancestors 'none'") && csp.contains("https://boldsign.com"), "{csp}");
                let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(res.into_body(), 1 << 20))
                    .unwrap()
                    .unwrap();
                let html = String::from_utf8(body.to_vec()).unwrap();
                assert!(html.starts_with("<!DOCTYPE html>"), "{locale} {state:?}: {html}");
                assert!(!html.contains("<script") && !html.contains("<b>Cooper"), "{locale} {state:?}: {html}");
                assert!(!html.contains("http://") && !html.contains("https://"), "no external resources: {html}");
                if state.has_form() {
                    assert!(html.contains("name=\"csrf\" value=\"c\""), "{locale} {state:?}");
                }
                if state == PageState::Review {
                    assert!(html.contains("Acme &amp; Co") && html.contains("luther@example.com"), "{html}");
                }
            }
        }
    }
}
