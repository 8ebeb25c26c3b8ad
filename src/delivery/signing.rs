//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>):
//! HMAC-SHA256 over `{id}.{timestamp}.{body}` with the endpoint's secret
//! (the bytes base64-encoded after `whsec_`), sent as `v1,<base64>` in the
//! `webhook-signature` header, space-separated when several secrets are
//! valid (a rotation's overlap).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The signature of one message: `v1,<base64 of HMAC-SHA256>`.
pub fn sign(secret_bytes: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret_bytes) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference
    /// libraries (`webhooks/python/standardwebhooks/tests`).
    #[test]
    fn matches_the_reference_example() {
        let secret = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
