//! Console accounts and sessions on PostgreSQL (see `store/console.rs`).

use anyhow::Context;
use sqlx::PgPool;

use super::audit::append_audit;
use super::is_unique_violation;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::console::ConsoleUser;
use crate::store::UserInsert;
use crate::store::sql::console::{
    DELETE_SESSION, GOOD_LOGIN, INSERT_FIRST_USER, INSERT_SESSION, INSERT_USER, PURGE_SESSIONS, RESERVE_LOGIN,
};

/// Counts a sign-in attempt (see `Store::console_login_reserve`).
pub async fn console_login_reserve(p: &PgPool, id: &str, limit: i64, now: Millis) -> anyhow::Result<Option<(i64,)>> {
    sqlx::query_as(RESERVE_LOGIN).bind(id).bind(now.0).bind(limit).fetch_optional(p).await.map_err(anyhow::Error::from)
}

/// Runs `sql` over the account `id`, binding `until` when given.
pub async fn console_login_update(p: &PgPool, sql: &'static str, id: &str, until: Option<i64>) -> anyhow::Result<()> {
    let query = sqlx::query(sql).bind(id);
    let query = match until {
        Some(until) => query.bind(until),
        None => query,
    };
    query.execute(p).await.map(drop).map_err(anyhow::Error::from)
}

pub async fn delete_console_session(p: &PgPool, digest: &str) -> anyhow::Result<()> {
    sqlx::query(DELETE_SESSION).bind(digest).execute(p).await.map(drop).context("delete session")
}

pub async fn insert_console_user(
    p: &PgPool,
    user: &ConsoleUser,
    email_key: &str,
    password_hash: &str,
    first: bool,
    audit: &AuditEntry,
) -> anyhow::Result<UserInsert> {
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let inserted = if first {
        sqlx::query(INSERT_FIRST_USER)
            .bind(&user.id)
            .bind(&user.email)
            .bind(email_key)
            .bind(password_hash)
            .bind(user.created_at.0)
            .execute(&mut *tx)
            .await
    } else {
        sqlx::query(INSERT_USER)
            .bind(&user.id)
            .bind(user.org.as_ref().map(OrgId::as_str))
            .bind(&user.email)
            .bind(email_key)
            .bind(password_hash)
            .bind(user.created_at.0)
            .execute(&mut *tx)
            .await
    };
    match inserted {
        Ok(done) if done.rows_affected() == 0 => return Ok(UserInsert::NotFirst),
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Ok(UserInsert::Duplicate),
        Err(e) => return Err(anyhow::Error::new(e).context("insert console user")),
    }
    tx.commit().await.context("commit console user")?;
    Ok(UserInsert::Done)
}

pub async fn insert_console_session(
    p: &PgPool,
    digest: &str,
    user_id: &str,
    now: Millis,
    expires_at: Millis,
) -> anyhow::Result<()> {
    let mut tx = p.begin().await.context("begin")?;
    sqlx::query(GOOD_LOGIN).bind(user_id).execute(&mut *tx).await.context("reset failed sign-ins")?;
    sqlx::query(PURGE_SESSIONS).bind(now.0).execute(&mut *tx).await.context("purge sessions")?;
    sqlx::query(INSERT_SESSION)
        .bind(digest)
        .bind(user_id)
        .bind(now.0)
        .bind(expires_at.0)
        .execute(&mut *tx)
        .await
        .context("insert session")?;
    tx.commit().await.context("commit session")
}
