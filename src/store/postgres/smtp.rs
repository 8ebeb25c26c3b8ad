//! SMTP server rows on PostgreSQL (see `store/smtp.rs`).

use anyhow::Context;
use sqlx::PgPool;

use super::audit::{bump_sequence, insert_audit};
use crate::clock::Millis;
use crate::domain::Actor;
use crate::domain::audit::{AuditEntry, Scope};
use crate::error::Error;
use crate::store::sql::smtp::{BY_SCOPE, DELETE, UPSERT};
use crate::store::{Decided, SmtpDecision, SmtpRow};

pub async fn change_smtp<F>(
    p: &PgPool,
    scope: &Scope,
    actor: &Actor,
    now: Millis,
    decide: F,
) -> Result<Option<SmtpRow>, Error>
where
    F: FnOnce(Option<SmtpRow>, &str) -> Result<Decided, Error> + Send,
{
    let mut tx = p.begin().await.context("begin")?;
    let (scope_id, seq) = bump_sequence(&mut tx, scope).await?;
    let current: Option<SmtpRow> =
        sqlx::query_as(BY_SCOPE).bind(&scope_id).fetch_optional(&mut *tx).await.context("load SMTP row")?;
    let current_id = current.as_ref().map(|r| r.id.clone());
    let Decided { decision, action, detail } = decide(current, &scope_id)?;
    let (saved, resource_id) = match decision {
        SmtpDecision::Save(row) => {
            sqlx::query(UPSERT)
                .bind(&row.id)
                .bind(&row.scope_id)
                .bind(row.enabled)
                .bind(&row.host)
                .bind(row.port)
                .bind(&row.security)
                .bind(row.accept_invalid_certs)
                .bind(&row.username)
                .bind(&row.password)
                .bind(&row.from_email)
                .bind(&row.from_name)
                .bind(&row.reply_to)
                .bind(row.version)
                .bind(row.created_at)
                .bind(row.updated_at)
                .execute(&mut *tx)
                .await
                .context("save SMTP row")?;
            let id = row.id.clone();
            (Some(*row), id)
        }
        SmtpDecision::Delete => {
            sqlx::query(DELETE).bind(&scope_id).execute(&mut *tx).await.context("delete SMTP row")?;
            (None, current_id.unwrap_or_default())
        }
    };
    let entry = AuditEntry {
        scope: scope.clone(),
        actor: actor.clone(),
        at: now,
        action,
        resource_type: "smtp_server",
        resource_id,
        detail,
    };
    insert_audit(&mut tx, &scope_id, seq, &entry).await?;
    tx.commit().await.context("commit SMTP change")?;
    Ok(saved)
}
