//! SQL of `store/tokens.rs`, shared by both drivers.

pub const INSERT_TOKEN: &str =
    "INSERT INTO tokens (id, org_id, name, digest, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, NULL)";

pub const ORG_TOKENS: &str = "SELECT id, org_id, name, created_at, revoked_at FROM tokens
    WHERE org_id = $1 ORDER BY created_at DESC, id DESC";

pub const REVOKE: &str = "UPDATE tokens SET revoked_at = $3 WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL";

pub const BY_DIGEST: &str = "SELECT id, org_id, digest FROM tokens WHERE digest = $1 AND revoked_at IS NULL";

pub const ANY_ADMIN: &str = "SELECT EXISTS (SELECT 1 FROM tokens WHERE org_id IS NULL AND revoked_at IS NULL)";
