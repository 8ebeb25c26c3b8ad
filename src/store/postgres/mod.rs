//! PostgreSQL on sqlx: one file per area, mirroring `store/sqlite/`, each
//! a set of plain functions over the pool or an open transaction, running
//! the SQL of `store/sql/`. `Store` methods call them from their
//! `Db::Postgres` arm.

pub mod audit;
pub mod console;
pub mod delivery;

pub mod orgs;
pub mod policy;
pub mod smtp;
pub mod tokens;

pub use audit::{append_audit, bump_sequence, insert_audit};
pub use delivery::insert_event_rows;

/// True when a database error is a unique-constraint violation.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
