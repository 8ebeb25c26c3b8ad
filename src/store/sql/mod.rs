//! The SQL text of the store, one file per area, shared by both drivers:
//! `$n` placeholders (rusqlite binds them too), and where the dialects
//! differ both texts side by side.

// PostgreSQL: the end of a claim, in the claim's own statement (one round
// trip): the notifications of the rows that the CTE `leased`
// (notification_id, queued_at) leased are marked sending, counting the
// attempt, and the CTE `claimed` holds them as `delivery::CLAIMED` reads
// them. The argument is the placeholder of now. The notifications are
// found by `= ANY(ARRAY(..))`, an index lookup per leased row whatever the
// planner thinks `leased` holds (a join may hash the whole table).
macro_rules! pg_mark_leased {
    ($now:literal) => {
        concat!(
            ", marked AS (
        UPDATE notifications n SET status = 'sending', attempts = n.attempts + 1, updated_at = ",
            $now,
            "
        WHERE n.id = ANY(ARRAY(SELECT notification_id FROM leased))
        RETURNING n.id, n.org_id, n.kind, n.to_addr, n.to_name, n.subject, n.body_text, n.body_html,
            n.attachments, n.attempts
    ), claimed AS (
        SELECT m.*, l.queued_at FROM marked m JOIN leased l ON l.notification_id = m.id
    )"
        )
    };
}

// PostgreSQL: webhook messages for a batch of events, one per enabled
// endpoint of the org subscribed to the type, in the batch's order. The
// arguments are the placeholders of the events' ids, orgs, types, payloads
// and times, so that other statements can write them too (a CTE).
macro_rules! pg_enqueue {
    ($id:literal, $org:literal, $kind:literal, $payload:literal, $at:literal) => {
        concat!(
            "INSERT INTO webhook_messages
    (id, org_id, endpoint_id, event_type, payload, status, attempts, available_at, lease_id, created_at)
    SELECT t.id, e.org_id, e.id, t.kind, t.payload, 'pending', 0, t.at, NULL, t.at
    FROM UNNEST(",
            $id,
            "::text[], ",
            $org,
            "::text[], ",
            $kind,
            "::text[], ",
            $payload,
            "::text[], ",
            $at,
            "::bigint[])
      WITH ORDINALITY AS t(id, org, kind, payload, at, ord)
    JOIN webhook_subscriptions s ON s.org_id = t.org AND s.event_type = t.kind
    JOIN webhook_endpoints e ON e.id = s.endpoint_id AND e.enabled
    ORDER BY t.ord, e.id"
        )
    };
}

pub mod alerts;
pub mod audit;
pub mod console;
pub mod delivery;
pub mod directory;
pub mod fairness;
pub mod feedback;
pub mod identities;
pub mod orgs;
pub mod overview;
pub mod policy;
pub mod provider_slots;
pub mod providers;
pub mod retention;
pub mod smtp;
pub mod suppressions;
pub mod tokens;
pub mod webhooks;
