//! Sender identities and their links on SQLite (see `store/identities.rs`).

use anyhow::Context;

use super::Tx;
use super::audit::{append_audit, bump_sequence, insert_audit};
use super::delivery::insert_event_rows;
use super::is_unique_violation;
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::{AuditEntry, Scope};
use crate::domain::identities::{Issue, Link, SenderIdentity, Status};
use crate::error::Error;
use crate::store::IdentityWrite;
use crate::store::LinkUse;
use crate::store::identities::{IdentityRow, identity_from, meta_json};
use crate::store::sql::identities::{
    BY_EMAIL, DELETE, INSERT, INSERT_LINK, REPLACE_LINKS, SET_STATUS, STATUS, UPDATE, USE_EXPIRED_LINK, USE_LINK,
};

/// Earlier unused links of the identity are marked replaced, then the new
/// link and its mail are written.
fn write_issue(tx: &Tx<'_>, issue: &Issue, now: Millis) -> anyhow::Result<()> {
    let link = &issue.link;
    tx.execute(REPLACE_LINKS, &[&link.identity_id, &now.0]).context("replace earlier links")?;
    tx.execute(
        INSERT_LINK,
        &[
            &link.id,
            &link.org.as_str(),
            &link.identity_id,
            &link.purpose.as_str(),
            &link.created_at.0,
            &link.expires_at.0,
        ],
    )
    .context("insert link")?;
    insert_event_rows(tx, &issue.event)
}

pub fn insert_identity(
    tx: &Tx<'_>,
    org: &OrgId,
    identity: &SenderIdentity,
    email_key: &str,
    issue: &Issue,
    audit: &AuditEntry,
) -> anyhow::Result<IdentityWrite> {
    append_audit(tx, audit)?;
    let inserted = tx.execute(
        INSERT,
        &[
            &identity.id,
            &org.as_str(),
            &identity.name,
            &identity.name.to_lowercase(),
            &identity.email,
            &email_key,
            &identity.status.as_str(),
            &identity.created_by,
            &identity.approved_at.map(|t| t.0),
            &identity.settings.to_json(),
            &identity.brand_id,
            &identity.redirect_url,
            &meta_json(identity),
            &identity.locale,
            &identity.created_at.0,
            &identity.updated_at.0,
        ],
    );
    match inserted {
        Err(e) if is_unique_violation(&e) => {
            tx.discard();
            return Ok(IdentityWrite::DuplicateEmail);
        }
        other => other.context("insert sender identity")?,
    };
    write_issue(tx, issue, identity.created_at)?;
    Ok(IdentityWrite::Done(Box::new(identity.clone())))
}

/// The first half of a change: the org's audit number and the current row.
pub fn identity_current(
    tx: &Tx<'_>,
    scope: &Scope,
    org: &OrgId,
    email_key: &str,
) -> anyhow::Result<(String, i64, Option<SenderIdentity>)> {
    let (scope_id, seq) = bump_sequence(tx, scope)?;
    let row: Option<IdentityRow> =
        tx.optional(BY_EMAIL, &[&org.as_str(), &email_key]).context("load sender identity")?;
    Ok((scope_id, seq, row.map(identity_from).transpose()?))
}

/// The second half: writes what the change made of the row, if anything.
pub fn identity_save(
    tx: &Tx<'_>,
    (scope_id, seq): (String, i64),
    mut audit: AuditEntry,
    now: Millis,
    changed: Option<(SenderIdentity, Result<Option<Issue>, Error>)>,
) -> anyhow::Result<IdentityWrite> {
    let (mut identity, issue) = match changed {
        None => {
            tx.discard();
            return Ok(IdentityWrite::Missing);
        }
        Some((_, Err(e))) => {
            tx.discard();
            return Ok(IdentityWrite::Refused(e));
        }
        Some((identity, Ok(issue))) => (identity, issue),
    };
    identity.updated_at = now;
    tx.execute(
        UPDATE,
        &[
            &identity.id,
            &identity.name,
            &identity.name.to_lowercase(),
            &identity.status.as_str(),
            &identity.approved_at.map(|t| t.0),
            &identity.settings.to_json(),
            &identity.redirect_url,
            &meta_json(&identity),
            &identity.locale,
            &now.0,
        ],
    )
    .context("update sender identity")?;
    if let Some(issue) = &issue {
        write_issue(tx, issue, now)?;
    }
    audit.resource_id = identity.id.clone();
    insert_audit(tx, &scope_id, seq, &audit)?;
    Ok(IdentityWrite::Done(Box::new(identity)))
}

pub fn delete_identity(tx: &Tx<'_>, org: &OrgId, email_key: &str, mut audit: AuditEntry) -> anyhow::Result<bool> {
    let (scope_id, seq) = bump_sequence(tx, &audit.scope)?;
    let deleted: Option<(String,)> =
        tx.optional(DELETE, &[&org.as_str(), &email_key]).context("delete sender identity")?;
    let Some((id,)) = deleted else {
        tx.discard();
        return Ok(false);
    };
    audit.resource_id = id;
    insert_audit(tx, &scope_id, seq, &audit)?;
    Ok(true)
}

/// What [`use_link`] needs of a `LinkChange`, owned.
pub struct LinkUseWrite {
    pub link: Link,
    pub outcome: &'static str,
    pub renew: bool,
    pub expected: Status,
    pub next_status: Status,
    pub next_approved_at: Option<Millis>,
    pub issue: Option<Issue>,
    pub audit: AuditEntry,
    pub now: Millis,
}

pub fn use_link(tx: &Tx<'_>, w: &LinkUseWrite) -> anyhow::Result<LinkUse> {
    append_audit(tx, &w.audit)?;
    let sql = if w.renew { USE_EXPIRED_LINK } else { USE_LINK };
    let in_place = tx.execute(sql, &[&w.link.id, &w.now.0, &w.outcome]).context("use link")? > 0
        && if w.renew {
            let status: Option<(String,)> =
                tx.optional(STATUS, &[&w.link.identity_id]).context("read identity status")?;
            status.is_some_and(|(s,)| s == w.expected.as_str())
        } else {
            tx.execute(
                SET_STATUS,
                &[
                    &w.link.identity_id,
                    &w.next_status.as_str(),
                    &w.next_approved_at.map(|t| t.0),
                    &w.now.0,
                    &w.expected.as_str(),
                ],
            )
            .context("change identity status")?
                > 0
        };
    if !in_place {
        tx.discard();
        return Ok(LinkUse::Gone);
    }
    if let Some(issue) = &w.issue {
        write_issue(tx, issue, w.now)?;
    }
    Ok(LinkUse::Done)
}
