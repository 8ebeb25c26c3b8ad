-- The delivery engine (contract §8): events, the notifications they make,
-- the outbox the workers claim from, every attempt's result, and the
-- idempotency keys of POST /v1/events.
CREATE TABLE events (
    id         TEXT   PRIMARY KEY,
    org_id     TEXT   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    type       TEXT   NOT NULL,
    suppressed TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE notifications (
    id            TEXT    PRIMARY KEY,
    org_id        TEXT    NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    event_id      TEXT    NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL,
    to_addr       TEXT    NOT NULL,
    to_name       TEXT,
    subject       TEXT    NOT NULL,
    body_text     TEXT    NOT NULL,
    body_html     TEXT,
    locale        TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    attempts      BIGINT  NOT NULL DEFAULT 0,
    last_error    TEXT,
    smtp_response TEXT,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    sent_at       BIGINT
);
-- The delivery log pages newest first, with or without a status filter.
CREATE INDEX notifications_by_org ON notifications (org_id, id);
CREATE INDEX notifications_by_status ON notifications (org_id, status, id);

-- One row per notification still to be sent. `available_at` is when a
-- worker may take it: its due time, or, while leased, the lease's end (so a
-- crashed worker's rows come back by themselves). Sent and dead rows leave.
CREATE TABLE outbox (
    notification_id TEXT   PRIMARY KEY REFERENCES notifications (id) ON DELETE CASCADE,
    org_id          TEXT   NOT NULL,
    available_at    BIGINT NOT NULL,
    queued_at       BIGINT NOT NULL,
    lease_id        TEXT
);
CREATE INDEX outbox_by_available ON outbox (available_at);
CREATE INDEX outbox_by_lease ON outbox (lease_id);

CREATE TABLE delivery_attempts (
    notification_id TEXT    NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt         BIGINT  NOT NULL,
    at              BIGINT  NOT NULL,
    outcome         TEXT    NOT NULL,
    error           TEXT,
    smtp_response   TEXT,
    PRIMARY KEY (notification_id, attempt)
);

-- POST /v1/events idempotency, per org for 24 h. A key is claimed before
-- the event is written (`claimed_until` bounds the claim of a process that
-- died), and its response is stored in the event's own transaction.
CREATE TABLE idempotency_keys (
    org_id        TEXT   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    idem_key      TEXT   NOT NULL,
    request_hash  TEXT   NOT NULL,
    response      TEXT,
    created_at    BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL,
    PRIMARY KEY (org_id, idem_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
