//! Organisations: the tenants. Created by instance admins (API or CLI).

use super::audit::{AuditEntry, Scope};
use super::{Actor, OrgId, parse_label};
use crate::clock::Millis;
use crate::error::{Error, Resource};
use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: Millis,
}

/// Creates an org. Its own audit log starts with this change (sequence 1).
pub async fn create(store: &Store, actor: &Actor, name: &str, now: Millis) -> Result<Org, Error> {
    let name = parse_label("name", name).map_err(|e| Error::Invalid(vec![e]))?;
    let org = Org { id: OrgId::generate(), name, created_at: now };
    let audit = AuditEntry {
        scope: Scope::Org(org.id.clone()),
        actor: actor.clone(),
        at: now,
        action: "org.created",
        resource_type: "org",
        resource_id: org.id.to_string(),
        detail: serde_json::json!({ "name": org.name }),
    };
    store.insert_org(&org, &audit).await?;
    Ok(org)
}

pub async fn list(store: &Store) -> Result<Vec<Org>, Error> {
    Ok(store.orgs().await?)
}

/// The org with this id, or `NotFound`.
pub async fn get(store: &Store, id: &OrgId) -> Result<Org, Error> {
    store.org(id).await?.ok_or(Error::NotFound(Resource::Org))
}
