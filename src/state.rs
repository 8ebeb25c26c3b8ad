//! What every handler shares: [`AppState`], built once by
//! [`crate::app::Server`] and handed to the router. It lives apart from
//! `app.rs` so that handlers import this module and not the router that
//! imports them.

use std::sync::{Arc, OnceLock};

use crate::clock::Clock;
use crate::config::HttpConfig;
use crate::crypto::Cipher;
use crate::delivery::committer::Committer;
use crate::delivery::worker::Engine;
use crate::store::Store;

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) clock: Clock,
    pub(crate) instance_id: String,
    pub(crate) admin_token_digest: Option<String>,
    pub(crate) openapi_json: OnceLock<String>,
    pub(crate) engine: Arc<Engine>,
    pub(crate) committer: Committer,
    pub(crate) public_url: String,
    pub(crate) http: HttpConfig,
    pub(crate) sign_in_limiter: crate::domain::console::SignInLimiter,
    pub(crate) hash_gate: crate::domain::console::HashGate,
    pub(crate) api_limits: crate::domain::fairness::ApiLimits,
    pub(crate) link_limiter: crate::domain::console::SignInLimiter,
    pub(crate) pruner: Arc<crate::delivery::retention::Pruner>,
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

impl AppState {
    pub fn store(&self) -> &Store {
        &self.0.store
    }
    /// Encrypts and decrypts stored secrets (SMTP passwords).
    pub fn cipher(&self) -> &Cipher {
        &self.0.engine.cipher
    }
    pub fn clock(&self) -> &Clock {
        &self.0.clock
    }
    /// The id of this Herald instance (Zitadel's `resourceOwner` for
    /// instance-level settings).
    pub fn instance_id(&self) -> &str {
        &self.0.instance_id
    }
    pub(crate) fn admin_token_digest(&self) -> Option<&str> {
        self.0.admin_token_digest.as_deref()
    }
    pub(crate) fn openapi_json(&self) -> &str {
        self.0.openapi_json.get().map(String::as_str).unwrap_or("{}")
    }
    /// Writes accepted events (group commit) and wakes the workers.
    pub fn committer(&self) -> &Committer {
        &self.0.committer
    }
    /// The delivery engine: mailer, workers' settings.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.0.engine
    }
    /// The base of links in mails (`HERALD_PUBLIC_URL`).
    pub fn public_url(&self) -> &str {
        &self.0.public_url
    }
    /// Console sign-in attempts per client address (this process's count).
    pub fn sign_in_limiter(&self) -> &crate::domain::console::SignInLimiter {
        &self.0.sign_in_limiter
    }
    /// The argon2 work running at once (console sign-in, setup, accounts).
    pub fn hash_gate(&self) -> &crate::domain::console::HashGate {
        &self.0.hash_gate
    }
    /// Unknown approval links opened per client address (this process's count).
    pub fn link_limiter(&self) -> &crate::domain::console::SignInLimiter {
        &self.0.link_limiter
    }
    /// API rate limits per token (this process's counts).
    pub fn api_limits(&self) -> &crate::domain::fairness::ApiLimits {
        &self.0.api_limits
    }
    /// Retention: settings, this node's pruning passes, storage figures.
    pub fn pruner(&self) -> &Arc<crate::delivery::retention::Pruner> {
        &self.0.pruner
    }
    /// Tells this process's workers that mail was queued (they also poll).
    pub fn wake_workers(&self) {
        self.0.engine.wake.notify_waiters();
    }
}
