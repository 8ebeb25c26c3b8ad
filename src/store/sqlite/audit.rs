//! The audit sequence and rows on SQLite (see `store/audit.rs`).

use anyhow::Context;

use super::Tx;
use crate::domain::audit::{AuditEntry, Scope};
use crate::store::sql::audit::{BUMP_INSTANCE_SEQ, BUMP_ORG_SEQ, INSERT_AUDIT};

/// Advances the audit sequence of `scope`: `(scope_id, seq)`.
pub fn bump_sequence(tx: &Tx<'_>, scope: &Scope) -> anyhow::Result<(String, i64)> {
    let bumped: Option<(String, i64)> = match scope {
        Scope::Org(org) => tx.optional(BUMP_ORG_SEQ, &[&org.as_str()]),
        Scope::Instance => tx.optional(BUMP_INSTANCE_SEQ, &[]),
    }
    .context("advance the audit sequence")?;
    bumped.context("the audited org or instance does not exist")
}

/// Writes the audit row for `entry` under the number [`bump_sequence`] gave.
pub fn insert_audit(tx: &Tx<'_>, scope_id: &str, seq: i64, entry: &AuditEntry) -> anyhow::Result<()> {
    tx.execute(
        INSERT_AUDIT,
        &[
            &scope_id,
            &seq,
            &entry.at.0,
            &entry.actor.as_str(),
            &entry.action,
            &entry.resource_type,
            &entry.resource_id,
            &entry.detail.to_string(),
        ],
    )
    .context("write the audit row")?;
    Ok(())
}

/// Appends `entry` to its scope's log; the new sequence number.
pub fn append_audit(tx: &Tx<'_>, entry: &AuditEntry) -> anyhow::Result<i64> {
    let (scope_id, seq) = bump_sequence(tx, &entry.scope)?;
    insert_audit(tx, &scope_id, seq, entry)?;
    Ok(seq)
}
