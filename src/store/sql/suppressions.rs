//! SQL of `store/suppressions.rs`, shared by both drivers.

pub const INSERT: &str = "INSERT INTO suppressions
    (org_id, email_key, email, reason, detail, notification_id, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, email_key) DO NOTHING";

pub const DELETE: &str = "DELETE FROM suppressions WHERE org_id = $1 AND email_key = $2";

pub const ONE: &str = "SELECT email, reason, detail, notification_id, created_at FROM suppressions
    WHERE org_id = $1 AND email_key = $2";

// `$2` is a LIKE pattern over the lower-cased key, `\` escaping wildcards.
pub const PAGE: &str = "SELECT email, reason, detail, notification_id, created_at FROM suppressions
    WHERE org_id = $1 AND email_key LIKE $2 ESCAPE '\\' AND email_key > $3 ORDER BY email_key LIMIT $4 + 0";

pub const COUNT: &str = "SELECT COUNT(*) FROM suppressions WHERE org_id = $1";

/// An address's entry, or the hashed marker an erasure left for it ($3).
pub const ONE_OR_ERASED: &str = "SELECT email, reason, detail, notification_id, created_at FROM suppressions
    WHERE org_id = $1 AND email_key IN ($2, $3) ORDER BY email_key LIMIT 1";
