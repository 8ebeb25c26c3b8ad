//! The running service: the router of every family, the middleware stack,
//! start-up and graceful shutdown. The state handlers share is in
//! [`crate::state`].

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
use crate::delivery::committer::Committer;
use crate::delivery::http::{OutboundHttp, OutboundHttpConfig};
use crate::delivery::mailer::{Mailer, MailerConfig};
use crate::delivery::retention::Pruner;
use crate::delivery::worker::{self, Engine, WorkerConfig};
use crate::domain::tokens;
use crate::state::{AppState, Inner};
use crate::store::Store;

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
        (name = "boldsign", description = "BoldSign sender identities (validation-problem and {error} errors)"),
        (name = "approval", description = "The HTML page a sender identity's mailed link opens (approve, deny, revoke)"),
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
        .merge(api::boldsign::router())
        .routes(utoipa_axum::routes!(api::approval::show, api::approval::act))
        .split_for_parts();
    // Zitadel's gRPC, gRPC-web and Connect transports, and the console (HTML
    // for people): neither is in the OpenAPI document.
    let routes = routes.merge(api::zitadel::rpc::router(state.clone())).merge(crate::console::router());
    let json = serde_json::to_value(&openapi)
        .map(|mut doc| {
            api::openapi::finish(&mut doc);
            doc
        })
        .and_then(|doc| serde_json::to_string_pretty(&doc))
        .unwrap_or_else(|_| "{}".to_owned());
    let _ = state.0.openapi_json.set(json);
    let body_timeout = state.0.http.body_timeout;

    let request_id = HeaderName::from_static("x-request-id");
    let app = routes
        .fallback(api::no_route)
        .with_state(state)
        // Innermost first: a panic becomes a 500 that `envelope` renders.
        .layer(CatchPanicLayer::custom(|_| {
            crate::error::Error::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        // The per-path limit is enforced by `buffer_body`; this is the largest.
        .layer(DefaultBodyLimit::max(api::EVENTS_BODY_LIMIT))
        .layer(middleware::from_fn_with_state(body_timeout, api::buffer_body))
        .layer(middleware::from_fn(api::envelope))
        .layer(middleware::from_fn(crate::telemetry::track_requests))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!(
                        "http",
                        method = %req.method(),
                        path = %api::loggable_path(req.uri().path()),
                        request_id = %id
                    )
                })
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    // Path aliases are resolved before routing, so this wraps the whole app.
    Router::new().fallback_service(app).layer(middleware::map_request(api::leegality::base_path_alias))
}

/// The inbound SMTP listener's limits: how long one read may take, and
/// sessions at once.
const INBOUND_READ_TIMEOUT: Duration = Duration::from_secs(60);
const INBOUND_MAX_CONNECTIONS: usize = 50;

/// A Herald server bound to its port, ready to run.
pub struct Server {
    state: AppState,
    listener: TcpListener,
    workers: bool,
    /// The inbound SMTP listener for bounces (`--inbound-listen`).
    inbound: Option<TcpListener>,
}

/// Opens the database (migrated, key checked) and builds the delivery engine.
async fn open(config: &Config, clock: Clock) -> anyhow::Result<(Arc<Engine>, String)> {
    let store = Store::connect(config.database_url.as_str()).await?;
    store.migrate().await?;
    let instance_id = store.ensure_instance(clock.now()).await?;
    let cipher = Cipher::load(config.secret_key.as_ref(), store.sqlite_file())?;
    check_key(&store, &cipher).await?;
    let d = &config.delivery;
    let loops = 2;
    let mailer = Mailer::new(MailerConfig {
        allow_hosts: d.allow_hosts.clone(),
        outbox_dir: d.outbox_dir.clone(),
        domain: config.mail_domain(),
        pool_size: u32::try_from(d.concurrency.max(1)).unwrap_or(u32::MAX),
        smtp_timeout: d.smtp_timeout,
    });
    mailer.check_outbox_dir()?;
    let express_mailer = Mailer::new(mailer.config().clone());
    let http = OutboundHttp::new(&OutboundHttpConfig {
        allow_hosts: d.allow_hosts.clone(),
        timeout: d.smtp_timeout,
        ..OutboundHttpConfig::default()
    })?;
    let engine = Engine {
        store,
        cipher,
        oauth_tokens: Arc::new(crate::delivery::oauth2::TokenCache::with_clock(clock.clone())),
        clock,
        mailer: Arc::new(mailer),
        http,
        wake: Arc::new(tokio::sync::Notify::new()),
        express: Default::default(),
        express_lane: crate::delivery::express::Lane::start().context("start the express lane's thread")?,
        express_mailer: Arc::new(express_mailer),
        config: WorkerConfig {
            loops,
            concurrency: d.concurrency.div_ceil(loops).max(1),
            lease: d.lease,
            poll: d.poll,
            circuit_failures: d.circuit_failures,
            circuit_cooldown: d.circuit_cooldown,
            rate_window: d.rate_window,
            ..WorkerConfig::default()
        },
    };
    Ok((Arc::new(engine), instance_id))
}

/// Runs the delivery workers until `stop` resolves (`herald worker`).
pub async fn run_workers(config: &Config, clock: Clock, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (engine, _) = open(config, clock).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(worker::run(engine.clone(), stop_rx.clone()));
    let pruner = Arc::new(Pruner::new(engine.store.clone(), engine.clock.clone(), config.retention.clone()));
    let pruning = tokio::spawn(pruner.run(stop_rx));
    tracing::info!(database = engine.store.location(), "herald worker running");
    stop.await;
    let _ = stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(30), workers).await.is_err() {
        tracing::warn!("sends still running after 30 s; stopping anyway (their leases will expire)");
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), pruning).await;
    engine.store.close().await;
    Ok(())
}

impl Server {
    /// Binds the listener, then connects to the database and applies
    /// migrations. In that order: when the address is taken, nothing (no
    /// database file, no key file) has been created yet.
    pub async fn build(config: &Config, clock: Clock) -> anyhow::Result<Server> {
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("listen on {}", config.listen))?;
        let inbound = match config.inbound_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| format!("inbound-listen on {addr}"))?),
            None => None,
        };
        let (engine, instance_id) = open(config, clock).await?;
        let local = listener.local_addr()?;
        // With port 0 the real port is known only now.
        let public_url = match &config.delivery.public_url {
            Some(_) => config.public_url(),
            None => format!("http://{local}"),
        };
        let committer = Committer::start(&engine);
        let pruner = Arc::new(Pruner::new(engine.store.clone(), engine.clock.clone(), config.retention.clone()));
        let state = AppState(Arc::new(Inner {
            store: engine.store.clone(),
            clock: engine.clock.clone(),
            instance_id,
            admin_token_digest: config.admin_token.as_ref().map(|t| tokens::digest(t.expose())),
            openapi_json: OnceLock::new(),
            engine,
            committer,
            public_url,
            http: config.http.clone(),
            sign_in_limiter: Default::default(),
            hash_gate: crate::domain::console::HashGate::new(config.console.hash_permits, config.console.hash_wait),
            api_limits: crate::domain::fairness::ApiLimits::new(i64::from(config.http.api_rate_per_minute)),
            link_limiter: Default::default(),
            pruner,
        }));
        Ok(Server { state, listener, workers: config.delivery.workers, inbound })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The inbound SMTP listener's address, when there is one.
    pub fn inbound_addr(&self) -> Option<SocketAddr> {
        self.inbound.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets
    /// in-flight requests finish (up to 30 s) and closes the database.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Server { state, listener, workers, inbound } = self;
        let (stop_workers, workers_stop) = tokio::sync::watch::channel(false);
        let pruning = tokio::spawn(state.pruner().clone().run(stop_workers.subscribe()));
        let workers = workers.then(|| tokio::spawn(worker::run(state.engine().clone(), workers_stop)));
        let app = router(state.clone());
        let (stopping_tx, stopping_rx) = tokio::sync::watch::channel(false);
        let serve = crate::serve::serve(listener, app, state.0.http.clone(), async move {
            shutdown.await;
            let _ = stopping_tx.send(true);
        });
        let inbound = inbound.map(|l| {
            let config = crate::delivery::inbound::InboundConfig {
                hostname: state.engine().mailer.config().domain.clone(),
                read_timeout: INBOUND_READ_TIMEOUT,
                max_connections: INBOUND_MAX_CONNECTIONS,
            };
            let intake = Arc::new(crate::delivery::bounce_intake::BounceIntake { engine: state.engine().clone() });
            let cipher = crate::delivery::bounce_intake::EngineCipher(state.engine().clone());
            tokio::spawn(crate::delivery::inbound::serve(l, config, cipher, intake, stopping_rx.clone()))
        });
        let mut stopping = stopping_rx.clone();
        let drain_limit = async move {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
        };
        tokio::select! {
            () = serve => {}
            () = drain_limit => tracing::warn!("in-flight requests still running after 30 s; stopping anyway"),
        }
        if let Some(inbound) = inbound {
            // Stopped with the HTTP listener; its sessions answer 421.
            let _ = tokio::time::timeout(INBOUND_READ_TIMEOUT + Duration::from_secs(1), inbound).await;
        }
        let _ = stop_workers.send(true);
        if let Some(workers) = workers
            && tokio::time::timeout(Duration::from_secs(30), workers).await.is_err()
        {
            tracing::warn!("sends still running after 30 s; stopping anyway (their leases will expire)");
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), pruning).await;
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
