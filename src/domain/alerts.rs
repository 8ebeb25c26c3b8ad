//! Alerts (issue 18): conditions of an org that someone should look at,
//! evaluated by every worker process every few seconds ([`evaluate`]).
//!
//! Conditions: more than [`DEAD_THRESHOLD`] mails dead within
//! [`DEAD_WINDOW_MS`]; mail due for longer than [`STALLED_AFTER_MS`] and not
//! taken; a webhook endpoint Herald disabled. (A provider's open circuit is
//! added where providers land: a new [`Kind`] and one more fact query.)
//!
//! An alert opens once and resolves once, whatever the number of processes
//! evaluating at the same time: one open alert per (org, kind, subject) is a
//! unique index, and only the write that inserted (or resolved) the row
//! writes the `alert.opened` (`alert.resolved`) webhook message, in the same
//! transaction.
//!
//! Not built yet: the mail to an org's alert contacts.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use crate::clock::Millis;
use crate::domain::OrgId;
use crate::domain::webhooks::WebhookEvent;
use crate::error::Error;
use crate::store::Store;

/// Dead mails within the window above which an alert opens.
pub const DEAD_THRESHOLD: i64 = 10;
pub const DEAD_WINDOW_MS: i64 = 3600 * 1000;
/// Mail due this long and not taken means delivery is stuck.
pub const STALLED_AFTER_MS: i64 = 15 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    DeadMail,
    QueueStalled,
    WebhookDisabled,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::DeadMail, Kind::QueueStalled, Kind::WebhookDisabled];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DeadMail => "dead_mail",
            Kind::QueueStalled => "queue_stalled",
            Kind::WebhookDisabled => "webhook_disabled",
        }
    }

    pub fn parse(raw: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

#[derive(Debug, Clone)]
pub struct Alert {
    pub id: String,
    pub org: OrgId,
    pub kind: Kind,
    /// What it is about within its kind: the endpoint id, or "" for the org.
    pub subject: String,
    pub detail: String,
    pub opened_at: Millis,
    pub resolved_at: Option<Millis>,
}

/// What holds now, per org: (kind, subject) → detail.
pub struct Facts {
    pub dead: Vec<(OrgId, i64)>,
    pub stalled: Vec<(OrgId, Millis)>,
    pub disabled: Vec<(OrgId, String, String)>,
}

fn wanted(facts: &Facts, now: Millis) -> HashMap<(OrgId, Kind, String), String> {
    let mut want = HashMap::new();
    for (org, n) in &facts.dead {
        if *n > DEAD_THRESHOLD {
            want.insert((org.clone(), Kind::DeadMail, String::new()), format!("{n} mails went dead in the last hour"));
        }
    }
    for (org, oldest) in &facts.stalled {
        let minutes = (now.0 - oldest.0) / 60_000;
        want.insert(
            (org.clone(), Kind::QueueStalled, String::new()),
            format!("mail has been due for {minutes} minutes without being sent"),
        );
    }
    for (org, id, url) in &facts.disabled {
        want.insert(
            (org.clone(), Kind::WebhookDisabled, id.clone()),
            format!("the webhook endpoint {url} was disabled after failing for 24 hours"),
        );
    }
    want
}

fn event(alert: &Alert, kind: &'static str, at: Millis) -> WebhookEvent {
    let data = json!({
        "alertId": alert.id,
        "kind": alert.kind.as_str(),
        "subject": alert.subject,
        "detail": alert.detail,
        "openedAt": alert.opened_at.rfc3339(),
        "resolvedAt": alert.resolved_at.map(|t| t.rfc3339()),
    });
    WebhookEvent::new(&alert.org, kind, at, data)
}

/// Opens the alerts whose condition holds and resolves those whose does
/// not; returns how many it opened and resolved itself.
pub async fn evaluate(store: &Store, now: Millis) -> anyhow::Result<(usize, usize)> {
    let facts = store.alert_facts(Millis(now.0 - DEAD_WINDOW_MS), Millis(now.0 - STALLED_AFTER_MS)).await?;
    let want = wanted(&facts, now);
    let open = store.open_alerts().await?;
    let open_keys: HashSet<(OrgId, Kind, String)> =
        open.iter().map(|a| (a.org.clone(), a.kind, a.subject.clone())).collect();
    let (mut opened, mut resolved) = (0, 0);
    let mut counts: HashMap<OrgId, i64> = HashMap::new();
    for a in &open {
        counts.entry(a.org.clone()).or_default();
    }
    for ((org, kind, subject), detail) in &want {
        *counts.entry(org.clone()).or_default() += 1;
        if open_keys.contains(&(org.clone(), *kind, subject.clone())) {
            continue;
        }
        let alert = Alert {
            id: uuid::Uuid::now_v7().to_string(),
            org: org.clone(),
            kind: *kind,
            subject: subject.clone(),
            detail: detail.clone(),
            opened_at: now,
            resolved_at: None,
        };
        if store.open_alert(&alert, &event(&alert, "alert.opened", now)).await? {
            opened += 1;
            tracing::warn!(org = %org, kind = kind.as_str(), detail = %detail, "alert opened");
        }
    }
    for a in open {
        if want.contains_key(&(a.org.clone(), a.kind, a.subject.clone())) {
            continue;
        }
        let done = Alert { resolved_at: Some(now), ..a };
        if store.resolve_alert(&done, &event(&done, "alert.resolved", now)).await? {
            resolved += 1;
            tracing::info!(org = %done.org, kind = done.kind.as_str(), "alert resolved");
        }
    }
    for (org, n) in counts {
        metrics::gauge!("herald_alerts_open", "org" => org.as_str().to_owned()).set(n as f64);
    }
    Ok((opened, resolved))
}

/// The org's alerts, newest first; only open ones with `open_only`.
pub async fn list(store: &Store, org: &OrgId, open_only: bool, limit: u32) -> Result<Vec<Alert>, Error> {
    if !(1..=500).contains(&limit) {
        return Err(Error::field("limit", "must be between 1 and 500"));
    }
    Ok(store.alerts(org, open_only, limit).await?)
}
