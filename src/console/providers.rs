//! The console's "Providers" page of an org (issue 17): its providers in
//! the order mail tries them, each with its circuit-breaker state. Read
//! only for now: providers are managed with `/v1/providers`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use minijinja::context;

use super::{Answer, Signed, org_ref};
use crate::api::Path;
use crate::domain::audit::Scope;
use crate::domain::providers::{self, Settings};
use crate::state::AppState;

/// GET /console/orgs/{org}/providers
pub async fn page(user: Signed, State(app): State<AppState>, Path(org): Path<String>, headers: HeaderMap) -> Answer {
    let org = user.org(&app, &org).await?;
    let now = app.clock().now();
    let rows: Vec<minijinja::Value> = providers::list(app.store(), &Scope::Org(org.id.clone()))
        .await?
        .into_iter()
        .map(|p| {
            let target = match &p.settings {
                Settings::Smtp(s) => format!("{}:{}", s.host, s.port),
                Settings::Ses(s) => s.region.clone(),
                Settings::Http(s) => s.url.clone(),
            };
            context! {
                position => p.position,
                name => p.name,
                kind => p.settings.kind(),
                source => p.source.as_str(),
                target,
                enabled => p.enabled,
                state => p.health.state(now),
                failures => p.health.failures,
                open_until => p.health.open_until.map(|t| t.display_utc()),
                last_error => p.health.last_error,
                limit => p.max_per_minute,
            }
        })
        .collect();
    user.page(&app, &headers, "providers.html", StatusCode::OK, context! { org => org_ref(&org), rows })
}
