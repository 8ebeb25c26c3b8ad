//! Herald's native API (contract §2): org and token administration and the
//! audit log. Errors are RFC 9457 problem documents.

pub mod audit;
pub mod delivery;
pub mod error;
pub mod limits;
pub mod orgs;

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
        .routes(routes!(limits::get_limits, limits::put_limits))
        .routes(routes!(limits::get_usage))
}
