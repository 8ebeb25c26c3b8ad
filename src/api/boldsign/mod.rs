//! BoldSign: sender identities (seed 004, contract §7). Request property
//! names match in any case; responses are camelCase. Errors are ASP.NET's
//! validation problem for 400 and `{"error":"…"}` otherwise (`error.rs`).

pub mod error;
pub mod identities;
pub mod wire;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(identities::create))
        .routes(routes!(identities::update))
        .routes(routes!(identities::list))
        .routes(routes!(identities::properties))
        .routes(routes!(identities::delete))
        .routes(routes!(identities::resend_invitation))
        .routes(routes!(identities::rerequest))
}
