//! SQL of `store/alerts.rs`, shared by both drivers.

// Orgs with at least one mail gone dead since `$1`.
pub const DEAD_SINCE: &str =
    "SELECT org_id, COUNT(*) AS n FROM notifications WHERE status = 'dead' AND updated_at > $1 GROUP BY org_id";

// Orgs with mail due since before `$1` and not taken (a leased row's
// `available_at` is its lease's end, in the future).
pub const DUE_BEFORE: &str = "SELECT org_id, MIN(available_at) AS oldest FROM outbox WHERE available_at <= $1
    GROUP BY org_id";

// Endpoints Herald disabled (a user's own "enabled: false" has no reason).
pub const DISABLED_ENDPOINTS: &str = "SELECT org_id, id, url FROM webhook_endpoints
    WHERE NOT enabled AND disabled_reason IS NOT NULL";

pub const OPEN: &str =
    "SELECT id, org_id, kind, subject, detail, opened_at, resolved_at FROM alerts WHERE resolved_at IS NULL";

pub const INSERT: &str = "INSERT INTO alerts (id, org_id, kind, subject, detail, opened_at, resolved_at)
    VALUES ($1, $2, $3, $4, $5, $6, NULL) ON CONFLICT (org_id, kind, subject) WHERE resolved_at IS NULL DO NOTHING";

pub const RESOLVE: &str = "UPDATE alerts SET resolved_at = $2 WHERE id = $1 AND resolved_at IS NULL";

pub const PAGE: &str = "SELECT id, org_id, kind, subject, detail, opened_at, resolved_at FROM alerts
    WHERE org_id = $1 ORDER BY id DESC LIMIT $2 + 0";

pub const PAGE_OPEN: &str = "SELECT id, org_id, kind, subject, detail, opened_at, resolved_at FROM alerts
    WHERE org_id = $1 AND resolved_at IS NULL ORDER BY id DESC LIMIT $2 + 0";

// The org's own providers whose circuit is not closed (open, or cooled
// down and waiting for its probe): `providers` rows of an org scope, and
// the org's notification-config (its `smtp_servers` row). Instance-scoped
// providers have no org and are not listed.
pub const OPEN_CIRCUITS: &str = "SELECT p.scope_id, h.provider_id, p.name, h.failures
    FROM provider_health h JOIN providers p ON p.id = h.provider_id JOIN orgs o ON o.id = p.scope_id
    WHERE h.open_until IS NOT NULL AND p.enabled
    UNION ALL
    SELECT s.scope_id, h.provider_id, 'notification-config', h.failures
    FROM provider_health h JOIN smtp_servers s ON s.id = h.provider_id JOIN orgs o ON o.id = s.scope_id
    WHERE h.open_until IS NOT NULL";

pub const CONTACTS: &str = "SELECT emails, updated_at FROM alert_contacts WHERE org_id = $1";

pub const SET_CONTACTS: &str = "INSERT INTO alert_contacts (org_id, emails, updated_at) VALUES ($1, $2, $3)
    ON CONFLICT (org_id) DO UPDATE SET emails = excluded.emails, updated_at = excluded.updated_at";
