//! The delivery log: filter by status, recipient and time; a notification
//! with every attempt and the server's replies; Retry for dead mail.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::NaiveDateTime;
use minijinja::{Value, context};
use serde::Deserialize;

use super::{Answer, Signed, field_errors, read_form, see_other};
use crate::api::{Path, Query};
use crate::clock::Millis;
use crate::domain::delivery::overview::{self, LogFilter};
use crate::domain::delivery::{self, Notification, Status};
use crate::error::{Error, FieldError, FieldErrors};
use crate::state::AppState;

const PAGE: u32 = 50;

#[derive(Deserialize, Default)]
pub struct LogQuery {
    status: Option<String>,
    to: Option<String>,
    /// `YYYY-MM-DDTHH:MM` (an HTML `datetime-local`), UTC.
    from: Option<String>,
    until: Option<String>,
    before: Option<String>,
}

fn parse_time(field: &str, raw: Option<&str>) -> Result<Option<Millis>, FieldError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else { return Ok(None) };
    let parsed = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S"))
        .map_err(|_| FieldError::new(field, "must be a date and time (YYYY-MM-DDTHH:MM, UTC)"))?;
    Ok(Some(Millis(parsed.and_utc().timestamp_millis())))
}

fn filter_of(q: &LogQuery) -> Result<LogFilter, Error> {
    let mut errors = FieldErrors::new();
    let status = match q.status.as_deref().unwrap_or("") {
        "" => None,
        raw => Status::parse(raw).or_else(|| {
            errors.add("status", "must be one of queued, sending, sent, retrying, dead, bounced, complained");
            None
        }),
    };
    let to = q.to.as_deref().map(str::trim).filter(|t| !t.is_empty());
    if to.is_some_and(|t| t.chars().count() > 254 || t.chars().any(char::is_control)) {
        errors.add("to", "must be part of an email address");
    }
    let from = errors.take(parse_time("from", q.from.as_deref())).flatten();
    let until = errors.take(parse_time("until", q.until.as_deref())).flatten();
    errors.finish()?;
    Ok(LogFilter { status, to: to.map(str::to_owned), from, until })
}

fn row(n: &Notification) -> Value {
    context! {
        id => &n.id, to => &n.to, subject => &n.subject, kind => &n.kind, status => n.status.as_str(),
        attempts => n.attempts, last_error => &n.last_error, created => n.created_at.rfc3339(),
    }
}

/// GET /console/orgs/{org}/log
pub async fn list(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    Query(query): Query<LogQuery>,
    headers: HeaderMap,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let before = query.before.as_deref().and_then(|b| uuid::Uuid::parse_str(b).ok()).map(|u| u.to_string());
    let (status, rows, errors, next) = match filter_of(&query) {
        Ok(filter) => {
            let rows = overview::search(app.store(), &org.id, &filter, before.as_deref(), PAGE).await?;
            let next = (rows.len() == PAGE as usize).then(|| rows.last().map(|n| n.id.clone())).flatten();
            (StatusCode::OK, rows.iter().map(row).collect::<Vec<_>>(), Value::UNDEFINED, next)
        }
        Err(Error::Invalid(errors)) => (StatusCode::BAD_REQUEST, Vec::new(), field_errors(&errors), None),
        Err(e) => return Err(e.into()),
    };
    let q = context! {
        status => query.status.as_deref().unwrap_or(""), to => query.to.as_deref().unwrap_or(""),
        from => query.from.as_deref().unwrap_or(""), until => query.until.as_deref().unwrap_or(""),
    };
    let ctx = context! {
        rows, errors, q, next,
        statuses => Status::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    };
    user.org_page(&app, &headers, &org, "log.html", status, ctx)
}

/// GET /console/orgs/{org}/log/{id}: one notification and every attempt.
pub async fn show(
    user: Signed,
    State(app): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let (n, attempts) = delivery::get(app.store(), &org.id, &id).await?;
    let attempts: Vec<Value> = attempts
        .iter()
        .map(|a| {
            context! {
                attempt => a.attempt, at => a.at.rfc3339(), outcome => &a.outcome, error => &a.error,
                reply => &a.smtp_response,
            }
        })
        .collect();
    let ctx = context! {
        n => context! {
            smtp_response => &n.smtp_response, updated => n.updated_at.rfc3339(),
            sent => n.sent_at.map(|t| t.rfc3339()), locale => &n.locale, event => &n.event_id, ..row(&n)
        },
        attempts, dead => n.status == Status::Dead,
    };
    user.org_page(&app, &headers, &org, "notification.html", StatusCode::OK, ctx)
}

/// POST /console/orgs/{org}/log/{id}/retry: a dead notification, due now.
pub async fn retry(
    user: Signed,
    State(app): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    read_form(&headers, &body)?;
    delivery::retry(app.store(), &user.0.actor(), &org.id, &id, app.clock().now()).await?;
    app.wake_workers();
    Ok(see_other(&format!("/console/orgs/{}/log/{id}", org.id)))
}
