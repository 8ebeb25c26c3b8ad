//! SQL of `store/audit.rs`, shared by both drivers.

pub const BUMP_ORG_SEQ: &str = "UPDATE orgs SET seq = seq + 1 WHERE id = $1 RETURNING id, seq";

pub const BUMP_INSTANCE_SEQ: &str = "UPDATE instance SET seq = seq + 1 WHERE singleton = 1 RETURNING id, seq";

pub const INSERT_AUDIT: &str = "INSERT INTO audit_log
    (scope_id, seq, at, actor, action, resource_type, resource_id, detail)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub const INSTANCE_ID: &str = "SELECT id FROM instance WHERE singleton = 1";

pub const KEY_CHECK: &str = "SELECT key_check FROM instance WHERE singleton = 1";

pub const SET_KEY_CHECK: &str = "UPDATE instance SET key_check = $1 WHERE singleton = 1 AND key_check IS NULL";

pub const INSERT_INSTANCE: &str =
    "INSERT INTO instance (singleton, id, seq, created_at) VALUES (1, $1, 0, $2) ON CONFLICT (singleton) DO NOTHING";

// `LIMIT $n + 0`, not `LIMIT $n`: SQLite (built with STAT4, as sqlx bundles
// it) re-plans a statement with a bare bound LIMIT on every execution.
pub const PAGE_ORG: &str = "SELECT seq, at, actor, action, resource_type, resource_id, detail FROM audit_log
    WHERE scope_id = $1 AND seq > $2 ORDER BY seq LIMIT $3 + 0";

pub const PAGE_INSTANCE: &str = "SELECT a.seq, a.at, a.actor, a.action, a.resource_type, a.resource_id, a.detail
    FROM audit_log a JOIN instance i ON a.scope_id = i.id
    WHERE a.seq > $1 ORDER BY a.seq LIMIT $2 + 0";
