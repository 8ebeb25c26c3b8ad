//! HTTP tests: every module here is part of this one test binary (each file
//! directly under `tests/` would be another binary and another link step).
//! Each test starts the real server on a random port, with its own SQLite
//! file or its own PostgreSQL database, and talks to it over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

mod alerts;
mod audit;
mod bounces;
mod browser;
mod cache;
mod cli;
mod clients;
mod console;
mod console_browser;
mod console_feedback;
mod console_providers;
mod delivery;
mod directory;
mod documents;
mod envelopes;
mod every_endpoint;
mod fairness;
mod http_limits;
mod identities;
mod interop;
mod leegality_alias;
mod native;
mod ops;
mod outage;
mod processes;
mod providers;
mod providers_e2e;
mod retention;
mod smtp_settings;
mod startup;
mod suppressions;
mod timeouts;
mod transports;
mod upgrade;
mod webhooks;
mod zitadel;
