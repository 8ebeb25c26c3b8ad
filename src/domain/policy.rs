//! The notification policy (Zitadel, contract §6): whether users are told
//! when their password changes. Each org may have a custom policy; without
//! one it follows the instance default. [`effective`] is the one question
//! the rest of Herald asks.

use super::audit::{AuditEntry, Scope};
use super::{Actor, OrgId};
use crate::clock::Millis;
use crate::error::{Error, Resource};
use crate::store::{PolicyChange, Store};

/// The instance default before any admin changes it (Zitadel's default).
pub const DEFAULT_PASSWORD_CHANGE: bool = true;

/// A stored policy and the object details Zitadel reports for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub password_change: bool,
    /// True when this is the instance default (the org has no custom policy).
    pub is_default: bool,
    pub details: Details,
}

/// Zitadel's `ObjectDetails`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    /// The owning scope's audit sequence at the change.
    pub sequence: i64,
    pub created_at: Millis,
    pub changed_at: Millis,
    /// The org id, or the instance id for the instance default.
    pub resource_owner: String,
}

const UNCHANGED: &str = "Policy has not been changed";

/// The policy that governs `org`: its custom one, else the instance default.
pub async fn effective(store: &Store, org: &OrgId) -> Result<Policy, Error> {
    match store.policy(org.as_str()).await? {
        Some(p) => Ok(Policy { is_default: false, ..p }),
        None => instance_default(store).await,
    }
}

/// The instance default policy.
pub async fn instance_default(store: &Store) -> Result<Policy, Error> {
    let instance = store.instance_id().await?;
    let policy = store.policy(&instance).await?.ok_or_else(|| anyhow::anyhow!("instance default policy missing"))?;
    Ok(Policy { is_default: true, ..policy })
}

fn entry(
    scope: Scope,
    actor: &Actor,
    now: Millis,
    action: &'static str,
    resource_id: &str,
    value: Option<bool>,
) -> AuditEntry {
    AuditEntry {
        scope,
        actor: actor.clone(),
        at: now,
        action,
        resource_type: "notification_policy",
        resource_id: resource_id.to_owned(),
        detail: match value {
            Some(v) => serde_json::json!({ "passwordChange": v }),
            None => serde_json::json!({}),
        },
    }
}

/// Adds a custom policy to `org`; `Conflict` if it has one.
pub async fn create(
    store: &Store,
    actor: &Actor,
    org: &OrgId,
    password_change: bool,
    now: Millis,
) -> Result<Details, Error> {
    let audit =
        entry(Scope::Org(org.clone()), actor, now, "notification_policy.added", org.as_str(), Some(password_change));
    match store.create_policy(org.as_str(), password_change, &audit).await? {
        PolicyChange::Done(details) => Ok(details),
        PolicyChange::Exists => Err(Error::Conflict(Resource::NotificationPolicy)),
        PolicyChange::Missing | PolicyChange::Unchanged => Err(anyhow::anyhow!("unexpected create outcome").into()),
    }
}

/// Changes `org`'s custom policy: `NotFound` without one, `Precondition`
/// when the value is the one it already has.
pub async fn update(
    store: &Store,
    actor: &Actor,
    org: &OrgId,
    password_change: bool,
    now: Millis,
) -> Result<Details, Error> {
    let audit =
        entry(Scope::Org(org.clone()), actor, now, "notification_policy.changed", org.as_str(), Some(password_change));
    changed(store.update_policy(org.as_str(), password_change, &audit).await?)
}

/// Removes `org`'s custom policy, returning it to the instance default.
pub async fn reset(store: &Store, actor: &Actor, org: &OrgId, now: Millis) -> Result<Details, Error> {
    let audit = entry(Scope::Org(org.clone()), actor, now, "notification_policy.removed", org.as_str(), None);
    changed(store.delete_policy(org.as_str(), &audit).await?)
}

/// Adds the instance default (Zitadel admin `AddNotificationPolicy`; admins
/// only, the caller checks). Herald sets the default up with the instance,
/// as Zitadel does, so this answers `Conflict` unless it is missing.
pub async fn create_default(
    store: &Store,
    actor: &Actor,
    password_change: bool,
    now: Millis,
) -> Result<Details, Error> {
    let instance = store.instance_id().await?;
    let audit =
        entry(Scope::Instance, actor, now, "default_notification_policy.added", &instance, Some(password_change));
    match store.create_policy(&instance, password_change, &audit).await? {
        PolicyChange::Done(details) => Ok(details),
        PolicyChange::Exists => Err(Error::Conflict(Resource::NotificationPolicy)),
        PolicyChange::Missing | PolicyChange::Unchanged => Err(anyhow::anyhow!("unexpected create outcome").into()),
    }
}

/// Changes the instance default (admins only; the caller checks).
pub async fn update_default(
    store: &Store,
    actor: &Actor,
    password_change: bool,
    now: Millis,
) -> Result<Details, Error> {
    let instance = store.instance_id().await?;
    let audit =
        entry(Scope::Instance, actor, now, "default_notification_policy.changed", &instance, Some(password_change));
    changed(store.update_policy(&instance, password_change, &audit).await?)
}

fn changed(outcome: PolicyChange) -> Result<Details, Error> {
    match outcome {
        PolicyChange::Done(details) => Ok(details),
        PolicyChange::Missing => Err(Error::NotFound(Resource::NotificationPolicy)),
        PolicyChange::Unchanged => Err(Error::Precondition(UNCHANGED)),
        PolicyChange::Exists => Err(anyhow::anyhow!("unexpected change outcome").into()),
    }
}
