//! SQL of `store/providers.rs`, shared by both drivers.

pub const BY_SCOPE: &str = "SELECT id, scope_id, position, name, kind, enabled, settings, secret, bounce_domain,
    max_per_minute, max_concurrent, version, created_at, updated_at FROM providers WHERE scope_id = $1
    ORDER BY position, id";

pub const INSERT: &str = "INSERT INTO providers (id, scope_id, position, name, kind, enabled, settings, secret,
    bounce_domain, max_per_minute, max_concurrent, version, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";

/// Only while the row is still the version the change was decided on.
pub const UPDATE: &str = "UPDATE providers SET position = $3, name = $4, kind = $5, enabled = $6, settings = $7,
    secret = $8, bounce_domain = $9, max_per_minute = $10, max_concurrent = $11, version = $12, created_at = $13,
    updated_at = $14 WHERE id = $1 AND scope_id = $2 AND version = $15";

pub const ORDER: &str = "SELECT id, position FROM providers WHERE scope_id = $1 ORDER BY position, id";

pub const SET_POSITION: &str = "UPDATE providers SET position = $2 WHERE id = $1";

pub const DELETE: &str = "DELETE FROM providers WHERE id = $1 AND scope_id = $2";

pub const DELETE_HEALTH: &str = "DELETE FROM provider_health WHERE provider_id = $1";

pub const DELETE_RATE: &str = "DELETE FROM provider_rate WHERE provider_id = $1";

/// The health rows of a scope's providers and of its legacy configuration.
pub const HEALTH_OF_SCOPE: &str = "SELECT provider_id, failures, open_until, last_error, last_failure_at
    FROM provider_health WHERE provider_id IN (
        SELECT id FROM providers WHERE scope_id = $1 UNION ALL SELECT id FROM smtp_servers WHERE scope_id = $1)";

pub const HEALTH_ONE: &str =
    "SELECT provider_id, failures, open_until, last_error, last_failure_at FROM provider_health WHERE provider_id = $1";

/// One more consecutive failure; the circuit opens (until $5) at $4 of them.
pub const FAILED: &str = "INSERT INTO provider_health (provider_id, failures, open_until, last_error, last_failure_at)
    VALUES ($1, 1, CASE WHEN 1 >= $4 THEN $5 ELSE NULL END, $3, $2)
    ON CONFLICT (provider_id) DO UPDATE SET failures = provider_health.failures + 1,
        open_until = CASE WHEN provider_health.failures + 1 >= $4 THEN $5 ELSE provider_health.open_until END,
        last_error = $3, last_failure_at = $2";

pub const RECOVERED: &str = "UPDATE provider_health SET failures = 0, open_until = NULL WHERE provider_id = $1";

/// Takes the probe of a provider whose cool-down is over: one node, one
/// attempt; the others see it open until $3.
pub const CLAIM_PROBE: &str = "UPDATE provider_health SET open_until = $3
    WHERE provider_id = $1 AND open_until IS NOT NULL AND open_until <= $2";

// GCRA: the next free slot moves on by the interval with every send; the
// slot taken is the one before the move. The dialects name `max` apart.
pub const TAKE_SLOT_PG: &str = "INSERT INTO provider_rate (provider_id, next_at) VALUES ($1, $2 + $3)
    ON CONFLICT (provider_id) DO UPDATE SET next_at = GREATEST(provider_rate.next_at, $2) + $3
    RETURNING next_at - $3";

pub const TAKE_SLOT_SQLITE: &str = "INSERT INTO provider_rate (provider_id, next_at) VALUES ($1, $2 + $3)
    ON CONFLICT (provider_id) DO UPDATE SET next_at = MAX(provider_rate.next_at, $2) + $3
    RETURNING next_at - $3";

pub const RESERVATION: &str = "SELECT at FROM provider_reservations WHERE notification_id = $1 AND provider_id = $2";

pub const DELETE_RESERVATION: &str =
    "DELETE FROM provider_reservations WHERE notification_id = $1 AND provider_id = $2";

pub const RESERVE: &str = "INSERT INTO provider_reservations (notification_id, provider_id, at) VALUES ($1, $2, $3)
    ON CONFLICT (notification_id, provider_id) DO UPDATE SET at = excluded.at";

pub const PURGE_RESERVATIONS: &str = "DELETE FROM provider_reservations WHERE at < $1";

/// A postponed send gives its lease back without counting the attempt.
pub const POSTPONE_OUTBOX: &str =
    "UPDATE outbox SET available_at = $3, lease_id = NULL WHERE notification_id = $1 AND lease_id = $2";

pub const UNCOUNT_ATTEMPT: &str = "UPDATE notifications SET attempts = attempts - 1,
    status = CASE WHEN attempts - 1 <= 0 THEN 'queued' ELSE 'retrying' END WHERE id = $1";

pub const LAST_ATTEMPT_PROVIDER: &str =
    "SELECT provider_id FROM delivery_attempts WHERE notification_id = $1 ORDER BY attempt DESC LIMIT 1";

/// PostgreSQL: this transaction's commit does not wait for the WAL flush.
pub const ASYNC_COMMIT: &str = "SET LOCAL synchronous_commit TO OFF";
