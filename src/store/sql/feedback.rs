//! SQL of `store/feedback.rs` (bounces and complaints), shared by both drivers.

/// A report's row; nothing when the same report was applied already.
pub const INSERT: &str = "INSERT INTO notification_feedback
    (org_id, notification_id, fingerprint, kind, recipient, status, diagnostic, source, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (notification_id, fingerprint) DO NOTHING";

/// `bounced` or `complained`; a complaint is never turned back into a bounce.
pub const SET_STATUS: &str = "UPDATE notifications SET status = $3, updated_at = $4
    WHERE org_id = $1 AND id = $2 AND status <> 'complained'";

/// The notification a VERP address names, whatever its org (the address is
/// signed; the org is the notification's).
pub const TARGET: &str = "SELECT org_id, to_addr, kind, status FROM notifications WHERE id = $1";

/// The notification within one org (an unsigned Message-ID, the HTTP intake).
pub const TARGET_IN_ORG: &str = "SELECT org_id, to_addr, kind, status FROM notifications WHERE id = $1 AND org_id = $2";

pub const OF_NOTIFICATION: &str = "SELECT kind, recipient, status, diagnostic, source, created_at
    FROM notification_feedback WHERE org_id = $1 AND notification_id = $2 ORDER BY created_at, fingerprint";

/// Whether some provider (of any org or the instance) has this bounce domain.
pub const BOUNCE_DOMAIN_COUNT: &str = "SELECT COUNT(*) FROM providers WHERE lower(bounce_domain) = $1";
