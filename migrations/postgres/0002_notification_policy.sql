-- Zitadel's notification policy (contract §6). scope_id is an org id (the
-- org's custom policy) or the instance id (the instance default, created at
-- start). `sequence` is the audit sequence of the policy's last change.
CREATE TABLE notification_policies (
    scope_id        TEXT    PRIMARY KEY,
    password_change BOOLEAN NOT NULL,
    sequence        BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    changed_at      BIGINT  NOT NULL
);
