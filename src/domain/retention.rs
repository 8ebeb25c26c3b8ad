//! Bounded storage (issue 20): how long finished mail, events and the audit
//! log are kept, one pruning pass, and the erasure of a recipient's mail.
//!
//! Ages count from when a mail was accepted (`created_at`). A delivered
//! (`sent`) mail loses its body and attachments after `body_days`, a `dead`
//! one after `dead_days` (until then it can be retried); the record
//! (recipient, subject, status, attempts, SMTP replies) goes after
//! `record_days`, and its event with its last notification. The audit log is
//! kept unless `audit_days` is set. Mail that is queued, being sent or
//! waiting for a retry is never touched: pruning selects only `sent` and
//! `dead` rows. The background loop that calls [`prune`] lives in
//! `delivery::retention`; the statements in `store/retention.rs`.

use serde_json::json;

use super::audit::{AuditEntry, Scope};
use super::{Actor, OrgId};
use crate::clock::Millis;
use crate::error::{Error, FieldError, Resource};
use crate::store::Store;

pub const DAY_MS: i64 = 86_400_000;
/// The longest setting accepted: 100 years is "forever" for a mail log.
pub const MAX_DAYS: i64 = 36_500;

/// Retention in days, as it applies to an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Bodies and attachments of delivered mail (default 7).
    pub body_days: i64,
    /// Delivery records of finished mail (default 90).
    pub record_days: i64,
    /// Bodies of dead mail, which can be retried until then (default 30).
    pub dead_days: i64,
    /// The audit log; `None` keeps it (the default).
    pub audit_days: Option<i64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { body_days: 7, record_days: 90, dead_days: 30, audit_days: None }
    }
}

/// An org's own settings; `None` takes the instance default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOverride {
    pub body_days: Option<i64>,
    pub record_days: Option<i64>,
    pub dead_days: Option<i64>,
    pub audit_days: Option<i64>,
}

impl Retention {
    /// These defaults with an org's overrides applied.
    pub fn with(self, o: &RetentionOverride) -> Retention {
        Retention {
            body_days: o.body_days.unwrap_or(self.body_days),
            record_days: o.record_days.unwrap_or(self.record_days),
            dead_days: o.dead_days.unwrap_or(self.dead_days),
            audit_days: o.audit_days.or(self.audit_days),
        }
    }

    /// Every field error at once: each value 0–36,500 days, and no body
    /// kept longer than its record (a record outlives its body).
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let fields = [
            ("bodyDays", Some(self.body_days)),
            ("recordDays", Some(self.record_days)),
            ("deadDays", Some(self.dead_days)),
            ("auditDays", self.audit_days),
        ];
        for (field, value) in fields {
            if let Some(v) = value
                && !(0..=MAX_DAYS).contains(&v)
            {
                errors.push(FieldError::new(field, format!("{field} must be between 0 and {MAX_DAYS} days")));
            }
        }
        if errors.is_empty() {
            if self.body_days > self.record_days {
                errors.push(FieldError::new("bodyDays", "bodyDays must not exceed recordDays"));
            }
            if self.dead_days > self.record_days {
                errors.push(FieldError::new("deadDays", "deadDays must not exceed recordDays"));
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// The accepted-before cut-offs at `now`.
    pub fn cutoffs(&self, now: Millis) -> Cutoffs {
        self.cutoffs_with_day(now, DAY_MS)
    }

    /// The cut-offs with a day of `day_ms` (shorter only for benchmarks:
    /// `HERALD_RETENTION_DAY_SECONDS`).
    pub fn cutoffs_with_day(&self, now: Millis, day_ms: i64) -> Cutoffs {
        let before = |days: i64| Millis(now.0.saturating_sub(days.saturating_mul(day_ms)));
        Cutoffs {
            sent_body: before(self.body_days),
            dead_body: before(self.dead_days),
            record: before(self.record_days),
            audit: self.audit_days.map(before),
            // Quota windows are read only while they are current (this
            // hour, today): kept with the records, but at least until
            // yesterday's window is over.
            usage: Millis(before(self.record_days).0.min(now.0.div_euclid(DAY_MS) * DAY_MS - DAY_MS)),
        }
    }
}

/// Mail accepted before these instants is due for the step named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    pub sent_body: Millis,
    pub dead_body: Millis,
    pub record: Millis,
    pub audit: Option<Millis>,
    /// Quota windows (`org_usage`) that started before this go.
    pub usage: Millis,
}

/// An org's stored overrides, with when they were last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgRetention {
    pub overrides: RetentionOverride,
    pub updated_at: Option<Millis>,
}

/// What one pruning pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pruned {
    /// Bodies (and attachments) dropped from finished mail.
    pub bodies: u64,
    /// Delivery records deleted, with their attempts.
    pub notifications: u64,
    pub events: u64,
    pub audit_entries: u64,
    /// Delivered webhook messages (with their attempts) past the record days.
    pub webhook_messages: u64,
    /// Alerts resolved more than the record days ago (open ones stay).
    pub alerts: u64,
    /// Quota windows (`org_usage` rows) long over.
    pub usage_windows: u64,
    /// SQLite pages handed back to the file system (incremental vacuum).
    pub pages_freed: u64,
}

impl Pruned {
    fn add(&mut self, other: Pruned) {
        self.bodies += other.bodies;
        self.notifications += other.notifications;
        self.events += other.events;
        self.audit_entries += other.audit_entries;
        self.webhook_messages += other.webhook_messages;
        self.alerts += other.alerts;
        self.usage_windows += other.usage_windows;
        self.pages_freed += other.pages_freed;
    }
}

/// How one pass went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneRun {
    pub started_at: Millis,
    pub finished_at: Millis,
    pub removed: Pruned,
    /// Another node held the pruning lock (PostgreSQL): this one did nothing.
    pub skipped: bool,
}

/// One pruning pass over every org at `now`, in batches of `batch` rows,
/// each batch its own short transaction (so delivery's writes interleave).
/// On PostgreSQL only one node prunes at a time; a node that finds the lock
/// taken skips its pass.
pub async fn prune(
    store: &Store,
    defaults: &Retention,
    now: Millis,
    batch: i64,
    day_ms: i64,
) -> anyhow::Result<PruneRun> {
    let batch = batch.clamp(1, 10_000);
    let Some(lock) = store.try_prune_lock().await? else {
        return Ok(PruneRun { started_at: now, finished_at: now, removed: Pruned::default(), skipped: true });
    };
    let result = prune_locked(store, defaults, now, batch, day_ms.max(1)).await;
    lock.release().await;
    let removed = result?;
    Ok(PruneRun { started_at: now, finished_at: now, removed, skipped: false })
}

async fn prune_locked(
    store: &Store,
    defaults: &Retention,
    now: Millis,
    batch: i64,
    day_ms: i64,
) -> anyhow::Result<Pruned> {
    let mut total = Pruned::default();
    for (org, overrides) in store.retention_settings().await? {
        let cut = defaults.with(&overrides).cutoffs_with_day(now, day_ms);
        total.add(store.prune_org(&org, &cut, now, batch).await?);
    }
    if let Some(before) = defaults.cutoffs_with_day(now, day_ms).audit {
        let instance = store.instance_id().await?;
        total.audit_entries += store.prune_audit_scope(&instance, before, batch).await?;
    }
    total.pages_freed = store.reclaim_space().await?;
    Ok(total)
}

/// An org's overrides (404 for an unknown org).
pub async fn org_settings(store: &Store, org: &OrgId) -> Result<OrgRetention, Error> {
    store.org_retention(org).await?.ok_or(Error::NotFound(Resource::Org))
}

/// Replaces an org's overrides, checked against the instance defaults they
/// combine with; audited in the org's log.
pub async fn set_org_settings(
    store: &Store,
    actor: &Actor,
    org: &OrgId,
    defaults: &Retention,
    overrides: RetentionOverride,
    now: Millis,
) -> Result<OrgRetention, Error> {
    defaults.with(&overrides).validate().map_err(Error::Invalid)?;
    let audit = AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action: "retention.changed",
        resource_type: "retention",
        resource_id: org.to_string(),
        detail: json!({
            "bodyDays": overrides.body_days, "recordDays": overrides.record_days,
            "deadDays": overrides.dead_days, "auditDays": overrides.audit_days,
        }),
    };
    if !store.set_org_retention(org, Some(&overrides), &audit, now).await? {
        return Err(Error::NotFound(Resource::Org));
    }
    Ok(OrgRetention { overrides, updated_at: Some(now) })
}

/// Drops an org's overrides: the instance defaults apply again.
pub async fn clear_org_settings(store: &Store, actor: &Actor, org: &OrgId, now: Millis) -> Result<(), Error> {
    let audit = AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action: "retention.reset",
        resource_type: "retention",
        resource_id: org.to_string(),
        detail: json!({}),
    };
    if !store.set_org_retention(org, None, &audit, now).await? {
        return Err(Error::NotFound(Resource::Org));
    }
    Ok(())
}

/// What an erasure removed. Mail a worker is sending at this moment is left
/// (its result needs its row) and counted in `in_flight`: repeat the
/// erasure once it has finished.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    pub notifications: u64,
    pub attempts: u64,
    /// Events deleted: those emptied of their notifications, and suppressed
    /// events (no notification) whose reason named the address.
    pub events: u64,
    /// Events that still have other recipients' mail, whose suppression
    /// reason had the address replaced by `[erased]`.
    pub events_redacted: u64,
    pub idempotency_keys: u64,
    /// Delivered webhook messages whose payload named the address, deleted
    /// with their attempts.
    pub webhook_messages: u64,
    /// Webhook messages still pending for their endpoint, whose payload had
    /// the address replaced by `[erased]` (the endpoint's order stays whole).
    pub webhook_messages_redacted: u64,
    /// The org's suppression entry, replaced by a hashed marker that keeps
    /// the address suppressed (see [`erased_suppression_key`]).
    pub suppressions: u64,
    /// The org's audit entries that named the address (suppression changes),
    /// with the address replaced by its hashed marker.
    pub audit_entries_redacted: u64,
    /// The address taken off the org's alert contacts.
    pub alert_contacts: u64,
    pub in_flight: u64,
}

/// The org's alert contacts (a JSON array) without `email` (any case);
/// `None` when it was not among them.
pub fn without_contact(emails_json: &str, email: &str) -> Option<String> {
    let emails: Vec<String> = serde_json::from_str(emails_json).ok()?;
    let needle = email.trim().to_lowercase();
    let kept: Vec<&String> = emails.iter().filter(|e| e.trim().to_lowercase() != needle).collect();
    (kept.len() != emails.len()).then(|| serde_json::to_string(&kept).unwrap_or_else(|_| "[]".to_owned()))
}

/// What replaces an erased address inside a text.
pub const ERASED: &str = "[erased]";

/// The suppression-list key that stands for an erased address: `erased:`
/// and the SHA-256 of the org id and the lower-cased address. Herald can
/// still tell that a new mail goes to a suppressed address (it hashes the
/// recipient the same way), but the list no longer shows the address.
/// Anyone who already knows an address can compute its marker too: it is
/// a pseudonym, not a secret (the same trade-off as Postal's and SES's
/// hashed suppressions).
pub fn erased_suppression_key(org: &OrgId, email: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(org.as_str().as_bytes())
        .chain_update(b"\n")
        .chain_update(email.trim().to_lowercase().as_bytes())
        .finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("erased:{hex}")
}

/// `text` with every occurrence of `email` (any case) replaced by
/// `replacement`; `None` when it does not occur.
pub fn redact_text(text: &str, email: &str, replacement: &str) -> Option<String> {
    let needle = email.trim().to_lowercase();
    if needle.is_empty() {
        return None;
    }
    let lower = text.to_lowercase();
    if !lower.contains(&needle) {
        return None;
    }
    if lower.len() != text.len() {
        // Lower-casing moved the byte offsets (rare scripts): the whole
        // text goes rather than a wrong slice of it.
        return Some(replacement.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower.match_indices(&needle) {
        if at < rest || !text.is_char_boundary(at) || !text.is_char_boundary(at + needle.len()) {
            return Some(replacement.to_owned());
        }
        out.push_str(&text[rest..at]);
        out.push_str(replacement);
        rest = at + needle.len();
    }
    out.push_str(&text[rest..]);
    Some(out)
}

/// A JSON document (a webhook payload) with the address replaced in every
/// string and key; `None` when it does not occur. A text that is not JSON
/// is redacted as text.
pub fn redact_json(payload: &str, email: &str) -> Option<String> {
    fn walk(v: &mut serde_json::Value, email: &str, hit: &mut bool) {
        match v {
            serde_json::Value::String(s) => {
                if let Some(r) = redact_text(s, email, ERASED) {
                    *s = r;
                    *hit = true;
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, email, hit)),
            serde_json::Value::Object(o) => {
                let old = std::mem::take(o);
                for (k, mut x) in old {
                    walk(&mut x, email, hit);
                    let k = redact_text(&k, email, ERASED).inspect(|_| *hit = true).unwrap_or(k);
                    o.insert(k, x);
                }
            }
            _ => {}
        }
    }
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(payload) else {
        return redact_text(payload, email, ERASED);
    };
    let mut hit = false;
    walk(&mut v, email, &mut hit);
    if hit { Some(v.to_string()) } else { redact_text(payload, email, ERASED) }
}

/// The longest address accepted (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;

/// Parses the address to erase. Only its form is checked (a stored address
/// was checked when the mail was accepted); case does not matter.
pub fn parse_email(raw: &str) -> Result<String, Error> {
    let invalid = || Error::Invalid(vec![FieldError::new("email", "email must be a valid email address")]);
    let addr = raw.trim();
    if addr.is_empty() || addr.len() > MAX_EMAIL || addr.chars().any(char::is_control) {
        return Err(invalid());
    }
    let (local, domain) = addr.rsplit_once('@').ok_or_else(invalid)?;
    if local.is_empty() || domain.is_empty() {
        return Err(invalid());
    }
    Ok(addr.to_owned())
}

/// `POST /v1/erasures`: removes every notification (body, address,
/// attempts), its event once empty, and the stored idempotent answers of
/// the org that name `email`; other orgs' mail is not touched. The audit
/// entry says that an erasure happened and what it removed, never the
/// address. Idempotent: a repeat removes nothing more.
pub async fn erase(store: &Store, actor: &Actor, org: &OrgId, email: &str, now: Millis) -> Result<Erased, Error> {
    let email = parse_email(email)?;
    if !store.org_exists(org).await? {
        return Err(Error::NotFound(Resource::Org));
    }
    let audit = AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action: "erasure.completed",
        resource_type: "erasure",
        resource_id: uuid::Uuid::now_v7().to_string(),
        detail: json!({}),
    };
    Ok(store.erase_recipient(org, &email, &audit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_field_by_field() {
        let d = Retention::default();
        let o = RetentionOverride { body_days: Some(1), audit_days: Some(365), ..Default::default() };
        assert_eq!(d.with(&o), Retention { body_days: 1, record_days: 90, dead_days: 30, audit_days: Some(365) });
        assert_eq!(d.with(&RetentionOverride::default()), d);
    }

    #[test]
    fn validation_bounds_each_value_and_keeps_records_longest() {
        assert!(Retention::default().validate().is_ok());
        assert!(Retention { body_days: 0, record_days: 0, dead_days: 0, audit_days: Some(0) }.validate().is_ok());
        let bad = Retention { body_days: -1, record_days: MAX_DAYS + 1, dead_days: 3, audit_days: Some(-5) };
        let fields: Vec<String> = bad.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["bodyDays", "recordDays", "auditDays"]);
        let inverted = Retention { body_days: 10, record_days: 5, dead_days: 6, audit_days: None };
        let fields: Vec<String> = inverted.validate().unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["bodyDays", "deadDays"]);
    }

    #[test]
    fn cutoffs_count_back_from_now_without_overflow() {
        let now = Millis(100 * DAY_MS);
        let c = Retention::default().cutoffs(now);
        assert_eq!(c.sent_body, Millis(93 * DAY_MS));
        assert_eq!(c.dead_body, Millis(70 * DAY_MS));
        assert_eq!(c.record, Millis(10 * DAY_MS));
        assert_eq!(c.audit, None);
        assert_eq!(c.usage, Millis(10 * DAY_MS));
        let short = Retention { record_days: 0, ..Default::default() }.cutoffs(Millis(100 * DAY_MS + 5));
        assert_eq!(short.usage, Millis(99 * DAY_MS), "yesterday's window is kept");
        let far = Retention { body_days: i64::MAX, ..Default::default() }.cutoffs(now);
        assert!(far.sent_body.0 < 0);
    }

    #[test]
    fn redaction_replaces_every_case_of_the_address_and_only_it() {
        let r = redact_text("Ada@Example.com is on the list; ada@example.com again", "ada@example.COM", ERASED);
        assert_eq!(r.as_deref(), Some("[erased] is on the list; [erased] again"));
        assert_eq!(redact_text("nothing here", "ada@example.com", ERASED), None);
        let j = redact_json(r#"{"data":{"to":"ADA@example.com","n":1,"l":["x ada@example.com"]}}"#, "ada@example.com");
        let v: serde_json::Value = serde_json::from_str(&j.unwrap()).unwrap();
        assert_eq!(v["data"]["to"], ERASED);
        assert_eq!(v["data"]["n"], 1);
        assert_eq!(v["data"]["l"][0], "x [erased]");
        assert_eq!(redact_json(r#"{"to":"bob@example.com"}"#, "ada@example.com"), None);
        // An escaped address (JSON \u escapes) is found once parsed.
        let escaped = redact_json(r#"{"to":"ada\u0040example.com"}"#, "ada@example.com").unwrap();
        assert!(!escaped.contains("ada"), "{escaped}");
    }

    #[test]
    fn an_erased_address_leaves_the_alert_contacts() {
        let got = without_contact(r#"["Ops@Example.com","b@example.com"]"#, "ops@example.COM");
        assert_eq!(got.as_deref(), Some(r#"["b@example.com"]"#));
        assert_eq!(without_contact(r#"["b@example.com"]"#, "ops@example.com"), None);
    }

    #[test]
    fn erased_markers_are_per_org_and_case_blind() {
        let (a, b) = (OrgId::from_db("org_a".into()), OrgId::from_db("org_b".into()));
        let k = erased_suppression_key(&a, "Ada@Example.com");
        assert!(k.starts_with("erased:") && !k.contains("ada"), "{k}");
        assert_eq!(k, erased_suppression_key(&a, " ada@example.com"));
        assert_ne!(k, erased_suppression_key(&b, "ada@example.com"));
    }

    #[test]
    fn erasure_addresses_are_checked_for_form_only() {
        assert_eq!(parse_email("  Ada@Example.com ").unwrap(), "Ada@Example.com");
        for bad in ["", "ada", "@example.com", "ada@", "a\nb@example.com", &format!("{}@x.io", "a".repeat(260))] {
            assert!(parse_email(bad).is_err(), "{bad:?}");
        }
    }
}
