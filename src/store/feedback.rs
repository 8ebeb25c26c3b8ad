//! Bounces and complaints applied to notifications (see
//! `domain/feedback.rs`).

use anyhow::Context;

use super::sql::feedback::{BOUNCE_DOMAIN_COUNT, OF_NOTIFICATION, TARGET, TARGET_IN_ORG};
use super::{Db, Store, postgres, read_all, read_optional, row, sqlite};
use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::audit::AuditEntry;
use crate::domain::suppressions::Suppression;
use crate::domain::webhooks::WebhookEvent;

/// One report applied to one notification, with what it changes.
#[derive(Debug, Clone)]
pub struct FeedbackWrite {
    pub org: OrgId,
    pub notification_id: String,
    /// What makes two reports the same report.
    pub fingerprint: String,
    /// hard_bounce, soft_bounce or complaint.
    pub kind: &'static str,
    pub recipient: Option<String>,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    /// smtp, http or ses.
    pub source: &'static str,
    pub at: Millis,
    /// `bounced` / `complained`; none for a soft bounce.
    pub new_status: Option<&'static str>,
    pub suppression: Option<Suppression>,
    pub hook: Option<WebhookEvent>,
    pub audit: AuditEntry,
}

/// The notification a report is about.
#[derive(Debug, Clone)]
pub struct FeedbackTarget {
    pub org: OrgId,
    pub to_addr: String,
    pub kind: String,
    pub status: String,
}

row! {
    /// A `notification_feedback` row as the delivery log shows it.
    pub struct FeedbackRow {
        kind: String,
        recipient: Option<String>,
        status: Option<String>,
        diagnostic: Option<String>,
        source: String,
        created_at: i64,
    }
}

impl FeedbackRow {
    pub fn kind(&self) -> &str {
        &self.kind
    }
    pub fn recipient(&self) -> Option<&str> {
        self.recipient.as_deref()
    }
    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }
    pub fn diagnostic(&self) -> Option<&str> {
        self.diagnostic.as_deref()
    }
    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn created_at(&self) -> Millis {
        Millis(self.created_at)
    }
}

impl Store {
    /// Applies one report in one transaction; false when the same report
    /// was applied before (then nothing changes).
    pub async fn apply_feedback(&self, w: &FeedbackWrite) -> anyhow::Result<bool> {
        match &self.db {
            Db::Sqlite(db) => {
                let w = w.clone();
                db.write(move |tx| sqlite::feedback::apply(tx, &w)).await
            }
            Db::Postgres(p) => postgres::feedback::apply(p, w).await,
        }
        .context("apply feedback")
    }

    /// The notification `id`, within `org` when one is given.
    pub async fn feedback_target(&self, id: &str, org: Option<&OrgId>) -> anyhow::Result<Option<FeedbackTarget>> {
        let row: Option<(String, String, String, String)> = match org {
            Some(org) => read_optional!(self, TARGET_IN_ORG, id, org.as_str()),
            None => read_optional!(self, TARGET, id),
        }
        .context("find the reported notification")?;
        Ok(row.map(|(org, to_addr, kind, status)| FeedbackTarget { org: OrgId::from_db(org), to_addr, kind, status }))
    }

    /// The reports applied to a notification, oldest first.
    pub async fn feedback_of(&self, org: &OrgId, id: &str) -> anyhow::Result<Vec<FeedbackRow>> {
        read_all!(self, OF_NOTIFICATION, org.as_str(), id).context("read feedback")
    }

    /// Whether `domain` is some provider's bounce domain (case-insensitive).
    pub async fn is_bounce_domain(&self, domain: &str) -> anyhow::Result<bool> {
        let domain = domain.to_ascii_lowercase();
        let row: Option<(i64,)> = read_optional!(self, BOUNCE_DOMAIN_COUNT, domain).context("find bounce domain")?;
        Ok(row.is_some_and(|(n,)| n > 0))
    }
}
