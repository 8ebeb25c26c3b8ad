-- Leegality departments and the users notifications go to (contract §4).
-- *_key columns are lower-cased in Rust: case-insensitive uniqueness and
-- search that work the same on both engines.
CREATE TABLE departments (
    id         TEXT    PRIMARY KEY,
    org_id     TEXT    NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    name_key   TEXT    NOT NULL,
    enabled    BOOLEAN NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    UNIQUE (org_id, name_key)
);

CREATE TABLE users (
    id         TEXT   PRIMARY KEY,
    org_id     TEXT   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    name_key   TEXT   NOT NULL,
    email      TEXT   NOT NULL,
    email_key  TEXT   NOT NULL,
    locale     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, email_key)
);
CREATE INDEX users_by_name ON users (org_id, name_key, id);

-- Memberships. totalUsers is COUNT(*) over this index: always the true count.
CREATE TABLE user_departments (
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    department_id TEXT NOT NULL REFERENCES departments (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, department_id)
);
CREATE INDEX user_departments_by_department ON user_departments (department_id, user_id);
