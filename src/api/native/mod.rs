//! Herald's native API (contract §2): org and token administration and the
//! audit log. Errors are RFC 9457 problem documents.

pub mod alerts;
pub mod audit;
pub mod delivery;
pub mod error;
pub mod inbound;
pub mod limits;
pub mod orgs;
pub mod providers;
pub mod retention;
pub mod suppressions;
pub mod webhooks;

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
        .routes(routes!(suppressions::list_suppressions, suppressions::add_suppression))
        .routes(routes!(suppressions::get_suppression, suppressions::remove_suppression))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(webhooks::get_webhook, webhooks::update_webhook, webhooks::delete_webhook))
        .routes(routes!(webhooks::test_webhook))
        .routes(routes!(webhooks::webhook_messages))
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(alerts::get_alert_contacts, alerts::put_alert_contacts))
        .routes(routes!(limits::get_limits, limits::put_limits))
        .routes(routes!(limits::get_usage))
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
        .routes(routes!(retention::instance_retention))
        .routes(routes!(retention::run_pruning))
        .routes(routes!(retention::org_retention, retention::set_org_retention, retention::clear_org_retention))
        .routes(routes!(retention::erase))
        .routes(routes!(inbound::inbound_bounces))
}
