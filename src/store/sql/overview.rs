//! SQL of `store/overview.rs`, shared by both drivers.

// `$3 = ''` and `$4 = ''` switch a filter off; the time bounds always apply.
pub const SEARCH: &str = "SELECT id, event_id, kind, to_addr, subject, locale, status, attempts, last_error,
    smtp_response, created_at, updated_at, sent_at, body_pruned_at FROM notifications
    WHERE org_id = $1 AND id < $2 AND ($3 = '' OR status = $3) AND ($4 = '' OR lower(to_addr) LIKE $4 ESCAPE '\\')
    AND created_at >= $5 AND created_at < $6 ORDER BY id DESC LIMIT $7 + 0";

// Attempts since $1 by hour (0 = the oldest) and outcome; `$2 = ''`: every org.
pub const HOURLY: &str = "SELECT (a.at - $1) / 3600000 AS bucket, a.outcome, COUNT(*) FROM delivery_attempts a
    JOIN notifications n ON n.id = a.notification_id
    WHERE a.at >= $1 AND ($2 = '' OR n.org_id = $2) GROUP BY 1, 2";

// Per org: rows in the outbox, and the oldest due time of those waiting.
pub const QUEUES: &str = "SELECT org_id, COUNT(*), MIN(CASE WHEN lease_id IS NULL AND available_at <= $1
    THEN available_at END) FROM outbox GROUP BY org_id";

pub const DEAD: &str = "SELECT COUNT(*) FROM notifications WHERE org_id = $1 AND status = 'dead'";
