-- Bounces and complaints (issue 18): every report applied to a notification,
-- shown in its delivery log. `fingerprint` is a hash of what the report says
-- (kind, reported address, status, diagnostic), so the same report applied
-- twice (the same DSN by SMTP and HTTP, an SNS retry) is one row and
-- changes nothing more. `kind`: hard_bounce, soft_bounce or complaint;
-- `source`: smtp, http or ses. A notification's status becomes `bounced` or
-- `complained` (notifications.status has no CHECK constraint on either
-- backend, so no change there).
CREATE TABLE notification_feedback (
    org_id          TEXT   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    notification_id TEXT   NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    fingerprint     TEXT   NOT NULL,
    kind            TEXT   NOT NULL,
    recipient       TEXT,
    status          TEXT,
    diagnostic      TEXT,
    source          TEXT   NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (notification_id, fingerprint)
);
