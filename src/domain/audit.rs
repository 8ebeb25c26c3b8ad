//! The audit log: every change to an org-scoped (or instance) setting is
//! recorded in the same transaction as the change, under a gapless per-scope
//! sequence number. Zitadel's `details.sequence` is this number.
//!
//! Entries carry ids and names, never secrets: callers build the `detail`
//! from fields that are safe to show to any holder of the org's token.

use serde_json::Value;

use super::{Actor, OrgId};
use crate::clock::Millis;
use crate::error::Error;
use crate::store::Store;

/// Whose sequence a change advances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Org(OrgId),
    /// Instance-wide settings (admin-only): the instance has its own sequence.
    Instance,
}

/// A change about to be committed, described for the log.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub scope: Scope,
    pub actor: Actor,
    pub at: Millis,
    pub action: &'static str,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub detail: Value,
}

/// A committed audit row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: Millis,
    pub actor: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub detail: Value,
}

pub const MAX_PAGE: u32 = 500;
pub const DEFAULT_PAGE: u32 = 50;

/// One page of a scope's log in sequence order, starting after `after`.
pub async fn page(store: &Store, scope: &Scope, after: i64, limit: u32) -> Result<Vec<AuditRecord>, Error> {
    let limit = limit.clamp(1, MAX_PAGE);
    Ok(store.audit_page(scope, after, limit).await?)
}
