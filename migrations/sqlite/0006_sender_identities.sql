-- BoldSign sender identities (contract §7), the links of their emailed
-- approval flow, and attachments of document notifications (§8).
-- *_key columns are lower-cased in Rust (case-insensitive uniqueness and
-- search on both engines); notification_settings and meta_data are JSON.
CREATE TABLE sender_identities (
    id                    TEXT   PRIMARY KEY,
    org_id                TEXT   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    name                  TEXT   NOT NULL,
    name_key              TEXT   NOT NULL,
    email                 TEXT   NOT NULL,
    email_key             TEXT   NOT NULL,
    status                TEXT   NOT NULL,
    created_by            TEXT   NOT NULL,
    approved_at           BIGINT,
    notification_settings TEXT   NOT NULL,
    brand_id              TEXT,
    redirect_url          TEXT,
    meta_data             TEXT   NOT NULL,
    locale                TEXT   NOT NULL,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    UNIQUE (org_id, email_key)
);
-- The list pages newest first.
CREATE INDEX sender_identities_by_org ON sender_identities (org_id, id);

-- One row per mailed link. Its id is the id of the notification that
-- carries it; the link's token is that id signed with a key derived from
-- HERALD_SECRET_KEY, so nothing stored here is enough to make a link.
-- purpose: review (approve or deny) or revoke. A link is used once:
-- used_at and outcome (approved, denied, revoked, renewed, or replaced by a
-- newer link) say how.
CREATE TABLE sender_identity_links (
    id          TEXT   PRIMARY KEY,
    org_id      TEXT   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    identity_id TEXT   NOT NULL REFERENCES sender_identities (id) ON DELETE CASCADE,
    purpose     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    outcome     TEXT
);
CREATE INDEX sender_identity_links_by_identity ON sender_identity_links (identity_id);

-- document.completed with AttachSignedDocument: the files, as JSON
-- [{fileName, contentType, content (base64)}]; NULL for every other mail.
ALTER TABLE notifications ADD COLUMN attachments TEXT;
