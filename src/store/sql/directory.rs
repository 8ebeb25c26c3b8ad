//! SQL of `store/directory.rs`, shared by both drivers.

pub const DEPARTMENT: &str = "SELECT d.id, d.name, d.enabled, d.created_at,
    (SELECT COUNT(*) FROM user_departments ud WHERE ud.department_id = d.id)
    FROM departments d WHERE d.org_id = $1 AND d.id = $2";

pub const DEPARTMENTS: &str = "SELECT d.id, d.name, d.enabled, d.created_at,
    (SELECT COUNT(*) FROM user_departments ud WHERE ud.department_id = d.id)
    FROM departments d WHERE d.org_id = $1 AND d.name_key LIKE $2 ESCAPE '\\'
    ORDER BY d.name_key, d.id LIMIT $3 + 0 OFFSET $4 + 0";

pub const COUNT_DEPARTMENTS: &str =
    "SELECT COUNT(*) FROM departments WHERE org_id = $1 AND name_key LIKE $2 ESCAPE '\\'";

pub const INSERT_DEPARTMENT: &str =
    "INSERT INTO departments (id, org_id, name, name_key, enabled, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $6)";

pub const UPDATE_DEPARTMENT: &str = "UPDATE departments SET name = $3, name_key = $4,
    enabled = COALESCE($5, enabled), updated_at = $6 WHERE org_id = $1 AND id = $2";

pub const DELETE_DEPARTMENT: &str = "DELETE FROM departments WHERE org_id = $1 AND id = $2";

pub const DEPARTMENT_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM departments WHERE org_id = $1 AND id = $2)";

pub const USER: &str =
    "SELECT id, name, email, locale, created_at, updated_at FROM users WHERE org_id = $1 AND id = $2";

pub const USER_DEPARTMENTS: &str = "SELECT user_id, department_id FROM user_departments WHERE user_id = $1
    ORDER BY department_id";

pub const SEARCH_USERS: &str = "SELECT u.id, u.name, u.email, u.locale, u.created_at, u.updated_at FROM users u
    WHERE u.org_id = $1 AND (u.name_key LIKE $2 ESCAPE '\\' OR u.email_key LIKE $2 ESCAPE '\\')
    AND ($3 = '' OR EXISTS (SELECT 1 FROM user_departments ud WHERE ud.user_id = u.id AND ud.department_id = $3))
    ORDER BY u.name_key, u.id LIMIT $4 + 0 OFFSET $5 + 0";

pub const COUNT_USERS: &str = "SELECT COUNT(*) FROM users u
    WHERE u.org_id = $1 AND (u.name_key LIKE $2 ESCAPE '\\' OR u.email_key LIKE $2 ESCAPE '\\')
    AND ($3 = '' OR EXISTS (SELECT 1 FROM user_departments ud WHERE ud.user_id = u.id AND ud.department_id = $3))";

/// The memberships of exactly the users on one search page (same filter,
/// order and window), fetched in one query instead of one per user.
pub const PAGE_MEMBERSHIPS: &str = "SELECT m.user_id, m.department_id FROM user_departments m WHERE m.user_id IN (
    SELECT u.id FROM users u
    WHERE u.org_id = $1 AND (u.name_key LIKE $2 ESCAPE '\\' OR u.email_key LIKE $2 ESCAPE '\\')
    AND ($3 = '' OR EXISTS (SELECT 1 FROM user_departments ud WHERE ud.user_id = u.id AND ud.department_id = $3))
    ORDER BY u.name_key, u.id LIMIT $4 + 0 OFFSET $5 + 0) ORDER BY m.department_id";

pub const INSERT_USER: &str =
    "INSERT INTO users (id, org_id, name, name_key, email, email_key, locale, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";

pub const UPDATE_USER: &str = "UPDATE users SET name = $3, name_key = $4, email = $5, email_key = $6,
    locale = COALESCE($7, locale), updated_at = $8 WHERE org_id = $1 AND id = $2";

pub const DELETE_USER: &str = "DELETE FROM users WHERE org_id = $1 AND id = $2";

pub const INSERT_MEMBERSHIP: &str = "INSERT INTO user_departments (user_id, department_id) VALUES ($1, $2)";

pub const CLEAR_MEMBERSHIPS: &str = "DELETE FROM user_departments WHERE user_id = $1";
