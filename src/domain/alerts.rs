//! Alerts (issue 18): conditions of an org that someone should look at,
//! evaluated by every worker process every few seconds ([`evaluate`]).
//!
//! Conditions: more than [`DEAD_THRESHOLD`] mails dead within
//! [`DEAD_WINDOW_MS`]; mail due for longer than [`STALLED_AFTER_MS`] and not
//! taken; a webhook endpoint Herald disabled; the circuit of one of the
//! org's own providers open (its notification-config or a `/v1/providers`
//! row; the subject is the provider's id). The instance's providers are not
//! an org's alert: they are the instance admin's, and alert mail goes
//! through them.
//!
//! An alert opens once and resolves once, whatever the number of processes
//! evaluating at the same time: one open alert per (org, kind, subject) is a
//! unique index, and only the write that inserted (or resolved) the row
//! writes the `alert.opened` (`alert.resolved`) webhook message, in the same
//! transaction.
//!
//! The org's alert contacts ([`set_contacts`], `PUT /v1/alerts/contacts`)
//! get a mail when an alert opens and when it resolves: a notification of
//! type [`MAIL_KIND`] per contact, written in the same transaction as the
//! alert change (so exactly once, and durable through the outbox with its
//! retries), and sent through the instance's providers only (the org's own
//! may be what is failing).

use std::collections::{HashMap, HashSet};

use serde_json::json;

use crate::clock::Millis;
use crate::domain::audit::{AuditEntry, Scope};
use crate::domain::delivery::{NewEvent, NewNotification};
use crate::domain::smtp::parse_address;
use crate::domain::webhooks::WebhookEvent;
use crate::domain::{Actor, OrgId};
use crate::error::{Error, FieldErrors};
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
    ProviderCircuitOpen,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::DeadMail, Kind::QueueStalled, Kind::WebhookDisabled, Kind::ProviderCircuitOpen];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DeadMail => "dead_mail",
            Kind::QueueStalled => "queue_stalled",
            Kind::WebhookDisabled => "webhook_disabled",
            Kind::ProviderCircuitOpen => "provider_circuit_open",
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
    /// The org's providers whose circuit is not closed: (org, provider id,
    /// name, consecutive failures).
    pub circuits: Vec<(OrgId, String, String, i64)>,
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
    for (org, id, name, failures) in &facts.circuits {
        want.insert(
            (org.clone(), Kind::ProviderCircuitOpen, id.clone()),
            format!("the circuit of provider {name} is open after {failures} consecutive failures"),
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
    let mut contacts: HashMap<OrgId, Vec<String>> = HashMap::new();
    // One gauge per org and kind as well, so a dashboard can tell a
    // failing provider from dead mail: what holds now, 0 for what resolved.
    let mut by_kind: HashMap<(OrgId, Kind), i64> = HashMap::new();
    for a in &open {
        by_kind.entry((a.org.clone(), a.kind)).or_default();
    }
    for (org, kind, _) in want.keys() {
        *by_kind.entry((org.clone(), *kind)).or_default() += 1;
    }
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
        let mail = mail_for(&alert, contacts_of(store, &mut contacts, org).await?, now);
        if store.open_alert(&alert, &event(&alert, "alert.opened", now), mail.as_ref()).await? {
            opened += 1;
            tracing::warn!(org = %org, kind = kind.as_str(), detail = %detail, "alert opened");
        }
    }
    for a in open {
        if want.contains_key(&(a.org.clone(), a.kind, a.subject.clone())) {
            continue;
        }
        let done = Alert { resolved_at: Some(now), ..a };
        let mail = mail_for(&done, contacts_of(store, &mut contacts, &done.org).await?, now);
        if store.resolve_alert(&done, &event(&done, "alert.resolved", now), mail.as_ref()).await? {
            resolved += 1;
            tracing::info!(org = %done.org, kind = done.kind.as_str(), "alert resolved");
        }
    }
    for (org, n) in counts {
        metrics::gauge!("herald_alerts_open", "org" => org.as_str().to_owned()).set(n as f64);
    }
    for ((org, kind), n) in by_kind {
        metrics::gauge!("herald_alerts_open_by_kind", "org" => org.as_str().to_owned(), "kind" => kind.as_str())
            .set(n as f64);
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

/// The type of the notifications that mail an alert to the org's contacts;
/// the workers send them through the instance's providers only.
pub const MAIL_KIND: &str = "herald.alert";
/// Most alert contacts an org may have.
pub const MAX_CONTACTS: usize = 20;

async fn contacts_of<'a>(
    store: &Store,
    cache: &'a mut HashMap<OrgId, Vec<String>>,
    org: &OrgId,
) -> anyhow::Result<&'a [String]> {
    if !cache.contains_key(org) {
        let found = store.alert_contacts(org).await?.map(|(emails, _)| emails).unwrap_or_default();
        cache.insert(org.clone(), found);
    }
    Ok(cache.get(org).map(Vec::as_slice).unwrap_or_default())
}

/// The mail of an alert that opened (`resolved_at` unset) or resolved, one
/// notification per contact; `None` without contacts.
pub fn mail_for(alert: &Alert, contacts: &[String], now: Millis) -> Option<NewEvent> {
    if contacts.is_empty() {
        return None;
    }
    let (verb, when) = match alert.resolved_at {
        None => ("opened", alert.opened_at),
        Some(at) => ("resolved", at),
    };
    let subject = format!("[Herald] Alert {verb}: {}", alert.kind.as_str());
    let about = if alert.subject.is_empty() { String::new() } else { format!("Subject: {}\n", alert.subject) };
    let body_text = format!(
        "An alert of your organisation {org} {verb} at {at}.\n\nKind: {kind}\n{about}Detail: {detail}\n\n\
         Open alerts: GET /v1/alerts. You get this mail because this address is one of the organisation's \
         alert contacts (PUT /v1/alerts/contacts).\n",
        org = alert.org,
        at = when.rfc3339(),
        kind = alert.kind.as_str(),
        detail = alert.detail,
    );
    let notifications = contacts
        .iter()
        .map(|to| NewNotification {
            id: uuid::Uuid::now_v7().to_string(),
            to_addr: to.clone(),
            to_name: None,
            subject: subject.clone(),
            body_text: body_text.clone(),
            body_html: None,
            locale: "en".to_owned(),
            attachments: None,
        })
        .collect();
    Some(NewEvent {
        id: uuid::Uuid::now_v7().to_string(),
        org: alert.org.clone(),
        kind: MAIL_KIND.to_owned(),
        suppressed: None,
        notifications,
        created_at: now,
        not_before: None,
    })
}

/// Checks a new list of alert contacts: each a valid address, at most
/// [`MAX_CONTACTS`], duplicates (any case) dropped, order kept.
pub fn parse_contacts(raw: &[String]) -> Result<Vec<String>, Error> {
    if raw.len() > MAX_CONTACTS {
        return Err(Error::field("emails", format!("at most {MAX_CONTACTS} alert contacts")));
    }
    let mut errors = FieldErrors::new();
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, e) in raw.iter().enumerate() {
        if let Some(addr) = errors.take(parse_address(&format!("emails[{i}]"), "each alert contact", e))
            && !out.iter().any(|o| o.eq_ignore_ascii_case(&addr))
        {
            out.push(addr);
        }
    }
    errors.finish()?;
    Ok(out)
}

/// The org's alert contacts and when they were last set (none set: empty).
pub async fn contacts(store: &Store, org: &OrgId) -> Result<(Vec<String>, Option<Millis>), Error> {
    Ok(store.alert_contacts(org).await?.map_or((Vec::new(), None), |(e, at)| (e, Some(at))))
}

/// Replaces the org's alert contacts (audited with their number, not the
/// addresses).
pub async fn set_contacts(
    store: &Store,
    actor: &Actor,
    org: &OrgId,
    raw: &[String],
    now: Millis,
) -> Result<Vec<String>, Error> {
    let emails = parse_contacts(raw)?;
    let audit = AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action: "alert_contacts.changed",
        resource_type: "alert_contacts",
        resource_id: org.to_string(),
        detail: json!({ "contacts": emails.len() }),
    };
    store.set_alert_contacts(org, &emails, &audit, now).await?;
    Ok(emails)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_are_checked_deduplicated_and_bounded() {
        let ok = parse_contacts(&["Ops@Example.com".into(), "ops@example.COM".into(), " b@example.com ".into()]);
        assert_eq!(ok.unwrap(), ["Ops@Example.com", "b@example.com"]);
        assert!(parse_contacts(&[]).unwrap().is_empty());
        for bad in ["", "nope", "a@b\r\nRCPT TO:<x@y>", &format!("{}@x.io", "a".repeat(300))] {
            assert!(parse_contacts(&[bad.to_owned()]).is_err(), "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_CONTACTS).map(|i| format!("o{i}@example.com")).collect();
        assert!(parse_contacts(&many).is_err());
    }

    #[test]
    fn an_alert_mail_goes_to_each_contact_and_says_what_happened() {
        let alert = Alert {
            id: "a1".into(),
            org: OrgId::from_db("org_1".into()),
            kind: Kind::ProviderCircuitOpen,
            subject: "prov_1".into(),
            detail: "the circuit of provider primary is open after 5 consecutive failures".into(),
            opened_at: Millis(0),
            resolved_at: None,
        };
        assert!(mail_for(&alert, &[], Millis(0)).is_none());
        let m = mail_for(&alert, &["a@example.com".into(), "b@example.com".into()], Millis(0)).unwrap();
        assert_eq!(m.kind, MAIL_KIND);
        assert_eq!(m.notifications.len(), 2);
        assert_eq!(m.notifications[0].subject, "[Herald] Alert opened: provider_circuit_open");
        assert!(m.notifications[1].body_text.contains("prov_1") && m.notifications[1].body_text.contains("primary"));
        let done = Alert { resolved_at: Some(Millis(1000)), ..alert };
        let m = mail_for(&done, &["a@example.com".into()], Millis(1000)).unwrap();
        assert_eq!(m.notifications[0].subject, "[Herald] Alert resolved: provider_circuit_open");
    }
}
