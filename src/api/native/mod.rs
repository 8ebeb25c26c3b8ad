//! Herald's native API (contract §2): org and token administration and the
//! audit log. Errors are RFC 9457 problem documents.

pub mod audit;
pub mod delivery;
pub mod error;
pub mod orgs;
pub mod retention;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(orgs::create_org, orgs::list_orgs))
        .routes(routes!(orgs::create_token, orgs::list_tokens))
        .routes(routes!(orgs::revoke_token))
        .routes(routes!(audit::org_audit))
        .routes(routes!(audit::instance_audit))
        .routes(routes!(delivery::post_event))
        .routes(routes!(delivery::list_notifications))
        .routes(routes!(delivery::get_notification))
        .routes(routes!(delivery::retry_notification))
        .routes(routes!(delivery::smtp_test))
        .routes(routes!(retention::instance_retention))
        .routes(routes!(retention::run_pruning))
        .routes(routes!(retention::org_retention, retention::set_org_retention, retention::clear_org_retention))
        .routes(routes!(retention::erase))
}
