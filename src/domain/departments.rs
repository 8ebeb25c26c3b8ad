//! Departments (Leegality, contract §4): named groups of an org's users.

use super::audit::{AuditEntry, Scope};
use super::{Actor, OrgId, PageRequest, Paged};
use crate::clock::Millis;
use crate::error::{Error, FieldError, Resource};
use crate::store::{DepartmentWrite, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub created_at: Millis,
    /// The org's users in this department right now.
    pub total_users: i64,
}

/// A department name: trimmed, 2–255 characters, no control characters.
pub fn parse_name(raw: &str) -> Result<String, FieldError> {
    let name = raw.trim();
    let len = name.chars().count();
    if !(2..=255).contains(&len) {
        return Err(FieldError::new("name", "Department name must be between 2 and 255 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new("name", "Department name must not contain line breaks or control characters"));
    }
    Ok(name.to_owned())
}

/// Case-insensitive identity of a name (uniqueness, search).
pub fn key(name: &str) -> String {
    name.to_lowercase()
}

fn audit(org: &OrgId, actor: &Actor, now: Millis, action: &'static str, id: &str, name: Option<&str>) -> AuditEntry {
    AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action,
        resource_type: "department",
        resource_id: id.to_owned(),
        detail: name.map_or_else(|| serde_json::json!({}), |n| serde_json::json!({ "name": n })),
    }
}

/// A department id from a path: anything but a UUID names no department.
fn known_id(id: &str) -> Result<String, Error> {
    uuid::Uuid::parse_str(id).map(|u| u.to_string()).map_err(|_| Error::NotFound(Resource::Department))
}

fn outcome(write: DepartmentWrite) -> Result<Department, Error> {
    match write {
        DepartmentWrite::Done(d) => Ok(d),
        DepartmentWrite::Missing => Err(Error::NotFound(Resource::Department)),
        DepartmentWrite::DuplicateName => Err(Error::Conflict(Resource::Department)),
    }
}

pub async fn create(
    store: &Store,
    actor: &Actor,
    org: &OrgId,
    name: &str,
    enabled: Option<bool>,
    now: Millis,
) -> Result<Department, Error> {
    let name = parse_name(name).map_err(|e| Error::Invalid(vec![e]))?;
    let dept = Department {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        enabled: enabled.unwrap_or(true),
        created_at: now,
        total_users: 0,
    };
    let entry = audit(org, actor, now, "department.created", &dept.id, Some(&dept.name));
    outcome(store.insert_department(org, &dept, &key(&dept.name), &entry).await?)
}

pub async fn get(store: &Store, org: &OrgId, id: &str) -> Result<Department, Error> {
    let id = known_id(id)?;
    store.department(org, &id).await?.ok_or(Error::NotFound(Resource::Department))
}

pub async fn list(store: &Store, org: &OrgId, page: PageRequest, search: &str) -> Result<Paged<Department>, Error> {
    let (items, total) = store.departments(org, &key(search.trim()), page).await?;
    Ok(Paged { items, page: page.page, size: page.size, total })
}

/// Replaces the writable fields: `name` always, `enabled` when given.
pub async fn replace(
    store: &Store,
    actor: &Actor,
    org: &OrgId,
    id: &str,
    name: &str,
    enabled: Option<bool>,
    now: Millis,
) -> Result<Department, Error> {
    let id = known_id(id)?;
    let name = parse_name(name).map_err(|e| Error::Invalid(vec![e]))?;
    let entry = audit(org, actor, now, "department.replaced", &id, Some(&name));
    outcome(store.update_department(org, &id, &name, &key(&name), enabled, &entry).await?)
}

/// Deletes a department: gone from reads, its name free again, its users stay.
pub async fn delete(store: &Store, actor: &Actor, org: &OrgId, id: &str, now: Millis) -> Result<(), Error> {
    let id = known_id(id)?;
    let entry = audit(org, actor, now, "department.deleted", &id, None);
    if store.delete_department(org, &id, &entry).await? { Ok(()) } else { Err(Error::NotFound(Resource::Department)) }
}
