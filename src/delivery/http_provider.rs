//! STUB (h17): the HTTP provider transport is built by h17x; this
//! placeholder only has the agreed signature so the provider core compiles.
//! The lead takes h17x's file at merge.

use crate::delivery::http::OutboundHttp;
use crate::delivery::mailer::Delivery;
use crate::secret::Secret;

pub struct HttpProvider {
    pub url: String,
    pub secret: Secret,
}

/// POSTs the rendered message as signed JSON (Standard Webhooks headers).
pub async fn send(_http: &OutboundHttp, _provider: &HttpProvider, _message: &serde_json::Value) -> Delivery {
    Delivery::Transient {
        class: "config",
        error: "the HTTP provider transport is not available in this build".into(),
        response: None,
    }
}
