//! SQL of `store/smtp.rs`, shared by both drivers.

pub const BY_SCOPE: &str =
    "SELECT id, scope_id, enabled, host, port, security, accept_invalid_certs, username, password,
    from_email, from_name, reply_to, version, created_at, updated_at FROM smtp_servers WHERE scope_id = $1";

pub const UPSERT: &str = "INSERT INTO smtp_servers (id, scope_id, enabled, host, port, security, accept_invalid_certs,
    username, password, from_email, from_name, reply_to, version, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
    ON CONFLICT (scope_id) DO UPDATE SET enabled = excluded.enabled, host = excluded.host, port = excluded.port,
    security = excluded.security, accept_invalid_certs = excluded.accept_invalid_certs,
    username = excluded.username, password = excluded.password, from_email = excluded.from_email,
    from_name = excluded.from_name, reply_to = excluded.reply_to, version = excluded.version,
    updated_at = excluded.updated_at";

pub const DELETE: &str = "DELETE FROM smtp_servers WHERE scope_id = $1";
