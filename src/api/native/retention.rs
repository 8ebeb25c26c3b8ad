//! Retention and erasure (issue 20): `/admin/v1/retention` (instance
//! defaults, this node's last pruning pass, storage figures; a pass on
//! demand), `/admin/v1/orgs/{orgId}/retention` (an org's overrides, instance
//! admins only) and `POST /v1/erasures` (an org erases a recipient's mail).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{Json, Path};
use crate::auth::{Admin, OrgScope};
use crate::domain::OrgId;
use crate::domain::retention::{self, Erased, OrgRetention, PruneRun, Pruned, Retention, RetentionOverride};
use crate::error::{Error, Resource};
use crate::state::AppState;

/// Retention in days.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionView {
    /// Bodies and attachments of delivered mail.
    body_days: i64,
    /// Delivery records (recipient, subject, status, attempts) of finished mail.
    record_days: i64,
    /// Bodies of dead mail (retriable until then).
    dead_days: i64,
    /// The audit log; null: kept.
    audit_days: Option<i64>,
}

impl From<Retention> for RetentionView {
    fn from(r: Retention) -> Self {
        let Retention { body_days, record_days, dead_days, audit_days } = r;
        RetentionView { body_days, record_days, dead_days, audit_days }
    }
}

/// What a pruning pass removed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrunedView {
    bodies: u64,
    notifications: u64,
    events: u64,
    audit_entries: u64,
    /// Delivered webhook messages past the record days, with their attempts.
    webhook_messages: u64,
    /// Alerts resolved more than the record days ago.
    alerts: u64,
    /// Quota windows (`org_usage` rows) long over.
    usage_windows: u64,
    /// SQLite pages handed back to the file system.
    pages_freed: u64,
}

impl From<Pruned> for PrunedView {
    fn from(p: Pruned) -> Self {
        let Pruned {
            bodies,
            notifications,
            events,
            audit_entries,
            webhook_messages,
            alerts,
            usage_windows,
            pages_freed,
        } = p;
        PrunedView {
            bodies,
            notifications,
            events,
            audit_entries,
            webhook_messages,
            alerts,
            usage_windows,
            pages_freed,
        }
    }
}

/// A pruning pass of this node.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneRunView {
    started_at: String,
    finished_at: String,
    /// Another node was pruning (PostgreSQL): this pass did nothing.
    skipped: bool,
    removed: PrunedView,
}

impl From<PruneRun> for PruneRunView {
    fn from(r: PruneRun) -> Self {
        PruneRunView {
            started_at: r.started_at.rfc3339(),
            finished_at: r.finished_at.rfc3339(),
            skipped: r.skipped,
            removed: r.removed.into(),
        }
    }
}

/// Database size and rows by table class.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StorageView {
    size_bytes: i64,
    /// Table class → rows (exact on SQLite, estimates on PostgreSQL).
    rows: std::collections::BTreeMap<String, i64>,
}

/// GET /admin/v1/retention.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRetentionView {
    /// The instance defaults (`HERALD_RETENTION_*`).
    defaults: RetentionView,
    /// Seconds between this node's passes; null: background pruning off.
    interval_seconds: Option<u64>,
    /// Rows per pruning transaction.
    batch: i64,
    /// This node's last pass since it started.
    last_run: Option<PruneRunView>,
    storage: StorageView,
}

/// GET /admin/v1/retention: the instance defaults, this node's last
/// pruning pass and the database's size and rows.
#[utoipa::path(get, path = "/admin/v1/retention", tag = "native", security(("bearer" = [])),
    responses((status = 200, body = InstanceRetentionView), (status = 401), (status = 403)))]
pub async fn instance_retention(
    _: Admin,
    State(app): State<AppState>,
) -> Result<axum::Json<InstanceRetentionView>, Error> {
    let pruner = app.pruner();
    let stats = pruner.storage().await?;
    let config = pruner.config();
    Ok(axum::Json(InstanceRetentionView {
        defaults: config.defaults.into(),
        interval_seconds: config.interval.map(|d| d.as_secs()),
        batch: config.batch,
        last_run: pruner.last().map(PruneRunView::from),
        storage: StorageView {
            size_bytes: stats.size_bytes,
            rows: stats.rows.into_iter().map(|(t, n)| (t.to_owned(), n)).collect(),
        },
    }))
}

/// POST /admin/v1/retention/runs: runs a pruning pass on this node now and
/// answers what it removed (`skipped` when another node is pruning).
#[utoipa::path(post, path = "/admin/v1/retention/runs", tag = "native", security(("bearer" = [])),
    responses((status = 200, body = PruneRunView), (status = 401), (status = 403)))]
pub async fn run_pruning(_: Admin, State(app): State<AppState>) -> Result<axum::Json<PruneRunView>, Error> {
    let run = app.pruner().run_once().await?;
    Ok(axum::Json(run.into()))
}

/// An org's overrides: each 0–36500 days, or null (absent) for the
/// instance default; records must be kept at least as long as bodies.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OverrideBody {
    #[schema(minimum = 0, maximum = 36500)]
    body_days: Option<i64>,
    #[schema(minimum = 0, maximum = 36500)]
    record_days: Option<i64>,
    #[schema(minimum = 0, maximum = 36500)]
    dead_days: Option<i64>,
    #[schema(minimum = 0, maximum = 36500)]
    audit_days: Option<i64>,
}

/// An org's settings: its overrides and what applies.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrgRetentionView {
    /// The org's own values; null fields take the instance default.
    overrides: OverridesView,
    /// The instance defaults with the overrides applied.
    effective: RetentionView,
    updated_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverridesView {
    body_days: Option<i64>,
    record_days: Option<i64>,
    dead_days: Option<i64>,
    audit_days: Option<i64>,
}

fn org_view(defaults: Retention, r: OrgRetention) -> OrgRetentionView {
    let OrgRetention { overrides, updated_at } = r;
    let RetentionOverride { body_days, record_days, dead_days, audit_days } = overrides;
    OrgRetentionView {
        overrides: OverridesView { body_days, record_days, dead_days, audit_days },
        effective: defaults.with(&overrides).into(),
        updated_at: updated_at.map(|t| t.rfc3339()),
    }
}

/// An org id from the path; a malformed one names no org.
fn org_id(raw: &str) -> Result<OrgId, Error> {
    OrgId::parse(raw).ok_or(Error::NotFound(Resource::Org))
}

/// GET /admin/v1/orgs/{orgId}/retention.
#[utoipa::path(get, path = "/admin/v1/orgs/{orgId}/retention", tag = "native",
    params(("orgId" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = OrgRetentionView), (status = 401), (status = 403), (status = 404)))]
pub async fn org_retention(
    _: Admin,
    State(app): State<AppState>,
    Path(raw_org): Path<String>,
) -> Result<axum::Json<OrgRetentionView>, Error> {
    let org = org_id(&raw_org)?;
    let r = retention::org_settings(app.store(), &org).await?;
    Ok(axum::Json(org_view(app.pruner().config().defaults, r)))
}

/// PUT /admin/v1/orgs/{orgId}/retention: replaces the org's overrides.
#[utoipa::path(put, path = "/admin/v1/orgs/{orgId}/retention", tag = "native", request_body = OverrideBody,
    params(("orgId" = String, Path)), security(("bearer" = [])),
    responses((status = 200, body = OrgRetentionView), (status = 400), (status = 401), (status = 403), (status = 404)))]
pub async fn set_org_retention(
    Admin(caller): Admin,
    State(app): State<AppState>,
    Path(raw_org): Path<String>,
    Json(body): Json<OverrideBody>,
) -> Result<axum::Json<OrgRetentionView>, Error> {
    let org = org_id(&raw_org)?;
    let OverrideBody { body_days, record_days, dead_days, audit_days } = body;
    let overrides = RetentionOverride { body_days, record_days, dead_days, audit_days };
    let defaults = app.pruner().config().defaults;
    let r =
        retention::set_org_settings(app.store(), &caller.actor, &org, &defaults, overrides, app.clock().now()).await?;
    Ok(axum::Json(org_view(defaults, r)))
}

/// DELETE /admin/v1/orgs/{orgId}/retention: the instance defaults apply again.
#[utoipa::path(delete, path = "/admin/v1/orgs/{orgId}/retention", tag = "native",
    params(("orgId" = String, Path)), security(("bearer" = [])),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn clear_org_retention(
    Admin(caller): Admin,
    State(app): State<AppState>,
    Path(raw_org): Path<String>,
) -> Result<StatusCode, Error> {
    let org = org_id(&raw_org)?;
    retention::clear_org_settings(app.store(), &caller.actor, &org, app.clock().now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureBody {
    /// The recipient whose mail is erased (any case).
    #[schema(max_length = 254)]
    email: String,
}

/// What an erasure removed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureView {
    notifications: u64,
    attempts: u64,
    /// Events deleted: emptied of their notifications, or suppressed events
    /// whose reason named the address.
    events: u64,
    /// Events with other recipients' mail whose suppression reason had the
    /// address replaced by `[erased]`.
    events_redacted: u64,
    idempotency_keys: u64,
    /// Delivered webhook messages naming the address, deleted.
    webhook_messages: u64,
    /// Webhook messages still pending whose payload had the address
    /// replaced by `[erased]` (they are still delivered, in order).
    webhook_messages_redacted: u64,
    /// The org's suppression entry, replaced by a hashed marker: the
    /// address stays suppressed without being stored.
    suppressions: u64,
    /// Audit entries that named the address, with it replaced by the marker.
    audit_entries_redacted: u64,
    /// The address taken off the org's alert contacts.
    alert_contacts: u64,
    /// Mail being sent at this moment, left alone: repeat the erasure once
    /// it has finished.
    in_flight: u64,
}

/// POST /v1/erasures: removes every notification of the org to `email`
/// (bodies, address, attempts), its emptied events and stored idempotent
/// answers naming it, the delivered webhook messages naming it (pending
/// ones are redacted), and turns its suppression entry into a hashed
/// marker that keeps it suppressed; the audit log records the erasure without the
/// address. Idempotent: a repeat removes nothing more.
#[utoipa::path(post, path = "/v1/erasures", tag = "native", request_body = ErasureBody,
    security(("bearer" = []), ("x-auth-token" = []), ("x-api-key" = [])),
    responses((status = 200, body = ErasureView), (status = 400), (status = 401), (status = 403), (status = 404),
        (status = 413), (status = 415)))]
pub async fn erase(
    scope: OrgScope,
    State(app): State<AppState>,
    Json(body): Json<ErasureBody>,
) -> Result<axum::Json<ErasureView>, Error> {
    let Erased {
        notifications,
        attempts,
        events,
        events_redacted,
        idempotency_keys,
        webhook_messages,
        webhook_messages_redacted,
        suppressions,
        audit_entries_redacted,
        alert_contacts,
        in_flight,
    } = retention::erase(app.store(), &scope.actor, &scope.org, &body.email, app.clock().now()).await?;
    Ok(axum::Json(ErasureView {
        notifications,
        attempts,
        events,
        events_redacted,
        idempotency_keys,
        webhook_messages,
        webhook_messages_redacted,
        suppressions,
        audit_entries_redacted,
        alert_contacts,
        in_flight,
    }))
}
