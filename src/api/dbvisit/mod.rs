//! Dbvisit StandbyMP: the instance-wide email settings (seed 002, contract
//! §5), used by every org without an enabled configuration of its own.
//! Instance admins only. Requests are `{"params":{…}}`; responses
//! `{"successful":true,"result":…,"error":null}`.

pub mod error;
pub mod settings;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(settings::edit))
        .routes(routes!(settings::show_get, settings::show_post))
        .routes(routes!(settings::clear))
}
