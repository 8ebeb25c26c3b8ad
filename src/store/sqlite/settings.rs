//! Orgs, tokens, notification policies, SMTP rows, the console's accounts
//! and sessions on SQLite (see the store module of each).

use anyhow::Context;

use super::audit::{append_audit, bump_sequence, insert_audit};
use super::{Tx, is_unique_violation};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::{AuditEntry, Scope};
use crate::domain::console::ConsoleUser;
use crate::domain::orgs::Org;
use crate::domain::policy::{DEFAULT_PASSWORD_CHANGE, Details};
use crate::domain::tokens::TokenRecord;
use crate::store::smtp::{Decided, SmtpDecision, SmtpRow};
use crate::store::sql::{console, orgs, policy, smtp, tokens};
use crate::store::{PolicyChange, UserInsert};

pub fn insert_org(tx: &Tx<'_>, org: &Org, audit: &AuditEntry) -> anyhow::Result<()> {
    tx.execute(orgs::INSERT_ORG, &[&org.id.as_str(), &org.name, &org.created_at.0]).context("insert org")?;
    append_audit(tx, audit)?;
    Ok(())
}

pub fn insert_token(tx: &Tx<'_>, token: &TokenRecord, digest: &str, audit: &AuditEntry) -> anyhow::Result<()> {
    append_audit(tx, audit)?;
    let org = token.org_id.as_ref().map(OrgId::as_str);
    tx.execute(tokens::INSERT_TOKEN, &[&token.id, &org, &token.name, &digest, &token.created_at.0])
        .context("insert token")?;
    Ok(())
}

pub fn revoke_token(tx: &Tx<'_>, org: &OrgId, id: &str, now: Millis, audit: &AuditEntry) -> anyhow::Result<bool> {
    append_audit(tx, audit)?;
    let revoked = tx.execute(tokens::REVOKE, &[&org.as_str(), &id, &now.0]).context("revoke token")? > 0;
    if !revoked {
        // Nothing changed: the rollback also returns the sequence number.
        tx.discard();
    }
    Ok(revoked)
}

pub fn ensure_default_policy(tx: &Tx<'_>) -> anyhow::Result<()> {
    tx.execute(policy::INSTANCE_DEFAULT, &[&DEFAULT_PASSWORD_CHANGE])
        .context("create the default notification policy")?;
    Ok(())
}

fn details(sequence: i64, created_at: Millis, changed_at: Millis, scope_id: &str) -> Details {
    Details { sequence, created_at, changed_at, resource_owner: scope_id.to_owned() }
}

pub fn create_policy(
    tx: &Tx<'_>,
    scope_id: &str,
    password_change: bool,
    audit: &AuditEntry,
) -> anyhow::Result<PolicyChange> {
    let now = audit.at;
    let seq = append_audit(tx, audit)?;
    if tx.execute(policy::INSERT, &[&scope_id, &password_change, &seq, &now.0]).context("insert notification policy")?
        == 0
    {
        tx.discard();
        return Ok(PolicyChange::Exists);
    }
    Ok(PolicyChange::Done(details(seq, now, now, scope_id)))
}

pub fn update_policy(
    tx: &Tx<'_>,
    scope_id: &str,
    password_change: bool,
    audit: &AuditEntry,
) -> anyhow::Result<PolicyChange> {
    let now = audit.at;
    let seq = append_audit(tx, audit)?;
    let created: Option<(i64,)> = tx
        .optional(policy::UPDATE, &[&scope_id, &password_change, &seq, &now.0])
        .context("update notification policy")?;
    let Some((created_at,)) = created else {
        // Nothing written: rolling back also returns the sequence number.
        tx.discard();
        let (exists,): (bool,) = tx.optional(policy::EXISTS, &[&scope_id])?.context("find policy")?;
        return Ok(if exists { PolicyChange::Unchanged } else { PolicyChange::Missing });
    };
    Ok(PolicyChange::Done(details(seq, Millis(created_at), now, scope_id)))
}

pub fn delete_policy(tx: &Tx<'_>, scope_id: &str, audit: &AuditEntry) -> anyhow::Result<PolicyChange> {
    let now = audit.at;
    let seq = append_audit(tx, audit)?;
    let deleted: Option<(i64,)> = tx.optional(policy::DELETE, &[&scope_id]).context("delete notification policy")?;
    let Some((created_at,)) = deleted else {
        tx.discard();
        return Ok(PolicyChange::Missing);
    };
    Ok(PolicyChange::Done(details(seq, Millis(created_at), now, scope_id)))
}

/// The first half of an SMTP change: the scope's audit number and its row.
pub fn smtp_current(tx: &Tx<'_>, scope: &Scope) -> anyhow::Result<(String, i64, Option<SmtpRow>)> {
    let (scope_id, seq) = bump_sequence(tx, scope)?;
    let current: Option<SmtpRow> = tx.optional(smtp::BY_SCOPE, &[&scope_id]).context("load SMTP row")?;
    Ok((scope_id, seq, current))
}

/// The second half: writes what the domain decided, and its audit row.
pub fn smtp_save(
    tx: &Tx<'_>,
    (scope_id, seq, current_id): (String, i64, Option<String>),
    entry: AuditEntry,
    decided: Decided,
) -> anyhow::Result<Option<SmtpRow>> {
    let Decided { decision, action, detail } = decided;
    let (saved, resource_id) = match decision {
        SmtpDecision::Save(row) => {
            tx.execute(
                smtp::UPSERT,
                &[
                    &row.id,
                    &row.scope_id,
                    &row.enabled,
                    &row.host,
                    &row.port,
                    &row.security,
                    &row.accept_invalid_certs,
                    &row.username,
                    &row.password,
                    &row.from_email,
                    &row.from_name,
                    &row.reply_to,
                    &row.version,
                    &row.created_at,
                    &row.updated_at,
                ],
            )
            .context("save SMTP row")?;
            let id = row.id.clone();
            (Some(*row), id)
        }
        SmtpDecision::Delete => {
            tx.execute(smtp::DELETE, &[&scope_id]).context("delete SMTP row")?;
            (None, current_id.unwrap_or_default())
        }
    };
    let entry = AuditEntry { action, resource_id, detail, ..entry };
    insert_audit(tx, &scope_id, seq, &entry)?;
    Ok(saved)
}

pub fn insert_console_user(
    tx: &Tx<'_>,
    user: &ConsoleUser,
    email_key: &str,
    password_hash: &str,
    first: bool,
    audit: &AuditEntry,
) -> anyhow::Result<UserInsert> {
    append_audit(tx, audit)?;
    let inserted = if first {
        tx.execute(console::INSERT_FIRST_USER, &[&user.id, &user.email, &email_key, &password_hash, &user.created_at.0])
    } else {
        let org = user.org.as_ref().map(OrgId::as_str);
        tx.execute(console::INSERT_USER, &[&user.id, &org, &user.email, &email_key, &password_hash, &user.created_at.0])
    };
    let outcome = match inserted {
        Ok(0) => UserInsert::NotFirst,
        Ok(_) => return Ok(UserInsert::Done),
        Err(e) if is_unique_violation(&e) => UserInsert::Duplicate,
        Err(e) => return Err(anyhow::Error::new(e).context("insert console user")),
    };
    tx.discard();
    Ok(outcome)
}

pub fn insert_console_session(
    tx: &Tx<'_>,
    digest: &str,
    user_id: &str,
    now: Millis,
    expires_at: Millis,
) -> anyhow::Result<()> {
    tx.execute(console::GOOD_LOGIN, &[&user_id]).context("reset failed sign-ins")?;
    tx.execute(console::PURGE_SESSIONS, &[&now.0]).context("purge sessions")?;
    tx.execute(console::INSERT_SESSION, &[&digest, &user_id, &now.0, &expires_at.0]).context("insert session")?;
    Ok(())
}

pub fn delete_console_session(tx: &Tx<'_>, digest: &str) -> anyhow::Result<()> {
    tx.execute(console::DELETE_SESSION, &[&digest]).context("delete session")?;
    Ok(())
}
