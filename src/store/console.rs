//! Console accounts and their sessions (issue 14). Passwords are stored as
//! argon2id PHC strings, sessions by the digest of their cookie value.

use anyhow::Context;

use super::sql::console::{ANY_USER, LOCK, RELEASE_LOGIN, RESERVE_LOGIN, SESSION_USER, USER_BY_EMAIL, USERS};
use super::{Db, Store, postgres, read_all, read_optional, sqlite};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::console::ConsoleUser;

/// A console account as sign-in needs it.
#[derive(Clone)]
pub struct ConsoleLogin {
    pub user: ConsoleUser,
    pub password_hash: String,
    pub failed_logins: i64,
    pub locked_until: Millis,
}

impl std::fmt::Debug for ConsoleLogin {
    // The hash is no secret in itself, but has no business in a log either.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleLogin").field("user", &self.user).finish_non_exhaustive()
    }
}

/// `id, org_id, email, created_at`
type UserRow = (String, Option<String>, String, i64);

fn user_from((id, org_id, email, created_at): UserRow) -> ConsoleUser {
    ConsoleUser { id, org: org_id.map(OrgId::from_db), email, created_at: Millis(created_at) }
}

super::row! {
    struct LoginRow {
        id: String,
        org_id: Option<String>,
        email: String,
        created_at: i64,
        password_hash: String,
        failed_logins: i64,
        locked_until: i64,
    }
}

/// What inserting an account found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserInsert {
    Done,
    /// An account with this email exists.
    Duplicate,
    /// The first-account insert found an account already there.
    NotFirst,
}

impl Store {
    /// Inserts an account with its audit row. `first`: only if none exists yet.
    pub async fn insert_console_user(
        &self,
        user: &ConsoleUser,
        email_key: &str,
        password_hash: &str,
        first: bool,
        audit: &AuditEntry,
    ) -> anyhow::Result<UserInsert> {
        match &self.db {
            Db::Sqlite(db) => {
                let (user, email_key, password_hash, audit) =
                    (user.clone(), email_key.to_owned(), password_hash.to_owned(), audit.clone());
                db.write(move |tx| {
                    sqlite::settings::insert_console_user(tx, &user, &email_key, &password_hash, first, &audit)
                })
                .await
            }
            Db::Postgres(p) => {
                postgres::console::insert_console_user(p, user, email_key, password_hash, first, audit).await
            }
        }
    }

    pub async fn console_user_exists(&self) -> anyhow::Result<bool> {
        let row: Option<(bool,)> = read_optional!(self, ANY_USER).context("look for console users")?;
        Ok(row.is_some_and(|(any,)| any))
    }

    pub async fn console_login(&self, email_key: &str) -> anyhow::Result<Option<ConsoleLogin>> {
        let row: Option<LoginRow> = read_optional!(self, USER_BY_EMAIL, email_key).context("load console user")?;
        Ok(row.map(|LoginRow { id, org_id, email, created_at, password_hash, failed_logins, locked_until }| {
            ConsoleLogin {
                user: user_from((id, org_id, email, created_at)),
                password_hash,
                failed_logins,
                locked_until: Millis(locked_until),
            }
        }))
    }

    /// Counts a sign-in attempt before its password is checked: `None` when
    /// the account is locked or `limit` attempts are already counted (failed
    /// or still running), else the attempt's number.
    pub async fn console_login_reserve(&self, id: &str, limit: i64, now: Millis) -> anyhow::Result<Option<i64>> {
        let row: Option<(i64,)> = match &self.db {
            Db::Sqlite(db) => {
                let id = id.to_owned();
                db.write(move |tx| Ok(tx.optional(RESERVE_LOGIN, &[&id, &now.0, &limit])?)).await
            }
            Db::Postgres(p) => postgres::console::console_login_reserve(p, id, limit, now).await,
        }
        .context("count a sign-in attempt")?;
        Ok(row.map(|(n,)| n))
    }

    /// Hands back an attempt whose password was never checked.
    pub async fn console_login_release(&self, id: &str) -> anyhow::Result<()> {
        self.console_login_update(RELEASE_LOGIN, id, None).await.context("hand back a sign-in attempt")
    }

    /// Locks sign-in until `until` and starts counting again.
    pub async fn console_login_lock(&self, id: &str, until: Millis) -> anyhow::Result<()> {
        self.console_login_update(LOCK, id, Some(until.0)).await.context("lock sign-in")
    }

    async fn console_login_update(&self, sql: &'static str, id: &str, until: Option<i64>) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let id = id.to_owned();
                db.write(move |tx| {
                    match until {
                        Some(until) => tx.execute(sql, &[&id, &until])?,
                        None => tx.execute(sql, &[&id])?,
                    };
                    Ok(())
                })
                .await
            }
            Db::Postgres(p) => postgres::console::console_login_update(p, sql, id, until).await,
        }
    }

    /// Starts a session (and drops expired ones, of anyone).
    pub async fn insert_console_session(
        &self,
        digest: &str,
        user_id: &str,
        now: Millis,
        expires_at: Millis,
    ) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let (digest, user_id) = (digest.to_owned(), user_id.to_owned());
                db.write(move |tx| sqlite::settings::insert_console_session(tx, &digest, &user_id, now, expires_at))
                    .await
            }
            Db::Postgres(p) => postgres::console::insert_console_session(p, digest, user_id, now, expires_at).await,
        }
    }

    /// The account of a live session.
    pub async fn console_session_user(&self, digest: &str, now: Millis) -> anyhow::Result<Option<ConsoleUser>> {
        let row: Option<UserRow> = read_optional!(self, SESSION_USER, digest, now.0).context("load session")?;
        Ok(row.map(user_from))
    }

    /// Every console account, by email.
    pub async fn console_users(&self) -> anyhow::Result<Vec<ConsoleUser>> {
        let rows: Vec<UserRow> = read_all!(self, USERS).context("list console users")?;
        Ok(rows.into_iter().map(user_from).collect())
    }

    pub async fn delete_console_session(&self, digest: &str) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let digest = digest.to_owned();
                db.write(move |tx| sqlite::settings::delete_console_session(tx, &digest)).await
            }
            Db::Postgres(p) => postgres::console::delete_console_session(p, digest).await,
        }
    }
}
