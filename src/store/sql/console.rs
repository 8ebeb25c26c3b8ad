//! SQL of `store/console.rs`, shared by both drivers.

pub const INSERT_USER: &str = "INSERT INTO console_users
    (id, org_id, email, email_key, password_hash, failed_logins, locked_until, created_at)
    VALUES ($1, $2, $3, $4, $5, 0, 0, $6)";

// The first account, made from the bootstrap admin token: only while there is none.
pub const INSERT_FIRST_USER: &str = "INSERT INTO console_users
    (id, org_id, email, email_key, password_hash, failed_logins, locked_until, created_at)
    SELECT $1, NULL, $2, $3, $4, 0, 0, $5 WHERE NOT EXISTS (SELECT 1 FROM console_users)";

pub const ANY_USER: &str = "SELECT EXISTS (SELECT 1 FROM console_users)";

pub const USER_BY_EMAIL: &str = "SELECT id, org_id, email, created_at, password_hash, failed_logins, locked_until
    FROM console_users WHERE email_key = $1";

// A sign-in attempt is counted before the password is checked, so attempts
// running at once cannot pass the limit together; a wrong password keeps
// its count, a right one resets it.
pub const RESERVE_LOGIN: &str = "UPDATE console_users SET failed_logins = failed_logins + 1
    WHERE id = $1 AND locked_until <= $2 AND failed_logins < $3 RETURNING failed_logins";

pub const RELEASE_LOGIN: &str =
    "UPDATE console_users SET failed_logins = failed_logins - 1 WHERE id = $1 AND failed_logins > 0";

pub const LOCK: &str = "UPDATE console_users SET failed_logins = 0, locked_until = $2 WHERE id = $1";

pub const GOOD_LOGIN: &str = "UPDATE console_users SET failed_logins = 0 WHERE id = $1";

pub const INSERT_SESSION: &str =
    "INSERT INTO console_sessions (digest, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";

pub const PURGE_SESSIONS: &str = "DELETE FROM console_sessions WHERE expires_at <= $1";

pub const SESSION_USER: &str = "SELECT u.id, u.org_id, u.email, u.created_at FROM console_sessions s
    JOIN console_users u ON u.id = s.user_id WHERE s.digest = $1 AND s.expires_at > $2";

pub const DELETE_SESSION: &str = "DELETE FROM console_sessions WHERE digest = $1";

pub const USERS: &str = "SELECT id, org_id, email, created_at FROM console_users ORDER BY email_key";
