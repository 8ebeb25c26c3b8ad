//! Zitadel: the notification policy of the management API (org level) and
//! the admin API (instance default), contract §6 and seed 003: JSON over
//! HTTP as Zitadel's gRPC gateway serves it (`policy.rs`), and Zitadel's own
//! gRPC, gRPC-web and Connect transports for the same methods (`rpc.rs`).

pub mod error;
pub mod policy;
pub mod rpc;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(policy::get_policy, policy::add_policy, policy::update_policy, policy::reset_policy))
        .routes(routes!(policy::get_default_policy))
        .routes(routes!(
            policy::admin_get_default_policy,
            policy::admin_add_default_policy,
            policy::admin_update_default_policy
        ))
}
