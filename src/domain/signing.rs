//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>), for
//! webhooks ([`crate::delivery::webhooks`]) and the HTTP provider
//! ([`crate::delivery::http_provider`]): the receiver checks `webhook-signature` with
//! any Standard Webhooks library.
//!
//! The signed content is `"{id}.{timestamp}.{body}"`, the key is the
//! base64 part of a `whsec_<base64>` secret, the MAC is HMAC-SHA256 and the
//! header value is `v1,<base64 of the MAC>`, space-separated when several
//! secrets are valid (a webhook rotation's overlap). HMAC is the `hmac`
//! crate; only the framing is written here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a secret cannot sign. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the signing secret must look like whsec_<base64>")]
    Format,
    #[error("the signing secret must hold at least 24 bytes (the Standard Webhooks range is 24 to 64)")]
    Length,
}

/// The key bytes of a `whsec_<base64>` secret (24 to 64 bytes, as the
/// specification recommends).
pub fn secret_key(secret: &Secret) -> Result<Vec<u8>, SecretError> {
    let encoded = secret.expose().strip_prefix(SECRET_PREFIX).ok_or(SecretError::Format)?;
    let key = STANDARD.decode(encoded).map_err(|_| SecretError::Format)?;
    if !(24..=64).contains(&key.len()) {
        return Err(SecretError::Length);
    }
    Ok(key)
}

/// The `webhook-signature` header value for `body` sent as message `id` at
/// `timestamp` (seconds since the epoch), from a `whsec_` secret.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SecretError> {
    Ok(sign_with_key(&secret_key(secret)?, id, timestamp, body))
}

/// The signature of one message with the key bytes themselves:
/// `v1,<base64 of HMAC-SHA256>`.
pub fn sign_with_key(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        unreachable!("HMAC accepts keys of any length")
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// A fresh secret: `whsec_` and 32 random bytes.
pub fn generate_secret() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries
    /// (`webhooks/python/standardwebhooks/tests`); the libraries themselves
    /// check Herald's signatures in tests/api/transports.rs and webhooks.rs.
    #[test]
    fn matches_the_reference_example() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(), expected);
        let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(sign_with_key(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body), expected);
    }

    #[test]
    fn malformed_secrets_are_refused_without_echoing_them() {
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_c2hvcnQ="] {
            let err = sign(&Secret::new(bad), "id", 1, b"{}").unwrap_err();
            assert!(!err.to_string().contains(bad), "{err}");
        }
        assert!(sign(&generate_secret(), "id", 1, b"{}").unwrap().starts_with("v1,"));
    }
}
