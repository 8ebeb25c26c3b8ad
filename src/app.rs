//! The running service: shared state, the router of every family, the
//! middleware stack, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderName;
use axum::middleware;
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::api;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::Cipher;
use crate::domain::tokens;
use crate::store::Store;

struct Inner {
    store: Store,
    cipher: Cipher,
    clock: Clock,
    instance_id: String,
    admin_token_digest: Option<String>,
    openapi_json: OnceLock<String>,
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    pub fn store(&self) -> &Store {
        &self.0.store
    }
    /// Encrypts and decrypts stored secrets (SMTP passwords).
    pub fn cipher(&self) -> &Cipher {
        &self.0.cipher
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
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Self-hosted notification settings and delivery. Five vendor-compatible API \
                       families (Leegality, Dbvisit StandbyMP, Zitadel, BoldSign) and the native API."
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "native", description = "Herald's own API: orgs, tokens, audit (RFC 9457 errors)"),
        (name = "ops", description = "Health, readiness, metrics, this document"),
        (name = "leegality", description = "Leegality notification configuration, departments and users (LE_ERR_SS_* errors)"),
        (name = "dbvisit", description = "Dbvisit StandbyMP instance email settings ({successful:false} errors)"),
        (name = "zitadel", description = "Zitadel notification policy (gRPC-status JSON errors)"),
    )
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "x-auth-token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Auth-Token"))),
        );
        components
            .add_security_scheme("x-api-key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-KEY"))));
    }
}

/// Builds the full router (every family, ops endpoints, middleware) and
/// records the OpenAPI document generated from the same routes.
pub fn router(state: AppState) -> Router {
    // Install the recorder before the first request is counted.
    crate::telemetry::metrics();
    let (routes, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(api::ops::router())
        .merge(api::native::router())
        .merge(api::zitadel::router())
        .merge(api::leegality::router())
        .merge(api::dbvisit::router())
        .split_for_parts();
    let json = openapi.to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    let _ = state.0.openapi_json.set(json);

    let request_id = HeaderName::from_static("x-request-id");
    routes
        .fallback(api::no_route)
        .with_state(state)
        // Innermost first: a panic becomes a 500 that `envelope` renders.
        .layer(CatchPanicLayer::custom(|_| {
            crate::error::Error::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(DefaultBodyLimit::max(api::BODY_LIMIT))
        .layer(middleware::from_fn(api::buffer_body))
        .layer(middleware::from_fn(api::envelope))
        .layer(middleware::from_fn(crate::telemetry::track_requests))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// A Herald server bound to its port, ready to run.
pub struct Server {
    state: AppState,
    listener: TcpListener,
}

impl Server {
    /// Connects to the database, applies migrations and binds the listener.
    pub async fn build(config: &Config, clock: Clock) -> anyhow::Result<Server> {
        let store = Store::connect(config.database_url.as_str()).await?;
        store.migrate().await?;
        let instance_id = store.ensure_instance(clock.now()).await?;
        let cipher = Cipher::load(config.secret_key.as_ref(), store.sqlite_file())?;
        check_key(&store, &cipher).await?;
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("listen on {}", config.listen))?;
        let state = AppState(Arc::new(Inner {
            store,
            cipher,
            clock,
            instance_id,
            admin_token_digest: config.admin_token.as_ref().map(|t| tokens::digest(t.expose())),
            openapi_json: OnceLock::new(),
        }));
        Ok(Server { state, listener })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets
    /// in-flight requests finish (up to 30 s) and closes the database.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Server { state, listener } = self;
        let app = router(state.clone());
        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping_tx.send(true);
        });
        let mut stopping = stopping_rx.clone();
        let drain_limit = async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        };
        tokio::select! {
            served = serve => served.context("serve HTTP")?,
            () = drain_limit => tracing::warn!("in-flight requests still running after 30 s; stopping anyway"),
        }
        state.store().close().await;
        Ok(())
    }
}

/// Refuses to start with a key other than the one this database's secrets
/// were written with: decryption would fail at the first send otherwise.
async fn check_key(store: &Store, cipher: &Cipher) -> anyhow::Result<()> {
    if store.key_check().await?.is_none() {
        // Written only if still unset: of nodes starting at once, the first
        // wins, and the others are checked against it just below.
        store.set_key_check(&cipher.key_check()?).await?;
    }
    let check = store.key_check().await?.context("the key check was not stored")?;
    anyhow::ensure!(
        cipher.verify_key_check(&check),
        "the secret key does not match the one this database was set up with: set HERALD_SECRET_KEY \
         (or restore herald.key beside the SQLite file) to the original key"
    );
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; draining");
}
