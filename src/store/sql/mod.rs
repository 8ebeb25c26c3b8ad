//! The SQL text of the store, one file per area, shared by both drivers:
//! `$n` placeholders (rusqlite binds them too), and where the dialects
//! differ both texts side by side.

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
