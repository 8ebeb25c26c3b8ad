-- maxConcurrent (issue 17): the sends in flight through a provider, shared
-- by every node and process. A send leases one of the provider's slots
-- 0..maxConcurrent-1 until `expires_at` (Unix ms) and gives it back when
-- it is done; a process killed mid-send leaves its slot to expire.
CREATE TABLE provider_slots (
    provider_id TEXT   NOT NULL,
    slot        BIGINT NOT NULL,
    holder      TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL,
    PRIMARY KEY (provider_id, slot)
);
