//! STUB (h17): the OAuth2 client-credentials token cache is built by h17x;
//! this placeholder only has the agreed signatures so the provider core
//! compiles. The lead takes h17x's file at merge.

use crate::delivery::http::{HttpFailure, OutboundHttp};
use crate::secret::Secret;

pub struct OAuth2Client {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: Option<String>,
}

#[derive(Default)]
pub struct TokenCache {}

impl TokenCache {
    /// A cached access token, fetched by the client-credentials grant when missing
    /// or within 60 s of expiry. Errors carry no secret.
    pub async fn token(&self, _http: &OutboundHttp, _client: &OAuth2Client) -> Result<Secret, HttpFailure> {
        Err(HttpFailure { class: "config", permanent: false, message: "XOAUTH2 is not available in this build".into() })
    }

    /// Drops a token the server refused (SMTP 535 after XOAUTH2).
    pub fn forget(&self, _client: &OAuth2Client) {}
}
