//! Alerts (issue 18): a burst of dead mail opens one alert, reported once
//! to webhooks, however many evaluations run at the same time; it resolves
//! once when the window has passed. Same for a disabled webhook endpoint.

use std::time::Duration;

use herald::domain::smtp::Security;
use serde_json::{Value, json};

use crate::delivery::{send, use_server, wait_status};
use crate::support::smtp::{Action, Mode, Received, TestSmtp};
use crate::support::{Auth, TestApp, TestDb, TestOrg};
use crate::webhooks::{create, receiver};
use reqwest::Method;

on_each_backend!(
    a_burst_of_dead_mail_opens_one_alert_and_resolves_it_once,
    alerts_reject_bad_queries_and_stay_within_their_org,
    alert_contacts_get_one_mail_per_open_and_resolve_through_the_instance_provider,
    alert_contacts_reject_bad_input_and_stay_within_their_org,
    an_open_circuit_opens_one_alert_under_a_burst_of_failures_and_resolves_once,
);

pub async fn evaluate_in_a_burst(app: &TestApp) -> (usize, usize) {
    let now = app.clock.now();
    let runs = (0..8).map(|_| herald::domain::alerts::evaluate(&app.store, now));
    // An evaluation that met CI's PostgreSQL stalled (busy creating a
    // database for every test) is an outage: its transaction rolled back.
    // Any other error fails the test.
    let done = futures::future::join_all(runs).await.into_iter().filter_map(|r| match r {
        Ok(counts) => Some(counts),
        Err(e) if herald::store::is_unavailable(&e) => None,
        Err(e) => panic!("an evaluation failed: {e:#}"),
    });
    done.fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

fn kinds(inbox: &std::sync::Arc<std::sync::Mutex<crate::webhooks::Inbox>>) -> Vec<String> {
    inbox
        .lock()
        .unwrap()
        .got
        .iter()
        .map(|g| serde_json::from_str::<Value>(&g.body).unwrap()["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn wait_for(inbox: &std::sync::Arc<std::sync::Mutex<crate::webhooks::Inbox>>, n: usize) {
    for _ in 0..1200 {
        if inbox.lock().unwrap().got.len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {n} webhooks");
}

pub async fn dead_mails(app: &TestApp, org: &TestOrg, n: usize) {
    let server = TestSmtp::start(Mode::Plain).await;
    server.script((0..n).map(|_| Action::Reply("550 5.1.1 no such mailbox".into())));
    use_server(app, org, &server, Security::Plain, false, None).await;
    let mut ids = Vec::new();
    for i in 0..n {
        let body =
            json!({"type": "message.send", "data": {"to": format!("x{i}@example.com"), "subject": "s", "text": "t"}});
        let res = app.post("/v1/events", &org.token, body).await;
        ids.push(res.json["notifications"][0]["id"].as_str().unwrap().to_owned());
    }
    for id in ids {
        for _ in 0..400 {
            if app.get(&format!("/v1/notifications/{id}"), &org.token).await.json["status"] == "dead" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn a_burst_of_dead_mail_opens_one_alert_and_resolves_it_once(app: TestApp) {
    let org = app.new_org().await;
    let quiet = app.new_org().await;
    let (url, inbox) = receiver().await;
    create(&app, &org, &url, &["alert.opened", "alert.resolved"]).await;
    dead_mails(&app, &org, 12).await;

    let (opened, _) = evaluate_in_a_burst(&app).await;
    assert!(opened <= 1, "{opened} evaluations opened the alert");
    let open = app.get("/v1/alerts", &org.token).await;
    assert_eq!(open.status, 200, "{}", open.text);
    let items = open.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", open.text);
    assert_eq!(items[0]["kind"], "dead_mail");
    assert!(items[0]["detail"].as_str().unwrap().contains("mails went dead"), "{}", open.text);
    assert_eq!(app.get("/v1/alerts", &quiet.token).await.json["items"], json!([]));
    // Evaluating again changes nothing.
    assert_eq!(evaluate_in_a_burst(&app).await, (0, 0));
    wait_for(&inbox, 1).await;

    // An hour later the dead mail is out of the window: resolved, once.
    app.clock.advance(Duration::from_secs(2 * 3600));
    let (_, resolved) = evaluate_in_a_burst(&app).await;
    assert!(resolved <= 1, "{resolved} evaluations resolved the alert");
    assert_eq!(app.get("/v1/alerts", &org.token).await.json["items"], json!([]));
    let all = app.get("/v1/alerts?status=all", &org.token).await;
    assert_eq!(all.json["items"].as_array().unwrap().len(), 1, "{}", all.text);
    assert!(all.json["items"][0]["resolvedAt"].is_string(), "{}", all.text);
    wait_for(&inbox, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kinds(&inbox), ["alert.opened", "alert.resolved"]);
    let got = inbox.lock().unwrap().got.clone();
    let opened: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(opened["data"]["kind"], "dead_mail");
}

async fn alerts_reject_bad_queries_and_stay_within_their_org(app: TestApp) {
    let org = app.new_org().await;
    for query in ["status=nope", "limit=0", "limit=501", "limit=x"] {
        let res = app.get(&format!("/v1/alerts?{query}"), &org.token).await;
        assert_eq!(res.status, 400, "{query}: {}", res.text);
        assert_eq!(res.content_type(), "application/problem+json");
    }
    // A disabled endpoint of another org raises an alert there, not here.
    let other = app.new_org().await;
    let (url, inbox) = receiver().await;
    let hook = create(&app, &other, &url, &["notification.sent"]).await;
    inbox.lock().unwrap().fail = true;
    let res = app
        .post(
            "/v1/events",
            &other.token,
            json!({"type": "message.send", "data": {"to": "a@example.com", "subject": "s", "text": "t"}}),
        )
        .await;
    assert_eq!(res.status, 202);
    let id = hook["id"].as_str().unwrap();
    for _ in 0..400 {
        if app.get(&format!("/v1/webhooks/{id}"), &other.token).await.json["failingSince"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    app.clock.advance(Duration::from_secs(25 * 3600));
    for _ in 0..400 {
        if app.get(&format!("/v1/webhooks/{id}"), &other.token).await.json["enabled"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    evaluate_in_a_burst(&app).await;
    let theirs = app.get("/v1/alerts", &other.token).await;
    assert_eq!(theirs.json["items"][0]["kind"], "webhook_disabled", "{}", theirs.text);
    assert_eq!(theirs.json["items"][0]["subject"], id);
    assert_eq!(app.get("/v1/alerts", &org.token).await.json["items"], json!([]));
}

fn smtp_provider(name: &str, port: u16) -> Value {
    json!({
        "name": name,
        "kind": "smtp",
        "smtp": { "host": "localhost", "port": port, "security": "plain", "fromEmail": "herald@instance.example" }
    })
}

/// The instance's relay: an instance provider on a test SMTP server.
async fn instance_relay(app: &TestApp) -> TestSmtp {
    let relay = TestSmtp::start(Mode::Plain).await;
    let res = app.post("/admin/v1/providers", &app.admin_token, smtp_provider("relay", relay.port())).await;
    assert_eq!(res.status, 201, "{}", res.text);
    relay
}

fn alert_mails(server: &TestSmtp) -> Vec<Received> {
    server
        .messages()
        .into_iter()
        .filter(|m| m.header("Subject").is_some_and(|s| s.starts_with("[Herald] Alert")))
        .collect()
}

async fn wait_alert_mails(server: &TestSmtp, n: usize) -> Vec<Received> {
    for _ in 0..1200 {
        if alert_mails(server).len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Anything more would come now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    alert_mails(server)
}

async fn put_contacts(app: &TestApp, org: &TestOrg, body: Value) -> crate::support::TestResponse {
    app.call(Method::PUT, "/v1/alerts/contacts", Auth::Bearer(&org.token), Some(body)).await
}

async fn alert_contacts_get_one_mail_per_open_and_resolve_through_the_instance_provider(app: TestApp) {
    let relay = instance_relay(&app).await;
    let org = app.new_org().await;
    let quiet = app.new_org().await;
    let set =
        put_contacts(&app, &org, json!({ "emails": ["ops@acme.example", "OPS@acme.example", "cto@acme.example"] }))
            .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json["emails"], json!(["ops@acme.example", "cto@acme.example"]), "{}", set.text);
    let got = app.get("/v1/alerts/contacts", &org.token).await;
    assert_eq!(got.json["emails"], set.json["emails"], "{}", got.text);
    assert!(got.json["updatedAt"].is_string(), "{}", got.text);
    let audit = app.get("/v1/audit", &org.token).await;
    assert!(audit.text.contains("alert_contacts.changed"), "{}", audit.text);
    assert!(!audit.text.contains("ops@acme.example"), "the audit log counts contacts: {}", audit.text);
    put_contacts(&app, &quiet, json!({ "emails": ["quiet@acme.example"] })).await;

    // The org's own server refuses its mail: a burst of dead mail.
    let own = TestSmtp::start(Mode::Plain).await;
    own.script((0..12).map(|_| Action::Reply("550 5.1.1 no such mailbox".into())));
    use_server(&app, &org, &own, Security::Plain, false, None).await;
    let mut ids = Vec::new();
    for i in 0..12 {
        let body =
            json!({"type": "message.send", "data": {"to": format!("x{i}@example.com"), "subject": "s", "text": "t"}});
        ids.push(send(&app, &org, body).await);
    }
    for id in &ids {
        wait_status(&app, &org, id, "dead").await;
    }
    let (opened, _) = evaluate_in_a_burst(&app).await;
    assert!(opened <= 1, "{opened} evaluations opened the alert");
    let open = app.get("/v1/alerts", &org.token).await;
    assert_eq!(open.json["items"].as_array().unwrap().len(), 1, "{}", open.text);
    // One mail per contact, through the instance's relay only.
    let mails = wait_alert_mails(&relay, 2).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    let mut to: Vec<String> = mails.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["cto@acme.example", "ops@acme.example"]);
    for m in &mails {
        assert_eq!(m.header("Subject").as_deref(), Some("[Herald] Alert opened: dead_mail"));
        assert!(m.data.contains("mails went dead"), "{}", m.data);
        assert!(m.from.contains("herald@instance.example"), "{}", m.from);
    }
    assert!(alert_mails(&own).is_empty(), "the org's own server got an alert mail");
    // Evaluating again mails no one.
    assert_eq!(evaluate_in_a_burst(&app).await, (0, 0));
    assert_eq!(wait_alert_mails(&relay, 3).await.len(), 2);

    // Resolved: one more mail per contact, once.
    app.clock.advance(Duration::from_secs(2 * 3600));
    let (_, resolved) = evaluate_in_a_burst(&app).await;
    assert!(resolved <= 1, "{resolved} evaluations resolved the alert");
    assert_eq!(evaluate_in_a_burst(&app).await, (0, 0));
    let mails = wait_alert_mails(&relay, 4).await;
    assert_eq!(mails.len(), 4, "{mails:?}");
    let resolved: Vec<&Received> =
        mails.iter().filter(|m| m.header("Subject").as_deref() == Some("[Herald] Alert resolved: dead_mail")).collect();
    assert_eq!(resolved.len(), 2, "{mails:?}");
    // The quiet org's contact never heard of it.
    assert!(mails.iter().all(|m| !m.to.iter().any(|t| t == "quiet@acme.example")), "{mails:?}");
    // The mails are in the org's delivery log as type herald.alert.
    let log = app.get("/v1/notifications?limit=100", &org.token).await;
    let alerts_logged = log.json["items"].as_array().unwrap().iter().filter(|n| n["type"] == "herald.alert").count();
    assert_eq!(alerts_logged, 4, "{}", log.text);
}

async fn alert_contacts_reject_bad_input_and_stay_within_their_org(app: TestApp) {
    let org = app.new_org().await;
    let other = app.new_org().await;
    let empty = app.get("/v1/alerts/contacts", &org.token).await;
    assert_eq!(empty.status, 200, "{}", empty.text);
    assert_eq!((empty.json["emails"].clone(), empty.json["updatedAt"].clone()), (json!([]), Value::Null));
    let many: Vec<String> = (0..21).map(|i| format!("o{i}@acme.example")).collect();
    for body in [
        json!({}),
        json!({ "emails": "ops@acme.example" }),
        json!({ "emails": [1, 2] }),
        json!({ "emails": ["not an address"] }),
        json!({ "emails": ["a@acme.example\r\nRCPT TO:<x@evil.example>"] }),
        json!({ "emails": [format!("{}@acme.example", "a".repeat(300))] }),
        json!({ "emails": many }),
        json!({ "emails": [], "extra": true }),
        json!(null),
        json!([]),
    ] {
        let res = put_contacts(&app, &org, body.clone()).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
        assert_eq!(res.content_type(), "application/problem+json", "{body}");
    }
    let raw = app
        .client
        .put(app.url("/v1/alerts/contacts"))
        .bearer_auth(&org.token)
        .header("content-type", "application/json");
    assert_eq!(app.send(raw.body("{\"emails\": [")).await.status, 400);
    let huge = format!("{{\"emails\": [\"{}\"]}}", "a".repeat(70 * 1024));
    let raw = app
        .client
        .put(app.url("/v1/alerts/contacts"))
        .bearer_auth(&org.token)
        .header("content-type", "application/json");
    assert_eq!(app.send(raw.body(huge)).await.status, 413);
    let raw =
        app.client.put(app.url("/v1/alerts/contacts")).bearer_auth(&org.token).header("content-type", "text/plain");
    assert_eq!(app.send(raw.body("{}")).await.status, 415);
    assert_eq!(app.call(Method::GET, "/v1/alerts/contacts", Auth::None, None).await.status, 401);
    let anon = app.call(Method::PUT, "/v1/alerts/contacts", Auth::None, Some(json!({ "emails": [] }))).await;
    assert_eq!(anon.status, 401);
    // Nothing was stored; each org sees only its own list.
    assert_eq!(app.get("/v1/alerts/contacts", &org.token).await.json["emails"], json!([]));
    let set = put_contacts(&app, &other, json!({ "emails": ["theirs@acme.example"] })).await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(app.get("/v1/alerts/contacts", &org.token).await.json["emails"], json!([]));
    // `[]` clears the list.
    assert_eq!(put_contacts(&app, &other, json!({ "emails": [] })).await.json["emails"], json!([]));
    assert_eq!(app.get("/v1/alerts/contacts", &other.token).await.json["emails"], json!([]));
}

async fn an_open_circuit_opens_one_alert_under_a_burst_of_failures_and_resolves_once(app: TestApp) {
    let db = TestDb::new(app.backend).await.unwrap();
    let backend = app.backend;
    drop(app);
    let app = TestApp::spawn_with(backend, db, |c| {
        c.delivery.circuit_failures = 2;
        c.delivery.circuit_cooldown = Duration::from_secs(60);
    })
    .await;
    let relay = instance_relay(&app).await;
    let org = app.new_org().await;
    let (url, inbox) = receiver().await;
    create(&app, &org, &url, &["alert.opened", "alert.resolved"]).await;
    assert_eq!(put_contacts(&app, &org, json!({ "emails": ["ops@acme.example"] })).await.status, 200);
    let primary = TestSmtp::start(Mode::Plain).await;
    primary.script((0..50).map(|_| Action::Reply("451 4.3.0 try later".into())));
    let res = app.post("/v1/providers", &org.token, smtp_provider("primary", primary.port())).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let primary_id = res.json["id"].as_str().unwrap().to_owned();

    // A burst of mail while the primary fails, evaluated in bursts meanwhile:
    // each mail fails over to the relay; the circuit opens once.
    let sends = (0..8).map(|n| {
        let body = json!({"type": "message.send", "data": {"to": "ada@example.com", "subject": format!("Failing {n}"), "text": "t"}});
        let (app, org) = (&app, &org);
        async move { send(app, org, body).await }
    });
    let ids = futures::future::join_all(sends).await;
    let mut opened = 0;
    for id in &ids {
        opened += evaluate_in_a_burst(&app).await.0;
        wait_status(&app, &org, id, "sent").await;
    }
    opened += evaluate_in_a_burst(&app).await.0;
    assert!(opened <= 1, "{opened} evaluations opened the alert");
    let open = app.get("/v1/alerts", &org.token).await;
    let items = open.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", open.text);
    assert_eq!(items[0]["kind"], "provider_circuit_open");
    assert_eq!(items[0]["subject"], primary_id.as_str());
    assert!(items[0]["detail"].as_str().unwrap().contains("primary"), "{}", open.text);
    let metrics = app.call(Method::GET, "/metrics", Auth::None, None).await;
    let line = metrics
        .text
        .lines()
        .find(|l| {
            l.starts_with("herald_alerts_open_by_kind") && l.contains(&org.id) && l.contains("provider_circuit_open")
        })
        .unwrap_or_else(|| panic!("no gauge: {}", metrics.text));
    assert!(line.ends_with(" 1"), "{line}");
    let mails = wait_alert_mails(&relay, 1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].header("Subject").as_deref(), Some("[Herald] Alert opened: provider_circuit_open"));
    assert!(alert_mails(&primary).is_empty());

    // After the cool-down a probe goes to the primary, which works now: the
    // circuit closes and the alert resolves, once.
    app.clock.advance(Duration::from_secs(61));
    primary.clear_script();
    let probe = send(
        &app,
        &org,
        json!({"type": "message.send", "data": {"to": "ada@example.com", "subject": "Probe", "text": "t"}}),
    )
    .await;
    let got = wait_status(&app, &org, &probe, "sent").await;
    assert_eq!(got["attemptLog"][0]["provider"], "primary", "{got}");
    let (_, resolved) = evaluate_in_a_burst(&app).await;
    assert!(resolved <= 1, "{resolved} evaluations resolved the alert");
    assert_eq!(evaluate_in_a_burst(&app).await, (0, 0));
    assert_eq!(app.get("/v1/alerts", &org.token).await.json["items"], json!([]));
    let mails = wait_alert_mails(&relay, 2).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[1].header("Subject").as_deref(), Some("[Herald] Alert resolved: provider_circuit_open"));
    wait_for(&inbox, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kinds(&inbox), ["alert.opened", "alert.resolved"]);
    let metrics = app.call(Method::GET, "/metrics", Auth::None, None).await;
    let line = metrics
        .text
        .lines()
        .find(|l| {
            l.starts_with("herald_alerts_open_by_kind") && l.contains(&org.id) && l.contains("provider_circuit_open")
        })
        .unwrap_or_else(|| panic!("no gauge: {}", metrics.text));
    assert!(line.ends_with(" 0"), "{line}");
}
