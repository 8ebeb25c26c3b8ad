//! Herald's native API (contract §2): org and token administration and the
//! audit log. Errors are RFC 9457 problem documents.

pub mod audit;
pub mod delivery;
pub mod error;
pub mod orgs;
pub mod providers;

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
        .routes(routes!(providers::list_providers, providers::create_provider))
        .routes(routes!(providers::get_provider, providers::replace_provider, providers::delete_provider))
        .routes(routes!(providers::test_provider))
        .routes(routes!(providers::list_instance_providers, providers::create_instance_provider))
        .routes(routes!(
            providers::get_instance_provider,
            providers::replace_instance_provider,
            providers::delete_instance_provider
        ))
        .routes(routes!(providers::test_instance_provider))
}
