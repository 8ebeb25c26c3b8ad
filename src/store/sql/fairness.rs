//! SQL of `store/fairness.rs` (issue 19), shared by both drivers where the
//! dialects agree: org limits, usage windows and the fair claim.

// The orgs with rows in the outbox, found by a skip scan of `outbox_by_org`
// (one index probe per org, not a scan of the backlog), and of them those
// with a row due at $1, with their weights.
macro_rules! due_orgs {
    () => {
        "WITH RECURSIVE orgs(org_id) AS (
        SELECT (SELECT org_id FROM outbox ORDER BY org_id LIMIT 1)
      UNION ALL
        SELECT (SELECT o.org_id FROM outbox o WHERE o.org_id > orgs.org_id ORDER BY o.org_id LIMIT 1)
        FROM orgs WHERE orgs.org_id IS NOT NULL
    )"
    };
}

/// SQLite: the due orgs and their weights; the claim takes each one's
/// oldest due rows ([`ORG_DUE`]) and orders them with `fair_order`.
pub const SQLITE_DUE_ORGS: &str = concat!(
    due_orgs!(),
    " SELECT orgs.org_id, COALESCE(l.weight, 1) FROM orgs LEFT JOIN org_limits l ON l.org_id = orgs.org_id
    WHERE orgs.org_id IS NOT NULL
      AND EXISTS (SELECT 1 FROM outbox x WHERE x.org_id = orgs.org_id AND x.available_at <= $1)"
);

pub const ORG_DUE: &str = "SELECT notification_id, available_at FROM outbox
    WHERE org_id = $1 AND available_at <= $2 ORDER BY available_at LIMIT $3 + 0";

pub const LEASE_ONE: &str = "UPDATE outbox SET lease_id = $1, available_at = $2 WHERE notification_id = $3";

// PostgreSQL: every read of one org's due rows (the claims here and the
// lease of `delivery::PG_COMMIT_EVENTS`) is written as a row-comparison
// range, `(org_id, available_at) BETWEEN (org, min) AND (org, now)`, ordered
// by both columns, not as `org_id = $1 AND available_at <= $2 ORDER BY
// available_at`: for the latter the planner may walk the index on
// `available_at` alone and filter it by org, reading another org's whole
// backlog first (51 ms against 0.45 ms behind 100,000 rows;
// bench/RESULTS.md, tenth stop). The range leaves it `outbox_by_org`.

/// PostgreSQL: the whole fair claim in one statement. Each due org offers
/// its oldest due rows (twice its weighted share of the batch, so that
/// concurrent claims find enough rows the others skipped); they take turns
/// (row number over weight), ties to the older row; the first `$4` that no
/// other claim holds are leased, and their notifications marked sending
/// and returned (`pg_mark_leased`).
pub const CLAIM_FAIR_PG: &str = concat!(
    due_orgs!(),
    ", due AS (
        SELECT orgs.org_id, COALESCE(l.weight, 1) AS weight FROM orgs LEFT JOIN org_limits l ON l.org_id = orgs.org_id
        WHERE orgs.org_id IS NOT NULL
          AND EXISTS (SELECT 1 FROM outbox x WHERE x.org_id = orgs.org_id AND x.available_at <= $3)
    ), total AS (
        SELECT GREATEST(SUM(weight), 1) AS w FROM due
    ), candidates AS (
        SELECT c.notification_id, c.available_at,
               ROW_NUMBER() OVER (PARTITION BY due.org_id ORDER BY c.available_at)::float8 / due.weight AS turn
        FROM due CROSS JOIN total CROSS JOIN LATERAL (
            SELECT x.notification_id, x.available_at FROM outbox x
            WHERE (x.org_id, x.available_at) BETWEEN (due.org_id, -9223372036854775808) AND (due.org_id, $3)
            ORDER BY x.org_id, x.available_at LIMIT CEIL(2.0 * $4 * due.weight / total.w)::bigint
        ) c
    ), leased AS (
        UPDATE outbox SET lease_id = $1, available_at = $2 WHERE notification_id = ANY(ARRAY(
            SELECT o.notification_id
            FROM UNNEST(ARRAY(SELECT notification_id FROM candidates ORDER BY turn, available_at))
                WITH ORDINALITY AS c(id, nth)
            JOIN outbox o ON o.notification_id = c.id
            WHERE o.available_at <= $3 ORDER BY c.nth LIMIT $4
            FOR UPDATE OF o SKIP LOCKED))
        RETURNING notification_id, queued_at
    )",
    pg_mark_leased!("$3"),
    " SELECT * FROM claimed"
);

/// PostgreSQL: the express claim (`domain::fairness::express_orgs`): the
/// oldest `$5` due rows of org `$4` that no other claim holds, marked
/// sending and returned. SQLite runs [`ORG_DUE`] and [`LEASE_ONE`] in its
/// writer.
pub const CLAIM_ORG_PG: &str = concat!(
    "WITH leased AS (
        UPDATE outbox SET lease_id = $1, available_at = $2 WHERE notification_id = ANY(ARRAY(
            SELECT notification_id FROM outbox
            WHERE (org_id, available_at) BETWEEN ($4, -9223372036854775808) AND ($4, $3)
            ORDER BY org_id, available_at LIMIT $5 FOR UPDATE SKIP LOCKED))
        RETURNING notification_id, queued_at
    )",
    pg_mark_leased!("$3"),
    " SELECT * FROM claimed"
);

pub const LIMITS_OF: &str = "SELECT weight, hourly_quota, daily_quota, quota_mode, api_rate FROM org_limits
    WHERE org_id = $1";

/// PostgreSQL: the same, locking the row, so that the reservations of one
/// org with a quota take turns across nodes (each then reads the usage the
/// previous one committed).
pub const LIMITS_OF_FOR_UPDATE: &str = "SELECT weight, hourly_quota, daily_quota, quota_mode, api_rate
    FROM org_limits WHERE org_id = $1 FOR UPDATE";

pub const UPSERT_LIMITS: &str = "INSERT INTO org_limits
    (org_id, weight, hourly_quota, daily_quota, quota_mode, api_rate, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (org_id) DO UPDATE SET weight = excluded.weight, hourly_quota = excluded.hourly_quota,
        daily_quota = excluded.daily_quota, quota_mode = excluded.quota_mode, api_rate = excluded.api_rate,
        updated_at = excluded.updated_at";

pub const RATE_OVERRIDES: &str = "SELECT org_id, api_rate FROM org_limits WHERE api_rate IS NOT NULL";

/// Counts `$4` notifications in the hour `$2` and the day `$3`, unless the
/// org has a quota (then nothing is written and the caller decides).
pub const PG_COUNT_UNLIMITED: &str = "INSERT INTO org_usage (org_id, period, bucket, used)
    SELECT $1, p.period, p.bucket, $4 FROM (SELECT 'hour' AS period, $2::bigint AS bucket UNION ALL
        SELECT 'day', $3::bigint) p
    WHERE NOT EXISTS (SELECT 1 FROM org_limits l
        WHERE l.org_id = $1 AND (l.hourly_quota IS NOT NULL OR l.daily_quota IS NOT NULL))
    ON CONFLICT (org_id, period, bucket) DO UPDATE SET used = org_usage.used + excluded.used";

/// Counts `$4` (may be negative: a reservation given back) in both windows.
pub const COUNT: &str = "INSERT INTO org_usage (org_id, period, bucket, used)
    VALUES ($1, 'hour', $2, $4), ($1, 'day', $3, $4)
    ON CONFLICT (org_id, period, bucket) DO UPDATE SET used = org_usage.used + excluded.used";

/// SQLite: one summed count of a batch of events (`store/pending_usage.rs`).
pub const COUNT_ONE: &str = "INSERT INTO org_usage (org_id, period, bucket, used) VALUES ($1, $2, $3, $4)
    ON CONFLICT (org_id, period, bucket) DO UPDATE SET used = org_usage.used + excluded.used";

/// The org's usage from `$2` (a day's start) on: today and held mail.
pub const USAGE_FROM: &str = "SELECT period, bucket, used FROM org_usage WHERE org_id = $1 AND bucket >= $2";
