//! Start-up as an operator meets it (issue 13, finding 8), through the real
//! `herald` binary with stderr piped (so: not a terminal): every failure is
//! said once, with what failed and why; nothing is created when the port is
//! taken; the start-up line says where the files are.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support::{Backend, TestDb};

fn herald(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .current_dir(dir)
        .env_remove("HERALD_ADMIN_TOKEN")
        .env_remove("HERALD_SECRET_KEY")
        .env_remove("HERALD_DATABASE_URL")
        .env_remove("HERALD_LOG_FORMAT")
        .env("HERALD_LOG", "info")
        .output()
        .unwrap()
}

/// The failure's stderr, checked for what every failure shares: a non-zero
/// exit, no colour codes, and one `herald: …` line saying why.
fn failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "ANSI codes in piped stderr: {stderr:?}");
    let reasons: Vec<&str> = stderr.lines().filter(|l| l.starts_with("herald: ")).collect();
    assert_eq!(reasons.len(), 1, "the error is said exactly once: {stderr}");
    assert!(!stderr.contains("ERROR"), "and not again as a log line: {stderr}");
    reasons[0].to_owned()
}

#[test]
fn an_sqlite_file_that_cannot_be_opened_is_named_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("no-such-dir").join("herald.db");
    let out = herald(&["migrate", "--database-url", &format!("sqlite://{}", file.display())], dir.path());
    let reason = failure(&out);
    assert!(reason.contains(&file.display().to_string()), "{reason}");
    assert_eq!(reason.matches("unable to open database file").count(), 1, "{reason}");
}

#[test]
fn postgres_on_a_closed_port_says_connection_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://herald:canary-pw@127.0.0.1:{port}/herald");
    let reason = failure(&herald(&["migrate", "--database-url", &url], dir.path()));
    assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
    assert!(reason.to_lowercase().contains("connection refused"), "{reason}");
    assert!(!reason.contains("pool timed out"), "{reason}");
    assert!(!reason.contains("canary-pw"), "{reason}");
}

#[tokio::test]
async fn a_missing_postgres_database_is_said_once() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let missing = format!("{}_missing", db.url);
    let dir = tempfile::tempdir().unwrap();
    let reason = failure(&herald(&["migrate", "--database-url", &missing], dir.path()));
    assert_eq!(reason.matches("does not exist").count(), 1, "{reason}");
}

#[test]
fn nothing_is_created_when_the_port_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = herald(&["serve", "--listen", &addr, "--database-url", "sqlite://herald.db"], dir.path());
    let reason = failure(&out);
    assert!(reason.contains(&format!("listen on {addr}")), "{reason}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "created before the port was known to be free: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_listens_on_a_host_name_and_says_where_its_files_are() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "localhost:0", "--database-url", "sqlite://herald.db"])
        .current_dir(dir.path())
        .env_remove("HERALD_ADMIN_TOKEN")
        .env_remove("HERALD_SECRET_KEY")
        .env("HERALD_LOG_FORMAT", "json")
        .env("HERALD_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let listening = loop {
        let line = rx.recv_timeout(std::time::Duration::from_secs(60)).expect("no start-up line");
        let Ok(event) = serde_json::from_str::<Value>(&line) else { continue };
        if event["fields"]["message"] == "herald listening" {
            break event["fields"].clone();
        }
    };
    let addr: std::net::SocketAddr = listening["addr"].as_str().unwrap().parse().unwrap();
    let answer = reqwest::get(format!("http://{addr}/healthz")).await.map(|r| r.status());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answer.unwrap(), 200);
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let at = |name: &str| dir.path().join(name).display().to_string();
    assert_eq!(listening["database"], at("herald.db"), "{listening}");
    assert_eq!(listening["key"], at("herald.key"), "{listening}");
    assert_eq!(listening["outbox"], at("outbox"), "{listening}");
}

#[test]
fn help_names_the_environment_only_settings() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["serve", "--help"]] {
        let out = herald(args, dir.path());
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        for name in ["HERALD_ADMIN_TOKEN", "HERALD_SECRET_KEY"] {
            assert!(help.contains(name), "{args:?} --help names {name}: {help}");
        }
    }
}

/// sqlx 0.9.0 leaves Nagle's algorithm on, and a statement whose messages
/// leave in two TLS records then waits for the server's delayed ACK (40 ms
/// on Linux; bench/RESULTS.md, tenth stop). The store sets `TCP_NODELAY` on
/// each connection of its pool (`store/postgres/nodelay.rs`): checked here
/// on the server's own sockets, found by the client ports PostgreSQL
/// reports for the test's database.
#[tokio::test]
async fn postgres_pool_connections_have_tcp_nodelay() {
    use sqlx::Connection;

    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let app = crate::support::TestApp::spawn_on(Backend::Postgres, db).await;
    let org = app.new_org().await;
    for i in 0..8 {
        let body = serde_json::json!({ "type": "message.send", "data": { "to": format!("u{i}@example.com"), "subject": "s", "text": "t" } });
        assert_eq!(app.post("/v1/events", &org.token, body).await.status, 202);
    }
    let mut conn = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let ports: Vec<(i32, i32)> = sqlx::query_as(
        "SELECT client_port, inet_server_port() FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND client_port > 0",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(!ports.is_empty(), "the server has connections to its database");
    for (client, server) in ports {
        let nodelay = herald::store::tcp_nodelay_of(client as u16, server as u16).unwrap();
        assert_eq!(nodelay, Some(true), "the pool's connection from port {client} has TCP_NODELAY");
    }
}
