//! SQL of `store/orgs.rs`, shared by both drivers.

pub const INSERT_ORG: &str = "INSERT INTO orgs (id, name, seq, created_at) VALUES ($1, $2, 0, $3)";

pub const ORGS: &str = "SELECT id, name, created_at FROM orgs ORDER BY created_at, id";

pub const ORG: &str = "SELECT id, name, created_at FROM orgs WHERE id = $1";
