-- Many tenants on one Herald (issue 19): per-org limits set by instance
-- admins, the usage counted against them, and the index of the fair claim.

-- One row per org with limits of its own; an org without a row has weight
-- 1, no quotas and the instance's API rate limit.
CREATE TABLE org_limits (
    org_id         TEXT   PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    -- Share of the sending capacity while several orgs have due mail (1-100).
    weight         BIGINT NOT NULL DEFAULT 1,
    hourly_quota   BIGINT,
    daily_quota    BIGINT,
    -- 'hold' (mail over quota waits in the outbox) or 'reject' (429).
    quota_mode     TEXT   NOT NULL DEFAULT 'hold',
    -- API requests per minute per token; NULL: the instance default.
    api_rate       BIGINT,
    updated_at     BIGINT NOT NULL
);

-- Notifications accepted per org and window: period 'hour' or 'day',
-- bucket the window's start (UTC, Unix ms). Held mail counts in the window
-- it is released in.
CREATE TABLE org_usage (
    org_id TEXT   NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    period TEXT   NOT NULL,
    bucket BIGINT NOT NULL,
    used   BIGINT NOT NULL,
    PRIMARY KEY (org_id, period, bucket)
);

-- The fair claim walks the orgs with rows in the outbox (a skip scan) and
-- takes each one's oldest due rows.
CREATE INDEX outbox_by_org ON outbox (org_id, available_at);
