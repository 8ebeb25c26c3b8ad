//! Herald: a self-hosted notification service. It keeps organisations'
//! email settings and serves them through five vendor-compatible API
//! families over one domain model (see `CONTRACT.md`).
//!
//! The library is what the binary, the tests and the benchmarks share:
//! [`app::Server`] runs the HTTP API over a [`store::Store`].

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod crypto;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod secret;
pub mod serve;
pub mod state;
pub mod store;
pub mod telemetry;

pub use app::Server;
pub use config::Config;
pub use store::Store;
