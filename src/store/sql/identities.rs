//! SQL of `store/identities.rs`, shared by both drivers.

pub const BY_EMAIL: &str = "SELECT id, name, email, status, created_by, approved_at, notification_settings, brand_id,
    redirect_url, meta_data, locale, created_at, updated_at
    FROM sender_identities WHERE org_id = $1 AND email_key = $2";

pub const BY_ID: &str = "SELECT id, name, email, status, created_by, approved_at, notification_settings, brand_id,
    redirect_url, meta_data, locale, created_at, updated_at
    FROM sender_identities WHERE org_id = $1 AND id = $2";

// The brand filter is a JSON array (`[]`: no filter), the one list bind both
// engines take; they differ only in how they unpack it.
pub const LIST_SQLITE: &str =
    "SELECT id, name, email, status, created_by, approved_at, notification_settings, brand_id,
    redirect_url, meta_data, locale, created_at, updated_at FROM sender_identities
    WHERE org_id = $1 AND (name_key LIKE $2 ESCAPE '\\' OR email_key LIKE $2 ESCAPE '\\')
    AND ($3 = '[]' OR brand_id IN (SELECT value FROM json_each($3)))
    ORDER BY id DESC LIMIT $4 + 0 OFFSET $5 + 0";

pub const LIST_PG: &str = "SELECT id, name, email, status, created_by, approved_at, notification_settings, brand_id,
    redirect_url, meta_data, locale, created_at, updated_at FROM sender_identities
    WHERE org_id = $1 AND (name_key LIKE $2 ESCAPE '\\' OR email_key LIKE $2 ESCAPE '\\')
    AND ($3 = '[]' OR brand_id IN (SELECT jsonb_array_elements_text($3::jsonb)))
    ORDER BY id DESC LIMIT $4 + 0 OFFSET $5 + 0";

pub const COUNT_SQLITE: &str = "SELECT COUNT(*) FROM sender_identities
    WHERE org_id = $1 AND (name_key LIKE $2 ESCAPE '\\' OR email_key LIKE $2 ESCAPE '\\')
    AND ($3 = '[]' OR brand_id IN (SELECT value FROM json_each($3)))";

pub const COUNT_PG: &str = "SELECT COUNT(*) FROM sender_identities
    WHERE org_id = $1 AND (name_key LIKE $2 ESCAPE '\\' OR email_key LIKE $2 ESCAPE '\\')
    AND ($3 = '[]' OR brand_id IN (SELECT jsonb_array_elements_text($3::jsonb)))";

pub const INSERT: &str =
    "INSERT INTO sender_identities (id, org_id, name, name_key, email, email_key, status, created_by,
    approved_at, notification_settings, brand_id, redirect_url, meta_data, locale, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

pub const UPDATE: &str = "UPDATE sender_identities SET name = $2, name_key = $3, status = $4, approved_at = $5,
    notification_settings = $6, redirect_url = $7, meta_data = $8, locale = $9, updated_at = $10 WHERE id = $1";

pub const SET_STATUS: &str = "UPDATE sender_identities SET status = $2, approved_at = $3, updated_at = $4
    WHERE id = $1 AND status = $5";

pub const STATUS: &str = "SELECT status FROM sender_identities WHERE id = $1";

pub const DELETE: &str = "DELETE FROM sender_identities WHERE org_id = $1 AND email_key = $2 RETURNING id";

pub const LINK: &str = "SELECT id, org_id, identity_id, purpose, created_at, expires_at, used_at, outcome
    FROM sender_identity_links WHERE id = $1";

pub const REPLACE_LINKS: &str = "UPDATE sender_identity_links SET used_at = $2, outcome = 'replaced'
    WHERE identity_id = $1 AND used_at IS NULL";

pub const INSERT_LINK: &str = "INSERT INTO sender_identity_links
    (id, org_id, identity_id, purpose, created_at, expires_at, used_at, outcome)
    VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)";

pub const USE_LINK: &str = "UPDATE sender_identity_links SET used_at = $2, outcome = $3
    WHERE id = $1 AND used_at IS NULL AND expires_at > $2";

pub const USE_EXPIRED_LINK: &str = "UPDATE sender_identity_links SET used_at = $2, outcome = $3
    WHERE id = $1 AND used_at IS NULL AND expires_at <= $2";
