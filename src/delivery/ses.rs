//! STUB (h17): the Amazon SES v2 transport is built by h17x; this
//! placeholder only has the agreed signature so the provider core compiles.
//! The lead takes h17x's file at merge.

use crate::delivery::http::OutboundHttp;
use crate::delivery::mailer::Delivery;
use crate::secret::Secret;

pub struct SesSettings {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub endpoint: Option<String>,
}

/// Sends `raw` (the complete MIME message) with SES v2 SendEmail (Content.Raw).
pub async fn send(_http: &OutboundHttp, _settings: &SesSettings, _from: &str, _to: &[String], _raw: &[u8]) -> Delivery {
    Delivery::Transient {
        class: "config",
        error: "the SES transport is not available in this build".into(),
        response: None,
    }
}
