//! SQL of `store/delivery.rs`, shared by both drivers.

pub const INSERT_EVENT: &str =
    "INSERT INTO events (id, org_id, type, suppressed, created_at) VALUES ($1, $2, $3, $4, $5)";

pub const INSERT_NOTIFICATION: &str = "INSERT INTO notifications
    (id, org_id, event_id, kind, to_addr, to_name, subject, body_text, body_html, locale, status, attempts,
     created_at, updated_at, attachments)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', 0, $11, $11, $12)";

pub const INSERT_OUTBOX: &str =
    "INSERT INTO outbox (notification_id, org_id, available_at, queued_at, lease_id) VALUES ($1, $2, $3, $3, NULL)";

/// An event's outbox row: due at `$3`, queued at `$4`.
pub const INSERT_OUTBOX_DUE: &str =
    "INSERT INTO outbox (notification_id, org_id, available_at, queued_at, lease_id) VALUES ($1, $2, $3, $4, NULL)";

pub const STORE_RESPONSE: &str = "UPDATE idempotency_keys SET response = $3 WHERE org_id = $1 AND idem_key = $2";

pub const CLAIM_KEY: &str =
    "INSERT INTO idempotency_keys (org_id, idem_key, request_hash, response, created_at, claimed_until)
    VALUES ($1, $2, $3, NULL, $4, $5) ON CONFLICT (org_id, idem_key) DO NOTHING";

pub const READ_KEY: &str = "SELECT request_hash, response, created_at, claimed_until FROM idempotency_keys
    WHERE org_id = $1 AND idem_key = $2";

pub const RECLAIM_KEY: &str = "UPDATE idempotency_keys SET request_hash = $3, response = NULL, created_at = $4,
    claimed_until = $5 WHERE org_id = $1 AND idem_key = $2";

/// PostgreSQL: the new keys of concurrent requests in one statement; the
/// keys it returns are claimed, the others take the one-key path.
pub const PG_CLAIM_KEYS: &str =
    "INSERT INTO idempotency_keys (org_id, idem_key, request_hash, response, created_at, claimed_until)
    SELECT o, k, h, NULL, c, u FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])
        AS t(o, k, h, c, u)
    ON CONFLICT (org_id, idem_key) DO NOTHING RETURNING org_id, idem_key";

pub const RELEASE_KEY: &str = "DELETE FROM idempotency_keys WHERE org_id = $1 AND idem_key = $2 AND response IS NULL";

pub const PURGE_KEYS: &str = "DELETE FROM idempotency_keys WHERE created_at < $1";

// The claim is fair between orgs: `sql/fairness.rs` (`CLAIM_FAIR_PG`, and
// SQLite's steps).

pub const MARK_SENDING: &str = "UPDATE notifications SET status = 'sending', attempts = attempts + 1, updated_at = $2
    WHERE id IN (SELECT notification_id FROM outbox WHERE lease_id = $1)";

pub const CLAIMED: &str = "SELECT n.id, n.org_id, n.kind, n.to_addr, n.to_name, n.subject, n.body_text, n.body_html,
    n.attachments, n.attempts, o.queued_at FROM notifications n JOIN outbox o ON o.notification_id = n.id
    WHERE o.lease_id = $1";

pub const SENT_OUTBOX: &str = "DELETE FROM outbox WHERE notification_id = $1 AND lease_id = $2";

pub const RETRY_OUTBOX: &str =
    "UPDATE outbox SET available_at = $3, lease_id = NULL WHERE notification_id = $1 AND lease_id = $2";

pub const SET_RESULT: &str =
    "UPDATE notifications SET status = $2, last_error = $3, smtp_response = $4, updated_at = $5,
    sent_at = $6 WHERE id = $1";

pub const INSERT_ATTEMPT: &str =
    "INSERT INTO delivery_attempts (notification_id, attempt, at, outcome, error, smtp_response, provider_id,
    provider_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (notification_id, attempt) DO NOTHING";

#[cfg(test)]
pub const NOTIFICATION_COLUMNS: &str = "id, event_id, kind, to_addr, subject, locale, status, attempts, last_error,
    smtp_response, created_at, updated_at, sent_at, body_pruned_at";

pub const NOTIFICATION: &str = "SELECT id, event_id, kind, to_addr, subject, locale, status, attempts, last_error,
    smtp_response, created_at, updated_at, sent_at, body_pruned_at FROM notifications WHERE org_id = $1 AND id = $2";

pub const PAGE_ALL: &str = "SELECT id, event_id, kind, to_addr, subject, locale, status, attempts, last_error,
    smtp_response, created_at, updated_at, sent_at, body_pruned_at FROM notifications
    WHERE org_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3 + 0";

pub const PAGE_BY_STATUS: &str = "SELECT id, event_id, kind, to_addr, subject, locale, status, attempts, last_error,
    smtp_response, created_at, updated_at, sent_at, body_pruned_at FROM notifications
    WHERE org_id = $1 AND status = $2 AND id < $3 ORDER BY id DESC LIMIT $4 + 0";

pub const ATTEMPTS: &str = "SELECT attempt, at, outcome, error, smtp_response, provider_id, provider_name
    FROM delivery_attempts
    WHERE notification_id = $1 ORDER BY attempt";

pub const STATUS_OF: &str = "SELECT status FROM notifications WHERE org_id = $1 AND id = $2";

// A dead mail whose body retention dropped cannot be sent again.
pub const REQUEUE: &str = "UPDATE notifications SET status = 'queued', updated_at = $3 WHERE org_id = $1 AND id = $2
    AND status = 'dead' AND body_pruned_at IS NULL";

pub const OUTBOX_STATS: &str = "SELECT COUNT(*), MIN(available_at) FROM outbox WHERE lease_id IS NULL";

pub const USER_BY_EMAIL: &str = "SELECT id FROM users WHERE org_id = $1 AND email_key = $2";

pub const ORG_NAME: &str = "SELECT name FROM orgs WHERE id = $1";

// PostgreSQL: a whole group commit in one statement (its own transaction,
// one round trip), one array per column: the events ($1-$5), their
// notifications and outbox rows ($6-$18, `due_at` last), the stored
// responses of their idempotency keys ($19-$21), the usage counts waiting
// ($22-$25, `store/pending_usage.rs`) and the webhook messages of
// suppressed events ($31-$35). With express claims ($26 orgs and $27 their
// lease ids, at $28 until $29, up to $30 rows each), each org's oldest due
// rows are leased as `fairness::CLAIM_ORG_PG` would lease them after the
// commit (read as a range: see `sql/fairness.rs`): the older rows first (`leased`: the statement's snapshot does not
// see its own new rows), then its new rows due now (`taken`, written leased
// and `sending`); both come back as `CLAIMED` reads them. SQLite orders old
// and new rows together by due time; the one difference is an older row
// that came due between the new events' acceptance and their commit (a
// retry or an expired lease, milliseconds apart), which goes first here.
pub const PG_COMMIT_EVENTS: &str = concat!(
    "WITH written_events AS (
        INSERT INTO events (id, org_id, type, suppressed, created_at)
        SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
    ), new AS (
        SELECT * FROM UNNEST($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                             $12::text[], $13::text[], $14::text[], $15::text[], $16::bigint[], $17::text[],
                             $18::bigint[])
          AS t(id, org_id, event_id, kind, to_addr, to_name, subject, body_text, body_html, locale, created_at,
               attachments, due_at)
    ), express AS (
        SELECT * FROM UNNEST($26::text[], $27::text[]) AS x(org_id, lease_id)
    ), leased AS (
        UPDATE outbox o SET lease_id = (SELECT x.lease_id FROM express x WHERE x.org_id = o.org_id),
            available_at = $29
        WHERE o.notification_id = ANY(ARRAY(
            SELECT d.notification_id FROM express x CROSS JOIN LATERAL (
                SELECT notification_id FROM outbox
                WHERE (org_id, available_at) BETWEEN (x.org_id, -9223372036854775808) AND (x.org_id, $28)
                ORDER BY org_id, available_at LIMIT $30 FOR UPDATE SKIP LOCKED) d))
        RETURNING o.notification_id, o.queued_at, o.lease_id
    ), taken AS (
        SELECT r.id, r.lease_id FROM (
            SELECT n.id, x.lease_id, ROW_NUMBER() OVER (PARTITION BY x.lease_id ORDER BY n.due_at, n.id) AS nth
            FROM new n JOIN express x ON x.org_id = n.org_id WHERE n.due_at <= $28) r
        WHERE r.nth <= $30 - (SELECT COUNT(*) FROM leased l WHERE l.lease_id = r.lease_id)
    ), written AS (
        INSERT INTO notifications (id, org_id, event_id, kind, to_addr, to_name, subject, body_text, body_html,
            locale, status, attempts, created_at, updated_at, attachments)
        SELECT n.id, n.org_id, n.event_id, n.kind, n.to_addr, n.to_name, n.subject, n.body_text, n.body_html,
            n.locale, CASE WHEN t.id IS NULL THEN 'queued' ELSE 'sending' END,
            CASE WHEN t.id IS NULL THEN 0 ELSE 1 END, n.created_at,
            CASE WHEN t.id IS NULL THEN n.created_at ELSE $28 END, n.attachments
        FROM new n LEFT JOIN taken t ON t.id = n.id
        RETURNING id, org_id, kind, to_addr, to_name, subject, body_text, body_html, attachments, attempts,
            created_at AS queued_at, status
    ), queued AS (
        INSERT INTO outbox (notification_id, org_id, available_at, queued_at, lease_id)
        SELECT n.id, n.org_id, CASE WHEN t.id IS NULL THEN n.due_at ELSE $29 END, n.created_at, t.lease_id
        FROM new n LEFT JOIN taken t ON t.id = n.id
    ), responses AS (
        UPDATE idempotency_keys k SET response = t.r
        FROM UNNEST($19::text[], $20::text[], $21::text[]) AS t(o, key, r)
        WHERE k.org_id = t.o AND k.idem_key = t.key
    ), usage AS (
        INSERT INTO org_usage (org_id, period, bucket, used)
        SELECT o, p, b, n FROM UNNEST($22::text[], $23::text[], $24::bigint[], $25::bigint[]) AS t(o, p, b, n)
        ON CONFLICT (org_id, period, bucket) DO UPDATE SET used = org_usage.used + excluded.used
    ), hooks AS (",
    pg_enqueue!("$31", "$32", "$33", "$34", "$35"),
    ")",
    pg_mark_leased!("$28"),
    "
    SELECT id, org_id, kind, to_addr, to_name, subject, body_text, body_html, attachments, attempts, queued_at
    FROM written WHERE status = 'sending'
    UNION ALL SELECT * FROM claimed"
);

// PostgreSQL: a chunk of results in one statement (its own transaction, one
// round trip). The outbox row moves (retry) or leaves (sent, dead) only while
// the lease is ours; every attempt is kept; the notification changes only
// where the outbox row did; the webhook messages of the results ($11-$15)
// are queued.
pub const PG_FINISH: &str = concat!(
    "WITH r AS (
        SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                             $9::text[], $10::text[])
          AS r(id, status, error, response, attempt, next_at, provider_id, provider_name)
    ), retried AS (
        UPDATE outbox o SET available_at = r.next_at, lease_id = NULL FROM r
        WHERE o.notification_id = r.id AND o.lease_id = $7 AND r.next_at IS NOT NULL
        RETURNING o.notification_id
    ), finished AS (
        DELETE FROM outbox o USING r
        WHERE o.notification_id = r.id AND o.lease_id = $7 AND r.next_at IS NULL
        RETURNING o.notification_id
    ), attempts AS (
        INSERT INTO delivery_attempts (notification_id, attempt, at, outcome, error, smtp_response, provider_id,
            provider_name)
        SELECT id, attempt, $8, status, error, response, provider_id, provider_name FROM r
        ON CONFLICT (notification_id, attempt) DO NOTHING
    ), hooks AS (",
    pg_enqueue!("$11", "$12", "$13", "$14", "$15"),
    ")
    UPDATE notifications n SET status = r.status, last_error = r.error, smtp_response = r.response,
        updated_at = $8, sent_at = CASE WHEN r.status = 'sent' THEN $8 ELSE NULL END
    FROM r WHERE n.id = r.id
      AND n.id IN (SELECT notification_id FROM retried UNION ALL SELECT notification_id FROM finished)"
);
