//! Herald's native API (contract §2): org and token administration and the
//! audit log. Errors are RFC 9457 problem documents.

pub mod audit;
pub mod error;
pub mod orgs;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(orgs::create_org, orgs::list_orgs))
        .routes(routes!(orgs::create_token, orgs::list_tokens))
        .routes(routes!(orgs::revoke_token))
        .routes(routes!(audit::org_audit))
        .routes(routes!(audit::instance_audit))
}
