//! The suppression list (see `domain/suppressions.rs`).

use anyhow::Context;

use super::sql::suppressions::{COUNT, ONE, ONE_OR_ERASED, PAGE};
use super::{Db, Store, postgres, read_all, read_optional, row, sqlite};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::suppressions::{Reason, Suppression};

row! {
    /// A `suppressions` row.
    pub(super) struct SuppressionRow {
        email: String,
        reason: String,
        detail: Option<String>,
        notification_id: Option<String>,
        created_at: i64,
    }
}

fn suppression_from(row: SuppressionRow) -> anyhow::Result<Suppression> {
    let SuppressionRow { email, reason, detail, notification_id, created_at } = row;
    Ok(Suppression {
        email,
        reason: Reason::parse(&reason).with_context(|| format!("unknown suppression reason {reason:?}"))?,
        detail,
        notification_id,
        created_at: Millis(created_at),
    })
}

impl Store {
    /// Lists an address unless it is listed already (true when it was
    /// added), with its audit row when one is given.
    pub async fn insert_suppression(
        &self,
        org: &OrgId,
        entry: &Suppression,
        audit: Option<&AuditEntry>,
    ) -> anyhow::Result<bool> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, entry, audit) = (org.clone(), entry.clone(), audit.cloned());
                db.write(move |tx| sqlite::suppressions::insert(tx, &org, &entry, audit.as_ref())).await
            }
            Db::Postgres(p) => postgres::suppressions::insert(p, org, entry, audit).await,
        }
        .context("add to the suppression list")
    }

    /// Takes an address off the list; false when it was not on it.
    pub async fn delete_suppression(&self, org: &OrgId, key: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, key, audit) = (org.clone(), key.to_owned(), audit.clone());
                db.write(move |tx| sqlite::suppressions::delete(tx, &org, &key, &audit)).await
            }
            Db::Postgres(p) => postgres::suppressions::delete(p, org, key, audit).await,
        }
        .context("remove from the suppression list")
    }

    pub async fn suppression(&self, org: &OrgId, key: &str) -> anyhow::Result<Option<Suppression>> {
        let row: Option<SuppressionRow> = read_optional!(self, ONE, org.as_str(), key).context("read suppression")?;
        row.map(suppression_from).transpose()
    }

    /// The entry of `key`, or else the hashed marker an erasure left in
    /// its place (`domain::retention::erased_suppression_key`).
    pub async fn suppression_or_erased(
        &self,
        org: &OrgId,
        key: &str,
        marker: &str,
    ) -> anyhow::Result<Option<Suppression>> {
        let row: Option<SuppressionRow> =
            read_optional!(self, ONE_OR_ERASED, org.as_str(), key, marker).context("read suppression")?;
        row.map(suppression_from).transpose()
    }

    /// Keys matching the LIKE `pattern`, after `after`, in key order.
    pub async fn suppressions(
        &self,
        org: &OrgId,
        pattern: &str,
        after: &str,
        limit: u32,
    ) -> anyhow::Result<Vec<Suppression>> {
        let limit = i64::from(limit);
        let rows: Vec<SuppressionRow> =
            read_all!(self, PAGE, org.as_str(), pattern, after, limit).context("page suppressions")?;
        rows.into_iter().map(suppression_from).collect()
    }

    pub async fn suppression_count(&self, org: &OrgId) -> anyhow::Result<i64> {
        let row: Option<(i64,)> = read_optional!(self, COUNT, org.as_str()).context("count suppressions")?;
        Ok(row.map_or(0, |(n,)| n))
    }
}
