//! Webhooks (issue 18) against a real receiver on a socket: signatures
//! checked by the Standard Webhooks reference library (Python
//! `standardwebhooks`, installed into `.venv-ci` by `.ci/run`), every event
//! once and in order after the receiver was down, secret rotation with an
//! overlap, endpoints disabled after 24 h of failures, write-only secrets,
//! bad input and other orgs' ids.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestApp, TestOrg, logs};

on_each_backend!(
    deliveries_are_signed_for_the_reference_library_and_old_timestamps_are_rejected,
    a_receiver_down_for_a_while_gets_every_event_once_in_order,
    a_rotated_secret_overlaps_with_the_old_one,
    an_endpoint_failing_for_a_day_is_disabled_and_resumes_in_order_when_enabled,
    suppressed_events_are_reported,
    sender_identity_decisions_are_reported,
    webhook_endpoints_reject_bad_input_and_hide_other_orgs,
);

#[derive(Debug, Clone)]
pub struct Got {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

#[derive(Default)]
pub struct Inbox {
    pub fail: bool,
    pub got: Vec<Got>,
    pub attempts: usize,
}

/// A webhook receiver on loopback: records what it accepts; answers 503
/// while `fail` is set.
pub async fn receiver() -> (String, Arc<Mutex<Inbox>>) {
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = inbox.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                // Slow enough that a kill lands while messages go out.
                tokio::time::sleep(Duration::from_millis(10)).await;
                let mut inbox = state.lock().unwrap();
                inbox.attempts += 1;
                if inbox.fail {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                inbox.got.push(Got {
                    id: h("webhook-id"),
                    timestamp: h("webhook-timestamp"),
                    signature: h("webhook-signature"),
                    body,
                });
                StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://127.0.0.1:{port}/hook"), inbox)
}

/// Verdicts of the reference library on `cases`, or `None` (said loudly)
/// when it is not installed outside CI.
pub fn verify(secret: &str, cases: &[Value]) -> Option<Vec<String>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv-ci/bin/python");
    let script = root.join("tests/api/support/verify_webhook.py");
    let input = json!({ "secret": secret, "cases": cases }).to_string();
    let run = || -> Option<std::process::Output> {
        use std::io::Write;
        let mut child = std::process::Command::new(&python)
            .arg(&script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        child.stdin.take()?.write_all(input.as_bytes()).ok()?;
        child.wait_with_output().ok()
    };
    match run() {
        Some(out) if out.status.success() => Some(serde_json::from_slice(&out.stdout).unwrap()),
        other => {
            let why = other.map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).unwrap_or_default();
            assert!(std::env::var_os("CI").is_none(), "CI must install standardwebhooks into .venv-ci: {why}");
            eprintln!("*** SKIPPED: the standardwebhooks check (run .ci/run once to install it): {why}");
            None
        }
    }
}

pub fn case(g: &Got) -> Value {
    json!({ "id": g.id, "timestamp": g.timestamp, "signature": g.signature, "body": g.body })
}

pub async fn create(app: &TestApp, org: &TestOrg, url: &str, types: &[&str]) -> Value {
    let res =
        app.post("/v1/webhooks", &org.token, json!({"url": url, "eventTypes": types, "description": "ops"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.json
}

pub async fn send(app: &TestApp, org: &TestOrg, to: &str) -> String {
    let body = json!({"type": "message.send", "data": {"to": to, "subject": "Hi", "text": "Hello"}});
    let res = app.post("/v1/events", &org.token, body).await;
    assert_eq!(res.status, 202, "{}", res.text);
    res.json["notifications"][0]["id"].as_str().unwrap_or_default().to_owned()
}

/// Polls for up to a minute (a loaded CI machine with a busy PostgreSQL
/// needs more than the seconds a quiet one does).
pub async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..1200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

pub async fn wait_sent(app: &TestApp, org: &TestOrg, id: &str) {
    wait_until("the notification is sent", async || {
        app.get(&format!("/v1/notifications/{id}"), &org.token).await.json["status"] == "sent"
    })
    .await;
}

pub fn received(inbox: &Arc<Mutex<Inbox>>) -> Vec<Got> {
    inbox.lock().unwrap().got.clone()
}

async fn deliveries_are_signed_for_the_reference_library_and_old_timestamps_are_rejected(app: TestApp) {
    let org = app.new_org().await;
    let (url, inbox) = receiver().await;
    let created = create(&app, &org, &url, &["notification.sent"]).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let id = send(&app, &org, "ada@example.com").await;
    wait_sent(&app, &org, &id).await;
    wait_until("the webhook arrives", async || !received(&inbox).is_empty()).await;
    let got = received(&inbox);
    assert_eq!(got.len(), 1);
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "notification.sent");
    assert_eq!(body["data"]["notificationId"], id.as_str());
    assert_eq!(body["data"]["to"], "ada@example.com");
    assert!(got[0].id.starts_with("msg_"));

    // The reference library accepts it; the same message replayed with an
    // old timestamp (re-signed, so only the age is wrong) or a tampered
    // body is rejected.
    let key = herald::domain::webhooks::secret_bytes(&herald::secret::Secret::new(secret.clone())).unwrap();
    let old = app.clock.now().0 / 1000 - 3600;
    let replay = herald::domain::signing::sign_with_key(&key, &got[0].id, old, got[0].body.as_bytes());
    let mut tampered = case(&got[0]);
    tampered["body"] = json!(got[0].body.replace("ada@", "eve@"));
    let mut stale = case(&got[0]);
    stale["timestamp"] = json!(old.to_string());
    stale["signature"] = json!(replay);
    if let Some(verdicts) = verify(&secret, &[case(&got[0]), stale, tampered]) {
        assert_eq!(verdicts[0], "ok", "{verdicts:?}");
        assert!(verdicts[1].contains("too old"), "{verdicts:?}");
        assert!(verdicts[2].contains("No matching signature"), "{verdicts:?}");
    }

    // The secret is write-only: never read back, not in the database in
    // clear, not in the logs.
    let one = app.get(&format!("/v1/webhooks/{}", created["id"].as_str().unwrap()), &org.token).await;
    let all = app.get("/v1/webhooks", &org.token).await;
    for res in [&one, &all] {
        assert_eq!(res.status, 200);
        assert!(!res.text.contains(&secret[6..]) && !res.text.contains("\"secret\""), "{}", res.text);
    }
    let stored = app.db.everything().await;
    assert!(!stored.contains(&secret[6..]), "the secret is stored in clear");
    assert!(!logs().contains(&secret[6..]), "the secret is in the logs");

    // The delivery log has the attempt with its status and latency.
    let log = app.get(&format!("/v1/webhooks/{}/messages", created["id"].as_str().unwrap()), &org.token).await;
    assert_eq!(log.status, 200, "{}", log.text);
    let item = &log.json["items"][0];
    assert_eq!(item["status"], "delivered");
    assert_eq!(item["lastStatusCode"], 204);
    assert!(item["lastLatencyMs"].is_i64(), "{item}");

    // A test send reports the receiver's answer, signed alike.
    let test = app.post(&format!("/v1/webhooks/{}/test", created["id"].as_str().unwrap()), &org.token, json!({})).await;
    assert_eq!(test.status, 200, "{}", test.text);
    assert_eq!(test.json["success"], true, "{}", test.text);
    assert_eq!(test.json["statusCode"], 204);
    let got = received(&inbox);
    assert_eq!(serde_json::from_str::<Value>(&got[1].body).unwrap()["type"], "webhook.test");
    if let Some(verdicts) = verify(&secret, &[case(&got[1])]) {
        assert_eq!(verdicts, ["ok"]);
    }
}

async fn a_receiver_down_for_a_while_gets_every_event_once_in_order(app: TestApp) {
    let org = app.new_org().await;
    let (url, inbox) = receiver().await;
    let created = create(&app, &org, &url, &["notification.sent"]).await;
    inbox.lock().unwrap().fail = true;
    let mut ids = Vec::new();
    for n in 0..5 {
        let id = send(&app, &org, &format!("user{n}@example.com")).await;
        wait_sent(&app, &org, &id).await;
        ids.push(id);
    }
    // Down for a while: a few failed attempts, with time moving on.
    wait_until("the receiver is tried", async || inbox.lock().unwrap().attempts >= 1).await;
    for _ in 0..3 {
        let before = inbox.lock().unwrap().attempts;
        app.clock.advance(Duration::from_secs(2 * 3600));
        wait_until("the receiver is tried again", async || inbox.lock().unwrap().attempts > before).await;
    }
    assert!(received(&inbox).is_empty());
    // Back: everything arrives, once each, in order.
    inbox.lock().unwrap().fail = false;
    app.clock.advance(Duration::from_secs(2 * 3600));
    wait_until("every event arrives", async || received(&inbox).len() >= 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got: Vec<String> = received(&inbox)
        .iter()
        .map(|g| serde_json::from_str::<Value>(&g.body).unwrap()["data"]["notificationId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, ids, "every event once, in order");
    let log = app.get(&format!("/v1/webhooks/{}/messages", created["id"].as_str().unwrap()), &org.token).await;
    let items = log.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert!(items.iter().all(|i| i["status"] == "delivered"), "{}", log.text);
    // The first waited through the failures; the others queued behind it.
    assert!(items[4]["attempts"].as_i64().unwrap() >= 4, "{}", log.text);
    assert_eq!(items[0]["attempts"], 1, "{}", log.text);
}

async fn a_rotated_secret_overlaps_with_the_old_one(app: TestApp) {
    let org = app.new_org().await;
    let (url, inbox) = receiver().await;
    let created = create(&app, &org, &url, &["notification.sent"]).await;
    let id = created["id"].as_str().unwrap();
    let old_secret = created["secret"].as_str().unwrap().to_owned();
    let res = app
        .call(
            Method::PUT,
            &format!("/v1/webhooks/{id}"),
            Auth::Bearer(&org.token),
            Some(json!({"url": url, "eventTypes": ["notification.sent"], "rotateSecret": true})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    let new_secret = res.json["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    // A plain PUT returns no secret.
    let res = app
        .call(
            Method::PUT,
            &format!("/v1/webhooks/{id}"),
            Auth::Bearer(&org.token),
            Some(json!({"url": url, "eventTypes": ["notification.sent"]})),
        )
        .await;
    assert!(res.json.get("secret").is_none(), "{}", res.text);

    let n = send(&app, &org, "ada@example.com").await;
    wait_sent(&app, &org, &n).await;
    wait_until("the webhook arrives", async || received(&inbox).len() == 1).await;
    let got = received(&inbox);
    assert_eq!(got[0].signature.split(' ').count(), 2, "both signatures during the overlap: {}", got[0].signature);
    if let Some(v) = verify(&new_secret, &[case(&got[0])]) {
        assert_eq!(v, ["ok"]);
    }
    if let Some(v) = verify(&old_secret, &[case(&got[0])]) {
        assert_eq!(v, ["ok"]);
    }
    // After the overlap only the new secret signs.
    app.clock.advance(Duration::from_secs(25 * 3600));
    let n = send(&app, &org, "bob@example.com").await;
    wait_sent(&app, &org, &n).await;
    wait_until("the webhook arrives", async || received(&inbox).len() == 2).await;
    let got = received(&inbox);
    assert_eq!(got[1].signature.split(' ').count(), 1, "{}", got[1].signature);
}

async fn an_endpoint_failing_for_a_day_is_disabled_and_resumes_in_order_when_enabled(app: TestApp) {
    let org = app.new_org().await;
    let (url, inbox) = receiver().await;
    let created = create(&app, &org, &url, &["notification.sent"]).await;
    let id = created["id"].as_str().unwrap().to_owned();
    inbox.lock().unwrap().fail = true;
    let first = send(&app, &org, "a@example.com").await;
    wait_sent(&app, &org, &first).await;
    let second = send(&app, &org, "b@example.com").await;
    wait_sent(&app, &org, &second).await;
    wait_until("the failure is recorded", async || {
        app.get(&format!("/v1/webhooks/{id}"), &org.token).await.json["failingSince"].is_string()
    })
    .await;
    assert_eq!(app.get(&format!("/v1/webhooks/{id}"), &org.token).await.json["enabled"], true);
    app.clock.advance(Duration::from_secs(25 * 3600));
    wait_until("the endpoint is disabled", async || {
        app.get(&format!("/v1/webhooks/{id}"), &org.token).await.json["enabled"] == false
    })
    .await;
    let endpoint = app.get(&format!("/v1/webhooks/{id}"), &org.token).await;
    assert!(endpoint.json["disabledReason"].as_str().unwrap().contains("24 hours"), "{}", endpoint.text);
    // Disabled: nothing is tried, nothing is lost.
    let tried = inbox.lock().unwrap().attempts;
    app.clock.advance(Duration::from_secs(2 * 3600));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(inbox.lock().unwrap().attempts, tried);
    // Enabled again (and the receiver back): both arrive, in order.
    inbox.lock().unwrap().fail = false;
    let res = app
        .call(
            Method::PUT,
            &format!("/v1/webhooks/{id}"),
            Auth::Bearer(&org.token),
            Some(json!({"url": url, "eventTypes": ["notification.sent"], "enabled": true})),
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.json["failingSince"].is_null() && res.json["disabledReason"].is_null(), "{}", res.text);
    app.clock.advance(Duration::from_secs(2 * 3600));
    wait_until("both arrive", async || received(&inbox).len() >= 2).await;
    let got: Vec<String> = received(&inbox)
        .iter()
        .map(|g| serde_json::from_str::<Value>(&g.body).unwrap()["data"]["notificationId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, [first, second]);
}

async fn suppressed_events_are_reported(app: TestApp) {
    let org = app.new_org().await;
    let (url, inbox) = receiver().await;
    create(&app, &org, &url, &["notification.suppressed"]).await;
    let res = app.post("/v1/suppressions", &org.token, json!({"email": "gone@example.com"})).await;
    assert_eq!(res.status, 201);
    let accepted = app
        .post(
            "/v1/events",
            &org.token,
            json!({"type": "message.send", "data": {"to": "gone@example.com", "subject": "s", "text": "t"}}),
        )
        .await;
    assert_eq!(accepted.status, 202);
    wait_until("the webhook arrives", async || received(&inbox).len() == 1).await;
    let body: Value = serde_json::from_str(&received(&inbox)[0].body).unwrap();
    assert_eq!(body["type"], "notification.suppressed");
    assert_eq!(body["data"]["eventId"], accepted.json["id"]);
    assert!(body["data"]["reason"].as_str().unwrap().contains("gone@example.com"), "{body}");
}

async fn sender_identity_decisions_are_reported(app: TestApp) {
    use crate::support::identity::{approved_identity, follow, link_in, smtp_for};
    let org = app.new_org().await;
    let (url, inbox) = receiver().await;
    create(&app, &org, &url, &["sender_identity.approved", "sender_identity.revoked"]).await;
    let server = smtp_for(&app, &org).await;
    let mails = approved_identity(&app, &org, &server, json!({"Name": "Luther", "Email": "luther@example.com"})).await;
    wait_until("the approval is reported", async || received(&inbox).len() == 1).await;
    let body: Value = serde_json::from_str(&received(&inbox)[0].body).unwrap();
    assert_eq!(body["type"], "sender_identity.approved", "{body}");
    assert_eq!(body["data"]["email"], "luther@example.com");
    assert_eq!(body["data"]["status"], "Approved");
    // The approval mail carries the revoke link.
    let all = server.wait_for(mails).await;
    let res = follow(&app, &link_in(&all[mails - 1]), "revoke").await;
    assert!(res.status == 200 || res.status == 303, "{} {}", res.status, res.text);
    wait_until("the revocation is reported", async || received(&inbox).len() == 2).await;
    let body: Value = serde_json::from_str(&received(&inbox)[1].body).unwrap();
    assert_eq!(body["type"], "sender_identity.revoked", "{body}");
}

async fn webhook_endpoints_reject_bad_input_and_hide_other_orgs(app: TestApp) {
    let org = app.new_org().await;
    let other = app.new_org().await;
    let long_url = format!("https://example.com/{}", "a".repeat(2100));
    let bad: Vec<(Value, &str)> = vec![
        (json!({}), "url"),
        (json!({"url": "ftp://example.com/", "eventTypes": ["notification.sent"]}), "url"),
        (json!({"url": "not a url", "eventTypes": ["notification.sent"]}), "url"),
        (json!({"url": "https://user:pw@example.com/", "eventTypes": ["notification.sent"]}), "url"),
        (json!({"url": long_url, "eventTypes": ["notification.sent"]}), "url"),
        (json!({"url": "https://example.com/", "eventTypes": []}), "eventTypes"),
        (json!({"url": "https://example.com/", "eventTypes": ["nope"]}), "eventTypes"),
        (
            json!({"url": "https://example.com/", "eventTypes": ["notification.sent"], "description": "a\nb"}),
            "description",
        ),
        (
            json!({"url": "https://example.com/", "eventTypes": ["notification.sent"], "rotateSecret": true}),
            "rotateSecret",
        ),
        (json!({"url": 5, "eventTypes": ["notification.sent"]}), ""),
        (json!({"url": "https://example.com/", "eventTypes": "notification.sent"}), ""),
        (json!({"url": "https://example.com/", "eventTypes": ["notification.sent"], "secret": "whsec_x"}), ""),
    ];
    for (body, field) in bad {
        let res = app.post("/v1/webhooks", &org.token, body.clone()).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
        assert_eq!(res.content_type(), "application/problem+json");
        if !field.is_empty() {
            assert_eq!(res.json["errors"][0]["field"], field, "{body}: {}", res.text);
        }
    }
    assert_eq!(app.get("/v1/webhooks", &org.token).await.json["items"], json!([]));

    // Another org's endpoint is answered exactly like an unknown one.
    let (url, inbox) = receiver().await;
    let theirs = create(&app, &other, &url, &["notification.sent"]).await;
    let theirs = theirs["id"].as_str().unwrap();
    let unknown = uuid::Uuid::now_v7().to_string();
    let put = json!({"url": "https://example.com/", "eventTypes": ["notification.sent"]});
    for (method, suffix, body) in [
        (Method::GET, "", None),
        (Method::PUT, "", Some(put.clone())),
        (Method::DELETE, "", None),
        (Method::POST, "/test", Some(json!({}))),
        (Method::GET, "/messages", None),
    ] {
        let foreign = app
            .call(method.clone(), &format!("/v1/webhooks/{theirs}{suffix}"), Auth::Bearer(&org.token), body.clone())
            .await;
        let missing = app
            .call(method.clone(), &format!("/v1/webhooks/{unknown}{suffix}"), Auth::Bearer(&org.token), body.clone())
            .await;
        let garbage =
            app.call(method.clone(), &format!("/v1/webhooks/not-an-id{suffix}"), Auth::Bearer(&org.token), body).await;
        assert_eq!(
            (foreign.status, missing.status, garbage.status),
            (404, 404, 404),
            "{method} {suffix}: {}",
            foreign.text
        );
        assert_eq!(foreign.json["detail"], missing.json["detail"]);
        assert_eq!(foreign.json["type"], missing.json["type"]);
    }
    // Untouched, and the test send never reached the other org's receiver.
    assert_eq!(app.get(&format!("/v1/webhooks/{theirs}"), &other.token).await.json["url"], url.as_str());
    assert_eq!(inbox.lock().unwrap().attempts, 0);
    let res = app.get(&format!("/v1/webhooks/{theirs}/messages?limit=0"), &other.token).await;
    assert_eq!(res.status, 400, "{}", res.text);

    // An internal address not allowed by the host policy: the test send
    // says so, naming no address.
    let created = create(&app, &org, "http://10.255.255.1/hook", &["notification.sent"]).await;
    let res = app.post(&format!("/v1/webhooks/{}/test", created["id"].as_str().unwrap()), &org.token, json!({})).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["success"], false, "{}", res.text);
    assert!(res.json["error"].is_string(), "{}", res.text);
}

/// The real `herald` binary, killed with SIGKILL while webhooks are being
/// delivered: after a restart every message arrives (only the one in flight
/// may arrive twice, with the same `webhook-id`), in the order of the
/// endpoint's log.
mod crash {
    use std::collections::HashSet;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use serde_json::{Value, json};

    use crate::support::{Backend, TEST_SECRET_KEY, TestDb};

    struct Node(Child);

    impl Drop for Node {
        fn drop(&mut self) {
            let _ = self.0.kill(); // SIGKILL
            let _ = self.0.wait();
        }
    }

    fn start(db: &TestDb, backend: Backend, admin: &str, port: u16, outbox: &std::path::Path) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.arg("serve")
            .env("HERALD_DATABASE_URL", &db.url)
            .env("HERALD_ADMIN_TOKEN", admin)
            .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
            .env("HERALD_SMTP_ALLOW_HOSTS", "127.0.0.1")
            .env("HERALD_OUTBOX_DIR", outbox)
            .env("HERALD_LEASE_SECONDS", "2")
            .env("HERALD_WORKER_POLL_MS", "50")
            .env("HERALD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if backend == Backend::Postgres {
            cmd.env("HERALD_SECRET_KEY", TEST_SECRET_KEY);
        }
        Node(cmd.spawn().expect("start herald"))
    }

    async fn ready(client: &reqwest::Client, base: &str) {
        for _ in 0..300 {
            if client.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("herald did not become ready");
    }

    async fn kill_9_loses_no_webhook(backend: Backend) {
        let Some(db) = TestDb::new(backend).await else { return };
        // reqwest here is built before any server installs rustls's provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let admin = format!("test-admin-{}", uuid::Uuid::now_v7().simple());
        let outbox = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let client = crate::support::client_builder().build().unwrap();
        let (url, inbox) = super::receiver().await;
        let node = start(&db, backend, &admin, port, outbox.path());
        ready(&client, &base).await;
        let post = |path: String, token: String, body: Value| {
            let client = client.clone();
            let base = base.clone();
            async move {
                let res = client.post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await.unwrap();
                res.json::<Value>().await.unwrap()
            }
        };
        let org = post("/admin/v1/orgs".into(), admin.clone(), json!({"name": "Crash Hooks"})).await;
        let org_id = org["id"].as_str().unwrap().to_owned();
        let token = post(format!("/admin/v1/orgs/{org_id}/tokens"), admin.clone(), json!({"name": "t"})).await;
        let token = token["token"].as_str().unwrap().to_owned();
        let hook =
            post("/v1/webhooks".into(), token.clone(), json!({"url": url, "eventTypes": ["notification.sent"]})).await;
        let hook_id = hook["id"].as_str().unwrap().to_owned();
        let mut ids = Vec::new();
        for i in 0..60 {
            let body = json!({"type": "message.send", "data": {"to": format!("u{i}@example.com"), "subject": "s", "text": "t"}});
            let accepted = post("/v1/events".into(), token.clone(), body).await;
            ids.push(accepted["notifications"][0]["id"].as_str().unwrap().to_owned());
        }
        // Kill once some (not all) webhooks went out.
        for _ in 0..400 {
            if inbox.lock().unwrap().got.len() >= 10 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(node);
        let before = inbox.lock().unwrap().got.len();
        let node = start(&db, backend, &admin, port, outbox.path());
        ready(&client, &base).await;
        let notification_of = |g: &super::Got| {
            serde_json::from_str::<Value>(&g.body).unwrap()["data"]["notificationId"].as_str().unwrap().to_owned()
        };
        for _ in 0..600 {
            let got: HashSet<String> = inbox.lock().unwrap().got.iter().map(notification_of).collect();
            if ids.iter().all(|id| got.contains(id)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = inbox.lock().unwrap().got.clone();
        let mut seen = HashSet::new();
        let firsts: Vec<String> = got.iter().filter(|g| seen.insert(g.id.clone())).map(|g| g.id.clone()).collect();
        let arrived: HashSet<String> = got.iter().map(notification_of).collect();
        assert!(
            ids.iter().all(|id| arrived.contains(id)),
            "an accepted event's webhook was lost ({before} before the kill)"
        );
        let duplicates = got.len() - firsts.len();
        eprintln!("{backend:?}: SIGKILL after {before} webhooks; {duplicates} delivered twice");
        assert!(duplicates <= 1, "only the message in flight may repeat: {duplicates}");
        // In the order of the endpoint's log (its sequence).
        let log = client
            .get(format!("{base}/v1/webhooks/{hook_id}/messages?limit=500"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let mut logged: Vec<String> =
            log["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
        logged.reverse();
        assert_eq!(firsts, logged, "delivered in the endpoint's order");
        drop(node);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_kill_9_loses_no_webhook() {
        kill_9_loses_no_webhook(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_kill_9_loses_no_webhook() {
        kill_9_loses_no_webhook(Backend::Postgres).await;
    }
}
