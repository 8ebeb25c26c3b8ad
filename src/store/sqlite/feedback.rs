//! Bounces and complaints on SQLite (see `store/feedback.rs`).

use anyhow::Context;

use super::Tx;
use super::audit::append_audit;
use super::suppressions::insert_row;
use super::webhooks::enqueue;
use crate::store::FeedbackWrite;
use crate::store::sql::feedback::{INSERT, SET_STATUS};

/// The report's row, and when it is new: the status, the suppression, the
/// webhook message and the audit row, all in this transaction.
pub fn apply(tx: &Tx<'_>, w: &FeedbackWrite) -> anyhow::Result<bool> {
    let n = tx
        .execute(
            INSERT,
            &[
                &w.org.as_str(),
                &w.notification_id,
                &w.fingerprint,
                &w.kind,
                &w.recipient,
                &w.status,
                &w.diagnostic,
                &w.source,
                &w.at.0,
            ],
        )
        .context("insert feedback")?;
    if n == 0 {
        return Ok(false);
    }
    if let Some(status) = w.new_status {
        tx.execute(SET_STATUS, &[&w.org.as_str(), &w.notification_id, &status, &w.at.0])
            .context("set notification status")?;
    }
    if let Some(s) = &w.suppression {
        insert_row(tx, &w.org, s)?;
    }
    if let Some(hook) = &w.hook {
        enqueue(tx, std::slice::from_ref(hook))?;
    }
    append_audit(tx, &w.audit)?;
    Ok(true)
}
