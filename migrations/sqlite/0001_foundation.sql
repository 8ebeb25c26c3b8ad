-- Foundation: the instance, organisations, API tokens and the audit log.
-- Timestamps are Unix milliseconds set by Herald, never by the database.

CREATE TABLE instance (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    id         TEXT    NOT NULL,
    seq        BIGINT  NOT NULL DEFAULT 0,
    created_at BIGINT  NOT NULL
);

CREATE TABLE orgs (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    seq        BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    id         TEXT   PRIMARY KEY,
    org_id     TEXT   REFERENCES orgs (id) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    digest     TEXT   NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX tokens_by_org ON tokens (org_id, created_at);

-- scope_id is an org id, or the instance id for instance-level changes.
CREATE TABLE audit_log (
    scope_id      TEXT   NOT NULL,
    seq           BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    actor         TEXT   NOT NULL,
    action        TEXT   NOT NULL,
    resource_type TEXT   NOT NULL,
    resource_id   TEXT   NOT NULL,
    detail        TEXT   NOT NULL,
    PRIMARY KEY (scope_id, seq)
);
