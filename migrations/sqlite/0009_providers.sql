-- Providers (issue 17): an org's (scope_id = org id) or the instance's
-- (scope_id = instance id) ordered list of ways to send mail, after the
-- org's notification-config and the instance's email-settings, which stay
-- in smtp_servers as provider #1 of their scope. `settings` is JSON without
-- secrets; `secret` (SMTP password, OAuth2 client secret, SES secret key,
-- HTTP signing secret) is AEAD ciphertext bound to (scope_id, id).
CREATE TABLE providers (
    id             TEXT    PRIMARY KEY,
    scope_id       TEXT    NOT NULL,
    position       BIGINT  NOT NULL,
    name           TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    enabled        BOOLEAN NOT NULL,
    settings       TEXT    NOT NULL,
    secret         BLOB,
    bounce_domain  TEXT,
    max_per_minute BIGINT,
    max_concurrent BIGINT,
    version        BIGINT  NOT NULL,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
CREATE INDEX providers_by_scope ON providers (scope_id, position);

-- The circuit breaker, shared by every node: consecutive failures of a
-- provider (a providers id, or an smtp_servers id for the two legacy
-- configurations) and until when it is skipped.
CREATE TABLE provider_health (
    provider_id     TEXT   PRIMARY KEY,
    failures        BIGINT NOT NULL,
    open_until      BIGINT,
    last_error      TEXT,
    last_failure_at BIGINT
);

-- Rate limits (GCRA): the next free send slot of a provider, shared by
-- every node; and the slots reserved by mails postponed to them.
CREATE TABLE provider_rate (
    provider_id TEXT   PRIMARY KEY,
    next_at     BIGINT NOT NULL
);
CREATE TABLE provider_reservations (
    notification_id TEXT   NOT NULL,
    provider_id     TEXT   NOT NULL,
    at              BIGINT NOT NULL,
    PRIMARY KEY (notification_id, provider_id)
);

-- Which provider made each attempt.
ALTER TABLE delivery_attempts ADD COLUMN provider_id TEXT;
ALTER TABLE delivery_attempts ADD COLUMN provider_name TEXT;
