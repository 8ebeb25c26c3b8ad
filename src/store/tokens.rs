//! API token rows: digests only, never the token itself.

use anyhow::Context;

use super::cache::ClearOnDrop;
use super::sql::tokens::{ANY_ADMIN, BY_DIGEST, ORG_TOKENS};
use super::{Db, Store, postgres, read_all, read_optional, sqlite};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::tokens::TokenRecord;

/// `id, org_id, name, created_at, revoked_at`
type TokenRow = (String, Option<String>, String, i64, Option<i64>);

fn token_from_row((id, org_id, name, created_at, revoked_at): TokenRow) -> TokenRecord {
    TokenRecord {
        id,
        org_id: org_id.map(OrgId::from_db),
        name,
        created_at: Millis(created_at),
        revoked_at: revoked_at.map(Millis),
    }
}

/// What authentication needs of a live token.
#[derive(Debug, Clone)]
pub struct TokenAuth {
    pub id: String,
    pub org_id: Option<OrgId>,
    pub digest: String,
}

impl Store {
    pub async fn insert_token(&self, token: &TokenRecord, digest: &str, audit: &AuditEntry) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(db) => {
                let (token, digest, audit) = (token.clone(), digest.to_owned(), audit.clone());
                db.write(move |tx| sqlite::settings::insert_token(tx, &token, &digest, &audit)).await
            }
            Db::Postgres(p) => postgres::tokens::insert_token(p, token, digest, audit).await,
        }
    }

    pub async fn org_tokens(&self, org: &OrgId) -> anyhow::Result<Vec<TokenRecord>> {
        let rows: Vec<TokenRow> = read_all!(self, ORG_TOKENS, org.as_str()).context("list tokens")?;
        Ok(rows.into_iter().map(token_from_row).collect())
    }

    /// Revokes a live token of `org`; false when there is none by that id.
    /// Cached lookups are forgotten once it returns (or its caller goes
    /// away), so the revocation holds on this node from the next request.
    pub async fn revoke_token(&self, org: &OrgId, id: &str, now: Millis, audit: &AuditEntry) -> anyhow::Result<bool> {
        let _forget = ClearOnDrop(&self.cache.tokens);
        match &self.db {
            Db::Sqlite(db) => {
                let (org, id, audit) = (org.clone(), id.to_owned(), audit.clone());
                db.write(move |tx| sqlite::settings::revoke_token(tx, &org, &id, now, &audit)).await
            }
            Db::Postgres(p) => postgres::tokens::revoke_token(p, org, id, now, audit).await,
        }
    }

    /// The live token with this digest, if any. Answers from the cache
    /// while fresh (see `store/cache.rs` for the bounds); a token not found
    /// is never cached.
    pub async fn token_by_digest(&self, digest: &str) -> anyhow::Result<Option<TokenAuth>> {
        if let Some(found) = self.cache.tokens.get(digest) {
            return Ok(Some(found));
        }
        let ticket = self.cache.tokens.ticket();
        let row: Option<(String, Option<String>, String)> =
            read_optional!(self, BY_DIGEST, digest).context("look up token")?;
        let found = row.map(|(id, org_id, digest)| TokenAuth { id, org_id: org_id.map(OrgId::from_db), digest });
        if let Some(found) = &found {
            self.cache.tokens.put(ticket, digest.to_owned(), found.clone());
        }
        Ok(found)
    }

    pub async fn admin_token_exists(&self) -> anyhow::Result<bool> {
        let row: Option<(bool,)> = read_optional!(self, ANY_ADMIN).context("look for admin tokens")?;
        Ok(row.is_some_and(|(any,)| any))
    }
}
