//! `TestApp`: the real server on `127.0.0.1:0` over a fresh database.

pub mod console;
pub mod identity;
pub mod smtp;

use std::net::SocketAddr;
use std::path::PathBuf;

use herald::clock::Clock;
use herald::secret::Secret;
use herald::{Config, Server, Store};
use reqwest::Method;
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::oneshot;

/// Everything Herald logs in this test process, at every level: the secret
/// canaries search it.
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub fn capture_logs() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("herald=trace,tower_http=trace,axum=trace,sqlx=trace")
            .with_writer(|| LogSink)
            .with_ansi(false)
            .try_init();
    });
}

/// All log output captured so far, as text.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
}

/// 32 bytes of 0x2a, base64: the PostgreSQL tests' `HERALD_SECRET_KEY`.
pub const TEST_SECRET_KEY: &str = "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(TestApp)` once per backend:
/// `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_each_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = crate::support::TestApp::spawn(crate::support::Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = crate::support::TestApp::spawn(crate::support::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

/// The PostgreSQL server tests use, or `None` (said loudly) when unset.
/// Under CI an unset URL is a failure, not a skip.
pub fn postgres_base_url() -> Option<String> {
    match std::env::var("HERALD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(std::env::var_os("CI").is_none(), "CI must set HERALD_TEST_POSTGRES_URL");
            // The harness captures `eprintln!` of passing tests; a write to the
            // stderr handle is not captured, so the skip is seen.
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED: every PostgreSQL test, because HERALD_TEST_POSTGRES_URL is not set ***\n"
                );
            });
            None
        }
    }
}

/// `base` with its database name replaced by `db`.
fn with_database(base: &str, db: &str) -> String {
    let (path, query) = match base.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (base, None),
    };
    let root = match path.rsplit_once('/') {
        Some((root, _)) if root.contains("://") && root.len() > root.find("://").unwrap() + 2 => root,
        _ => path,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

/// A fresh, empty database for one test; removed when dropped.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
    pub sqlite_path: Option<PathBuf>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("herald.db");
                Some(TestDb {
                    url: format!("sqlite://{}", path.display()),
                    _dir: Some(dir),
                    pg: None,
                    sqlite_path: Some(path),
                })
            }
            Backend::Postgres => {
                let base = postgres_base_url()?;
                let name = format!("herald_test_{}", uuid::Uuid::now_v7().simple());
                let mut conn = sqlx::PgConnection::connect(&base).await.expect("connect to HERALD_TEST_POSTGRES_URL");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
                Some(TestDb { url: with_database(&base, &name), _dir: None, pg: Some((base, name)), sqlite_path: None })
            }
        }
    }

    /// The same database for a second server (another node); only the
    /// original removes it.
    pub fn share(&self) -> TestDb {
        TestDb { url: self.url.clone(), _dir: None, pg: None, sqlite_path: self.sqlite_path.clone() }
    }

    /// Every byte the database holds, as text, for secret canaries: the
    /// SQLite file and its WAL, or every row of every PostgreSQL table.
    pub async fn everything(&self) -> String {
        if let Some(path) = &self.sqlite_path {
            let mut bytes = std::fs::read(path).unwrap_or_default();
            bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let mut all = String::new();
        for t in tables {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT t::text FROM \"{t}\" t")))
                .fetch_all(&mut conn)
                .await
                .unwrap();
            all.push_str(&rows.join("\n"));
        }
        all
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, name)) = self.pg.take() {
            // Drop runs outside async; a short-lived runtime on its own thread
            // removes the database (FORCE ends the server's connections).
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&mut conn)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    /// The inbound SMTP listener (`config.inbound_listen`), when started.
    pub inbound_addr: Option<SocketAddr>,
    pub state: herald::state::AppState,
    /// The file transport's directory (`HERALD_OUTBOX_DIR`).
    pub outbox_dir: PathBuf,
    _outbox: tempfile::TempDir,
    pub backend: Backend,
    pub admin_token: String,
    pub store: Store,
    pub clock: Clock,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    // Last: the database outlives the server.
    pub db: TestDb,
}

/// An org created through the API, with a token of its own.
#[derive(Debug, Clone)]
pub struct TestOrg {
    pub id: String,
    pub token: String,
}

/// A response, read whole.
#[derive(Debug)]
pub struct TestResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl TestResponse {
    pub fn content_type(&self) -> &str {
        self.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// How a request authenticates.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    None,
    Bearer(&'a str),
    XAuthToken(&'a str),
    XApiKey(&'a str),
}

impl TestApp {
    /// Starts a server on its own database; `None` when the backend is not
    /// available (PostgreSQL without `HERALD_TEST_POSTGRES_URL`).
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        let db = TestDb::new(backend).await?;
        Some(Self::spawn_on(backend, db).await)
    }

    pub async fn spawn_on(backend: Backend, db: TestDb) -> TestApp {
        Self::spawn_with(backend, db, |_| {}).await
    }

    /// Like [`TestApp::spawn_on`], with a chance to change the config first.
    pub async fn spawn_with(backend: Backend, db: TestDb, change: impl FnOnce(&mut Config)) -> TestApp {
        capture_logs();
        let admin_token = format!("test-admin-{}", uuid::Uuid::now_v7().simple());
        let outbox = tempfile::tempdir().unwrap();
        let mut config = Config::new(db.url.clone());
        // Test SMTP servers listen on loopback; the policy must let them in.
        config.delivery.allow_hosts = vec!["127.0.0.1".into(), "localhost".into()];
        config.delivery.outbox_dir = outbox.path().join("outbox");
        config.delivery.poll = std::time::Duration::from_millis(50);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.admin_token = Some(Secret::new(admin_token.clone()));
        // PostgreSQL needs an explicit key; SQLite tests use the key file.
        if backend == Backend::Postgres {
            config.secret_key = Some(Secret::new(TEST_SECRET_KEY));
        }
        change(&mut config);
        let outbox_dir = config.delivery.outbox_dir.clone();
        let clock = Clock::default();
        let server = Server::build(&config, clock.clone()).await.expect("build server");
        let addr = server.local_addr().unwrap();
        let inbound_addr = server.inbound_addr();
        let store = server.state().store().clone();
        let state = server.state().clone();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            inbound_addr,
            state,
            outbox_dir,
            _outbox: outbox,
            backend,
            admin_token,
            store,
            clock,
            client: client(),
            shutdown: Some(tx),
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request. `body` is sent as JSON (`Content-Type: application/json`).
    pub async fn call(&self, method: Method, path: &str, auth: Auth<'_>, body: Option<Value>) -> TestResponse {
        let mut req = self.client.request(method, self.url(path));
        req = match auth {
            Auth::None => req,
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::XAuthToken(t) => req.header("X-Auth-Token", t),
            Auth::XApiKey(t) => req.header("X-API-KEY", t),
        };
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("send request")).await
    }

    /// Sends a prepared request builder (for raw bodies and odd headers).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> TestResponse {
        read(req.send().await.expect("send request")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::GET, path, Auth::Bearer(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.call(Method::POST, path, Auth::Bearer(token), Some(body)).await
    }

    /// Creates an org (admin API) and a token for it.
    pub async fn new_org(&self) -> TestOrg {
        let name = format!("org-{}", uuid::Uuid::now_v7().simple());
        let res = self.post("/admin/v1/orgs", &self.admin_token, serde_json::json!({ "name": name })).await;
        assert_eq!(res.status, 201, "{}", res.text);
        let id = res.json["id"].as_str().unwrap().to_owned();
        let res = self
            .post(&format!("/admin/v1/orgs/{id}/tokens"), &self.admin_token, serde_json::json!({"name": "t"}))
            .await;
        assert_eq!(res.status, 201, "{}", res.text);
        TestOrg { id, token: res.json["token"].as_str().unwrap().to_owned() }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn read(res: reqwest::Response) -> TestResponse {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    TestResponse { status, headers, text, json }
}

#[test]
fn database_names_are_replaced() {
    assert_eq!(with_database("postgres://postgres@127.0.0.1:5432/test", "x"), "postgres://postgres@127.0.0.1:5432/x");
    assert_eq!(with_database("postgres://u@h/test?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
}

/// A reqwest client for tests. reqwest is built without a bundled crypto
/// provider (Herald's TLS is rustls with ring), so one is installed first;
/// without it, building a client panics.
pub fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

fn client() -> reqwest::Client {
    client_builder().build().expect("a reqwest client")
}
