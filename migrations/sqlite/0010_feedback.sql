-- Delivery feedback (issue 18): the suppression list, webhook endpoints and
-- their durable outbox with a delivery log.

-- Addresses an org's mail no longer goes to. `email_key` is the address
-- lower-cased in Rust; `reason` is manual, hard_bounce or complaint.
CREATE TABLE suppressions (
    org_id          TEXT   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email_key       TEXT   NOT NULL,
    email           TEXT   NOT NULL,
    reason          TEXT   NOT NULL,
    detail          TEXT,
    notification_id TEXT,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (org_id, email_key)
);

-- An org's webhook endpoints. `event_types` is the subscribed types as a
-- JSON array, for reading back (`webhook_subscriptions` is what matches);
-- the secrets are AEAD-encrypted (associated data: org id + endpoint id),
-- the previous one kept until `previous_until` after a rotation.
CREATE TABLE webhook_endpoints (
    id               TEXT    PRIMARY KEY,
    org_id           TEXT    NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    url              TEXT    NOT NULL,
    description      TEXT    NOT NULL,
    event_types      TEXT    NOT NULL,
    enabled          BOOLEAN NOT NULL,
    disabled_reason  TEXT,
    secret_enc       BLOB    NOT NULL,
    previous_enc     BLOB,
    previous_until   BIGINT,
    failing_since    BIGINT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);
CREATE INDEX webhook_endpoints_by_org ON webhook_endpoints (org_id, id);

CREATE TABLE webhook_subscriptions (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    org_id      TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, event_type)
);
CREATE INDEX webhook_subscriptions_by_type ON webhook_subscriptions (org_id, event_type);

-- One row per message per endpoint, written in the transaction of the
-- change it reports. `id` is the message's `webhook-id` (the same for every
-- endpoint it went to); `seq` orders an endpoint's messages: a worker takes
-- only the oldest pending message of each endpoint (head of line). While
-- leased, `available_at` is the lease's end. Status: pending or delivered.
CREATE TABLE webhook_messages (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL,
    org_id       TEXT    NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    endpoint_id  TEXT    NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_type   TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    attempts     BIGINT  NOT NULL DEFAULT 0,
    available_at BIGINT  NOT NULL,
    lease_id     TEXT,
    created_at   BIGINT  NOT NULL,
    finished_at  BIGINT
);
CREATE INDEX webhook_messages_pending ON webhook_messages (endpoint_id, status, seq);
CREATE INDEX webhook_messages_by_org ON webhook_messages (org_id, endpoint_id, seq);
CREATE INDEX webhook_messages_by_lease ON webhook_messages (lease_id);

-- Every delivery attempt: the endpoint's delivery log.
CREATE TABLE webhook_attempts (
    message_seq BIGINT NOT NULL REFERENCES webhook_messages (seq) ON DELETE CASCADE,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms  BIGINT NOT NULL,
    error       TEXT,
    PRIMARY KEY (message_seq, attempt)
);

-- Alerts: a condition of an org that someone should look at. At most one
-- open alert per (org, kind, subject): the partial unique index makes
-- "opens once" hold across processes evaluating at the same time.
CREATE TABLE alerts (
    id          TEXT   PRIMARY KEY,
    org_id      TEXT   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    kind        TEXT   NOT NULL,
    subject     TEXT   NOT NULL,
    detail      TEXT   NOT NULL,
    opened_at   BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE UNIQUE INDEX alerts_open ON alerts (org_id, kind, subject) WHERE resolved_at IS NULL;
CREATE INDEX alerts_by_org ON alerts (org_id, id);
