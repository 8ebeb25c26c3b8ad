//! The real `herald` binary: CLI commands, first-start bootstrap token,
//! SIGTERM shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::{Backend, TestDb};

fn herald(db: &TestDb, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env("HERALD_DATABASE_URL", &db.url)
        .env_remove("HERALD_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "herald {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    for _ in 0..100 {
        if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("herald did not become ready");
}

async fn cli_commands_and_bootstrap(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let org = herald(&db, &["org", "create", "Acme"]);
    let org_id = org["id"].as_str().unwrap();
    let token = herald(&db, &["token", "create", "--org", org_id, "--name", "ci"]);
    let org_token = token["token"].as_str().unwrap().to_owned();
    assert!(org_token.starts_with("hrd_"));

    let port = free_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_herald"));
    if backend == Backend::Postgres {
        serve.env("HERALD_SECRET_KEY", crate::support::TEST_SECRET_KEY);
    }
    let mut child = serve
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HERALD_DATABASE_URL", &db.url)
        .env_remove("HERALD_ADMIN_TOKEN")
        .env("HERALD_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let client = crate::support::client_builder().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&client, &base).await;
    let lines: Vec<String> = rx.try_iter().collect();
    let admin = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("hrd_").map(|t| format!("hrd_{t}")))
        .unwrap_or_else(|| panic!("no bootstrap token printed: {lines:?}"));

    let orgs: Value =
        client.get(format!("{base}/admin/v1/orgs")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(orgs["orgs"][0]["id"], org_id);
    let audit = client.get(format!("{base}/v1/audit")).header("X-Auth-Token", &org_token).send().await.unwrap();
    assert_eq!(audit.status(), 200);
    let audit: Value = audit.json().await.unwrap();
    assert_eq!(audit["items"][1]["actor"], "cli");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(exit.success(), "SIGTERM ends herald with status 0, got {exit:?}");
    let rest: Vec<String> = rx.iter().collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
    assert!(!rest.iter().chain(&lines).any(|l| l.contains(&org_token)), "tokens are never logged");
    assert_eq!(lines.iter().filter(|l| l.contains(&admin)).count(), 1, "the admin token is printed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cli_commands_and_bootstrap() {
    cli_commands_and_bootstrap(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cli_commands_and_bootstrap() {
    cli_commands_and_bootstrap(Backend::Postgres).await;
}
