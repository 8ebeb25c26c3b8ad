//! Departments, users and their memberships.
//!
//! `totalUsers` is counted, never stored: a `COUNT(*)` over the membership
//! index for each department on the page, so it is right after every add,
//! move and delete, concurrent ones included. Every change takes the org's
//! audit number first, which orders concurrent changes of one org (the org
//! row lock on PostgreSQL, the single writer on SQLite).

use anyhow::Context;

use super::sql::directory::{
    COUNT_DEPARTMENTS, COUNT_USERS, DEPARTMENT, DEPARTMENTS, PAGE_MEMBERSHIPS, SEARCH_USERS, USER, USER_DEPARTMENTS,
};
use super::{Db, Store, postgres, read_all, read_optional, sqlite};
use crate::clock::Millis;
use crate::domain::audit::AuditEntry;
use crate::domain::departments::Department;
use crate::domain::users::{User, UserDraft};
use crate::domain::{OrgId, PageRequest, contains_pattern};

/// What a department write found.
#[derive(Debug)]
pub enum DepartmentWrite {
    Done(Department),
    Missing,
    DuplicateName,
}

/// What a user write found.
#[derive(Debug)]
pub enum UserWrite {
    Done(User),
    Missing,
    DuplicateEmail,
    /// A department id that is not one of the org's departments.
    UnknownDepartment,
}

pub(super) type DepartmentRow = (String, String, bool, i64, i64);
super::row! {
    pub(super) struct UserRow { id: String, name: String, email: String, locale: String, created_at: i64, updated_at: i64 }
}

pub(super) fn department_from((id, name, enabled, created_at, total_users): DepartmentRow) -> Department {
    Department { id, name, enabled, created_at: Millis(created_at), total_users }
}

pub(super) fn user_from(
    UserRow { id, name, email, locale, created_at, updated_at }: UserRow,
    department_ids: Vec<String>,
) -> User {
    User { id, name, email, locale, department_ids, created_at: Millis(created_at), updated_at: Millis(updated_at) }
}

impl Store {
    pub async fn department(&self, org: &OrgId, id: &str) -> anyhow::Result<Option<Department>> {
        let row: Option<DepartmentRow> =
            read_optional!(self, DEPARTMENT, org.as_str(), id).context("load department")?;
        Ok(row.map(department_from))
    }

    /// A page of the org's departments whose name contains `search_key`.
    pub async fn departments(
        &self,
        org: &OrgId,
        search_key: &str,
        page: PageRequest,
    ) -> anyhow::Result<(Vec<Department>, i64)> {
        let pattern = contains_pattern(search_key);
        let rows: Vec<DepartmentRow> =
            read_all!(self, DEPARTMENTS, org.as_str(), pattern.as_str(), i64::from(page.size), page.offset())
                .context("list departments")?;
        let total: Option<(i64,)> =
            read_optional!(self, COUNT_DEPARTMENTS, org.as_str(), pattern.as_str()).context("count departments")?;
        Ok((rows.into_iter().map(department_from).collect(), total.map_or(0, |(n,)| n)))
    }

    pub async fn insert_department(
        &self,
        org: &OrgId,
        dept: &Department,
        name_key: &str,
        audit: &AuditEntry,
    ) -> anyhow::Result<DepartmentWrite> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, dept, name_key, audit) = (org.clone(), dept.clone(), name_key.to_owned(), audit.clone());
                db.write(move |tx| sqlite::directory::insert_department(tx, &org, &dept, &name_key, &audit)).await
            }
            Db::Postgres(p) => postgres::directory::insert_department(p, org, dept, name_key, audit).await,
        }
    }

    pub async fn update_department(
        &self,
        org: &OrgId,
        id: &str,
        name: &str,
        name_key: &str,
        enabled: Option<bool>,
        audit: &AuditEntry,
    ) -> anyhow::Result<DepartmentWrite> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, id, name, name_key, audit) =
                    (org.clone(), id.to_owned(), name.to_owned(), name_key.to_owned(), audit.clone());
                db.write(move |tx| {
                    sqlite::directory::update_department(tx, &org, &id, &name, &name_key, enabled, &audit)
                })
                .await
            }
            Db::Postgres(p) => postgres::directory::update_department(p, org, id, name, name_key, enabled, audit).await,
        }
    }

    /// Deletes a department and its memberships; false if there was none.
    pub async fn delete_department(&self, org: &OrgId, id: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, id, audit) = (org.clone(), id.to_owned(), audit.clone());
                db.write(move |tx| sqlite::directory::delete_department(tx, &org, &id, &audit)).await
            }
            Db::Postgres(p) => postgres::directory::delete_department(p, org, id, audit).await,
        }
    }

    pub async fn user(&self, org: &OrgId, id: &str) -> anyhow::Result<Option<User>> {
        let row: Option<UserRow> = read_optional!(self, USER, org.as_str(), id).context("load user")?;
        let Some(row) = row else { return Ok(None) };
        let memberships: Vec<(String, String)> =
            read_all!(self, USER_DEPARTMENTS, id).context("load user departments")?;
        Ok(Some(user_from(row, memberships.into_iter().map(|(_, d)| d).collect())))
    }

    /// A page of users matching `search_key` (lower-case) and, unless empty,
    /// in `department`, with their memberships; and the total count.
    pub async fn search_users(
        &self,
        org: &OrgId,
        search_key: &str,
        department: &str,
        page: PageRequest,
    ) -> anyhow::Result<(Vec<User>, i64)> {
        let pattern = contains_pattern(search_key);
        let (size, offset) = (i64::from(page.size), page.offset());
        let rows: Vec<UserRow> =
            read_all!(self, SEARCH_USERS, org.as_str(), pattern.as_str(), department, size, offset)
                .context("search users")?;
        let memberships: Vec<(String, String)> =
            read_all!(self, PAGE_MEMBERSHIPS, org.as_str(), pattern.as_str(), department, size, offset)
                .context("load page memberships")?;
        let total: Option<(i64,)> =
            read_optional!(self, COUNT_USERS, org.as_str(), pattern.as_str(), department).context("count users")?;
        let users = rows
            .into_iter()
            .map(|row| {
                let ids = memberships.iter().filter(|(u, _)| *u == row.id).map(|(_, d)| d.clone()).collect();
                user_from(row, ids)
            })
            .collect();
        Ok((users, total.map_or(0, |(n,)| n)))
    }

    pub async fn insert_user(&self, org: &OrgId, user: &User, audit: &AuditEntry) -> anyhow::Result<UserWrite> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, user, audit) = (org.clone(), user.clone(), audit.clone());
                db.write(move |tx| sqlite::directory::insert_user(tx, &org, &user, &audit)).await
            }
            Db::Postgres(p) => postgres::directory::insert_user(p, org, user, audit).await,
        }
    }

    pub async fn update_user(
        &self,
        org: &OrgId,
        id: &str,
        draft: &UserDraft,
        now: Millis,
        audit: &AuditEntry,
    ) -> anyhow::Result<UserWrite> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, id, draft, audit) = (org.clone(), id.to_owned(), draft.clone(), audit.clone());
                db.write(move |tx| sqlite::directory::update_user(tx, &org, &id, &draft, now, &audit)).await
            }
            Db::Postgres(p) => postgres::directory::update_user(p, org, id, draft, now, audit).await,
        }
    }

    /// Deletes a user and their memberships; false if there was none.
    pub async fn delete_user(&self, org: &OrgId, id: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, id, audit) = (org.clone(), id.to_owned(), audit.clone());
                db.write(move |tx| sqlite::directory::delete_user(tx, &org, &id, &audit)).await
            }
            Db::Postgres(p) => postgres::directory::delete_user(p, org, id, audit).await,
        }
    }
}
