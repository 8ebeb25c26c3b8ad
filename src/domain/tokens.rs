//! API tokens (contract §1): `hrd_` + 32 base62 characters (≈190 random
//! bits), shown once at creation. Only the SHA-256 digest is stored; a
//! presented token is digested, looked up by digest, and the digests are
//! compared again in constant time.

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::audit::{AuditEntry, Scope};
use super::{Actor, OrgId, parse_label};
use crate::clock::Millis;
use crate::error::{Error, Resource};
use crate::secret::Secret;
use crate::store::Store;

pub const PREFIX: &str = "hrd_";
const RANDOM_CHARS: usize = 32;

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    /// `None` for an instance admin token.
    pub org_id: Option<OrgId>,
    pub name: String,
    pub created_at: Millis,
    pub revoked_at: Option<Millis>,
}

/// A freshly created token: the record, and the secret to show exactly once.
#[derive(Debug)]
pub struct IssuedToken {
    pub record: TokenRecord,
    pub secret: Secret,
}

/// Hex SHA-256 of a presented token: the only form that is stored.
pub fn digest(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// Constant-time equality of two digests.
pub fn digests_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Whether a presented string can be a Herald-issued token at all (saves a
/// database lookup for junk).
pub fn looks_issued(token: &str) -> bool {
    token
        .strip_prefix(PREFIX)
        .is_some_and(|rest| rest.len() == RANDOM_CHARS && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn generate_secret() -> Secret {
    // Alphanumeric is exactly the base62 alphabet; the thread RNG is a CSPRNG.
    Secret::new(format!("{PREFIX}{}", Alphanumeric.sample_string(&mut rand::rng(), RANDOM_CHARS)))
}

fn issue(org_id: Option<OrgId>, name: String, now: Millis) -> (IssuedToken, String) {
    let secret = generate_secret();
    let digest = digest(secret.expose());
    let record = TokenRecord { id: uuid::Uuid::now_v7().to_string(), org_id, name, created_at: now, revoked_at: None };
    (IssuedToken { record, secret }, digest)
}

/// Creates a token bound to `org`.
pub async fn create_for_org(
    store: &Store,
    actor: &Actor,
    org: &OrgId,
    name: &str,
    now: Millis,
) -> Result<IssuedToken, Error> {
    let name = parse_label("name", name).map_err(|e| Error::Invalid(vec![e]))?;
    if store.org(org).await?.is_none() {
        return Err(Error::NotFound(Resource::Org));
    }
    let (issued, digest) = issue(Some(org.clone()), name, now);
    let audit = AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action: "token.created",
        resource_type: "token",
        resource_id: issued.record.id.clone(),
        detail: serde_json::json!({ "name": issued.record.name }),
    };
    store.insert_token(&issued.record, &digest, &audit).await?;
    Ok(issued)
}

/// Creates an instance admin token (CLI, or the first-start bootstrap).
pub async fn create_admin(store: &Store, actor: &Actor, name: &str, now: Millis) -> Result<IssuedToken, Error> {
    let name = parse_label("name", name).map_err(|e| Error::Invalid(vec![e]))?;
    let (issued, digest) = issue(None, name, now);
    let audit = AuditEntry {
        scope: Scope::Instance,
        actor: actor.clone(),
        at: now,
        action: "admin_token.created",
        resource_type: "token",
        resource_id: issued.record.id.clone(),
        detail: serde_json::json!({ "name": issued.record.name }),
    };
    store.insert_token(&issued.record, &digest, &audit).await?;
    Ok(issued)
}

/// Every token of an org, newest first, revoked ones included.
pub async fn list(store: &Store, org: &OrgId) -> Result<Vec<TokenRecord>, Error> {
    if store.org(org).await?.is_none() {
        return Err(Error::NotFound(Resource::Org));
    }
    Ok(store.org_tokens(org).await?)
}

/// Revokes an org's token: it fails from the next request on (every request
/// reads the token row; nothing caches it).
pub async fn revoke(store: &Store, actor: &Actor, org: &OrgId, id: &str, now: Millis) -> Result<(), Error> {
    // The revocation's audit row goes first in its transaction, and an
    // unknown org has no audit sequence to advance: say 404 before that.
    if store.org(org).await?.is_none() {
        return Err(Error::NotFound(Resource::Org));
    }
    let audit = AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action: "token.revoked",
        resource_type: "token",
        resource_id: id.to_owned(),
        detail: serde_json::json!({}),
    };
    if store.revoke_token(org, id, now, &audit).await? { Ok(()) } else { Err(Error::NotFound(Resource::Token)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_have_the_contract_format() {
        let (issued, stored) = issue(None, "t".into(), Millis(0));
        let token = issued.secret.expose();
        assert!(looks_issued(token), "{}", token.len());
        assert_eq!(stored, digest(token));
        assert_ne!(stored, token);
        // 32 base62 characters carry log2(62) * 32 ≈ 190 bits ≥ 160.
        assert!((62f64).log2() * RANDOM_CHARS as f64 >= 160.0);
        let (other, _) = issue(None, "t".into(), Millis(0));
        assert_ne!(other.secret, issued.secret);
    }

    #[test]
    fn digests_compare_exactly() {
        assert!(digests_match(&digest("a"), &digest("a")));
        assert!(!digests_match(&digest("a"), &digest("b")));
        assert!(!looks_issued("hrd_short"));
        assert!(!looks_issued(&format!("xyz_{}", "a".repeat(32))));
    }
}
