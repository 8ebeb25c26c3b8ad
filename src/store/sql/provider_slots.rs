//! `maxConcurrent` slots (see `store/provider_slots.rs`). Same text on both
//! backends.

/// Leases the first of a provider's $3 slots that is free (never taken, or
/// its lease ended before $4) to holder $2 until $5. One statement: on
/// SQLite the writer lock orders it, on PostgreSQL the primary key does (two
/// nodes choosing the same free slot: the second one's conflict finds a
/// live lease and changes nothing, and it tries again). Changes one row
/// when a slot was taken, none when all are held.
pub const ACQUIRE: &str = "INSERT INTO provider_slots (provider_id, slot, holder, expires_at)
    SELECT $1, free.n, $2, $5
    FROM (WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < $3) SELECT n FROM s) AS free
    WHERE NOT EXISTS (SELECT 1 FROM provider_slots p
                      WHERE p.provider_id = $1 AND p.slot = free.n AND p.expires_at > $4)
    LIMIT 1
    ON CONFLICT (provider_id, slot) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
    WHERE provider_slots.expires_at <= $4";

/// Gives a slot back.
pub const RELEASE: &str = "DELETE FROM provider_slots WHERE provider_id = $1 AND holder = $2";

/// Live leases of a provider (for the API and tests).
pub const IN_FLIGHT: &str = "SELECT COUNT(*) FROM provider_slots WHERE provider_id = $1 AND expires_at > $2";
