//! SQL of `store/policy.rs`, shared by both drivers.

pub const POLICY: &str = "SELECT password_change, sequence, created_at, changed_at
    FROM notification_policies WHERE scope_id = $1";

pub const INSERT: &str =
    "INSERT INTO notification_policies (scope_id, password_change, sequence, created_at, changed_at)
    VALUES ($1, $2, $3, $4, $4) ON CONFLICT (scope_id) DO NOTHING";

pub const UPDATE: &str = "UPDATE notification_policies SET password_change = $2, sequence = $3, changed_at = $4
    WHERE scope_id = $1 AND password_change <> $2 RETURNING created_at";

pub const EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM notification_policies WHERE scope_id = $1)";

pub const DELETE: &str = "DELETE FROM notification_policies WHERE scope_id = $1 RETURNING created_at";

pub const INSTANCE_DEFAULT: &str = "INSERT INTO notification_policies
    (scope_id, password_change, sequence, created_at, changed_at)
    SELECT id, $1, 0, created_at, created_at FROM instance WHERE singleton = 1
    ON CONFLICT (scope_id) DO NOTHING";
