//! SQL of `store/retention.rs` (issue 20), shared by both drivers.
//!
//! Every pruning statement takes one small batch (`LIMIT $n + 0`) through
//! the partial indexes of migration 0008, and repeats its status condition
//! outside the sub-select: on PostgreSQL a row that changed after the
//! sub-select read it (a dead mail retried meanwhile) is re-checked under its
//! row lock and left alone. Only finished mail is ever touched (`sent`,
//! `dead`, and `bounced`/`complained`, which were sent first); queued,
//! sending and retrying mail has an outbox row and another status.

/// Every org with its overrides (NULLs where it has none).
pub const ORG_SETTINGS: &str = "SELECT o.id AS org_id, r.body_days, r.record_days, r.dead_days, r.audit_days
    FROM orgs o LEFT JOIN org_retention r ON r.org_id = o.id ORDER BY o.id";

pub const ORG_OVERRIDE: &str = "SELECT body_days, record_days, dead_days, audit_days, updated_at
    FROM org_retention WHERE org_id = $1";

pub const ORG_EXISTS: &str = "SELECT id FROM orgs WHERE id = $1";

pub const UPSERT_OVERRIDE: &str =
    "INSERT INTO org_retention (org_id, body_days, record_days, dead_days, audit_days, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (org_id) DO UPDATE SET body_days = excluded.body_days, record_days = excluded.record_days,
        dead_days = excluded.dead_days, audit_days = excluded.audit_days, updated_at = excluded.updated_at";

pub const DELETE_OVERRIDE: &str = "DELETE FROM org_retention WHERE org_id = $1";

/// Mail that was handed over: its body follows the delivered-body rule
/// (a bounce or complaint reported later does not make it retryable).
pub const DELIVERED_STATUSES: [&str; 3] = ["sent", "bounced", "complained"];

/// Drops the body and attachments of up to `$5` finished mails of status
/// `$2` accepted before `$3`.
pub const PRUNE_BODIES: &str =
    "UPDATE notifications SET body_text = '', body_html = NULL, attachments = NULL, body_pruned_at = $4
    WHERE id IN (SELECT id FROM notifications
                 WHERE org_id = $1 AND status = $2 AND body_pruned_at IS NULL AND created_at < $3
                 ORDER BY created_at LIMIT $5 + 0)
      AND status = $2 AND body_pruned_at IS NULL";

/// Deletes up to `$3` finished records accepted before `$2` (their bodies
/// are gone already: a record outlives its body); attempts and the outbox
/// follow by `ON DELETE CASCADE`. Returns the events to look at next.
pub const PRUNE_RECORDS: &str = "DELETE FROM notifications
    WHERE id IN (SELECT id FROM notifications
                 WHERE org_id = $1 AND body_pruned_at IS NOT NULL AND created_at < $2
                   AND status IN ('sent', 'bounced', 'complained', 'dead')
                 ORDER BY created_at LIMIT $3 + 0)
      AND status IN ('sent', 'bounced', 'complained', 'dead')
    RETURNING event_id";

/// An event whose last notification is gone goes too.
pub const DELETE_EMPTY_EVENT: &str =
    "DELETE FROM events WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM notifications WHERE event_id = $1)";
pub const PG_DELETE_EMPTY_EVENTS: &str = "DELETE FROM events e WHERE e.id = ANY($1)
    AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.event_id = e.id)";

/// Events that made no notification (suppressed), by age.
pub const PRUNE_SUPPRESSED_EVENTS: &str = "DELETE FROM events
    WHERE id IN (SELECT id FROM events WHERE org_id = $1 AND suppressed IS NOT NULL AND created_at < $2
                 ORDER BY created_at LIMIT $3 + 0)";

/// The oldest audit rows of a scope, when an operator set audit retention.
/// Delivered webhook messages of an org created before $2 (their attempts
/// go by cascade); pending ones wait for their endpoint and are kept.
pub const PRUNE_WEBHOOK_MESSAGES: &str = "DELETE FROM webhook_messages WHERE seq IN (
    SELECT seq FROM webhook_messages WHERE org_id = $1 AND status = 'delivered' AND created_at < $2
    ORDER BY seq LIMIT $3)";
pub const PRUNE_AUDIT: &str = "DELETE FROM audit_log
    WHERE scope_id = $1 AND seq IN (SELECT seq FROM audit_log WHERE scope_id = $1 AND at < $2
                                    ORDER BY seq LIMIT $3 + 0)";

/// Erasure: every notification of the org to the address (any case), with
/// its lease when a worker holds it.
pub const ERASE_FIND: &str = "SELECT n.id, n.event_id, o.lease_id FROM notifications n
    LEFT JOIN outbox o ON o.notification_id = n.id
    WHERE n.org_id = $1 AND lower(n.to_addr) = lower($2)";

/// PostgreSQL: the outbox rows of the mail found, locked (a claim skips
/// them until the commit); those a worker holds already (leased) are left.
pub const PG_LOCK_OUTBOX: &str = "SELECT notification_id, lease_id FROM outbox WHERE notification_id = ANY($1)
    FOR UPDATE";

pub const COUNT_ATTEMPTS: &str = "SELECT COUNT(*) FROM delivery_attempts WHERE notification_id = $1";
pub const PG_COUNT_ATTEMPTS: &str = "SELECT COUNT(*) FROM delivery_attempts WHERE notification_id = ANY($1)";

/// Not while a worker holds the mail: its result would have no row to go to.
pub const ERASE_NOTIFICATION: &str = "DELETE FROM notifications WHERE org_id = $1 AND id = $2
    AND NOT EXISTS (SELECT 1 FROM outbox WHERE notification_id = $2 AND lease_id IS NOT NULL)";
pub const PG_ERASE_NOTIFICATIONS: &str = "DELETE FROM notifications n WHERE n.org_id = $1 AND n.id = ANY($2)
    AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.notification_id = n.id AND o.lease_id IS NOT NULL)";

/// Stored idempotent answers that name the address (they list recipients).
pub const ERASE_KEYS_SQLITE: &str =
    "DELETE FROM idempotency_keys WHERE org_id = $1 AND instr(lower(response), lower($2)) > 0";
pub const ERASE_KEYS_PG: &str =
    "DELETE FROM idempotency_keys WHERE org_id = $1 AND strpos(lower(response), lower($2)) > 0";

/// Rows by table class, for the metrics (SQLite counts exactly; PostgreSQL
/// reads the statistics collector's estimates, see `PG_ROWS`).
pub const SQLITE_ROWS: &str = "SELECT
    (SELECT COUNT(*) FROM notifications) AS notifications,
    (SELECT COUNT(*) FROM notifications WHERE body_pruned_at IS NULL) AS bodies,
    (SELECT COUNT(*) FROM events) AS events,
    (SELECT COUNT(*) FROM delivery_attempts) AS attempts,
    (SELECT COUNT(*) FROM outbox) AS outbox,
    (SELECT COUNT(*) FROM idempotency_keys) AS idempotency_keys,
    (SELECT COUNT(*) FROM audit_log) AS audit";

pub const PG_ROWS: &str = "SELECT relname::text, n_live_tup FROM pg_stat_user_tables
    WHERE relname IN ('notifications', 'events', 'delivery_attempts', 'outbox', 'idempotency_keys', 'audit_log')";
pub const PG_BODIES: &str = "SELECT COUNT(*) FROM notifications WHERE body_pruned_at IS NULL";
pub const PG_SIZE: &str = "SELECT pg_database_size(current_database())";

/// One pruning node at a time on PostgreSQL (a session lock on a
/// connection of its own: a node that dies releases it with its socket).
pub const PG_TRY_LOCK: &str = "SELECT pg_try_advisory_lock($1)";
pub const PG_UNLOCK: &str = "SELECT pg_advisory_unlock($1)";

// Erasure beyond the org's notifications (candidates are found with a
// case-blind substring search and redacted in Rust, see
// `domain::retention::redact_json`).

/// The org's webhook messages naming the address, any status (locked on
/// PostgreSQL, so none turns from pending to delivered meanwhile):
/// delivered ones are deleted with their attempts, pending ones redacted.
pub const ERASE_HOOKS_SQLITE: &str = "SELECT seq, status, payload FROM webhook_messages
    WHERE org_id = $1 AND instr(lower(payload), lower($2)) > 0";
pub const ERASE_HOOKS_PG: &str = "SELECT seq, status, payload FROM webhook_messages
    WHERE org_id = $1 AND strpos(lower(payload), lower($2)) > 0 FOR UPDATE";
pub const DELETE_HOOK: &str = "DELETE FROM webhook_messages WHERE seq = $1";
pub const REDACT_HOOK: &str = "UPDATE webhook_messages SET payload = $2 WHERE seq = $1";

/// Suppressed events (and events with other recipients) whose reason names
/// the address.
pub const ERASE_EVENTS_SQLITE: &str = "SELECT id, suppressed FROM events
    WHERE org_id = $1 AND suppressed IS NOT NULL AND instr(lower(suppressed), lower($2)) > 0";
pub const ERASE_EVENTS_PG: &str = "SELECT id, suppressed FROM events
    WHERE org_id = $1 AND suppressed IS NOT NULL AND strpos(lower(suppressed), lower($2)) > 0 FOR UPDATE";
pub const REDACT_EVENT: &str = "UPDATE events SET suppressed = $2 WHERE id = $1";

/// The org's suppression entry becomes a hashed marker ($3) that keeps the
/// address suppressed: same reason and date, no address, detail or mail.
pub const ERASE_SUPPRESSION_MARK: &str =
    "INSERT INTO suppressions (org_id, email_key, email, reason, detail, notification_id, created_at)
    SELECT org_id, $3, $4, reason, NULL, NULL, created_at FROM suppressions WHERE org_id = $1 AND email_key = $2
    ON CONFLICT (org_id, email_key) DO NOTHING";
pub const ERASE_SUPPRESSION: &str = "DELETE FROM suppressions WHERE org_id = $1 AND email_key = $2";

/// The org's audit entries naming the address (a suppression's key).
pub const ERASE_AUDIT_SQLITE: &str = "SELECT seq, resource_id, detail FROM audit_log
    WHERE scope_id = $1 AND (instr(lower(resource_id), lower($2)) > 0 OR instr(lower(detail), lower($2)) > 0)";
pub const ERASE_AUDIT_PG: &str = "SELECT seq, resource_id, detail FROM audit_log
    WHERE scope_id = $1 AND (strpos(lower(resource_id), lower($2)) > 0 OR strpos(lower(detail), lower($2)) > 0)";
pub const REDACT_AUDIT: &str = "UPDATE audit_log SET resource_id = $3, detail = $4 WHERE scope_id = $1 AND seq = $2";

// Pruning of alerts and quota windows.

/// Resolved alerts of an org resolved before $2 (open ones are kept).
pub const PRUNE_ALERTS: &str = "DELETE FROM alerts WHERE id IN (
    SELECT id FROM alerts WHERE org_id = $1 AND resolved_at IS NOT NULL AND resolved_at < $2
    ORDER BY resolved_at LIMIT $3 + 0)";

/// Quota windows of an org that started before $2 (long over).
pub const PRUNE_USAGE: &str = "DELETE FROM org_usage WHERE org_id = $1 AND bucket IN (
    SELECT bucket FROM org_usage WHERE org_id = $1 AND bucket < $2 ORDER BY bucket LIMIT $3 + 0)";

/// The org's alert contacts, for an erasure to take the address off.
pub const ERASE_CONTACTS_READ: &str = "SELECT emails FROM alert_contacts WHERE org_id = $1";
pub const ERASE_CONTACTS_WRITE: &str = "UPDATE alert_contacts SET emails = $2 WHERE org_id = $1";
