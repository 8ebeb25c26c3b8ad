//! Who is calling, and for which org (contract §1).
//!
//! A token may arrive in `Authorization: Bearer`, `X-Auth-Token` (Leegality)
//! or `X-API-KEY` (BoldSign). [`Caller`] authenticates it on every request,
//! through the store's token cache: a revocation holds from the next request
//! on this node and within a second on every other (`store/cache.rs`).
//! [`OrgScope`] then picks the org: an org token acts on its own org; an
//! admin token names one with `x-zitadel-orgid`. A named org that does not
//! exist and one the token may not see get the same answer.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::domain::tokens::{self, digests_match};
use crate::domain::{Actor, OrgId};
use crate::error::{Denial, Error};
use crate::state::AppState;

pub const ORG_HEADER: &str = "x-zitadel-orgid";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    /// The org an org token is bound to; `None` for instance admins.
    pub org: Option<OrgId>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.org.is_none()
    }
}

/// The token the request presents, from the first header that has one.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    bearer
        .or_else(|| headers.get("x-auth-token").and_then(|v| v.to_str().ok()))
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Checks a presented token against the bootstrap admin token and the
/// token table.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Caller, Error> {
    let digest = tokens::digest(token);
    if let Some(admin) = state.admin_token_digest()
        && digests_match(admin, &digest)
    {
        state.api_limits().check(state.store(), None, &digest, state.clock().now()).await?;
        return Ok(Caller { actor: Actor::env_admin(), org: None });
    }
    if !tokens::looks_issued(token) {
        return Err(Error::Unauthenticated);
    }
    match state.store().token_by_digest(&digest).await? {
        // The index found the row by digest; compare again in constant time
        // so the decision itself does not depend on where bytes differ.
        Some(found) if digests_match(&found.digest, &digest) => {
            // Rate limits per token (issue 19), before any handler runs: a
            // refused request changes nothing.
            state.api_limits().check(state.store(), found.org_id.as_ref(), &digest, state.clock().now()).await?;
            Ok(Caller { actor: Actor::token(&found.id), org: found.org_id })
        }
        _ => Err(Error::Unauthenticated),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = presented_token(&parts.headers).ok_or(Error::Unauthenticated)?;
        authenticate(state, token).await
    }
}

/// An instance admin.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.is_admin() { Ok(Admin(caller)) } else { Err(Error::Forbidden(Denial::AdminOnly)) }
    }
}

/// A caller acting on one org.
#[derive(Debug, Clone)]
pub struct OrgScope {
    pub org: OrgId,
    pub actor: Actor,
}

impl FromRequestParts<AppState> for OrgScope {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let named = match parts.headers.get(ORG_HEADER) {
            None => None,
            Some(v) => {
                let raw = v.to_str().map_err(|_| Error::Forbidden(Denial::OrgNotAccessible))?;
                Some(OrgId::parse(raw).ok_or(Error::Forbidden(Denial::OrgNotAccessible))?)
            }
        };
        let org = match (caller.org, named) {
            (Some(own), None) => own,
            (Some(own), Some(named)) if named == own => own,
            (Some(_), Some(_)) => return Err(Error::Forbidden(Denial::OrgNotAccessible)),
            (None, Some(named)) => {
                if state.store().org(&named).await?.is_none() {
                    return Err(Error::Forbidden(Denial::OrgNotAccessible));
                }
                named
            }
            (None, None) => {
                return Err(Error::field(ORG_HEADER, "is required when an instance admin token acts on an org"));
            }
        };
        Ok(OrgScope { org, actor: caller.actor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_any_family_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_token(&h), None);
        h.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(presented_token(&h), Some("k1"));
        h.insert("x-auth-token", "k2".parse().unwrap());
        assert_eq!(presented_token(&h), Some("k2"));
        h.insert("authorization", "Bearer k3".parse().unwrap());
        assert_eq!(presented_token(&h), Some("k3"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented_token(&h), Some("k2"));
        let mut empty = HeaderMap::new();
        empty.insert("authorization", "Bearer  ".parse().unwrap());
        assert_eq!(presented_token(&empty), None);
    }
}
