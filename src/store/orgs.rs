//! Organisation rows.

use anyhow::Context;

use super::sql::orgs::{ORG, ORGS};
use super::{Db, Store, postgres, read_all, read_optional, sqlite};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::orgs::Org;

fn org_from_row((id, name, created_at): (String, String, i64)) -> Org {
    Org { id: OrgId::from_db(id), name, created_at: Millis(created_at) }
}

impl Store {
    /// Inserts an org and the first row of its own audit log.
    pub async fn insert_org(&self, org: &Org, audit: &AuditEntry) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, audit) = (org.clone(), audit.clone());
                db.write(move |tx| sqlite::settings::insert_org(tx, &org, &audit)).await
            }
            Db::Postgres(p) => postgres::orgs::insert_org(p, org, audit).await,
        }
    }

    pub async fn orgs(&self) -> anyhow::Result<Vec<Org>> {
        let rows: Vec<(String, String, i64)> = read_all!(self, ORGS).context("list orgs")?;
        Ok(rows.into_iter().map(org_from_row).collect())
    }

    pub async fn org(&self, id: &OrgId) -> anyhow::Result<Option<Org>> {
        let row: Option<(String, String, i64)> = read_optional!(self, ORG, id.as_str()).context("load org")?;
        Ok(row.map(org_from_row))
    }
}
