//! An org's notification policy, its departments and users, and its sender
//! identities (with their status and a button that mails a new link).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{Answer, Signed, field_errors, read_form, see_other};
use crate::api::{Path, Query};
use crate::domain::identities::{self, IdentityInput, Reissue, Status};
use crate::domain::orgs::Org;
use crate::domain::{PageRequest, departments, policy, users};
use crate::error::{Error, Resource};
use crate::state::AppState;

/// GET /console/orgs/{org}/policy
pub async fn policy_page(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let p = policy::effective(app.store(), &org.id).await?;
    let ctx = context! {
        password_change => p.password_change, is_default => p.is_default,
        changed => p.details.changed_at.display_utc(),
    };
    user.org_page(&app, &headers, &org, "policy.html", StatusCode::OK, ctx)
}

/// POST /console/orgs/{org}/policy: set the org's own policy, or return to
/// the instance default (`action=reset`).
pub async fn policy_save(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let form = read_form(&headers, &body)?;
    let (actor, now) = (user.0.actor(), app.clock().now());
    let on = form.checked("password_change");
    let result = if form.get("action") == "reset" {
        policy::reset(app.store(), &actor, &org.id, now).await.map(drop)
    } else if policy::effective(app.store(), &org.id).await?.is_default {
        policy::create(app.store(), &actor, &org.id, on, now).await.map(drop)
    } else {
        policy::update(app.store(), &actor, &org.id, on, now).await.map(drop)
    };
    match result {
        // Nothing to change (the same value, or no own policy to remove) is no error here.
        Ok(()) | Err(Error::Precondition(_)) | Err(Error::NotFound(Resource::NotificationPolicy)) => {
            Ok(see_other(&format!("/console/orgs/{}/policy", org.id)))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, Default)]
pub struct PeopleQuery {
    q: Option<String>,
    page: Option<String>,
}

async fn people_view(
    app: &AppState,
    headers: &HeaderMap,
    user: &Signed,
    org: &Org,
    query: &PeopleQuery,
    status: StatusCode,
    extra: Value,
) -> Answer {
    let page = query.page.as_deref().and_then(|p| p.parse::<i64>().ok()).filter(|p| (1..=1_000_000).contains(p));
    let all = PageRequest::parse(Some(1), Some(i64::from(PageRequest::MAX_SIZE)))?;
    let depts = departments::list(app.store(), &org.id, all, "").await?;
    let q = query.q.as_deref().unwrap_or("").trim();
    let found = users::search(app.store(), &org.id, q, None, PageRequest::parse(page, Some(50))?).await?;
    let name_of = |id: &str| depts.items.iter().find(|d| d.id == id).map(|d| d.name.clone()).unwrap_or_default();
    let user_rows: Vec<Value> = found
        .items
        .iter()
        .map(|u| {
            let names: Vec<String> = u.department_ids.iter().map(|d| name_of(d)).collect();
            context! { id => &u.id, name => &u.name, email => &u.email, locale => &u.locale, departments => names.join(", ") }
        })
        .collect();
    let dept_rows: Vec<Value> = depts
        .items
        .iter()
        .map(|d| context! { id => &d.id, name => &d.name, enabled => d.enabled, users => d.total_users })
        .collect();
    let next = (i64::from(found.page) * i64::from(found.size) < found.total).then_some(found.page + 1);
    let ctx = context! {
        departments => dept_rows, users => user_rows, q, next, total => found.total, ..extra
    };
    user.org_page(app, headers, org, "people.html", status, ctx)
}

/// GET /console/orgs/{org}/people: departments and users.
pub async fn people(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    Query(query): Query<PeopleQuery>,
    headers: HeaderMap,
) -> Answer {
    let org = user.org(&app, &org).await?;
    people_view(&app, &headers, &user, &org, &query, StatusCode::OK, context! {}).await
}

/// POST /console/orgs/{org}/departments: create (`name`) or delete (`delete=<id>`).
pub async fn department(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let form = read_form(&headers, &body)?;
    let (actor, now) = (user.0.actor(), app.clock().now());
    let result = match form.get("delete") {
        "" => departments::create(app.store(), &actor, &org.id, form.get("name"), None, now).await.map(drop),
        id => departments::delete(app.store(), &actor, &org.id, id, now).await,
    };
    let errors = match result {
        Ok(()) => return Ok(see_other(&format!("/console/orgs/{}/people", org.id))),
        Err(Error::Invalid(errors)) => errors,
        Err(Error::Conflict(Resource::Department)) => {
            vec![crate::error::FieldError::new("department", "a department with this name exists")]
        }
        Err(e) => return Err(e.into()),
    };
    let message = errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ");
    let extra = context! { dept_error => message, dept_name => form.get("name") };
    people_view(&app, &headers, &user, &org, &PeopleQuery::default(), StatusCode::BAD_REQUEST, extra).await
}

/// POST /console/orgs/{org}/users: create (name, email, locale,
/// departments) or delete (`delete=<id>`).
pub async fn user_change(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let form = read_form(&headers, &body)?;
    let (actor, now) = (user.0.actor(), app.clock().now());
    let result = match form.get("delete") {
        "" => {
            // Checkboxes repeat the name `department`; the form keeps them all.
            let departments: Vec<String> =
                form_urlencoded::parse(&body).filter(|(k, _)| k == "department").map(|(_, v)| v.into_owned()).collect();
            let locale = Some(form.get("locale")).filter(|l| !l.is_empty());
            match users::parse_draft(Some(form.get("name")), Some(form.get("email")), Some(departments), locale) {
                Ok(draft) => users::create(app.store(), &actor, &org.id, draft, now).await.map(drop),
                Err(e) => Err(e),
            }
        }
        id => users::delete(app.store(), &actor, &org.id, id, now).await,
    };
    let errors = match result {
        Ok(()) => return Ok(see_other(&format!("/console/orgs/{}/people", org.id))),
        Err(Error::Invalid(errors)) => errors,
        Err(Error::Conflict(Resource::User)) => {
            vec![crate::error::FieldError::new("email", "a user with this email exists")]
        }
        Err(e) => return Err(e.into()),
    };
    let posted = context! { name => form.get("name"), email => form.get("email"), locale => form.get("locale") };
    let extra = context! { user_errors => field_errors(&errors), posted };
    people_view(&app, &headers, &user, &org, &PeopleQuery::default(), StatusCode::BAD_REQUEST, extra).await
}

async fn identities_view(
    app: &AppState,
    headers: &HeaderMap,
    user: &Signed,
    org: &Org,
    status: StatusCode,
    extra: Value,
) -> Answer {
    let page = identities::list(app.store(), &org.id, 1, 100, "", &[]).await?;
    let rows: Vec<Value> = page
        .items
        .iter()
        .map(|i| {
            let reissue = match i.status {
                Status::Pending => "resend",
                Status::Denied | Status::Revoked => "rerequest",
                _ => "",
            };
            context! {
                name => &i.name, email => &i.email, status => i.status.as_str(), locale => &i.locale,
                approved => i.approved_at.map(|t| t.display_utc()), reissue,
            }
        })
        .collect();
    let ctx = context! { identities => rows, total => page.total, ..extra };
    user.org_page(app, headers, org, "identities.html", status, ctx)
}

/// GET /console/orgs/{org}/identities
pub async fn identities_page(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let org = user.org(&app, &org).await?;
    identities_view(&app, &headers, &user, &org, StatusCode::OK, context! {}).await
}

/// POST /console/orgs/{org}/identities: create one (its owner is mailed a
/// review link), or mail a new link (`resend` / `rerequest` = email).
pub async fn identity_change(
    user: Signed,
    State(app): State<AppState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let org = user.org(&app, &org).await?;
    let form = read_form(&headers, &body)?;
    let (actor, now, url) = (user.0.actor(), app.clock().now(), app.public_url());
    let result = if !form.get("resend").is_empty() {
        identities::reissue(app.store(), &actor, &org.id, form.get("resend"), Reissue::Resend, now, url).await
    } else if !form.get("rerequest").is_empty() {
        identities::reissue(app.store(), &actor, &org.id, form.get("rerequest"), Reissue::Rerequest, now, url).await
    } else {
        let input = IdentityInput {
            name: Some(form.get("name").to_owned()),
            email: Some(form.get("email").to_owned()),
            ..IdentityInput::default()
        };
        match identities::parse_new(input) {
            Ok(new) => identities::create(app.store(), &actor, &org.id, new, now, url).await.map(drop),
            Err(e) => Err(e),
        }
    };
    let errors = match result {
        Ok(()) => {
            app.wake_workers();
            return Ok(see_other(&format!("/console/orgs/{}/identities", org.id)));
        }
        Err(Error::Invalid(errors)) => errors,
        Err(Error::Conflict(Resource::SenderIdentity)) => {
            vec![crate::error::FieldError::new("Email", "a sender identity with this email exists")]
        }
        Err(e) => return Err(e.into()),
    };
    let extra = context! { errors => field_errors(&errors), name => form.get("name"), email => form.get("email") };
    identities_view(&app, &headers, &user, &org, StatusCode::BAD_REQUEST, extra).await
}
