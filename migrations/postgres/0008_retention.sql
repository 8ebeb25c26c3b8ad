-- Bounded storage (issue 20): retention of bodies, records, events and the
-- audit log; erasure of a recipient's mail.
--
-- `body_pruned_at` is set when retention dropped the body (and attachments)
-- of a finished mail; the delivery log shows it.
ALTER TABLE notifications ADD COLUMN body_pruned_at BIGINT;

-- Deleting an event (retention, erasure) looks its notifications up by
-- event (the foreign key's check, and "no notification left").
CREATE INDEX notifications_by_event ON notifications (event_id);

-- What the pruner scans: mail that still has its body, by age (only a few
-- days of mail at steady state) ...
CREATE INDEX notifications_with_body ON notifications (org_id, status, created_at) WHERE body_pruned_at IS NULL;
-- ... and mail whose body is gone, by age (its entry is written by the
-- pruner, not on the delivery path).
CREATE INDEX notifications_pruned ON notifications (org_id, created_at) WHERE body_pruned_at IS NOT NULL;

-- Events that made no notification (suppressed) expire by age.
CREATE INDEX events_suppressed ON events (org_id, created_at) WHERE suppressed IS NOT NULL;

-- Per-org overrides set by instance admins; NULL = the instance default.
CREATE TABLE org_retention (
    org_id      TEXT   PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    body_days   BIGINT,
    record_days BIGINT,
    dead_days   BIGINT,
    audit_days  BIGINT,
    updated_at  BIGINT NOT NULL
);
