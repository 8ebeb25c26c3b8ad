//! The domain: plain Rust that parses, decides and returns. No axum, no SQL,
//! no sockets, no loops of its own: storage goes through
//! [`crate::store::Store`], and an accepted event's commit through the
//! [`Committer`](crate::delivery::committer::Committer) it is handed, as a
//! handle like the store. Sending mail, the worker loops and the group
//! commit are [`crate::delivery`]. Every API family calls into here, so
//! rules (who may do what, what is valid) are decided once.

pub mod alerts;
pub mod audit;
pub mod bounces;
pub mod console;
pub mod delivery;
pub mod departments;
pub mod fairness;
pub mod feedback;
pub mod identities;
pub mod orgs;
pub mod policy;
pub mod providers;
pub mod retention;
pub mod signing;
pub mod smtp;
pub mod suppressions;
pub mod tokens;
pub mod users;
pub mod webhooks;

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
    /// Whoever followed mailed link `id` (a sender identity's owner,
    /// contract §7): the link's id, never its token.
    pub fn link(id: &str) -> Self {
        Actor(format!("link:{id}"))
    }
    /// A console account (issue 14), by its id.
    pub fn console(id: &str) -> Self {
        Actor(format!("console:{id}"))
    }
    /// The inbound SMTP listener for bounces (issue 18): the sender of a
    /// report is unknown; its VERP address is what Herald trusts.
    pub fn inbound_smtp() -> Self {
        Actor("inbound:smtp".into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A page of a listing, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub size: u32,
}

impl PageRequest {
    pub const MAX_SIZE: u32 = 100;

    /// Validates `page` (≥ 1, default 1) and `size` (1–100, default 20).
    pub fn parse(page: Option<i64>, size: Option<i64>) -> Result<PageRequest, crate::error::Error> {
        let mut errors = crate::error::FieldErrors::new();
        let page = match page {
            None => 1,
            Some(p) if (1..=1_000_000).contains(&p) => p as u32,
            Some(_) => {
                errors.add("page", "Page must be a number from 1");
                1
            }
        };
        let size = match size {
            None => 20,
            Some(s) if (1..=i64::from(Self::MAX_SIZE)).contains(&s) => s as u32,
            Some(_) => {
                errors.add("size", format!("Size must be between 1 and {}", Self::MAX_SIZE));
                20
            }
        };
        errors.finish()?;
        Ok(PageRequest { page, size })
    }

    pub fn offset(self) -> i64 {
        (i64::from(self.page) - 1) * i64::from(self.size)
    }
}

/// One page of a listing and the total count of matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub page: u32,
    pub size: u32,
    pub total: i64,
}

/// A `LIKE` pattern matching `needle` anywhere, with `%`, `_` and `\` in it
/// taken literally (the SQL says `ESCAPE '\'`).
pub fn contains_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
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
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
        assert_eq!(contains_pattern(""), "%%");
    }

    #[test]
    fn pages_are_bounded() {
        assert_eq!(PageRequest::parse(None, None).unwrap(), PageRequest { page: 1, size: 20 });
        assert_eq!(PageRequest::parse(Some(3), Some(10)).unwrap().offset(), 20);
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(None, Some(101)).is_err());
        assert!(PageRequest::parse(None, Some(0)).is_err());
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
