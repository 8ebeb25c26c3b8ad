//! The dashboard, orgs and their tokens, and the audit logs.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::{Answer, Signed, field_errors, org_ref, read_form, see_other};
use crate::api::{Path, Query};
use crate::domain::audit::{self, AuditRecord, Scope};
use crate::domain::console::{self, Role};
use crate::domain::delivery::overview::{self, HourCounts};
use crate::domain::orgs::{self, Org};
use crate::domain::tokens;
use crate::error::Error;
use crate::state::AppState;

/// One bar of the dashboard's chart, laid out here so the template only draws.
#[derive(Serialize)]
struct Bar {
    x: i64,
    label: String,
    /// `(y, height)` of each segment, bottom up: sent, retrying, dead.
    sent: (i64, i64),
    retrying: (i64, i64),
    dead: (i64, i64),
    title: String,
}

const CHART_HEIGHT: i64 = 120;
const BAR_STEP: i64 = 20;

fn bars(hours: &[HourCounts], now_hour: i64) -> Vec<Bar> {
    let max = hours.iter().map(|h| h.total()).max().unwrap_or(0).max(1);
    let n = hours.len() as i64;
    hours
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let scale = |v: i64| v * CHART_HEIGHT / max;
            let (s, r, d) = (scale(h.sent), scale(h.retrying), scale(h.dead));
            let ago = n - 1 - i as i64;
            let hour = (now_hour - ago).rem_euclid(24);
            Bar {
                x: i as i64 * BAR_STEP,
                label: format!("{hour:02}"),
                sent: (CHART_HEIGHT - s, s),
                retrying: (CHART_HEIGHT - s - r, r),
                dead: (CHART_HEIGHT - s - r - d, d),
                title: format!("{hour:02}:00 UTC: {} sent, {} retrying, {} dead", h.sent, h.retrying, h.dead),
            }
        })
        .collect()
}

fn counts(h: HourCounts) -> Value {
    context! { sent => h.sent, retrying => h.retrying, dead => h.dead }
}

/// GET /console/: delivery at a glance.
pub async fn dashboard(user: Signed, State(app): State<AppState>, headers: HeaderMap) -> Answer {
    let now = app.clock().now();
    let board = overview::dashboard(app.store(), user.0.org.as_ref(), now).await?;
    let now_hour = (now.0 / overview::HOUR_MS).rem_euclid(24);
    let orgs: Vec<Value> = board
        .orgs
        .iter()
        .map(|o| {
            context! {
                id => o.org.id.as_str(), name => &o.org.name, dead => o.dead, queue => o.queue_depth,
                oldest => o.oldest_due_ms.map(|ms| ms / 1000), smtp => o.smtp_configured,
            }
        })
        .collect();
    let ctx = context! {
        bars => Value::from_serialize(bars(&board.hours, now_hour)),
        chart_width => BAR_STEP * board.hours.len() as i64,
        chart_height => CHART_HEIGHT,
        last_hour => counts(board.last_hour),
        last_day => counts(board.last_day),
        orgs,
    };
    user.page(&app, &headers, "dashboard.html", StatusCode::OK, ctx)
}

fn org_view(org: &Org) -> Value {
    context! { id => org.id.as_str(), name => &org.name, created => org.created_at.display_utc() }
}

async fn orgs_page(app: &AppState, headers: &HeaderMap, user: &Signed, status: StatusCode, extra: Value) -> Answer {
    let list: Vec<Value> = orgs::list(app.store()).await?.iter().map(org_view).collect();
    user.page(app, headers, "orgs.html", status, context! { orgs => list, ..extra })
}

/// GET /console/orgs (instance admins)
pub async fn orgs(user: Signed, State(app): State<AppState>, headers: HeaderMap) -> Answer {
    user.instance_admin()?;
    orgs_page(&app, &headers, &user, StatusCode::OK, context! {}).await
}

/// POST /console/orgs: create an org.
pub async fn create_org(user: Signed, State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Answer {
    user.instance_admin()?;
    let form = read_form(&headers, &body)?;
    match orgs::create(app.store(), &user.0.actor(), form.get("name"), app.clock().now()).await {
        Ok(org) => Ok(see_other(&format!("/console/orgs/{}", org.id))),
        Err(Error::Invalid(errors)) => {
            let extra = context! { errors => field_errors(&errors), name => form.get("name") };
            orgs_page(&app, &headers, &user, StatusCode::BAD_REQUEST, extra).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn org_page(
    app: &AppState,
    headers: &HeaderMap,
    user: &Signed,
    org: &Org,
    status: StatusCode,
    extra: Value,
) -> Answer {
    let token_list: Vec<Value> = if user.0.is_instance_admin() {
        tokens::list(app.store(), &org.id)
            .await?
            .iter()
            .map(|t| {
                context! {
                    id => &t.id, name => &t.name, created => t.created_at.display_utc(),
                    revoked => t.revoked_at.map(|r| r.display_utc()),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    user.org_page(app, headers, org, "org.html", status, context! { tokens => token_list, ..extra })
}

/// GET /console/orgs/{org}
pub async fn org(user: Signed, State(app): State<AppState>, Path(org): Path<String>, headers: HeaderMap) -> Answer {
    let org = user.org(&app, &org).await?;
    org_page(&app, &headers, &user, &org, StatusCode::OK, context! {}).await
}

/// POST /console/orgs/{org}/tokens: the new token is on this page only.
pub async fn create_token(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    user.instance_admin()?;
    let form = read_form(&headers, &body)?;
    match tokens::create_for_org(app.store(), &user.0.actor(), &org.id, form.get("name"), app.clock().now()).await {
        Ok(issued) => {
            let extra = context! { new_token => issued.secret.expose(), new_token_name => &issued.record.name };
            org_page(&app, &headers, &user, &org, StatusCode::CREATED, extra).await
        }
        Err(Error::Invalid(errors)) => {
            let extra = context! { errors => field_errors(&errors), name => form.get("name") };
            org_page(&app, &headers, &user, &org, StatusCode::BAD_REQUEST, extra).await
        }
        Err(e) => Err(e.into()),
    }
}

/// POST /console/orgs/{org}/tokens/{id}/revoke
pub async fn revoke_token(
    user: Signed,
    State(app): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    user.instance_admin()?;
    read_form(&headers, &body)?;
    tokens::revoke(app.store(), &user.0.actor(), &org.id, &id, app.clock().now()).await?;
    Ok(see_other(&format!("/console/orgs/{}", org.id)))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    after: Option<String>,
}

const AUDIT_PAGE: u32 = 50;

fn audit_rows(records: &[AuditRecord]) -> Vec<Value> {
    records
        .iter()
        .map(|r| {
            context! {
                seq => r.seq, at => r.at.rfc3339(), actor => &r.actor, action => &r.action,
                resource => format!("{} {}", r.resource_type, r.resource_id), detail => r.detail.to_string(),
            }
        })
        .collect()
}

async fn audit_page(
    app: &AppState,
    headers: &HeaderMap,
    user: &Signed,
    scope: Scope,
    org: Option<&Org>,
    query: AuditQuery,
) -> Answer {
    let after = query.after.as_deref().and_then(|a| a.parse::<i64>().ok()).unwrap_or(0).max(0);
    let records = audit::page(app.store(), &scope, after, AUDIT_PAGE).await?;
    let next = (records.len() == AUDIT_PAGE as usize).then(|| records.last().map(|r| r.seq)).flatten();
    let ctx = context! { org => org.map(org_ref), rows => audit_rows(&records), next };
    user.page(app, headers, "audit.html", StatusCode::OK, ctx)
}

/// GET /console/orgs/{org}/audit
pub async fn org_audit(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    Query(query): Query<AuditQuery>,
    headers: HeaderMap,
) -> Answer {
    let org = user.org(&app, &org).await?;
    audit_page(&app, &headers, &user, Scope::Org(org.id.clone()), Some(&org), query).await
}

/// GET /console/audit (instance admins): instance-level changes.
pub async fn instance_audit(
    user: Signed,
    State(app): State<AppState>,
    Query(query): Query<AuditQuery>,
    headers: HeaderMap,
) -> Answer {
    user.instance_admin()?;
    audit_page(&app, &headers, &user, Scope::Instance, None, query).await
}

async fn users_page(app: &AppState, headers: &HeaderMap, user: &Signed, status: StatusCode, extra: Value) -> Answer {
    let all = orgs::list(app.store()).await?;
    let name_of = |id: &crate::domain::OrgId| all.iter().find(|o| &o.id == id).map(|o| o.name.clone());
    let rows: Vec<Value> = console::list_users(app.store())
        .await?
        .iter()
        .map(|u| {
            context! {
                email => &u.email, org => u.org.as_ref().and_then(name_of), created => u.created_at.display_utc(),
            }
        })
        .collect();
    let org_list: Vec<Value> = all.iter().map(org_view).collect();
    let ctx = context! { users => rows, orgs => org_list, ..extra };
    user.page(app, headers, "users.html", status, ctx)
}

/// GET /console/users (instance admins): console accounts.
pub async fn users(user: Signed, State(app): State<AppState>, headers: HeaderMap) -> Answer {
    user.instance_admin()?;
    users_page(&app, &headers, &user, StatusCode::OK, context! {}).await
}

/// POST /console/users: a new account, an instance admin or an org's admin.
pub async fn create_user(user: Signed, State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Answer {
    user.instance_admin()?;
    let form = read_form(&headers, &body)?;
    let role = match form.get("role") {
        "instance" => Some(Role::InstanceAdmin),
        raw => crate::domain::OrgId::parse(raw).map(Role::OrgAdmin),
    };
    let created = match role {
        Some(role) => {
            let (email, password) = (form.get("email"), form.get("password"));
            let gate = app.hash_gate();
            console::create_user(app.store(), gate, &user.0.actor(), email, password, role, app.clock().now()).await
        }
        None => Err(Error::field("role", "must be the instance or an organisation")),
    };
    let errors = match created {
        Ok(_) => return Ok(see_other("/console/users")),
        Err(Error::Invalid(errors)) => errors,
        // An org that does not exist is none of the choices, so none is selected.
        Err(Error::NotFound(_)) => vec![crate::error::FieldError::new("role", "no such organisation")],
        Err(e) => return Err(e.into()),
    };
    let extra = context! { errors => field_errors(&errors), email => form.get("email"), role => form.get("role") };
    users_page(&app, &headers, &user, StatusCode::BAD_REQUEST, extra).await
}
