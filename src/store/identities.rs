//! Sender identities and the links of their approval flow (contract §7).
//!
//! Every change takes the org's audit number first, which orders concurrent
//! changes of one org (the org row lock on PostgreSQL, the single writer on
//! SQLite), and then reads the row it changes: a MetaData merge never works
//! on a stale copy. A mailed link is written with its notification, in the
//! transaction of the change that mails it, and marks every earlier unused
//! link of the identity replaced.

use anyhow::Context;

use super::postgres::{self};
use super::sql::identities::{BY_EMAIL, BY_ID, COUNT_PG, COUNT_SQLITE, LINK, LIST_PG, LIST_SQLITE};
use super::{Backend, Db, Store, read_all, read_optional, sqlite};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::identities::{Issue, Link, LinkChange, LinkPurpose, NotificationSettings, SenderIdentity, Status};
use crate::error::Error;

/// What an identity write found.
#[derive(Debug)]
pub enum IdentityWrite {
    Done(Box<SenderIdentity>),
    Missing,
    DuplicateEmail,
    /// The change itself refused (e.g. a status that does not allow it).
    Refused(Error),
}

/// What using up a link found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkUse {
    Done,
    /// Used meanwhile, past its time, or its identity changed status.
    Gone,
}

/// A `sender_identities` row (`BY_ID`'s columns).
#[derive(sqlx::FromRow)]
pub(super) struct IdentityRow {
    id: String,
    name: String,
    email: String,
    status: String,
    created_by: String,
    approved_at: Option<i64>,
    notification_settings: String,
    brand_id: Option<String>,
    redirect_url: Option<String>,
    meta_data: String,
    locale: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<&rusqlite::Row<'_>> for IdentityRow {
    type Error = rusqlite::Error;
    fn try_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(IdentityRow {
            id: r.get("id")?,
            name: r.get("name")?,
            email: r.get("email")?,
            status: r.get("status")?,
            created_by: r.get("created_by")?,
            approved_at: r.get("approved_at")?,
            notification_settings: r.get("notification_settings")?,
            brand_id: r.get("brand_id")?,
            redirect_url: r.get("redirect_url")?,
            meta_data: r.get("meta_data")?,
            locale: r.get("locale")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    }
}

super::row! {
    struct LinkRow {
        id: String,
        org_id: String,
        identity_id: String,
        purpose: String,
        created_at: i64,
        expires_at: i64,
        used_at: Option<i64>,
        outcome: Option<String>,
    }
}

pub(super) fn identity_from(row: IdentityRow) -> anyhow::Result<SenderIdentity> {
    let IdentityRow {
        id,
        name,
        email,
        status,
        created_by,
        approved_at,
        notification_settings,
        brand_id,
        redirect_url,
        meta_data,
        locale,
        created_at,
        updated_at,
    } = row;
    Ok(SenderIdentity {
        id,
        name,
        email,
        status: Status::parse(&status).with_context(|| format!("unknown sender identity status {status:?}"))?,
        created_by,
        approved_at: approved_at.map(Millis),
        settings: NotificationSettings::from_json(&notification_settings).context("decode notification settings")?,
        brand_id,
        redirect_url,
        meta_data: serde_json::from_str(&meta_data).context("decode metadata")?,
        locale,
        created_at: Millis(created_at),
        updated_at: Millis(updated_at),
    })
}

pub(super) fn meta_json(identity: &SenderIdentity) -> String {
    serde_json::to_string(&identity.meta_data).unwrap_or_else(|_| "{}".to_owned())
}

impl Store {
    pub async fn identity_by_email(&self, org: &OrgId, email_key: &str) -> anyhow::Result<Option<SenderIdentity>> {
        let row: Option<IdentityRow> =
            read_optional!(self, BY_EMAIL, org.as_str(), email_key).context("load sender identity")?;
        row.map(identity_from).transpose()
    }

    pub async fn identity_by_id(&self, org: &OrgId, id: &str) -> anyhow::Result<Option<SenderIdentity>> {
        let row: Option<IdentityRow> = read_optional!(self, BY_ID, org.as_str(), id).context("load sender identity")?;
        row.map(identity_from).transpose()
    }

    /// A page of the org's identities matching `pattern` (a `LIKE` pattern
    /// on name and email) and `brands` (a JSON array of brand ids; `[]` for
    /// any), newest first, with the count of all matches.
    pub async fn identities(
        &self,
        org: &OrgId,
        pattern: &str,
        brands: &str,
        limit: i64,
        offset: i64,
    ) -> anyhow::Result<(Vec<SenderIdentity>, i64)> {
        let (list, count) = match self.backend() {
            Backend::Sqlite => (LIST_SQLITE, COUNT_SQLITE),
            Backend::Postgres => (LIST_PG, COUNT_PG),
        };
        let rows: Vec<IdentityRow> =
            read_all!(self, list, org.as_str(), pattern, brands, limit, offset).context("list sender identities")?;
        let total: Option<(i64,)> =
            read_optional!(self, count, org.as_str(), pattern, brands).context("count sender identities")?;
        let items = rows.into_iter().map(identity_from).collect::<anyhow::Result<Vec<_>>>()?;
        Ok((items, total.map_or(0, |(n,)| n)))
    }

    /// Inserts a new identity with its first link and mail.
    pub async fn insert_identity(
        &self,
        org: &OrgId,
        identity: &SenderIdentity,
        email_key: &str,
        issue: &Issue,
        audit: &AuditEntry,
    ) -> anyhow::Result<IdentityWrite> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, identity, email_key, issue, audit) =
                    (org.clone(), identity.clone(), email_key.to_owned(), issue.clone(), audit.clone());
                db.write(move |tx| sqlite::identities::insert_identity(tx, &org, &identity, &email_key, &issue, &audit))
                    .await
            }
            Db::Postgres(p) => postgres::identities::insert_identity(p, org, identity, email_key, issue, audit).await,
        }
    }

    /// Changes the identity with `email_key` through `change`, which sees
    /// the current row and may return a link to mail. Nothing is written if
    /// the identity is missing or `change` refuses.
    pub async fn change_identity<F>(
        &self,
        org: &OrgId,
        email_key: &str,
        audit: AuditEntry,
        now: Millis,
        change: F,
    ) -> anyhow::Result<IdentityWrite>
    where
        F: FnOnce(&mut SenderIdentity) -> Result<Option<Issue>, Error>,
    {
        match &self.db {
            Db::Sqlite(db) => {
                let (read_org, email_key) = (org.clone(), email_key.to_owned());
                let scope = audit.scope.clone();
                db.write_deciding(
                    move |tx| sqlite::identities::identity_current(tx, &scope, &read_org, &email_key),
                    |(scope_id, seq, current)| {
                        let changed = current.map(|mut identity| {
                            let issue = change(&mut identity);
                            (identity, issue)
                        });
                        ((scope_id, seq), changed)
                    },
                    move |tx, (at, changed)| sqlite::identities::identity_save(tx, at, audit, now, changed),
                )
                .await
            }
            Db::Postgres(p) => postgres::identities::change_identity(p, org, email_key, audit, now, change).await,
        }
    }

    /// Deletes the identity with `email_key` (its links go with it); `false`
    /// if there is none.
    pub async fn delete_identity(&self, org: &OrgId, email_key: &str, audit: &AuditEntry) -> anyhow::Result<bool> {
        match &self.db {
            Db::Sqlite(db) => {
                let (org, email_key, audit) = (org.clone(), email_key.to_owned(), audit.clone());
                db.write(move |tx| sqlite::identities::delete_identity(tx, &org, &email_key, audit)).await
            }
            Db::Postgres(p) => postgres::identities::delete_identity(p, org, email_key, audit).await,
        }
    }

    pub async fn link(&self, id: &str) -> anyhow::Result<Option<Link>> {
        let row: Option<LinkRow> = read_optional!(self, LINK, id).context("load link")?;
        row.map(|LinkRow { id, org_id, identity_id, purpose, created_at, expires_at, used_at, outcome }| {
            Ok(Link {
                id,
                org: OrgId::from_db(org_id),
                identity_id,
                purpose: LinkPurpose::parse(&purpose).with_context(|| format!("unknown link purpose {purpose:?}"))?,
                created_at: Millis(created_at),
                expires_at: Millis(expires_at),
                used_at: used_at.map(Millis),
                outcome,
            })
        })
        .transpose()
    }

    /// Uses up a link and makes its change, all or nothing (see [`LinkChange`]).
    pub async fn use_link(&self, change: &LinkChange<'_>) -> anyhow::Result<LinkUse> {
        let LinkChange { link, outcome, renew, expected, next, issue, audit, now } = *change;
        // The new status is reported to webhooks in the same transaction.
        let hooks: Vec<_> = if renew { None } else { crate::domain::webhooks::for_identity(&link.org, next, now) }
            .into_iter()
            .collect();
        match &self.db {
            Db::Sqlite(db) => {
                let write = sqlite::identities::LinkUseWrite {
                    link: link.clone(),
                    outcome,
                    renew,
                    expected,
                    next_status: next.status,
                    next_approved_at: next.approved_at,
                    issue: issue.cloned(),
                    audit: audit.clone(),
                    now,
                };
                db.write(move |tx| {
                    let used = sqlite::identities::use_link(tx, &write)?;
                    if used == LinkUse::Done {
                        sqlite::webhooks::enqueue(tx, &hooks)?;
                    }
                    Ok(used)
                })
                .await
            }
            Db::Postgres(p) => postgres::identities::use_link(p, change, &hooks).await,
        }
    }
}
