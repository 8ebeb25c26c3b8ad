//! Departments, users and their memberships on PostgreSQL (see
//! `store/directory.rs`).

use anyhow::Context;
use sqlx::PgPool;

use super::audit::append_audit;
use super::is_unique_violation;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::departments::Department;
use crate::domain::users::{User, UserDraft};
use crate::store::directory::{DepartmentRow, UserRow, department_from, user_from};
use crate::store::sql::directory::{
    CLEAR_MEMBERSHIPS, DELETE_DEPARTMENT, DELETE_USER, DEPARTMENT_EXISTS, INSERT_DEPARTMENT, INSERT_MEMBERSHIP,
    INSERT_USER, UPDATE_DEPARTMENT, UPDATE_USER,
};
use crate::store::sql::directory::{DEPARTMENT, USER, USER_DEPARTMENTS};
use crate::store::{DepartmentWrite, UserWrite};

/// A department as `Store::department` reads it, for the writes that
/// answer with the row they changed.
async fn department(p: &PgPool, org: &OrgId, id: &str) -> anyhow::Result<Option<Department>> {
    let row: Option<DepartmentRow> =
        sqlx::query_as(DEPARTMENT).bind(org.as_str()).bind(id).fetch_optional(p).await.context("load department")?;
    Ok(row.map(department_from))
}

/// A user as `Store::user` reads it, likewise.
async fn user(p: &PgPool, org: &OrgId, id: &str) -> anyhow::Result<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as(USER).bind(org.as_str()).bind(id).fetch_optional(p).await.context("load user")?;
    let Some(row) = row else { return Ok(None) };
    let memberships: Vec<(String, String)> =
        sqlx::query_as(USER_DEPARTMENTS).bind(id).fetch_all(p).await.context("load user departments")?;
    Ok(Some(user_from(row, memberships.into_iter().map(|(_, d)| d).collect())))
}

/// Writes a user's memberships, after checking every department is the
/// org's; `false` (write nothing more) if one is not.
async fn write_memberships(
    tx: &mut sqlx::PgConnection,
    org: &OrgId,
    user_id: &str,
    ids: &[String],
) -> anyhow::Result<bool> {
    for department in ids {
        let (exists,): (bool,) = sqlx::query_as(DEPARTMENT_EXISTS)
            .bind(org.as_str())
            .bind(department)
            .fetch_one(&mut *tx)
            .await
            .context("check department")?;
        if !exists {
            return Ok(false);
        }
        sqlx::query(INSERT_MEMBERSHIP)
            .bind(user_id)
            .bind(department)
            .execute(&mut *tx)
            .await
            .context("add membership")?;
    }
    Ok(true)
}

pub async fn insert_department(
    p: &PgPool,
    org: &OrgId,
    dept: &Department,
    name_key: &str,
    audit: &AuditEntry,
) -> anyhow::Result<DepartmentWrite> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let inserted = sqlx::query(INSERT_DEPARTMENT)
        .bind(&dept.id)
        .bind(org.as_str())
        .bind(&dept.name)
        .bind(name_key)
        .bind(dept.enabled)
        .bind(dept.created_at.0)
        .execute(&mut *tx)
        .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => return Ok(DepartmentWrite::DuplicateName),
        other => other.context("insert department")?,
    };
    tx.commit().await.context("commit department")?;
    Ok(DepartmentWrite::Done(dept.clone()))
}

pub async fn update_department(
    p: &PgPool,
    org: &OrgId,
    id: &str,
    name: &str,
    name_key: &str,
    enabled: Option<bool>,
    audit: &AuditEntry,
) -> anyhow::Result<DepartmentWrite> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let done = sqlx::query(UPDATE_DEPARTMENT)
        .bind(org.as_str())
        .bind(id)
        .bind(name)
        .bind(name_key)
        .bind(enabled)
        .bind(audit.at.0)
        .execute(&mut *tx)
        .await;
    let done = match done {
        Err(e) if is_unique_violation(&e) => return Ok(DepartmentWrite::DuplicateName),
        other => other.context("update department")?,
    };
    if done.rows_affected() == 0 {
        return Ok(DepartmentWrite::Missing);
    }
    tx.commit().await.context("commit department")?;
    Ok(department(p, org, id).await?.map_or(DepartmentWrite::Missing, DepartmentWrite::Done))
}

pub async fn delete_department(p: &PgPool, org: &OrgId, id: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let done = sqlx::query(DELETE_DEPARTMENT)
        .bind(org.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("delete department")?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    tx.commit().await.context("commit department deletion")?;
    Ok(true)
}

pub async fn insert_user(p: &PgPool, org: &OrgId, user: &User, audit: &AuditEntry) -> anyhow::Result<UserWrite> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let inserted = sqlx::query(INSERT_USER)
        .bind(&user.id)
        .bind(org.as_str())
        .bind(&user.name)
        .bind(user.name.to_lowercase())
        .bind(&user.email)
        .bind(user.email.to_lowercase())
        .bind(&user.locale)
        .bind(user.created_at.0)
        .execute(&mut *tx)
        .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => return Ok(UserWrite::DuplicateEmail),
        other => other.context("insert user")?,
    };
    if !write_memberships(&mut tx, org, &user.id, &user.department_ids).await? {
        return Ok(UserWrite::UnknownDepartment);
    }
    tx.commit().await.context("commit user")?;
    Ok(UserWrite::Done(user.clone()))
}

pub async fn update_user(
    p: &PgPool,
    org: &OrgId,
    id: &str,
    draft: &UserDraft,
    now: Millis,
    audit: &AuditEntry,
) -> anyhow::Result<UserWrite> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let done = sqlx::query(UPDATE_USER)
        .bind(org.as_str())
        .bind(id)
        .bind(&draft.name)
        .bind(draft.name.to_lowercase())
        .bind(&draft.email)
        .bind(draft.email.to_lowercase())
        .bind(draft.locale.as_deref())
        .bind(now.0)
        .execute(&mut *tx)
        .await;
    let done = match done {
        Err(e) if is_unique_violation(&e) => return Ok(UserWrite::DuplicateEmail),
        other => other.context("update user")?,
    };
    if done.rows_affected() == 0 {
        return Ok(UserWrite::Missing);
    }
    if let Some(ids) = &draft.department_ids {
        sqlx::query(CLEAR_MEMBERSHIPS).bind(id).execute(&mut *tx).await.context("clear memberships")?;
        if !write_memberships(&mut tx, org, id, ids).await? {
            return Ok(UserWrite::UnknownDepartment);
        }
    }
    tx.commit().await.context("commit user")?;
    Ok(user(p, org, id).await?.map_or(UserWrite::Missing, UserWrite::Done))
}

pub async fn delete_user(p: &PgPool, org: &OrgId, id: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let done = sqlx::query(DELETE_USER).bind(org.as_str()).bind(id).execute(&mut *tx).await.context("delete user")?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    tx.commit().await.context("commit user deletion")?;
    Ok(true)
}
