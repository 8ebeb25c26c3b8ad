//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>), used
//! by the HTTP provider ([`super::http_provider`]): the receiver checks
//! `webhook-signature` with any Standard Webhooks library.
//!
//! The signed content is `"{id}.{timestamp}.{body}"`, the key is the
//! base64 part of a `whsec_<base64>` secret, the MAC is HMAC-SHA256 and the
//! header value is `v1,<base64 of the MAC>`. HMAC is the `hmac` crate; only
//! the framing is written here.

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
/// `timestamp` (seconds since the epoch): `v1,<base64(HMAC-SHA256)>`.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> Result<String, SecretError> {
    let key = secret_key(secret)?;
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).map_err(|_| SecretError::Length)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// A fresh secret: `whsec_` and 32 random bytes.
pub fn generate_secret() -> Secret {
    let bytes: [u8; 32] = rand::random();
    Secret::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specification_example() {
        // A fixed vector (the same result from Python's hmac module); the
        // reference library itself checks Herald's signatures in
        // tests/api/transports.rs.
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
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
