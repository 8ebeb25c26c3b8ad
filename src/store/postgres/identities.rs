//! Sender identities and their links on PostgreSQL (see
//! `store/identities.rs`).

use anyhow::Context;
use sqlx::PgPool;

use super::audit::{append_audit, bump_sequence, insert_audit};
use super::delivery::insert_event_rows;
use super::is_unique_violation;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::identities::{Issue, LinkChange, SenderIdentity};
use crate::error::Error;
use crate::store::identities::{IdentityRow, identity_from, meta_json};
use crate::store::sql::identities::{
    BY_EMAIL, DELETE, INSERT, INSERT_LINK, REPLACE_LINKS, SET_STATUS, STATUS, UPDATE, USE_EXPIRED_LINK, USE_LINK,
};
use crate::store::{IdentityWrite, LinkUse};

/// Earlier unused links of the identity are marked replaced, then the new
/// link and its mail are written.
async fn write_issue(tx: &mut sqlx::PgConnection, issue: &Issue, now: Millis) -> anyhow::Result<()> {
    let link = &issue.link;
    sqlx::query(REPLACE_LINKS)
        .bind(&link.identity_id)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .context("replace earlier links")?;
    sqlx::query(INSERT_LINK)
        .bind(&link.id)
        .bind(link.org.as_str())
        .bind(&link.identity_id)
        .bind(link.purpose.as_str())
        .bind(link.created_at.0)
        .bind(link.expires_at.0)
        .execute(&mut *tx)
        .await
        .context("insert link")?;
    insert_event_rows(tx, &issue.event).await
}

pub async fn insert_identity(
    p: &PgPool,
    org: &OrgId,
    identity: &SenderIdentity,
    email_key: &str,
    issue: &Issue,
    audit: &AuditEntry,
) -> anyhow::Result<IdentityWrite> {
    let settings = identity.settings.to_json();
    let meta = meta_json(identity);
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let inserted = sqlx::query(INSERT)
        .bind(&identity.id)
        .bind(org.as_str())
        .bind(&identity.name)
        .bind(identity.name.to_lowercase())
        .bind(&identity.email)
        .bind(email_key)
        .bind(identity.status.as_str())
        .bind(&identity.created_by)
        .bind(identity.approved_at.map(|t| t.0))
        .bind(&settings)
        .bind(identity.brand_id.as_deref())
        .bind(identity.redirect_url.as_deref())
        .bind(&meta)
        .bind(&identity.locale)
        .bind(identity.created_at.0)
        .bind(identity.updated_at.0)
        .execute(&mut *tx)
        .await;
    match inserted {
        Err(e) if is_unique_violation(&e) => return Ok(IdentityWrite::DuplicateEmail),
        other => other.context("insert sender identity")?,
    };
    write_issue(&mut tx, issue, identity.created_at).await?;
    tx.commit().await.context("commit sender identity")?;
    Ok(IdentityWrite::Done(Box::new(identity.clone())))
}

pub async fn change_identity<F>(
    p: &PgPool,
    org: &OrgId,
    email_key: &str,
    mut audit: AuditEntry,
    now: Millis,
    change: F,
) -> anyhow::Result<IdentityWrite>
where
    F: FnOnce(&mut SenderIdentity) -> Result<Option<Issue>, Error>,
{
    let mut tx = p.begin().await.context("begin")?;
    let (scope_id, seq) = bump_sequence(&mut tx, &audit.scope).await?;
    let row: Option<IdentityRow> = sqlx::query_as(BY_EMAIL)
        .bind(org.as_str())
        .bind(email_key)
        .fetch_optional(&mut *tx)
        .await
        .context("load sender identity")?;
    let Some(row) = row else { return Ok(IdentityWrite::Missing) };
    let mut identity = identity_from(row)?;
    let issue = match change(&mut identity) {
        Ok(issue) => issue,
        Err(e) => return Ok(IdentityWrite::Refused(e)),
    };
    identity.updated_at = now;
    sqlx::query(UPDATE)
        .bind(&identity.id)
        .bind(&identity.name)
        .bind(identity.name.to_lowercase())
        .bind(identity.status.as_str())
        .bind(identity.approved_at.map(|t| t.0))
        .bind(identity.settings.to_json())
        .bind(identity.redirect_url.as_deref())
        .bind(meta_json(&identity))
        .bind(&identity.locale)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .context("update sender identity")?;
    if let Some(issue) = &issue {
        write_issue(&mut tx, issue, now).await?;
    }
    audit.resource_id = identity.id.clone();
    insert_audit(&mut tx, &scope_id, seq, &audit).await?;
    tx.commit().await.context("commit sender identity")?;
    Ok(IdentityWrite::Done(Box::new(identity)))
}

pub async fn delete_identity(p: &PgPool, org: &OrgId, email_key: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
    let mut audit = audit.clone();
    let mut tx = p.begin().await.context("begin")?;
    let (scope_id, seq) = bump_sequence(&mut tx, &audit.scope).await?;
    let deleted: Option<(String,)> = sqlx::query_as(DELETE)
        .bind(org.as_str())
        .bind(email_key)
        .fetch_optional(&mut *tx)
        .await
        .context("delete sender identity")?;
    let Some((id,)) = deleted else { return Ok(false) };
    audit.resource_id = id;
    insert_audit(&mut tx, &scope_id, seq, &audit).await?;
    tx.commit().await.context("commit sender identity")?;
    Ok(true)
}

pub async fn use_link(
    p: &PgPool,
    change: &LinkChange<'_>,
    hooks: &[crate::domain::webhooks::WebhookEvent],
) -> anyhow::Result<LinkUse> {
    let LinkChange { link, outcome, renew, expected, next, issue, audit, now } = *change;
    let use_link = if renew { USE_EXPIRED_LINK } else { USE_LINK };
    let mut tx = p.begin().await.context("begin")?;
    append_audit(&mut tx, audit).await?;
    let used =
        sqlx::query(use_link).bind(&link.id).bind(now.0).bind(outcome).execute(&mut *tx).await.context("use link")?;
    if used.rows_affected() == 0 {
        return Ok(LinkUse::Gone);
    }
    let in_place = if renew {
        let status: Option<(String,)> = sqlx::query_as(STATUS)
            .bind(&link.identity_id)
            .fetch_optional(&mut *tx)
            .await
            .context("read identity status")?;
        status.is_some_and(|(s,)| s == expected.as_str())
    } else {
        let set = sqlx::query(SET_STATUS)
            .bind(&link.identity_id)
            .bind(next.status.as_str())
            .bind(next.approved_at.map(|t| t.0))
            .bind(now.0)
            .bind(expected.as_str())
            .execute(&mut *tx)
            .await
            .context("change identity status")?;
        set.rows_affected() > 0
    };
    if !in_place {
        return Ok(LinkUse::Gone);
    }
    if let Some(issue) = issue {
        write_issue(&mut tx, issue, now).await?;
    }
    super::webhooks::enqueue(&mut tx, hooks).await?;
    tx.commit().await.context("commit link use")?;
    Ok(LinkUse::Done)
}
