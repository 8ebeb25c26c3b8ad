//! The real `herald` binary as separate processes: killed with SIGKILL in
//! the middle of sending (nothing accepted is lost), and two processes on
//! one PostgreSQL database (every mail exactly once).

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::smtp::{Mode, TestSmtp};
use crate::support::{Backend, TEST_SECRET_KEY, TestDb};

/// A `herald` process with its settings.
struct Node {
    child: Child,
    url: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Env {
    db_url: String,
    admin: String,
    outbox: tempfile::TempDir,
    backend: Backend,
}

impl Env {
    fn start(&self, args: &[&str], port: u16, lease_seconds: u32, name: &str) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.args(args)
            .env("HERALD_DATABASE_URL", &self.db_url)
            .env("HERALD_ADMIN_TOKEN", &self.admin)
            .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HERALD_SMTP_ALLOW_HOSTS", "127.0.0.1")
            .env("HERALD_OUTBOX_DIR", self.outbox.path())
            .env("HERALD_LEASE_SECONDS", lease_seconds.to_string())
            .env("HERALD_WORKER_POLL_MS", "50")
            .env("HERALD_LOG", "warn")
            // Message-IDs carry the public URL's host: the sink can tell
            // which process sent a mail.
            .env("HERALD_PUBLIC_URL", format!("http://{name}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.backend == Backend::Postgres {
            cmd.env("HERALD_SECRET_KEY", TEST_SECRET_KEY);
        }
        Node { child: cmd.spawn().expect("start herald"), url: format!("http://127.0.0.1:{port}") }
    }
}

async fn wait_healthy(client: &reqwest::Client, node: &Node) {
    for _ in 0..300 {
        if let Ok(res) = client.get(format!("{}/readyz", node.url)).send().await
            && res.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("herald did not become ready at {}", node.url);
}

/// Creates an org whose SMTP server is `sink`; returns its token.
async fn org_sending_to(client: &reqwest::Client, node: &Node, admin: &str, sink: &TestSmtp) -> String {
    let admin_post = |path: String, body: serde_json::Value| async move {
        let res = client.post(format!("{}{path}", node.url)).bearer_auth(admin).json(&body).send().await.unwrap();
        res.json::<serde_json::Value>().await.unwrap()
    };
    let org = admin_post("/admin/v1/orgs".into(), json!({ "name": "Crash Test Ltd" })).await;
    let id = org["id"].as_str().unwrap();
    let token = admin_post(format!("/admin/v1/orgs/{id}/tokens"), json!({ "name": "t" })).await;
    let token = token["token"].as_str().unwrap().to_owned();
    let config = json!({
        "emailServerHost": "127.0.0.1", "emailServerPort": sink.port().to_string(), "tlsEnabled": false,
        "fromEmail": "ops@crash.example", "enabled": true
    });
    let res = client
        .post(format!("{}/api/v1/notification-config", node.url))
        .header("X-Auth-Token", &token)
        .json(&config)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    token
}

/// Posts `n` events from 8 concurrent clients; returns the notification ids
/// of the events that got a 202.
async fn post_events(client: &reqwest::Client, node: &Node, token: &str, n: usize) -> Vec<String> {
    let body = |i: usize| json!({ "type": "message.send", "data": { "to": format!("user{i}@example.com"), "subject": format!("event {i}"), "text": "hi" } });
    let ids = futures::stream::iter(0..n)
        .map(|i| async move {
            let res = client.post(format!("{}/v1/events", node.url)).bearer_auth(token).json(&body(i)).send().await;
            match res {
                Ok(r) if r.status() == 202 => {
                    let v: serde_json::Value = r.json().await.ok()?;
                    v["notifications"][0]["id"].as_str().map(str::to_owned)
                }
                _ => None,
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    ids.into_iter().flatten().collect()
}

use futures::StreamExt;

/// How often each notification id arrived at `sink` (by Message-ID).
fn arrivals(sink: &TestSmtp) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for m in sink.messages() {
        let id = m.header("Message-ID").unwrap_or_default();
        let id = id.trim_start_matches('<').split('@').next().unwrap_or_default().to_owned();
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

async fn wait_all_delivered(sink: &TestSmtp, ids: &[String], within: Duration) -> HashMap<String, usize> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen = arrivals(sink);
        if ids.iter().all(|id| seen.contains_key(id)) {
            return seen;
        }
        if tokio::time::Instant::now() > deadline {
            let missing = ids.iter().filter(|id| !seen.contains_key(*id)).count();
            panic!("{missing} of {} accepted events were never delivered", ids.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn env(backend: Backend) -> Option<(Env, TestDb)> {
    let db = TestDb::new(backend).await?;
    let env = Env {
        db_url: db.url.clone(),
        admin: format!("test-admin-{}", uuid::Uuid::now_v7().simple()),
        outbox: tempfile::tempdir().unwrap(),
        backend,
    };
    Some((env, db))
}

/// SIGKILL while sending; after a restart every accepted event arrives, and
/// only sends that were in flight at the kill arrive twice.
async fn kill_9_loses_nothing(backend: Backend) {
    let Some((env, _db)) = env(backend).await else { return };
    let sink = TestSmtp::start(Mode::Plain).await;
    // Slow enough that the kill lands while mail is being sent.
    sink.set_delay(Duration::from_millis(40));
    let client = crate::support::client_builder().build().unwrap();
    let port = free_port();
    let node = env.start(&["serve"], port, 2, "first.test");
    wait_healthy(&client, &node).await;
    let token = org_sending_to(&client, &node, &env.admin, &sink).await;
    let ids = post_events(&client, &node, &token, 400).await;
    assert_eq!(ids.len(), 400, "every event was accepted before the kill");
    // Kill in the middle of sending.
    for _ in 0..400 {
        if sink.messages().len() >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before_kill = sink.messages().len();
    drop(node); // SIGKILL
    assert!(before_kill < 400, "the kill came too late to test anything ({before_kill} delivered)");
    sink.set_delay(Duration::ZERO);
    let node = env.start(&["serve"], port, 2, "second.test");
    wait_healthy(&client, &node).await;
    let seen = wait_all_delivered(&sink, &ids, Duration::from_secs(60)).await;
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("{backend:?}: SIGKILL after {before_kill} of 400 mails; {duplicates} sent twice after the restart");
    // In flight at the kill: at most 32 sends (the default concurrency) plus
    // the results of one chunk being written per claim loop.
    assert!(duplicates <= 64, "{duplicates} duplicates; only in-flight sends may repeat");
    assert_eq!(seen.len(), ids.len(), "nothing but accepted events was sent");
    drop(node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_loses_nothing() {
    kill_9_loses_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_kill_9_loses_nothing() {
    kill_9_loses_nothing(Backend::Postgres).await;
}

/// Two processes on one PostgreSQL database (an API node with workers and a
/// worker-only node) deliver 2,000 events, each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_nodes_deliver_each_mail_once() {
    let Some((env, _db)) = env(Backend::Postgres).await else { return };
    let sink = TestSmtp::start(Mode::Plain).await;
    let client = crate::support::client_builder().build().unwrap();
    let api = env.start(&["serve"], free_port(), 60, "node-a.test");
    wait_healthy(&client, &api).await;
    let worker = env.start(&["worker"], free_port(), 60, "node-b.test");
    let token = org_sending_to(&client, &api, &env.admin, &sink).await;
    let ids = post_events(&client, &api, &token, 2000).await;
    assert_eq!(ids.len(), 2000);
    let seen = wait_all_delivered(&sink, &ids, Duration::from_secs(120)).await;
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{} mails arrived more than once", twice.len());
    assert_eq!(seen.len(), 2000);
    // Both processes took part (told apart by their Message-ID domains).
    let by_node = |node: &str| {
        sink.messages()
            .iter()
            .filter(|m| m.header("Message-ID").unwrap_or_default().ends_with(&format!("@{node}>")))
            .count()
    };
    let (a, b) = (by_node("node-a.test"), by_node("node-b.test"));
    assert_eq!(a + b, 2000);
    assert!(a > 0 && b > 0, "node a sent {a}, node b sent {b}");
    drop(worker);
    drop(api);
}

/// Fair delivery across processes (issue 19): org A has 1,000 mails due
/// and org B one; two `herald worker` processes then start on the same
/// PostgreSQL database. B's mail is in the first claim round (2 processes ×
/// 2 loops × 100 rows), asserted on the order mails reach the sink, not on
/// time; the oldest-first claim delivered it last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_workers_claim_fairly() {
    let Some((env, _db)) = env(Backend::Postgres).await else { return };
    // reqwest needs a process-wide TLS provider when no server of this
    // process installed one yet (this test run alone).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sink = TestSmtp::start(Mode::Plain).await;
    let client = crate::support::client_builder().build().unwrap();
    let api = env.start(&["serve", "--no-workers"], free_port(), 60, "api.test");
    wait_healthy(&client, &api).await;
    let a = org_sending_to(&client, &api, &env.admin, &sink).await;
    let b = org_sending_to(&client, &api, &env.admin, &sink).await;
    let a_ids = post_events(&client, &api, &a, 1000).await;
    let b_ids = post_events(&client, &api, &b, 1).await;
    assert_eq!((a_ids.len(), b_ids.len()), (1000, 1));
    let w1 = env.start(&["worker"], free_port(), 60, "w1.test");
    let w2 = env.start(&["worker"], free_port(), 60, "w2.test");
    let all: Vec<String> = a_ids.iter().chain(&b_ids).cloned().collect();
    wait_all_delivered(&sink, &all, Duration::from_secs(120)).await;
    let order: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| {
            m.header("Message-ID")
                .unwrap_or_default()
                .trim_start_matches('<')
                .split('@')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    let at = order.iter().position(|id| *id == b_ids[0]).unwrap();
    // Oldest-first would deliver it last (number 1000). It is claimed in the
    // first round; where it arrives also depends on how soon the worker that
    // claimed it gets going, so the bound leaves room for a slow start on a
    // busy machine (one run at load 10 saw 455).
    assert!(at < 600, "org B's mail arrived as number {at} of {}", order.len());
    drop((w1, w2, api));
}
