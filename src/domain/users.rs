//! Users (contract §4): the people notifications are addressed to, with
//! their departments and the locale their mail is written in.

use super::audit::{AuditEntry, Scope};
use super::{Actor, OrgId, PageRequest, Paged};
use crate::clock::Millis;
use crate::domain::smtp::{parse_address, parse_text};
use crate::error::{Error, FieldErrors, Resource};
use crate::store::{Store, UserWrite};

/// The locales of contract §7 (BoldSign's list); `Default` means English.
pub const LOCALES: &[&str] = &[
    "EN", "NO", "FR", "DE", "ES", "BG", "CS", "DA", "IT", "NL", "PL", "PT", "RO", "RU", "SV", "Default", "JA", "TH",
    "ZH_CN", "ZH_TW", "KO",
];

/// At most this many departments per user.
pub const MAX_DEPARTMENTS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub locale: String,
    pub department_ids: Vec<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A user as a request wants it. `None` on update keeps the stored value.
#[derive(Debug, Clone)]
pub struct UserDraft {
    pub name: String,
    pub email: String,
    pub department_ids: Option<Vec<String>>,
    pub locale: Option<String>,
}

/// Validates a user, every bad field at once.
pub fn parse_draft(
    name: Option<&str>,
    email: Option<&str>,
    department_ids: Option<Vec<String>>,
    locale: Option<&str>,
) -> Result<UserDraft, Error> {
    let mut errors = FieldErrors::new();
    let name = match name.map(str::trim) {
        Some(n) if !n.is_empty() => errors.take(parse_text("name", "Name", n, 255)),
        _ => {
            errors.add("name", "Name is required");
            None
        }
    };
    let email = match email.map(str::trim) {
        Some(e) if !e.is_empty() => errors.take(parse_address("email", "Email", e)),
        _ => {
            errors.add("email", "Email is required");
            None
        }
    };
    let department_ids = department_ids.and_then(|ids| {
        if ids.len() > MAX_DEPARTMENTS {
            errors.add("departmentIds", format!("A user can be in at most {MAX_DEPARTMENTS} departments"));
            return None;
        }
        let mut canonical = Vec::with_capacity(ids.len());
        for id in ids {
            match uuid::Uuid::parse_str(&id) {
                Ok(u) if !canonical.contains(&u.to_string()) => canonical.push(u.to_string()),
                Ok(_) => {}
                Err(_) => {
                    errors.add("departmentIds", "Department does not exist.");
                    return None;
                }
            }
        }
        Some(canonical)
    });
    let locale = match locale {
        None => None,
        Some(l) => match LOCALES.iter().find(|known| known.eq_ignore_ascii_case(l)) {
            Some(known) => Some((*known).to_owned()),
            None => {
                errors.add("locale", format!("Locale must be one of {}", LOCALES.join(", ")));
                None
            }
        },
    };
    errors.finish()?;
    Ok(UserDraft { name: name.unwrap_or_default(), email: email.unwrap_or_default(), department_ids, locale })
}

fn audit(
    org: &OrgId,
    actor: &Actor,
    now: Millis,
    action: &'static str,
    id: &str,
    draft: Option<&UserDraft>,
) -> AuditEntry {
    AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action,
        resource_type: "user",
        resource_id: id.to_owned(),
        detail: draft.map_or_else(
            || serde_json::json!({}),
            |d| serde_json::json!({ "email": d.email, "departmentIds": d.department_ids }),
        ),
    }
}

fn known_id(id: &str) -> Result<String, Error> {
    uuid::Uuid::parse_str(id).map(|u| u.to_string()).map_err(|_| Error::NotFound(Resource::User))
}

fn outcome(write: UserWrite) -> Result<User, Error> {
    match write {
        UserWrite::Done(u) => Ok(u),
        UserWrite::Missing => Err(Error::NotFound(Resource::User)),
        UserWrite::DuplicateEmail => Err(Error::Conflict(Resource::User)),
        UserWrite::UnknownDepartment => Err(Error::field("departmentIds", "Department does not exist.")),
    }
}

pub async fn create(store: &Store, actor: &Actor, org: &OrgId, draft: UserDraft, now: Millis) -> Result<User, Error> {
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        name: draft.name.clone(),
        email: draft.email.clone(),
        locale: draft.locale.clone().unwrap_or_else(|| "Default".to_owned()),
        department_ids: draft.department_ids.clone().unwrap_or_default(),
        created_at: now,
        updated_at: now,
    };
    let entry = audit(org, actor, now, "user.created", &user.id, Some(&draft));
    outcome(store.insert_user(org, &user, &entry).await?)
}

pub async fn get(store: &Store, org: &OrgId, id: &str) -> Result<User, Error> {
    let id = known_id(id)?;
    store.user(org, &id).await?.ok_or(Error::NotFound(Resource::User))
}

/// Replaces a user; `departmentIds` and `locale` absent keep their values.
pub async fn replace(
    store: &Store,
    actor: &Actor,
    org: &OrgId,
    id: &str,
    draft: UserDraft,
    now: Millis,
) -> Result<User, Error> {
    let id = known_id(id)?;
    let entry = audit(org, actor, now, "user.replaced", &id, Some(&draft));
    outcome(store.update_user(org, &id, &draft, now, &entry).await?)
}

pub async fn delete(store: &Store, actor: &Actor, org: &OrgId, id: &str, now: Millis) -> Result<(), Error> {
    let id = known_id(id)?;
    let entry = audit(org, actor, now, "user.deleted", &id, None);
    if store.delete_user(org, &id, &entry).await? { Ok(()) } else { Err(Error::NotFound(Resource::User)) }
}

/// Users matching `search` (name or email, case-insensitive) and, if given,
/// in `department_id`; ordered by name, then id, so pages never overlap.
pub async fn search(
    store: &Store,
    org: &OrgId,
    search: &str,
    department_id: Option<&str>,
    page: PageRequest,
) -> Result<Paged<User>, Error> {
    let department = match department_id.filter(|d| !d.is_empty()) {
        None => String::new(),
        // An id that is no UUID is in no department: an empty page.
        Some(d) => match uuid::Uuid::parse_str(d) {
            Ok(u) => u.to_string(),
            Err(_) => return Ok(Paged { items: vec![], page: page.page, size: page.size, total: 0 }),
        },
    };
    let (items, total) = store.search_users(org, &search.trim().to_lowercase(), &department, page).await?;
    Ok(Paged { items, page: page.page, size: page.size, total })
}
