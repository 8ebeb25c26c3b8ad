//! The console's delivery-feedback pages (issue 18): an org's webhook
//! endpoints (`/console/orgs/{org}/webhooks`) with their delivery log, test
//! send and secret rotation; its suppression list (`…/suppressions`); and
//! its alerts with the alert contacts (`…/alerts`).
//!
//! The forms only translate: each goes through the domain function the
//! `/v1/webhooks`, `/v1/suppressions` and `/v1/alerts` handlers call
//! ([`webhooks::parse_draft`] and `create/update/delete`, the API's test
//! send, [`suppressions::page/add/remove`](suppressions), [`alerts::list`],
//! [`alerts::set_contacts`]), so the console cannot accept what the API
//! refuses. A signing secret appears once, on the page that answers the
//! create or the rotation, and on no page after.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{Answer, Form, Signed, field_errors, read_form, see_other};
use crate::api::native::webhooks::test_send;
use crate::api::{Path, Query};
use crate::domain::alerts::{self, Alert};
use crate::domain::orgs::Org;
use crate::domain::suppressions::{self, DEFAULT_PAGE, MAX_PAGE, Suppression, email_key};
use crate::domain::webhooks::{self, EVENT_TYPES, Endpoint, EndpointDraft, Message};
use crate::error::{Error, FieldError};
use crate::state::AppState;

/// Messages shown in an endpoint's delivery log, and alerts per list.
const LOG_PAGE: u32 = 50;
/// A checkbox `event_<type>` subscribes to `<type>`.
const EVENT_PREFIX: &str = "event_";

fn errors_of(errors: &[FieldError]) -> Vec<Value> {
    errors.iter().map(|e| context! { field => &e.field, message => &e.message }).collect()
}

/// The extra context of a refused form: its errors by field and as a list.
fn refused(errors: &[FieldError]) -> Value {
    context! { errors => field_errors(errors), error_list => errors_of(errors) }
}

#[derive(Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

/// The notice a redirect asks for (`?done=saved` …): only known words.
fn notice(q: &DoneQuery) -> Option<&'static str> {
    match q.done.as_deref() {
        Some("saved") => Some("saved"),
        Some("deleted") => Some("deleted"),
        Some("added") => Some("added"),
        Some("listed") => Some("listed"),
        Some("removed") => Some("removed"),
        _ => None,
    }
}

// ---- Webhooks ----

fn webhooks_base(org: &Org) -> String {
    format!("/console/orgs/{}/webhooks", org.id)
}

fn endpoint_row(e: &Endpoint) -> Value {
    context! {
        id => &e.id, url => &e.url, description => &e.description, events => &e.event_types,
        enabled => e.enabled, disabled_reason => &e.disabled_reason,
        failing_since => e.failing_since.map(|t| t.display_utc()), created => e.created_at.display_utc(),
    }
}

fn endpoint_form(e: &Endpoint) -> Value {
    context! { url => &e.url, description => &e.description, events => &e.event_types, enabled => e.enabled }
}

/// The event types a form ticks, in the order of [`EVENT_TYPES`] (unknown
/// ones last, for the domain to refuse).
fn posted_events(form: &Form) -> Vec<String> {
    let mut events: Vec<String> =
        form.0.keys().filter_map(|k| k.strip_prefix(EVENT_PREFIX)).map(str::to_owned).collect();
    events.sort_by_key(|e| (EVENT_TYPES.iter().position(|t| t == e).unwrap_or(usize::MAX), e.clone()));
    events
}

fn posted_form(form: &Form) -> Value {
    context! {
        url => form.get("url"), description => form.get("description"), events => posted_events(form),
        enabled => form.checked("enabled"),
    }
}

/// The posted form, checked as `POST/PUT /v1/webhooks` checks its body.
fn draft_of(form: &Form) -> Result<EndpointDraft, Error> {
    webhooks::parse_draft(
        Some(form.get("url").to_owned()),
        Some(form.get("description").to_owned()),
        Some(posted_events(form)),
        Some(form.checked("enabled")),
    )
}

/// The list with the add form; `extra` may carry `posted` (the form with
/// its errors) or a new secret.
async fn show_webhooks(
    app: &AppState,
    headers: &HeaderMap,
    user: &Signed,
    org: &Org,
    status: StatusCode,
    extra: Value,
) -> Answer {
    let rows: Vec<Value> = webhooks::list(app.store(), &org.id).await?.iter().map(endpoint_row).collect();
    let form = match extra.get_attr("posted") {
        Ok(posted) if !posted.is_undefined() => posted,
        _ => context! { url => "", description => "", events => Vec::<String>::new(), enabled => true },
    };
    let ctx = context! { rows, form, base => webhooks_base(org), event_types => EVENT_TYPES, ..extra };
    user.org_page(app, headers, org, "webhooks.html", status, ctx)
}

/// GET /console/orgs/{org}/webhooks
pub async fn webhooks_page(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    Query(query): Query<DoneQuery>,
    headers: HeaderMap,
) -> Answer {
    let org = user.org(&app, &org).await?;
    show_webhooks(&app, &headers, &user, &org, StatusCode::OK, context! { done => notice(&query) }).await
}

/// POST /console/orgs/{org}/webhooks: a new endpoint. The answer is the
/// page that shows its secret, once.
pub async fn webhook_create(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let form = read_form(&headers, &body)?;
    let made = match draft_of(&form) {
        Ok(draft) => {
            webhooks::create(app.store(), app.cipher(), &user.0.actor(), &org.id, draft, app.clock().now()).await
        }
        Err(e) => Err(e),
    };
    match made {
        Ok((endpoint, secret)) => {
            let extra =
                context! { new_secret => secret.expose(), secret_of => &endpoint.id, secret_url => &endpoint.url };
            show_webhooks(&app, &headers, &user, &org, StatusCode::OK, extra).await
        }
        Err(Error::Invalid(errors)) => {
            let extra = context! { posted => posted_form(&form), ..refused(&errors) };
            show_webhooks(&app, &headers, &user, &org, StatusCode::BAD_REQUEST, extra).await
        }
        Err(e) => Err(e.into()),
    }
}

fn message_row(m: &Message) -> Value {
    context! {
        id => &m.id, event_type => &m.event_type, status => &m.status, attempts => m.attempts,
        created => m.created_at.display_utc(), finished => m.finished_at.map(|t| t.display_utc()),
        code => m.last_status_code, latency => m.last_latency_ms, error => &m.last_error,
    }
}

/// One endpoint: its form, rotate, test, delete, and its delivery log.
async fn show_webhook(
    app: &AppState,
    headers: &HeaderMap,
    user: &Signed,
    org: &Org,
    e: &Endpoint,
    status: StatusCode,
    extra: Value,
) -> Answer {
    let log: Vec<Value> =
        webhooks::messages(app.store(), &org.id, &e.id, LOG_PAGE).await?.iter().map(message_row).collect();
    let form = match extra.get_attr("posted") {
        Ok(posted) if !posted.is_undefined() => posted,
        _ => endpoint_form(e),
    };
    let ctx = context! {
        endpoint => endpoint_row(e), form, log, base => webhooks_base(org), event_types => EVENT_TYPES, ..extra
    };
    user.org_page(app, headers, org, "webhook.html", status, ctx)
}

/// GET /console/orgs/{org}/webhooks/{id}
pub async fn webhook_page(
    user: Signed,
    State(app): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    Query(query): Query<DoneQuery>,
    headers: HeaderMap,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let e = webhooks::get(app.store(), &org.id, &id).await?;
    show_webhook(&app, &headers, &user, &org, &e, StatusCode::OK, context! { done => notice(&query) }).await
}

/// POST /console/orgs/{org}/webhooks/{id}: save (`action=save`), rotate
/// the secret (`rotate`: the answer shows the new one, once) or delete.
pub async fn webhook_change(
    user: Signed,
    State(app): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    // Unknown (or another org's) endpoint: 404 before the form is judged.
    let e = webhooks::get(app.store(), &org.id, &id).await?;
    let form = read_form(&headers, &body)?;
    let (actor, now, base) = (user.0.actor(), app.clock().now(), webhooks_base(&org));
    let rotate = form.get("action") == "rotate";
    let draft = match form.get("action") {
        "delete" => {
            webhooks::delete(app.store(), &actor, &org.id, &e.id, now).await?;
            return Ok(see_other(&format!("{base}?done=deleted")));
        }
        // The stored fields again, checked as a PUT with `rotateSecret`.
        "rotate" => webhooks::parse_draft(
            Some(e.url.clone()),
            Some(e.description.clone()),
            Some(e.event_types.clone()),
            Some(e.enabled),
        ),
        _ => draft_of(&form),
    };
    let saved = match draft {
        Ok(mut d) => {
            d.rotate_secret = rotate;
            webhooks::update(app.store(), app.cipher(), &actor, &org.id, &e.id, d, now).await
        }
        Err(e) => Err(e),
    };
    match saved {
        Ok((updated, Some(secret))) => {
            let extra = context! { new_secret => secret.expose(), rotated => true };
            show_webhook(&app, &headers, &user, &org, &updated, StatusCode::OK, extra).await
        }
        Ok((updated, None)) => Ok(see_other(&format!("{base}/{}?done=saved", updated.id))),
        Err(Error::Invalid(errors)) => {
            let extra = context! { posted => posted_form(&form), ..refused(&errors) };
            show_webhook(&app, &headers, &user, &org, &e, StatusCode::BAD_REQUEST, extra).await
        }
        Err(err) => Err(err.into()),
    }
}

/// POST /console/orgs/{org}/webhooks/{id}/test: a signed `webhook.test`
/// message now, and what the endpoint answered.
pub async fn webhook_test(
    user: Signed,
    State(app): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let e = webhooks::get(app.store(), &org.id, &id).await?;
    read_form(&headers, &body)?;
    let r = test_send(&app, &org.id, &e.id).await?;
    let test = context! { success => r.success, code => r.status_code, latency => r.latency_ms, error => r.error };
    show_webhook(&app, &headers, &user, &org, &e, StatusCode::OK, context! { test }).await
}

// ---- Suppressions ----

fn suppressions_base(org: &Org) -> String {
    format!("/console/orgs/{}/suppressions", org.id)
}

#[derive(Deserialize)]
pub struct SuppressionQuery {
    search: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
    done: Option<String>,
}

/// A page of the list: `search`, after `cursor`, `limit` a page.
fn page_url(org: &Org, search: &str, cursor: Option<&str>, limit: Option<&str>) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("search", search);
    if let Some(c) = cursor {
        q.append_pair("cursor", c);
    }
    if let Some(l) = limit {
        q.append_pair("limit", l);
    }
    format!("{}?{}", suppressions_base(org), q.finish())
}

fn suppression_row(s: &Suppression) -> Value {
    context! {
        email => &s.email, reason => s.reason.as_str(), detail => &s.detail,
        notification => &s.notification_id, created => s.created_at.display_utc(),
    }
}

/// One page of the list as `GET /v1/suppressions` reads it: `search`,
/// `cursor` (the last address of the previous page), `limit` (1–500).
async fn show_suppressions(
    app: &AppState,
    headers: &HeaderMap,
    user: &Signed,
    org: &Org,
    query: &SuppressionQuery,
    status: StatusCode,
    extra: Value,
) -> Answer {
    let search = query.search.as_deref().unwrap_or("");
    let raw_limit = query.limit.as_deref().map(str::trim).filter(|l| !l.is_empty());
    let limit = match raw_limit.map(str::parse::<u32>) {
        None => Ok(DEFAULT_PAGE),
        Some(Ok(n)) => Ok(n),
        Some(Err(_)) => Err(Error::field("limit", format!("must be a whole number between 1 and {MAX_PAGE}"))),
    };
    let after = query.cursor.as_deref().map(email_key);
    let found = match limit {
        Ok(limit) => suppressions::page(app.store(), &org.id, Some(search), after.as_deref(), limit)
            .await
            .map(|rows| (rows, limit)),
        Err(e) => Err(e),
    };
    let (rows, next, status, page_errors) = match found {
        Ok((rows, limit)) => {
            let next = (rows.len() == limit as usize).then(|| rows.last().map(|s| email_key(&s.email))).flatten();
            let next = next.map(|cursor| page_url(org, search, Some(&cursor), raw_limit));
            (rows.iter().map(suppression_row).collect::<Vec<_>>(), next, status, Vec::new())
        }
        Err(Error::Invalid(errors)) => (Vec::new(), None, StatusCode::BAD_REQUEST, errors_of(&errors)),
        Err(e) => return Err(e.into()),
    };
    let ctx = context! {
        rows, next, page_errors, base => suppressions_base(org), search, limit => raw_limit.unwrap_or(""),
        first => page_url(org, search, None, raw_limit),
        paged => query.cursor.is_some(), done => notice(&DoneQuery { done: query.done.clone() }), ..extra
    };
    user.org_page(app, headers, org, "suppressions.html", status, ctx)
}

/// GET /console/orgs/{org}/suppressions
pub async fn suppressions_page(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    Query(query): Query<SuppressionQuery>,
    headers: HeaderMap,
) -> Answer {
    let org = user.org(&app, &org).await?;
    show_suppressions(&app, &headers, &user, &org, &query, StatusCode::OK, context! {}).await
}

fn first_page() -> SuppressionQuery {
    SuppressionQuery { search: None, cursor: None, limit: None, done: None }
}

/// POST /console/orgs/{org}/suppressions: lists an address by hand.
pub async fn suppression_add(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let form = read_form(&headers, &body)?;
    let detail = Some(form.get("detail").trim()).filter(|d| !d.is_empty()).map(str::to_owned);
    let email = form.get("email");
    match suppressions::add(app.store(), &user.0.actor(), &org.id, email, detail, app.clock().now()).await {
        Ok((_, added)) => {
            let done = if added { "added" } else { "listed" };
            Ok(see_other(&format!("{}?done={done}", suppressions_base(&org))))
        }
        Err(Error::Invalid(errors)) => {
            let extra = context! { posted => context! { email, detail => form.get("detail") }, ..refused(&errors) };
            show_suppressions(&app, &headers, &user, &org, &first_page(), StatusCode::BAD_REQUEST, extra).await
        }
        Err(e) => Err(e.into()),
    }
}

/// POST /console/orgs/{org}/suppressions/remove: takes `email` off the
/// list (an address that is not listed: 404, as the API's DELETE).
pub async fn suppression_remove(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let form = read_form(&headers, &body)?;
    suppressions::remove(app.store(), &user.0.actor(), &org.id, form.get("email"), app.clock().now()).await?;
    Ok(see_other(&format!("{}?done=removed", suppressions_base(&org))))
}

// ---- Alerts and alert contacts ----

fn alert_row(a: &Alert) -> Value {
    context! {
        id => &a.id, kind => a.kind.as_str(), subject => &a.subject, detail => &a.detail,
        opened => a.opened_at.display_utc(), resolved => a.resolved_at.map(|t| t.display_utc()),
    }
}

async fn show_alerts(
    app: &AppState,
    headers: &HeaderMap,
    user: &Signed,
    org: &Org,
    status: StatusCode,
    extra: Value,
) -> Answer {
    let open: Vec<Value> = alerts::list(app.store(), &org.id, true, LOG_PAGE).await?.iter().map(alert_row).collect();
    let resolved: Vec<Value> = alerts::list(app.store(), &org.id, false, LOG_PAGE)
        .await?
        .iter()
        .filter(|a| a.resolved_at.is_some())
        .map(alert_row)
        .collect();
    let (emails, updated) = alerts::contacts(app.store(), &org.id).await?;
    let contacts = match extra.get_attr("posted") {
        Ok(posted) if !posted.is_undefined() => posted,
        _ => Value::from(emails.join("\n")),
    };
    let ctx = context! {
        open, resolved, contacts, updated => updated.map(|t| t.display_utc()),
        max_contacts => alerts::MAX_CONTACTS, ..extra
    };
    user.org_page(app, headers, org, "alerts.html", status, ctx)
}

/// GET /console/orgs/{org}/alerts
pub async fn alerts_page(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    Query(query): Query<DoneQuery>,
    headers: HeaderMap,
) -> Answer {
    let org = user.org(&app, &org).await?;
    show_alerts(&app, &headers, &user, &org, StatusCode::OK, context! { done => notice(&query) }).await
}

/// The addresses of the contacts field: one a line (commas separate too).
fn contact_list(raw: &str) -> Vec<String> {
    raw.split(['\n', ',']).map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect()
}

/// POST /console/orgs/{org}/alerts/contacts: replaces the list, as
/// `PUT /v1/alerts/contacts` does.
pub async fn contacts_save(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let form = read_form(&headers, &body)?;
    let emails = contact_list(form.get("emails"));
    match alerts::set_contacts(app.store(), &user.0.actor(), &org.id, &emails, app.clock().now()).await {
        Ok(_) => Ok(see_other(&format!("/console/orgs/{}/alerts?done=saved", org.id))),
        Err(Error::Invalid(errors)) => {
            let extra = context! { posted => form.get("emails"), ..refused(&errors) };
            show_alerts(&app, &headers, &user, &org, StatusCode::BAD_REQUEST, extra).await
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_split_by_lines_and_commas() {
        assert_eq!(
            contact_list(" a@x.example\r\n\n b@x.example, c@x.example ,"),
            ["a@x.example", "b@x.example", "c@x.example"]
        );
        assert!(contact_list(" \n , ").is_empty());
    }
}
