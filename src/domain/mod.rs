//! The domain: plain Rust that parses, decides and returns. No axum, no SQL;
//! storage goes through [`crate::store::Store`]. Every API family calls into
//! here, so rules (who may do what, what is valid) are decided once.

pub mod audit;
pub mod orgs;
pub mod policy;
pub mod smtp;
pub mod tokens;

use std::fmt;

use crate::error::FieldError;

/// An organisation id: a UUIDv7 in canonical (lower-case, hyphenated) form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrgId(String);

impl OrgId {
    pub fn generate() -> Self {
        OrgId(uuid::Uuid::now_v7().to_string())
    }

    /// Parses an id as a client sent it; anything that is not a UUID can
    /// name no org.
    pub fn parse(raw: &str) -> Option<Self> {
        uuid::Uuid::parse_str(raw.trim()).ok().map(|u| OrgId(u.to_string()))
    }

    /// Wraps an id read back from our own database.
    pub(crate) fn from_db(raw: String) -> Self {
        OrgId(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who made a change, as written to the audit log: never a secret, only the
/// id of the token used (or where an unnamed admin came from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(String);

impl Actor {
    pub fn token(id: &str) -> Self {
        Actor(format!("token:{id}"))
    }
    /// The `HERALD_ADMIN_TOKEN` from the environment (it has no row).
    pub fn env_admin() -> Self {
        Actor("env:HERALD_ADMIN_TOKEN".into())
    }
    /// The `herald` command line, run by whoever has the database.
    pub fn cli() -> Self {
        Actor("cli".into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validates a short human label (org or token name): trimmed, 1–255
/// characters, no control characters (CR/LF included).
pub fn parse_label(field: &str, raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if name.chars().count() > 255 {
        return Err(FieldError::new(field, "must be at most 255 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not contain control characters (such as CR or LF)"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_ids_are_canonical_uuids() {
        let id = OrgId::generate();
        assert_eq!(OrgId::parse(&id.as_str().to_uppercase()), Some(id.clone()));
        assert_eq!(OrgId::parse("acme"), None);
        assert_eq!(OrgId::parse(""), None);
    }

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(parse_label("name", "  Acme  ").as_deref(), Ok("Acme"));
        assert!(parse_label("name", "   ").is_err());
        assert!(parse_label("name", &"x".repeat(256)).is_err());
        assert!(parse_label("name", &"é".repeat(255)).is_ok());
        assert!(parse_label("name", "a\r\nBcc: x").is_err());
    }
}
