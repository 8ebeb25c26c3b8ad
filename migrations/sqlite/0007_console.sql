-- The operator console (issue 14): its accounts and their sessions.
-- An account with no org_id is an instance admin; one with an org_id is an
-- admin of that org only. Passwords are argon2id PHC strings; sessions are
-- stored by the SHA-256 digest of their cookie value, never the value.
CREATE TABLE console_users (
    id            TEXT   PRIMARY KEY,
    org_id        TEXT   REFERENCES orgs (id) ON DELETE CASCADE,
    email         TEXT   NOT NULL,
    email_key     TEXT   NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,
    -- Wrong passwords in a row, and until when sign-in is locked after too many.
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

CREATE TABLE console_sessions (
    digest     TEXT   PRIMARY KEY,
    user_id    TEXT   NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_by_user ON console_sessions (user_id);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
