//! Encryption of stored secrets (SMTP passwords): XChaCha20-Poly1305 with a
//! random 192-bit nonce per value, and associated data that binds each
//! ciphertext to the row it belongs to, so a ciphertext copied to another
//! org or config fails to decrypt instead of being used there.
//!
//! The same key signs the links Herald mails (sender identity approval,
//! contract §7): HMAC-SHA256 under a subkey derived from it, so that whoever
//! can read the database, but not the key, cannot make a valid link.
//!
//! The key is `HERALD_SECRET_KEY` (32 bytes, base64) or, for SQLite, a key
//! file `herald.key` created beside the database with mode 0600. A database
//! remembers a check value written with its key, so starting Herald with a
//! different key is refused with a clear message instead of failing later
//! (or worse, appearing to work).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::secret::Secret;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// First byte of every ciphertext: the format, so it can change later.
const FORMAT_V1: u8 = 1;
const KEY_CHECK_PLAINTEXT: &[u8] = b"herald key check";
const KEY_CHECK_AAD: &[u8] = b"herald:key-check";

pub struct Cipher {
    aead: XChaCha20Poly1305,
    /// HMAC key for signed links, derived from the secret key (one key is
    /// never used by two algorithms).
    link_key: [u8; 32],
}

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a link signature: 256 bits, as HMAC-SHA256 gives them.
const LINK_MAC_LEN: usize = 32;
/// Bytes of the MAC kept in a VERP address (80 bits: unguessable).
const VERP_TAG_LEN: usize = 10;

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(***)")
    }
}

/// Why a stored secret could not be decrypted: the key does not match, or
/// the value was moved to another row. Never carries key or plaintext.
#[derive(Debug, thiserror::Error)]
#[error(
    "a stored secret cannot be decrypted with the current HERALD_SECRET_KEY \
     (was the key changed, or the value moved to another row?)"
)]
pub struct DecryptError;

impl Cipher {
    pub fn from_key(key: &[u8]) -> anyhow::Result<Cipher> {
        anyhow::ensure!(key.len() == KEY_LEN, "HERALD_SECRET_KEY must be {KEY_LEN} bytes (base64), got {}", key.len());
        let aead = XChaCha20Poly1305::new_from_slice(key).map_err(|_| anyhow::anyhow!("invalid key length"))?;
        let link_key = hmac_sha256(key, b"herald:subkey:link-signing:v1");
        Ok(Cipher { aead, link_key })
    }

    /// Parses a base64 key as `HERALD_SECRET_KEY` holds it.
    pub fn from_base64(key: &Secret) -> anyhow::Result<Cipher> {
        let bytes = STANDARD
            .decode(key.expose().trim())
            .map_err(|_| anyhow::anyhow!("HERALD_SECRET_KEY is not valid base64"))?;
        Self::from_key(&bytes)
    }

    /// The key of a deployment: `HERALD_SECRET_KEY` if set; else, for a SQLite
    /// database file, `herald.key` beside it (created on first start).
    pub fn load(configured: Option<&Secret>, sqlite_file: Option<&Path>) -> anyhow::Result<Cipher> {
        if let Some(key) = configured {
            return Self::from_base64(key);
        }
        let Some(db) = sqlite_file else {
            anyhow::bail!(
                "HERALD_SECRET_KEY is required with PostgreSQL or an in-memory database \
                 (32 random bytes, base64: `openssl rand -base64 32`)"
            );
        };
        let path = key_file_beside(db);
        Self::from_base64(&read_or_create_key_file(&path)?)
    }

    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let nonce_arr = XNonce::try_from(&nonce[..]).map_err(|_| anyhow::anyhow!("nonce length"))?;
        let sealed = self
            .aead
            .encrypt(&nonce_arr, Payload { msg: plaintext, aad })
            .map_err(|_| anyhow::anyhow!("encryption failed"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    pub fn decrypt(&self, stored: &[u8], aad: &[u8]) -> Result<Vec<u8>, DecryptError> {
        let (&format, rest) = stored.split_first().ok_or(DecryptError)?;
        if format != FORMAT_V1 || rest.len() < NONCE_LEN {
            return Err(DecryptError);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| DecryptError)?;
        self.aead.decrypt(&nonce, Payload { msg: sealed, aad }).map_err(|_| DecryptError)
    }

    /// A value the database keeps to recognise its key.
    pub fn key_check(&self) -> anyhow::Result<Vec<u8>> {
        self.encrypt(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)
    }

    /// Whether `check` (from [`Cipher::key_check`]) was written with this key.
    pub fn verify_key_check(&self, check: &[u8]) -> bool {
        self.decrypt(check, KEY_CHECK_AAD).is_ok_and(|p| p == KEY_CHECK_PLAINTEXT)
    }

    /// The token of a mailed link: `id` and its signature, `<id>.<mac>`
    /// (base64url). `purpose` separates kinds of links, so a signature made
    /// for one can never pass for another.
    pub fn sign_link(&self, purpose: &str, id: &str) -> String {
        let mac = self.link_mac(purpose, id);
        format!("{id}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The id a link token was signed for, if its signature is ours (checked
    /// in constant time); `None` for anything else.
    pub fn verify_link(&self, purpose: &str, token: &str) -> Option<String> {
        let (id, mac) = token.split_once('.')?;
        let given = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if given.len() != LINK_MAC_LEN || id.is_empty() || id.len() > 64 {
            return None;
        }
        let mut check = HmacSha256::new_from_slice(&self.link_key).ok()?;
        check.update(&link_message(purpose, id));
        check.verify_slice(&given).ok().map(|()| id.to_owned())
    }

    /// The signature in a VERP bounce address for notification `id`: the
    /// first 10 bytes (80 bits) of an HMAC-SHA256 under the link key
    /// (purpose `verp`), as 20 lower-case hex digits. Hex, not base64,
    /// because mail servers may fold the case of a local part.
    pub fn verp_tag(&self, id: &str) -> String {
        self.link_mac("verp", id)[..VERP_TAG_LEN].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `tag` is the VERP signature of `id` (any case; compared in
    /// constant time).
    pub fn verify_verp_tag(&self, id: &str, tag: &str) -> bool {
        if tag.len() != VERP_TAG_LEN * 2 || !tag.is_ascii() || id.is_empty() || id.len() > 64 {
            return false;
        }
        let mut given = [0u8; VERP_TAG_LEN];
        for (i, byte) in given.iter_mut().enumerate() {
            match u8::from_str_radix(&tag[i * 2..i * 2 + 2], 16) {
                Ok(b) => *byte = b,
                Err(_) => return false,
            }
        }
        let Ok(mut check) = HmacSha256::new_from_slice(&self.link_key) else {
            return false;
        };
        check.update(&link_message("verp", id));
        check.verify_truncated_left(&given).is_ok()
    }

    fn link_mac(&self, purpose: &str, id: &str) -> [u8; LINK_MAC_LEN] {
        hmac_sha256(&self.link_key, &link_message(purpose, id))
    }
}

fn link_message(purpose: &str, id: &str) -> Vec<u8> {
    format!("herald:link:v1:{purpose}:{id}").into_bytes()
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// 32 random bytes, base64url without padding (43 characters): CSRF
/// values and console session cookies.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `value` has the form of a value [`random_token`] makes.
pub fn is_token_value(value: &str) -> bool {
    value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `herald.key` in the directory of the database file.
pub fn key_file_beside(db: &Path) -> PathBuf {
    db.parent().map(|d| d.join("herald.key")).unwrap_or_else(|| PathBuf::from("herald.key"))
}

fn read_or_create_key_file(path: &Path) -> anyhow::Result<Secret> {
    match std::fs::read_to_string(path) {
        Ok(text) => return Ok(Secret::new(text.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("read the key file {}", path.display())),
    }
    let mut key = [0u8; KEY_LEN];
    rand::rng().fill_bytes(&mut key);
    let encoded = STANDARD.encode(key);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{encoded}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("write the key file {}", path.display()))?;
            tracing::warn!(path = %path.display(), "created a new secret key file; back it up with the database");
            Ok(Secret::new(encoded))
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(Secret::new(std::fs::read_to_string(path).context("read the key file")?.trim()))
        }
        Err(e) => Err(e).with_context(|| format!("create the key file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(byte: u8) -> Cipher {
        Cipher::from_key(&[byte; KEY_LEN]).unwrap()
    }

    #[test]
    fn round_trips_and_binds_associated_data() {
        let c = cipher(7);
        let sealed = c.encrypt(b"hunter2", b"org-a/config-1").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(c.decrypt(&sealed, b"org-a/config-1").unwrap(), b"hunter2");
        assert!(c.decrypt(&sealed, b"org-b/config-1").is_err(), "moved to another row");
        assert!(cipher(8).decrypt(&sealed, b"org-a/config-1").is_err(), "another key");
        assert_ne!(c.encrypt(b"hunter2", b"x").unwrap(), c.encrypt(b"hunter2", b"x").unwrap(), "fresh nonces");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(c.decrypt(&tampered, b"org-a/config-1").is_err());
        assert!(c.decrypt(&[], b"").is_err() && c.decrypt(&[1, 2, 3], b"").is_err());
    }

    #[test]
    fn key_check_recognises_its_key() {
        let check = cipher(1).key_check().unwrap();
        assert!(cipher(1).verify_key_check(&check));
        assert!(!cipher(2).verify_key_check(&check));
    }

    #[test]
    fn link_tokens_verify_only_with_their_key_purpose_and_id() {
        let c = cipher(3);
        let token = c.sign_link("identity", "0193abcd");
        assert!(token.starts_with("0193abcd.") && token.len() == "0193abcd.".len() + 43, "{token}");
        assert_eq!(c.verify_link("identity", &token).as_deref(), Some("0193abcd"));
        assert_eq!(cipher(4).verify_link("identity", &token), None, "another key");
        assert_eq!(c.verify_link("other", &token), None, "another purpose");
        let moved = token.replacen("0193abcd", "0193abce", 1);
        assert_eq!(c.verify_link("identity", &moved), None, "another id");
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 2;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(c.verify_link("identity", &String::from_utf8(flipped).unwrap()), None);
        for junk in ["", ".", "abc", "0193abcd.", "0193abcd.!!", ".AAAA"] {
            assert_eq!(c.verify_link("identity", junk), None, "{junk:?}");
        }
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        assert!(Cipher::from_base64(&Secret::new(STANDARD.encode([0u8; 32]))).is_ok());
        assert!(Cipher::from_base64(&Secret::new(STANDARD.encode([0u8; 16]))).is_err());
        assert!(Cipher::from_base64(&Secret::new("not base64!")).is_err());
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("herald.db");
        let first = Cipher::load(None, Some(&db)).unwrap();
        let path = key_file_beside(&db);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let again = Cipher::load(None, Some(&db)).unwrap();
        let sealed = first.encrypt(b"x", b"a").unwrap();
        assert_eq!(again.decrypt(&sealed, b"a").unwrap(), b"x", "the same key is read back");
        assert!(Cipher::load(None, None).is_err(), "PostgreSQL needs HERALD_SECRET_KEY");
    }
}
