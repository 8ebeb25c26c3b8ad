//! PostgreSQL on sqlx: one file per area of `store/` (where `store/sqlite/`
//! keeps orgs, tokens, policies, SMTP rows and console accounts together in
//! `settings.rs`), each a set of plain functions over the pool or an open
//! transaction that run the SQL of `store/sql/`. `Store` methods call them
//! from their `Db::Postgres` arm.

pub mod alerts;
pub mod audit;
pub mod console;
pub mod delivery;
pub mod directory;
pub mod fairness;
pub mod feedback;
pub mod identities;
pub mod nodelay;
pub mod orgs;
pub mod policy;
pub mod providers;
pub mod retention;
pub mod smtp;
pub mod suppressions;
pub mod tokens;
pub mod webhooks;

/// True when a database error is a unique-constraint violation.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
