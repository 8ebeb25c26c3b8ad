//! The suppression list on SQLite (see `store/suppressions.rs`).

use anyhow::Context;

use super::Tx;
use super::audit::append_audit;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::suppressions::{Suppression, email_key};
use crate::store::sql::suppressions::{DELETE, INSERT};

pub fn insert(tx: &Tx<'_>, org: &OrgId, e: &Suppression, audit: Option<&AuditEntry>) -> anyhow::Result<bool> {
    if let Some(audit) = audit {
        append_audit(tx, audit)?;
    }
    let added = insert_row(tx, org, e)?;
    if !added {
        // Already listed: nothing changed, so no audit number is used.
        tx.discard();
    }
    Ok(added)
}

/// The row alone, for writes that list an address inside their own
/// transaction (a bounce's).
pub fn insert_row(tx: &Tx<'_>, org: &OrgId, e: &Suppression) -> anyhow::Result<bool> {
    let n = tx
        .execute(
            INSERT,
            &[
                &org.as_str(),
                &email_key(&e.email),
                &e.email,
                &e.reason.as_str(),
                &e.detail,
                &e.notification_id,
                &e.created_at.0,
            ],
        )
        .context("insert suppression")?;
    Ok(n == 1)
}

pub fn delete(tx: &Tx<'_>, org: &OrgId, key: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
    append_audit(tx, audit)?;
    let removed = tx.execute(DELETE, &[&org.as_str(), &key]).context("delete suppression")? == 1;
    if !removed {
        tx.discard();
    }
    Ok(removed)
}
