//! Sign-in, sign-out, and the first visit's bootstrap with the admin token.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use minijinja::context;

use super::{Answer, CSRF_COOKIE, SESSION_COOKIE, field_errors, read_form, render, see_other, set_cookie};
use crate::api::forms;
use crate::auth::authenticate;
use crate::domain::console::{self, SESSION_MS, SignIn};
use crate::error::{Error, FieldError};
use crate::state::AppState;

/// The client's address (all clients share one count if it is unknown).
/// Behind a reverse proxy this is the proxy's: forwarding headers are not
/// trusted.
fn client_addr(ext: &Extensions) -> IpAddr {
    ext.get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// GET /console/login
pub async fn login_page(State(app): State<AppState>, headers: HeaderMap) -> Answer {
    if !console::any_user(app.store()).await? {
        return Ok(see_other("/console/setup"));
    }
    Ok(render(&app, &headers, None, "login.html", StatusCode::OK, context! {}))
}

/// POST /console/login: email and password; on success a session cookie.
pub async fn login(State(app): State<AppState>, ext: Extensions, headers: HeaderMap, body: Bytes) -> Answer {
    let form = read_form(&headers, &body)?;
    let email = form.get("email");
    let outcome = console::sign_in(
        app.store(),
        app.sign_in_limiter(),
        app.hash_gate(),
        client_addr(&ext),
        email,
        form.get("password"),
        app.clock().now(),
    )
    .await?;
    let (status, error) = match outcome {
        SignIn::Session { token, user } => {
            tracing::info!(user = %user.id, "console sign-in");
            let mut res = see_other("/console/");
            set_cookie(&mut res, &app, SESSION_COOKIE, token.expose(), SESSION_MS / 1000);
            return Ok(res);
        }
        SignIn::Refused => (StatusCode::UNAUTHORIZED, "refused"),
        SignIn::Locked => (StatusCode::TOO_MANY_REQUESTS, "locked"),
        SignIn::Busy => (StatusCode::TOO_MANY_REQUESTS, "busy"),
    };
    let mut res = render(&app, &headers, None, "login.html", status, context! { error, email });
    if error == "busy" {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(crate::api::RETRY_AFTER_SECONDS));
    }
    Ok(res)
}

/// POST /console/logout: ends the session.
pub async fn logout(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Answer {
    read_form(&headers, &body)?;
    if let Some(token) = forms::cookie(&headers, SESSION_COOKIE) {
        console::sign_out(app.store(), &token).await?;
    }
    let mut res = see_other("/console/login");
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        set_cookie(&mut res, &app, name, "", 0);
    }
    Ok(res)
}

/// GET /console/setup: the first visit, while no console account exists.
pub async fn setup_page(State(app): State<AppState>, headers: HeaderMap) -> Answer {
    if console::any_user(app.store()).await? {
        return Ok(see_other("/console/login"));
    }
    Ok(render(&app, &headers, None, "setup.html", StatusCode::OK, context! {}))
}

/// POST /console/setup: the bootstrap admin token creates the first
/// instance admin account. The token is the actor of its audit row.
pub async fn setup(State(app): State<AppState>, ext: Extensions, headers: HeaderMap, body: Bytes) -> Answer {
    let form = read_form(&headers, &body)?;
    let email = form.get("email");
    let now = app.clock().now();
    let again = |errors: Vec<FieldError>, status| {
        render(&app, &headers, None, "setup.html", status, context! { errors => field_errors(&errors), email })
    };
    let Some(attempt) = app.sign_in_limiter().attempt(client_addr(&ext), now) else {
        return Ok(again(
            vec![FieldError::new("token", "too many attempts; wait a few minutes")],
            StatusCode::TOO_MANY_REQUESTS,
        ));
    };
    let caller = match authenticate(&app, form.get("token").trim()).await {
        Ok(c) if c.is_admin() => c,
        Ok(_) | Err(Error::Unauthenticated) => {
            attempt.failed();
            return Ok(again(
                vec![FieldError::new("token", "is not an instance admin token")],
                StatusCode::UNAUTHORIZED,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    match console::create_first_admin(app.store(), app.hash_gate(), &caller.actor, email, form.get("password"), now)
        .await
    {
        Ok(_) => Ok(see_other("/console/login")),
        Err(Error::Invalid(errors)) => Ok(again(errors, StatusCode::BAD_REQUEST)),
        Err(Error::Precondition(_)) => Ok(see_other("/console/login")),
        Err(e) => Err(e.into()),
    }
}
