//! SQL of `store/webhooks.rs`, shared by both drivers.

pub const INSERT_ENDPOINT: &str = "INSERT INTO webhook_endpoints
    (id, org_id, url, description, event_types, enabled, disabled_reason, secret_enc, previous_enc, previous_until,
     failing_since, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, NULL, $7, NULL, NULL, NULL, $8, $8)";

pub const INSERT_SUBSCRIPTION: &str =
    "INSERT INTO webhook_subscriptions (endpoint_id, org_id, event_type) VALUES ($1, $2, $3)";

pub const DELETE_SUBSCRIPTIONS: &str = "DELETE FROM webhook_subscriptions WHERE endpoint_id = $1";

pub const UPDATE_ENDPOINT: &str = "UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5,
    enabled = $6, disabled_reason = $7, failing_since = $8, updated_at = $9 WHERE org_id = $1 AND id = $2";

pub const ROTATE: &str = "UPDATE webhook_endpoints SET previous_enc = secret_enc, previous_until = $3, secret_enc = $4
    WHERE org_id = $1 AND id = $2";

pub const DELETE_ENDPOINT: &str = "DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2";

pub const ONE: &str = "SELECT id, org_id, url, description, event_types, enabled, disabled_reason, failing_since,
    created_at, updated_at FROM webhook_endpoints WHERE org_id = $1 AND id = $2";

pub const ALL: &str = "SELECT id, org_id, url, description, event_types, enabled, disabled_reason, failing_since,
    created_at, updated_at FROM webhook_endpoints WHERE org_id = $1 ORDER BY id";

pub const COUNT: &str = "SELECT COUNT(*) FROM webhook_endpoints WHERE org_id = $1";

pub const SECRETS: &str = "SELECT secret_enc, previous_enc, previous_until FROM webhook_endpoints WHERE id = $1";

// One message per enabled endpoint of the org subscribed to the type.
pub const ENQUEUE: &str = "INSERT INTO webhook_messages
    (id, org_id, endpoint_id, event_type, payload, status, attempts, available_at, lease_id, created_at)
    SELECT $1, e.org_id, e.id, $3, $4, 'pending', 0, $5, NULL, $5
    FROM webhook_endpoints e JOIN webhook_subscriptions s ON s.endpoint_id = e.id
    WHERE e.org_id = $2 AND s.org_id = $2 AND s.event_type = $3 AND e.enabled ORDER BY e.id";

// PostgreSQL: a batch of events in one statement, in the batch's order.
pub const PG_ENQUEUE: &str = pg_enqueue!("$1", "$2", "$3", "$4", "$5");

// The claim: the oldest pending message of each endpoint (head of line),
// if it is due. While one is leased (its `available_at` moved to the
// lease's end) its endpoint's later messages wait behind it.
pub const CLAIM_PG: &str = "UPDATE webhook_messages SET lease_id = $1, available_at = $2, attempts = attempts + 1
    WHERE seq IN (
    SELECT m.seq FROM webhook_messages m JOIN webhook_endpoints e ON e.id = m.endpoint_id
    WHERE m.status = 'pending' AND e.enabled AND m.available_at <= $3
      AND m.seq = (SELECT MIN(h.seq) FROM webhook_messages h WHERE h.endpoint_id = m.endpoint_id
                   AND h.status = 'pending')
    ORDER BY m.available_at LIMIT $4 FOR UPDATE OF m SKIP LOCKED)";

pub const CLAIM_SQLITE: &str = "UPDATE webhook_messages SET lease_id = $1, available_at = $2, attempts = attempts + 1
    WHERE seq IN (
    SELECT m.seq FROM webhook_messages m JOIN webhook_endpoints e ON e.id = m.endpoint_id
    WHERE m.status = 'pending' AND e.enabled AND m.available_at <= $3
      AND m.seq = (SELECT MIN(h.seq) FROM webhook_messages h WHERE h.endpoint_id = m.endpoint_id
                   AND h.status = 'pending')
    ORDER BY m.available_at LIMIT $4 + 0)";

pub const CLAIMED: &str = "SELECT m.seq, m.id, m.org_id, m.endpoint_id, m.event_type, m.payload, m.attempts,
    e.url FROM webhook_messages m JOIN webhook_endpoints e ON e.id = m.endpoint_id WHERE m.lease_id = $1
    ORDER BY m.seq";

pub const DELIVERED: &str = "UPDATE webhook_messages SET status = 'delivered', finished_at = $3, lease_id = NULL
    WHERE seq = $1 AND lease_id = $2";

pub const RETRY: &str =
    "UPDATE webhook_messages SET available_at = $3, lease_id = NULL WHERE seq = $1 AND lease_id = $2";

pub const INSERT_ATTEMPT: &str =
    "INSERT INTO webhook_attempts (message_seq, attempt, at, status_code, latency_ms, error)
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_seq, attempt) DO NOTHING";

pub const ENDPOINT_OK: &str = "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = $1";

pub const ENDPOINT_FAILING: &str =
    "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $2) WHERE id = $1";

// Disables an endpoint that has failed since before `$3`; one row when it
// did just now.
pub const DISABLE_FAILING: &str = "UPDATE webhook_endpoints SET enabled = FALSE, disabled_reason = $4, updated_at = $2
    WHERE id = $1 AND enabled AND failing_since <= $3";

pub const MESSAGES: &str = "SELECT m.id, m.event_type, m.status, m.attempts, m.created_at, m.finished_at,
    a.status_code AS last_status_code, a.latency_ms AS last_latency_ms, a.error AS last_error
    FROM webhook_messages m LEFT JOIN webhook_attempts a ON a.message_seq = m.seq AND a.attempt = m.attempts
    WHERE m.org_id = $1 AND m.endpoint_id = $2 ORDER BY m.seq DESC LIMIT $3 + 0";
