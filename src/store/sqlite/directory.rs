//! Departments, users and memberships on SQLite (see `store/directory.rs`).

use anyhow::Context;

use super::audit::append_audit;
use super::{Tx, is_unique_violation};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::departments::Department;
use crate::domain::users::{User, UserDraft};
use crate::store::directory::{DepartmentRow, UserRow, department_from, user_from};
use crate::store::sql::directory::{
    CLEAR_MEMBERSHIPS, DELETE_DEPARTMENT, DELETE_USER, DEPARTMENT, DEPARTMENT_EXISTS, INSERT_DEPARTMENT,
    INSERT_MEMBERSHIP, INSERT_USER, UPDATE_DEPARTMENT, UPDATE_USER, USER, USER_DEPARTMENTS,
};
use crate::store::{DepartmentWrite, UserWrite};

/// Writes a user's memberships, after checking every department is the
/// org's; `false` (write nothing more) if one is not.
fn write_memberships(tx: &Tx<'_>, org: &OrgId, user_id: &str, ids: &[String]) -> anyhow::Result<bool> {
    for department in ids {
        let (exists,): (bool,) =
            tx.optional(DEPARTMENT_EXISTS, &[&org.as_str(), department])?.context("check department")?;
        if !exists {
            return Ok(false);
        }
        tx.execute(INSERT_MEMBERSHIP, &[&user_id, department]).context("add membership")?;
    }
    Ok(true)
}

pub fn insert_department(
    tx: &Tx<'_>,
    org: &OrgId,
    dept: &Department,
    name_key: &str,
    audit: &AuditEntry,
) -> anyhow::Result<DepartmentWrite> {
    append_audit(tx, audit)?;
    let inserted = tx.execute(
        INSERT_DEPARTMENT,
        &[&dept.id, &org.as_str(), &dept.name, &name_key, &dept.enabled, &dept.created_at.0],
    );
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            tx.discard();
            Ok(DepartmentWrite::DuplicateName)
        }
        other => {
            other.context("insert department")?;
            Ok(DepartmentWrite::Done(dept.clone()))
        }
    }
}

pub fn update_department(
    tx: &Tx<'_>,
    org: &OrgId,
    id: &str,
    name: &str,
    name_key: &str,
    enabled: Option<bool>,
    audit: &AuditEntry,
) -> anyhow::Result<DepartmentWrite> {
    append_audit(tx, audit)?;
    let done = match tx.execute(UPDATE_DEPARTMENT, &[&org.as_str(), &id, &name, &name_key, &enabled, &audit.at.0]) {
        Err(e) if is_unique_violation(&e) => {
            tx.discard();
            return Ok(DepartmentWrite::DuplicateName);
        }
        other => other.context("update department")?,
    };
    let row: Option<DepartmentRow> = if done == 0 { None } else { tx.optional(DEPARTMENT, &[&org.as_str(), &id])? };
    match row {
        Some(row) => Ok(DepartmentWrite::Done(department_from(row))),
        None => {
            tx.discard();
            Ok(DepartmentWrite::Missing)
        }
    }
}

/// Deletes a row with `sql` (`$1` org, `$2` id) after its audit row;
/// false (and nothing written) if there was none.
fn delete(tx: &Tx<'_>, sql: &'static str, org: &OrgId, id: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
    append_audit(tx, audit)?;
    let deleted = tx.execute(sql, &[&org.as_str(), &id]).context("delete")? > 0;
    if !deleted {
        tx.discard();
    }
    Ok(deleted)
}

pub fn delete_department(tx: &Tx<'_>, org: &OrgId, id: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
    delete(tx, DELETE_DEPARTMENT, org, id, audit).context("delete department")
}

pub fn delete_user(tx: &Tx<'_>, org: &OrgId, id: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
    delete(tx, DELETE_USER, org, id, audit).context("delete user")
}

pub fn insert_user(tx: &Tx<'_>, org: &OrgId, user: &User, audit: &AuditEntry) -> anyhow::Result<UserWrite> {
    append_audit(tx, audit)?;
    let inserted = tx.execute(
        INSERT_USER,
        &[
            &user.id,
            &org.as_str(),
            &user.name,
            &user.name.to_lowercase(),
            &user.email,
            &user.email.to_lowercase(),
            &user.locale,
            &user.created_at.0,
        ],
    );
    let outcome = match inserted {
        Err(e) if is_unique_violation(&e) => UserWrite::DuplicateEmail,
        other => {
            other.context("insert user")?;
            if write_memberships(tx, org, &user.id, &user.department_ids)? {
                return Ok(UserWrite::Done(user.clone()));
            }
            UserWrite::UnknownDepartment
        }
    };
    tx.discard();
    Ok(outcome)
}

pub fn update_user(
    tx: &Tx<'_>,
    org: &OrgId,
    id: &str,
    draft: &UserDraft,
    now: Millis,
    audit: &AuditEntry,
) -> anyhow::Result<UserWrite> {
    append_audit(tx, audit)?;
    let updated = tx.execute(
        UPDATE_USER,
        &[
            &org.as_str(),
            &id,
            &draft.name,
            &draft.name.to_lowercase(),
            &draft.email,
            &draft.email.to_lowercase(),
            &draft.locale,
            &now.0,
        ],
    );
    let refused = match updated {
        Err(e) if is_unique_violation(&e) => Some(UserWrite::DuplicateEmail),
        other => (other.context("update user")? == 0).then_some(UserWrite::Missing),
    };
    let refused = match (refused, &draft.department_ids) {
        (None, Some(ids)) => {
            tx.execute(CLEAR_MEMBERSHIPS, &[&id]).context("clear memberships")?;
            (!write_memberships(tx, org, id, ids)?).then_some(UserWrite::UnknownDepartment)
        }
        (refused, _) => refused,
    };
    if let Some(refused) = refused {
        tx.discard();
        return Ok(refused);
    }
    let row: Option<UserRow> = tx.optional(USER, &[&org.as_str(), &id]).context("load user")?;
    let Some(row) = row else { return Ok(UserWrite::Missing) };
    let memberships: Vec<(String, String)> = tx.all(USER_DEPARTMENTS, &[&id]).context("load user departments")?;
    Ok(UserWrite::Done(user_from(row, memberships.into_iter().map(|(_, d)| d).collect())))
}
