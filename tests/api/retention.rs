//! Bounded storage (issue 20): retention on the test clock, pruning beside
//! the workers and under SIGKILL, erasure down to the raw file and WAL,
//! backup under load and restore, and bad input on the new endpoints.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::delivery::{send, use_server, wait_status};
use crate::support::smtp::{Action, Mode, TestSmtp};
use crate::support::{Auth, Backend, TEST_SECRET_KEY, TestApp, TestDb, TestOrg};
use herald::domain::smtp::Security;

on_each_backend!(
    bodies_then_records_go_on_time_and_dead_mail_keeps_its_body,
    org_overrides_apply_and_are_audited,
    retention_endpoints_reject_bad_input,
    pruning_beside_the_workers_loses_nothing,
    erasure_leaves_nothing_of_the_address_and_spares_other_orgs,
    erasure_rejects_bad_input,
    storage_figures_and_pruning_runs_are_metrics,
    resolved_alerts_and_old_quota_windows_go_open_alerts_and_suppressions_stay,
    bounced_and_complained_mail_is_pruned_like_delivered_mail,
);

const DAY: Duration = Duration::from_secs(86_400);

/// One value of `sql` (a `COUNT(*)` or a text), straight from the database.
async fn scalar_i64(app: &TestApp, sql: &str) -> i64 {
    match app.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&mut c).await.unwrap()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&mut c).await.unwrap()
        }
    }
}

async fn body_len(app: &TestApp, id: &str) -> i64 {
    scalar_i64(app, &format!("SELECT CAST(LENGTH(body_text) + COALESCE(LENGTH(body_html), 0) AS BIGINT) FROM notifications WHERE id = '{id}'"))
        .await
}

async fn prune(app: &TestApp) -> Value {
    let res = app.post("/admin/v1/retention/runs", &app.admin_token, json!({})).await;
    assert_eq!(res.status, 200, "{}\n{}", res.text, crate::support::logs());
    assert_eq!(res.json["skipped"], false, "{}", res.text);
    res.json["removed"].clone()
}

fn mail(to: &str, text: &str) -> Value {
    json!({ "type": "message.send", "data": { "to": to, "subject": "Retention", "text": text, "html": format!("<p>{text}</p>") } })
}

async fn bodies_then_records_go_on_time_and_dead_mail_keeps_its_body(app: TestApp) {
    let org = app.new_org().await;
    // The org's webhook endpoint hears of the delivery; the message goes
    // with the records.
    let (hook_url, inbox) = crate::webhooks::receiver().await;
    crate::webhooks::create(&app, &org, &hook_url, &["notification.sent"]).await;
    let sent = send(&app, &org, mail("ada@example.com", "a delivered body")).await;
    wait_status(&app, &org, &sent, "sent").await;
    for _ in 0..400 {
        if !inbox.lock().unwrap().got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(inbox.lock().unwrap().got.len(), 1, "the webhook message was not delivered");
    let server = TestSmtp::start(Mode::Plain).await;
    server.script([Action::Reply("550 5.1.1 no such mailbox".into())]);
    let bouncing = app.new_org().await;
    use_server(&app, &bouncing, &server, Security::Plain, false, None).await;
    let dead = send(&app, &bouncing, mail("nobody@example.com", "a dead body")).await;
    wait_status(&app, &bouncing, &dead, "dead").await;

    // Day 6: nothing is due.
    app.clock.advance(6 * DAY);
    assert_eq!(prune(&app).await["bodies"], 0);
    assert!(body_len(&app, &sent).await > 0);

    // Day 8: the delivered body is gone, its record stays and says so.
    app.clock.advance(2 * DAY);
    let removed = prune(&app).await;
    assert_eq!((removed["bodies"].as_i64(), removed["notifications"].as_i64()), (Some(1), Some(0)), "{removed}");
    assert_eq!(body_len(&app, &sent).await, 0);
    let n = app.get(&format!("/v1/notifications/{sent}"), &org.token).await;
    assert_eq!(n.status, 200);
    assert_eq!(n.json["status"], "sent");
    assert_eq!(n.json["to"], "ada@example.com");
    assert!(n.json["bodyPrunedAt"].is_string(), "{}", n.text);
    // The dead mail keeps its body: it can still be retried.
    assert!(body_len(&app, &dead).await > 0);
    let d = app.get(&format!("/v1/notifications/{dead}"), &bouncing.token).await;
    assert!(d.json["bodyPrunedAt"].is_null(), "{}", d.text);

    // Day 31: the dead body is gone, and a retry is refused.
    app.clock.advance(23 * DAY);
    assert_eq!(prune(&app).await["bodies"], 1);
    assert_eq!(body_len(&app, &dead).await, 0);
    let retry = app.post(&format!("/v1/notifications/{dead}/retry"), &bouncing.token, json!({})).await;
    assert_eq!(retry.status, 400, "{}", retry.text);
    assert!(retry.text.contains("retention"), "{}", retry.text);
    assert_eq!(app.get(&format!("/v1/notifications/{dead}"), &bouncing.token).await.json["status"], "dead");

    // Day 91: the records go, with their attempts and events.
    app.clock.advance(60 * DAY);
    let removed = prune(&app).await;
    assert_eq!((removed["notifications"].as_i64(), removed["events"].as_i64()), (Some(2), Some(2)), "{removed}");
    assert_eq!(removed["webhookMessages"].as_i64(), Some(1), "{removed}");
    assert_eq!(app.get(&format!("/v1/notifications/{sent}"), &org.token).await.status, 404);
    assert_eq!(app.get(&format!("/v1/notifications/{dead}"), &bouncing.token).await.status, 404);
    for table in ["notifications", "events", "delivery_attempts", "outbox", "webhook_messages", "webhook_attempts"] {
        assert_eq!(scalar_i64(&app, &format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table}");
    }
    // The audit log is kept by default.
    assert!(scalar_i64(&app, "SELECT COUNT(*) FROM audit_log").await > 0);
}

async fn org_overrides_apply_and_are_audited(app: TestApp) {
    let short = app.new_org().await;
    let normal = app.new_org().await;
    let path = format!("/admin/v1/orgs/{}/retention", short.id);
    let res = app
        .call(Method::PUT, &path, Auth::Bearer(&app.admin_token), Some(json!({ "bodyDays": 1, "auditDays": 3650 })))
        .await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["overrides"]["bodyDays"], 1);
    assert!(res.json["overrides"]["recordDays"].is_null());
    assert_eq!(res.json["effective"], json!({ "bodyDays": 1, "recordDays": 90, "deadDays": 30, "auditDays": 3650 }));
    let a = send(&app, &short, mail("a@example.com", "short-lived")).await;
    let b = send(&app, &normal, mail("b@example.com", "kept a week")).await;
    wait_status(&app, &short, &a, "sent").await;
    wait_status(&app, &normal, &b, "sent").await;
    app.clock.advance(2 * DAY);
    assert_eq!(prune(&app).await["bodies"], 1);
    assert_eq!(body_len(&app, &a).await, 0);
    assert!(body_len(&app, &b).await > 0);
    // The change is in the org's audit log; a reset returns to the defaults.
    let audit = app.get("/v1/audit", &short.token).await;
    assert!(audit.text.contains("retention.changed"), "{}", audit.text);
    let res = app.call(Method::DELETE, &path, Auth::Bearer(&app.admin_token), None).await;
    assert_eq!(res.status, 204, "{}", res.text);
    let res = app.get(&path, &app.admin_token).await;
    assert_eq!(res.json["effective"]["bodyDays"], 7, "{}", res.text);
    assert!(res.json["updatedAt"].is_null());
    let res = app.get("/admin/v1/retention", &app.admin_token).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["defaults"], json!({ "bodyDays": 7, "recordDays": 90, "deadDays": 30, "auditDays": null }));
}

async fn retention_endpoints_reject_bad_input(app: TestApp) {
    let org = app.new_org().await;
    let path = format!("/admin/v1/orgs/{}/retention", org.id);
    let admin = Auth::Bearer(&app.admin_token);
    for (body, why) in [
        (json!({ "bodyDays": -1 }), "negative"),
        (json!({ "bodyDays": 36501 }), "over 100 years"),
        (json!({ "recordDays": 1e30 }), "beyond i64"),
        (json!({ "deadDays": "30" }), "a string"),
        (json!({ "auditDays": 1.5 }), "a fraction"),
        (json!({ "bodyDays": 100 }), "body kept longer than its record"),
        (json!({ "deadDays": 91 }), "dead body kept longer than its record"),
        (json!({ "bodyDays": 1, "colour": "red" }), "unknown field"),
        (json!([1, 2]), "not an object"),
    ] {
        let res = app.call(Method::PUT, &path, admin, Some(body)).await;
        assert_eq!(res.status, 400, "{why}: {}", res.text);
        assert_eq!(res.content_type(), "application/problem+json", "{why}");
    }
    let raw = app.client.put(app.url(&path)).bearer_auth(&app.admin_token).header("content-type", "application/json");
    let res = app.send(raw.body("{\"bodyDays\": ")).await;
    assert_eq!(res.status, 400, "malformed JSON: {}", res.text);
    let raw = app.client.put(app.url(&path)).bearer_auth(&app.admin_token).header("content-type", "application/json");
    let res = app.send(raw.body("{\"recordDays\": 99999999999999999999999}")).await;
    assert_eq!(res.status, 400, "huge integer: {}", res.text);
    // Unknown and malformed org ids, and an org's own token.
    for other in ["/admin/v1/orgs/0190a1b2-0000-7000-8000-000000000000/retention", "/admin/v1/orgs/nope/retention"] {
        assert_eq!(app.get(other, &app.admin_token).await.status, 404, "{other}");
        let res = app.call(Method::PUT, other, admin, Some(json!({ "bodyDays": 1 }))).await;
        assert_eq!(res.status, 404, "{other}: {}", res.text);
        assert_eq!(app.call(Method::DELETE, other, admin, None).await.status, 404, "{other}");
    }
    assert_eq!(app.get(&path, &org.token).await.status, 403);
    let res = app.call(Method::PUT, &path, Auth::Bearer(&org.token), Some(json!({ "bodyDays": 0 }))).await;
    assert_eq!(res.status, 403, "{}", res.text);
    assert_eq!(app.post("/admin/v1/retention/runs", &org.token, json!({})).await.status, 403);
    assert_eq!(app.get("/admin/v1/retention", &org.token).await.status, 403);
    // Nothing was stored by the refusals.
    assert!(app.get(&path, &app.admin_token).await.json["updatedAt"].is_null());
}

/// Bodies and records of zero days, a pass every few milliseconds while
/// the workers send: every accepted mail is still delivered exactly once.
async fn pruning_beside_the_workers_loses_nothing(app: TestApp) {
    let org = app.new_org().await;
    let zero = json!({ "bodyDays": 0, "recordDays": 0, "deadDays": 0 });
    let path = format!("/admin/v1/orgs/{}/retention", org.id);
    assert_eq!(app.call(Method::PUT, &path, Auth::Bearer(&app.admin_token), Some(zero)).await.status, 200);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pruning = {
        let (client, url, admin, stop) =
            (app.client.clone(), app.url("/admin/v1/retention/runs"), app.admin_token.clone(), stop.clone());
        tokio::spawn(async move {
            let mut passes = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let res = client.post(&url).bearer_auth(&admin).send().await.unwrap();
                assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
                passes += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            passes
        })
    };
    let ids: Vec<String> = futures::stream::iter(0..200)
        .map(|i| {
            let (app, org) = (&app, &org);
            async move { send(app, org, mail(&format!("user{i}@example.com"), &format!("body {i}"))).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let delivered = |ids: &[String]| ids.iter().filter(|id| app.outbox_dir.join(format!("{id}.eml")).exists()).count();
    for _ in 0..600 {
        if delivered(&ids) == ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let passes = pruning.await.unwrap();
    assert_eq!(delivered(&ids), 200, "every accepted mail was delivered");
    let files = std::fs::read_dir(&app.outbox_dir).unwrap().count();
    assert_eq!(files, 200, "each exactly once");
    assert!(passes > 2, "pruning ran alongside ({passes} passes)");
    prune(&app).await;
    assert_eq!(scalar_i64(&app, "SELECT COUNT(*) FROM notifications").await, 0);
    assert_eq!(scalar_i64(&app, "SELECT COUNT(*) FROM events").await, 0);
}

/// Mail the workers have not finished is never pruned, however old.
async fn unfinished_mail_is_never_pruned(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let app = TestApp::spawn_with(backend, db, |c| c.delivery.workers = false).await;
    let org = app.new_org().await;
    let ids = [
        send(&app, &org, mail("q1@example.com", "still queued")).await,
        send(&app, &org, mail("q2@example.com", "still queued")).await,
    ];
    // One of them "being sent": leased by a worker that is gone.
    let lease = format!("UPDATE outbox SET lease_id = 'gone' WHERE notification_id = '{}'", ids[1]);
    scalar_exec(&app, &lease).await;
    scalar_exec(&app, &format!("UPDATE notifications SET status = 'sending' WHERE id = '{}'", ids[1])).await;
    app.clock.advance(400 * DAY);
    let removed = prune(&app).await;
    assert_eq!(removed["bodies"], 0, "{removed}");
    assert_eq!(removed["notifications"], 0, "{removed}");
    for id in &ids {
        assert!(body_len(&app, id).await > 0, "{id}");
    }
    assert_eq!(scalar_i64(&app, "SELECT COUNT(*) FROM outbox").await, 2);
}

async fn scalar_exec(app: &TestApp, sql: &str) {
    match app.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut c).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_unfinished_mail_is_never_pruned() {
    unfinished_mail_is_never_pruned(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unfinished_mail_is_never_pruned() {
    unfinished_mail_is_never_pruned(Backend::Postgres).await;
}

async fn erase(app: &TestApp, org: &TestOrg, email: &str) -> Value {
    let res = app.post("/v1/erasures", &org.token, json!({ "email": email })).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.json
}

async fn erasure_leaves_nothing_of_the_address_and_spares_other_orgs(app: TestApp) {
    let canary = format!("erase-me-{}@canary.example", uuid::Uuid::now_v7().simple());
    let a = app.new_org().await;
    let b = app.new_org().await;
    // Org A's webhooks: one endpoint that takes its messages (they are
    // delivered), one that refuses them (they stay pending, in order).
    let types = ["notification.sent", "notification.suppressed"];
    let (ok_url, ok_inbox) = crate::webhooks::receiver().await;
    crate::webhooks::create(&app, &a, &ok_url, &types).await;
    let (down_url, down_inbox) = crate::webhooks::receiver().await;
    down_inbox.lock().unwrap().fail = true;
    crate::webhooks::create(&app, &a, &down_url, &types).await;
    let (b_url, b_inbox) = crate::webhooks::receiver().await;
    crate::webhooks::create(&app, &b, &b_url, &types).await;
    // Org A: delivered, dead-ish and idempotent mail to the address (mixed case).
    let first = send(&app, &a, mail(&canary, &format!("Dear {canary}, a body naming you"))).await;
    wait_status(&app, &a, &first, "sent").await;
    let upper = canary.to_uppercase();
    let res = app
        .send(
            app.client
                .post(app.url("/v1/events"))
                .bearer_auth(&a.token)
                .header("Idempotency-Key", "erasure-key")
                .json(&json!({ "type": "message.send", "data": { "to": upper, "subject": "Second", "text": "x" } })),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    let second = res.json["notifications"][0]["id"].as_str().unwrap().to_owned();
    wait_status(&app, &a, &second, "sent").await;
    let keep = send(&app, &a, mail("someone-else@example.com", "not erased")).await;
    wait_status(&app, &a, &keep, "sent").await;
    // Then the address is put on A's suppression list (audited under its
    // address) and a mail to it is suppressed (the reason names it).
    let listed = app.post("/v1/suppressions", &a.token, json!({ "email": canary, "detail": "asked to stop" })).await;
    assert_eq!(listed.status, 201, "{}", listed.text);
    let suppressed = app.post("/v1/events", &a.token, mail(&canary, "never sent")).await;
    assert_eq!(suppressed.status, 202, "{}", suppressed.text);
    assert!(suppressed.json["suppressed"].as_str().unwrap().contains(&canary), "{}", suppressed.text);
    // Org B: the same address, its own mail, list entry and webhook.
    let theirs = send(&app, &b, mail(&canary, "org B's mail")).await;
    wait_status(&app, &b, &theirs, "sent").await;
    let listed = app.post("/v1/suppressions", &b.token, json!({ "email": canary })).await;
    assert_eq!(listed.status, 201, "{}", listed.text);
    // A's good endpoint has all four messages (three name the address);
    // the refusing one has tried at least once.
    for _ in 0..600 {
        if ok_inbox.lock().unwrap().got.len() >= 4 && down_inbox.lock().unwrap().attempts >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ok_inbox.lock().unwrap().got.len(), 4, "A's webhook messages were not delivered");
    assert!(down_inbox.lock().unwrap().attempts >= 1);
    // The receiver has them; wait until Herald has recorded them delivered.
    let delivered = format!("SELECT COUNT(*) FROM webhook_messages WHERE org_id = '{}' AND status = 'delivered'", a.id);
    for _ in 0..600 {
        if scalar_i64(&app, &delivered).await == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(scalar_i64(&app, &delivered).await, 4);
    let named = |org: &TestOrg| {
        format!(
            "SELECT COUNT(*) FROM webhook_messages WHERE org_id = '{}' AND lower(payload) LIKE '%{canary}%'",
            org.id
        )
    };
    assert_eq!(scalar_i64(&app, &named(&a)).await, 6);

    let erased = erase(&app, &a, &canary).await;
    assert_eq!(erased["notifications"], 2, "{erased}");
    assert_eq!(erased["attempts"], 2, "{erased}");
    assert_eq!(erased["events"], 3, "two emptied, one suppressed: {erased}");
    assert_eq!(erased["eventsRedacted"], 0, "{erased}");
    assert_eq!(erased["idempotencyKeys"], 1, "{erased}");
    assert_eq!(erased["webhookMessages"], 3, "the delivered ones: {erased}");
    assert_eq!(erased["webhookMessagesRedacted"], 3, "the pending ones: {erased}");
    assert_eq!(erased["suppressions"], 1, "{erased}");
    assert_eq!(erased["auditEntriesRedacted"], 1, "suppression.added: {erased}");
    assert_eq!(erased["inFlight"], 0, "{erased}");
    for id in [&first, &second] {
        assert_eq!(app.get(&format!("/v1/notifications/{id}"), &a.token).await.status, 404);
    }
    assert_eq!(app.get(&format!("/v1/notifications/{keep}"), &a.token).await.status, 200);
    assert_eq!(scalar_i64(&app, &named(&a)).await, 0);
    // The pending messages are still there, in their order, redacted; the
    // one about other mail is intact.
    let pending = format!(
        "SELECT COUNT(*) FROM webhook_messages WHERE org_id = '{}' AND status = 'pending' AND payload LIKE '%[erased]%'",
        a.id
    );
    assert_eq!(scalar_i64(&app, &pending).await, 3);
    let other = format!(
        "SELECT COUNT(*) FROM webhook_messages WHERE org_id = '{}' AND payload LIKE '%someone-else@example.com%'",
        a.id
    );
    assert_eq!(scalar_i64(&app, &other).await, 2);
    // Org B's mail, list entry and messages to the same address are untouched.
    let n = app.get(&format!("/v1/notifications/{theirs}"), &b.token).await;
    assert_eq!(n.status, 200);
    assert_eq!(n.json["to"], canary.as_str());
    assert!(body_len(&app, &theirs).await > 0);
    let entry = app.get(&format!("/v1/suppressions/{canary}"), &b.token).await;
    assert_eq!((entry.status, entry.json["email"].as_str()), (200, Some(canary.as_str())), "{}", entry.text);
    assert!(scalar_i64(&app, &named(&b)).await >= 1);
    // The audit log says an erasure happened, not whom it was for.
    let audit = app.get("/v1/audit", &a.token).await;
    assert!(audit.text.contains("erasure.completed"), "{}", audit.text);
    assert!(!audit.text.to_lowercase().contains(&canary), "{}", audit.text);
    assert!(audit.text.contains("suppression.added"), "{}", audit.text);

    // The address stays suppressed in A (a hashed marker), without being shown.
    let entry = app.get(&format!("/v1/suppressions/{upper}"), &a.token).await;
    assert_eq!((entry.status, entry.json["email"].as_str()), (200, Some("[erased]")), "{}", entry.text);
    assert!(entry.json["detail"].is_null(), "{}", entry.text);
    let list = app.get("/v1/suppressions", &a.token).await;
    assert!(!list.text.to_lowercase().contains(&canary), "{}", list.text);
    let again = app.post("/v1/events", &a.token, mail(&canary, "still not sent")).await;
    assert_eq!(again.status, 202, "{}", again.text);
    assert_eq!(again.json["notifications"], json!([]), "{}", again.text);
    assert!(again.json["suppressed"].is_string(), "{}", again.text);
    // That new event names the address again; erasing once more removes it.
    let repeat = erase(&app, &a, &canary).await;
    assert_eq!((repeat["notifications"].as_i64(), repeat["events"].as_i64()), (Some(0), Some(1)), "{repeat}");
    assert_eq!(repeat["suppressions"], 0, "the marker is not the address: {repeat}");
    // Idempotent: nothing more to remove.
    let last = erase(&app, &a, &canary).await;
    for (k, v) in last.as_object().unwrap() {
        assert_eq!(v, 0, "{k}: {last}");
    }

    // Once org B erases too, no byte of the address is left: not in any
    // table, nor in the raw SQLite file or its WAL.
    for _ in 0..600 {
        if !b_inbox.lock().unwrap().got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let by_b = erase(&app, &b, &upper).await;
    assert_eq!((by_b["notifications"].as_i64(), by_b["suppressions"].as_i64()), (Some(1), Some(1)), "{by_b}");
    let everything = app.db.everything().await.to_lowercase();
    assert!(!everything.contains(&canary), "the address is still in the database");
    let local = canary.split('@').next().unwrap();
    assert!(!everything.contains(local), "part of the address is still in the database");
}

async fn erasure_rejects_bad_input(app: TestApp) {
    let org = app.new_org().await;
    let long = format!("{}@example.com", "a".repeat(300));
    for (body, why) in [
        (json!({ "email": "not-an-address" }), "no @"),
        (json!({ "email": "" }), "empty"),
        (json!({ "email": "@example.com" }), "no local part"),
        (json!({ "email": long }), "oversized"),
        (json!({ "email": "a\u{0}b@example.com" }), "control character"),
        (json!({ "email": 5 }), "wrong type"),
        (json!({ "email": ["a@example.com"] }), "an array"),
        (json!({}), "missing"),
        (json!({ "email": "a@example.com", "also": 1 }), "unknown field"),
    ] {
        let res = app.post("/v1/erasures", &org.token, body).await;
        assert_eq!(res.status, 400, "{why}: {}", res.text);
        assert_eq!(res.content_type(), "application/problem+json", "{why}");
    }
    let raw =
        app.client.post(app.url("/v1/erasures")).bearer_auth(&org.token).header("content-type", "application/json");
    assert_eq!(app.send(raw.body("{\"email\":")).await.status, 400);
    let huge =
        app.client.post(app.url("/v1/erasures")).bearer_auth(&org.token).header("content-type", "application/json");
    let big = format!("{{\"email\":\"{}\"}}", "a".repeat(70 * 1024));
    let res = app.send(huge.body(big)).await;
    assert_eq!(res.status, 413, "{}", res.text);
    let res = app.call(Method::POST, "/v1/erasures", Auth::None, Some(json!({ "email": "a@example.com" }))).await;
    assert_eq!(res.status, 401);
    // Another org's id in the org header is not this token's org.
    let other = app.new_org().await;
    let res = app
        .send(
            app.client
                .post(app.url("/v1/erasures"))
                .bearer_auth(&org.token)
                .header("x-zitadel-orgid", &other.id)
                .json(&json!({ "email": "a@example.com" })),
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.text);
}

async fn storage_figures_and_pruning_runs_are_metrics(app: TestApp) {
    let org = app.new_org().await;
    let id = send(&app, &org, mail("m@example.com", "metrics")).await;
    wait_status(&app, &org, &id, "sent").await;
    app.clock.advance(8 * DAY);
    prune(&app).await;
    let res = app.get("/admin/v1/retention", &app.admin_token).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.json["storage"]["sizeBytes"].as_i64().unwrap() > 0, "{}", res.text);
    assert_eq!(res.json["lastRun"]["removed"]["bodies"], 1, "{}", res.text);
    if app.backend == Backend::Sqlite {
        assert_eq!(res.json["storage"]["rows"]["notifications"], 1, "{}", res.text);
        assert_eq!(res.json["storage"]["rows"]["notification_bodies"], 0, "{}", res.text);
    }
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for name in [
        "herald_db_size_bytes",
        "herald_db_rows{table=\"notifications\"}",
        "herald_retention_last_run_timestamp_seconds",
        "herald_retention_last_run_removed{what=\"bodies\"}",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}

/// SQLite gives pruned space back: the file shrinks after the records go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_shrinks_after_pruning() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let org = app.new_org().await;
    let big = "x".repeat(20_000);
    let ids: Vec<String> = futures::stream::iter(0..150)
        .map(|i| {
            let (app, org, big) = (&app, &org, &big);
            async move { send(app, org, mail(&format!("s{i}@example.com"), big)).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for id in &ids {
        wait_status(&app, &org, id, "sent").await;
    }
    let path = app.db.sqlite_path.clone().unwrap();
    let pages = || scalar_i64(&app, "PRAGMA page_count");
    let before = pages().await;
    app.clock.advance(100 * DAY);
    let removed = prune(&app).await;
    assert_eq!(removed["notifications"], 150, "{removed}");
    assert!(removed["pagesFreed"].as_i64().unwrap() > 0, "{removed}");
    let after = pages().await;
    assert!(after * 4 < before, "{before} pages before, {after} after");
    assert_eq!(scalar_i64(&app, "PRAGMA auto_vacuum").await, 2, "incremental");
    assert!(std::fs::metadata(&path).unwrap().len() < 3 * 1024 * 1024);
}

// ---- processes: SIGKILL while pruning; backup under load and restore ----

/// A herald process, its base URL, and the file its log goes to, when
/// kept.
struct Node(Child, String, Option<tempfile::NamedTempFile>);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn herald(db_url: &str, admin: &str, outbox: &std::path::Path, extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.env("HERALD_DATABASE_URL", db_url)
        .env("HERALD_ADMIN_TOKEN", admin)
        .env("HERALD_SECRET_KEY", TEST_SECRET_KEY)
        .env("HERALD_SMTP_ALLOW_HOSTS", "127.0.0.1")
        .env("HERALD_OUTBOX_DIR", outbox)
        .env("HERALD_LEASE_SECONDS", "2")
        .env("HERALD_WORKER_POLL_MS", "50")
        .env("HERALD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

fn start(db_url: &str, admin: &str, outbox: &std::path::Path, extra: &[(&str, &str)]) -> Node {
    let port = free_port();
    let mut cmd = herald(db_url, admin, outbox, extra);
    // Info, for the line that says on which address it listens (another
    // process on the port would answer `ready` in its place).
    cmd.arg("serve").env("HERALD_LISTEN", format!("127.0.0.1:{port}")).env("HERALD_LOG", "info");
    let log = tempfile::NamedTempFile::new().unwrap();
    cmd.stderr(log.reopen().unwrap());
    Node(cmd.spawn().expect("start herald"), format!("http://127.0.0.1:{port}"), Some(log))
}

async fn ready(client: &reqwest::Client, node: &Node) {
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{}/readyz", node.1)).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("herald did not become ready at {}", node.1);
}

async fn admin_post(client: &reqwest::Client, node: &Node, admin: &str, path: &str, body: Value) -> Value {
    let res = client.post(format!("{}{path}", node.1)).bearer_auth(admin).json(&body).send().await.unwrap();
    res.json().await.unwrap()
}

/// An org whose mail goes to `sink`, with zero-day retention; its token.
async fn org_for(client: &reqwest::Client, node: &Node, admin: &str, sink: &TestSmtp) -> String {
    let org = admin_post(client, node, admin, "/admin/v1/orgs", json!({ "name": "Prune Ltd" })).await;
    let id = org["id"].as_str().unwrap().to_owned();
    let token = admin_post(client, node, admin, &format!("/admin/v1/orgs/{id}/tokens"), json!({ "name": "t" })).await;
    let token = token["token"].as_str().unwrap().to_owned();
    let config = json!({ "emailServerHost": "127.0.0.1", "emailServerPort": sink.port().to_string(),
        "tlsEnabled": false, "fromEmail": "ops@prune.example", "enabled": true });
    let res = client
        .post(format!("{}/api/v1/notification-config", node.1))
        .header("X-Auth-Token", &token)
        .json(&config)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    token
}

async fn post_many(client: &reqwest::Client, base: &str, token: &str, from: usize, n: usize) -> Vec<String> {
    let ids = futures::stream::iter(from..from + n)
        .map(|i| async move {
            let body = json!({ "type": "message.send", "data": { "to": format!("u{i}@example.com"), "subject": format!("m{i}"), "text": "hi" } });
            let r = client.post(format!("{base}/v1/events")).bearer_auth(token).json(&body).send().await.ok()?;
            if r.status() != 202 {
                return None;
            }
            let v: Value = r.json().await.ok()?;
            v["notifications"][0]["id"].as_str().map(str::to_owned)
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    ids.into_iter().flatten().collect()
}

fn arrived(sink: &TestSmtp) -> std::collections::HashSet<String> {
    sink.messages()
        .iter()
        .map(|m| {
            let id = m.header("Message-ID").unwrap_or_default();
            id.trim_start_matches('<').split('@').next().unwrap_or_default().to_owned()
        })
        .collect()
}

/// Waits until every mail of `ids` reached `sink`. If some never do, the
/// panic says where they are: whether `node` still runs, where it said it
/// listens and its last warnings and errors, and the missing mails'
/// records in `db_url` (status, attempts, last error, and when the outbox
/// lets them go).
async fn wait_arrived(sink: &TestSmtp, ids: &[String], within: Duration, node: &mut Node, db_url: &str) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let seen = arrived(sink);
        let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains(*id)).collect();
        if missing.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            let exited = node.0.try_wait().ok().flatten();
            let records = where_they_are(db_url, &missing).await;
            let log = node.2.as_ref().and_then(|f| std::fs::read_to_string(f.path()).ok()).unwrap_or_default();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("herald listening"))
                .collect();
            let log = lines[lines.len().saturating_sub(20)..].join("\n");
            panic!(
                "{} of {} accepted mails never arrived; node exited: {exited:?}; sink connections: {}; {records}\nthe node's log (listening, warnings, errors):\n{log}",
                missing.len(),
                ids.len(),
                sink.connections()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The records of `ids`, counted by status, attempts, last error and the
/// seconds until their outbox row is due (`-` without one).
async fn where_they_are(db_url: &str, ids: &[&String]) -> String {
    const SQL: &str = "SELECT n.id, n.status, n.attempts, COALESCE(n.last_error, ''), o.available_at
        FROM notifications n LEFT JOIN outbox o ON o.notification_id = n.id";
    type Row = (String, String, i64, String, Option<i64>);
    let rows: Result<Vec<Row>, sqlx::Error> = if db_url.starts_with("postgres") {
        match sqlx::PgConnection::connect(db_url).await {
            Ok(mut c) => sqlx::query_as(SQL).fetch_all(&mut c).await,
            Err(e) => Err(e),
        }
    } else {
        match sqlx::SqliteConnection::connect(db_url).await {
            Ok(mut c) => sqlx::query_as(SQL).fetch_all(&mut c).await,
            Err(e) => Err(e),
        }
    };
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => return format!("records unreadable: {e}"),
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut counts = std::collections::BTreeMap::new();
    for id in ids {
        let key = match rows.iter().find(|r| &r.0 == *id) {
            None => "no record".to_owned(),
            Some((_, status, attempts, error, due)) => {
                let due = due.map_or("-".to_owned(), |at| format!("{}s", (at - now) / 1000));
                format!("{status}, {attempts} attempts, due in {due}, last error {error:?}")
            }
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    format!("records: {counts:?}")
}

/// Pruning every second in batches of 5 with zero-day retention, while
/// mail is sent; SIGKILL; after a restart every accepted mail arrives.
async fn sigkill_while_pruning_loses_nothing(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let admin = format!("test-admin-{}", uuid::Uuid::now_v7().simple());
    let outbox = tempfile::tempdir().unwrap();
    let sink = TestSmtp::start(Mode::Plain).await;
    // Slow enough that pruning (every second) starts well before the last
    // mails are sent: one org's mail goes out about 32 at a time (two
    // loops of 16, and the express lane's 16 at most while it has fewer
    // in flight), so 280 mails take several seconds. (150 ms once let all
    // 300 go out before the first pass on a loaded machine.)
    sink.set_delay(Duration::from_millis(1000));
    let env = [
        ("HERALD_RETENTION_INTERVAL_SECONDS", "1"),
        ("HERALD_RETENTION_BATCH", "5"),
        ("HERALD_RETENTION_BODY_DAYS", "0"),
        ("HERALD_RETENTION_RECORD_DAYS", "0"),
        ("HERALD_RETENTION_DEAD_DAYS", "0"),
    ];
    let client = crate::support::client_builder().build().unwrap();
    let node = start(&db.url, &admin, outbox.path(), &env);
    ready(&client, &node).await;
    let token = org_for(&client, &node, &admin, &sink).await;
    let ids = post_many(&client, &node.1, &token, 0, 300).await;
    assert_eq!(ids.len(), 300);
    // Kill once pruning has removed records while mail is still going out.
    let mut pruned = false;
    for _ in 0..600 {
        let left = match backend {
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM notifications").fetch_one(&mut c).await.unwrap()
            }
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
                sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM notifications").fetch_one(&mut c).await.unwrap()
            }
        };
        let sent = arrived(&sink).len() as i64;
        if left < 300 && sent < 280 {
            pruned = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(node); // SIGKILL
    assert!(pruned, "the kill came before pruning or after sending ({} sent)", arrived(&sink).len());
    sink.set_delay(Duration::ZERO);
    let mut node = start(&db.url, &admin, outbox.path(), &env);
    ready(&client, &node).await;
    // Mail the killed process had claimed comes back when its lease (2 s
    // here) runs out; the deadline leaves room for retries (a failed
    // attempt's back-off is 15 to 30 s) on a busy machine.
    wait_arrived(&sink, &ids, Duration::from_secs(180), &mut node, &db.url).await;
    drop(node);
    if let Some(path) = &db.sqlite_path {
        let c = rusqlite::Connection::open(path).unwrap();
        let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(ok, "ok");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_sigkill_while_pruning_loses_nothing() {
    sigkill_while_pruning_loses_nothing(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sigkill_while_pruning_loses_nothing() {
    sigkill_while_pruning_loses_nothing(Backend::Postgres).await;
}

/// `herald backup` while events pour in (no workers: all of it stays
/// queued), then `herald restore` into a stopped node's place and a start
/// with workers: every mail acknowledged before the backup began arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_under_load_restores_and_delivers_what_was_queued() {
    let Some(db) = TestDb::new(Backend::Sqlite).await else { return };
    let admin = format!("test-admin-{}", uuid::Uuid::now_v7().simple());
    let outbox = tempfile::tempdir().unwrap();
    let sink = TestSmtp::start(Mode::Plain).await;
    let client = crate::support::client_builder().build().unwrap();
    let port = free_port();
    let mut cmd = herald(&db.url, &admin, outbox.path(), &[]);
    cmd.args(["serve", "--no-workers"]).env("HERALD_LISTEN", format!("127.0.0.1:{port}"));
    let node = Node(cmd.spawn().unwrap(), format!("http://127.0.0.1:{port}"), None);
    ready(&client, &node).await;
    let token = org_for(&client, &node, &admin, &sink).await;
    let before = post_many(&client, &node.1, &token, 0, 200).await;
    assert_eq!(before.len(), 200);
    // More load while the backup runs.
    let load = {
        let (client, url, token) = (client.clone(), node.1.clone(), token.clone());
        tokio::spawn(async move { post_many(&client, &url, &token, 1000, 400).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let backup = tempfile::tempdir().unwrap();
    let file = backup.path().join("herald-backup.db");
    let out = herald(&db.url, &admin, outbox.path(), &[])
        .args(["backup", "--to"])
        .arg(&file)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "backup failed");
    let during = load.await.unwrap();
    assert!(!during.is_empty());
    drop(node);
    // A second backup to the same file is refused rather than overwriting.
    let again = herald(&db.url, &admin, outbox.path(), &[]).args(["backup", "--to"]).arg(&file).output().unwrap();
    assert!(!again.status.success());

    // Restore over the stopped node's database; the old file is kept.
    let out = herald(&db.url, &admin, outbox.path(), &[])
        .args(["restore", "--from"])
        .arg(&file)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "restore failed: {}", String::from_utf8_lossy(&out.stdout));
    let said: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(std::path::Path::new(said["previous"].as_str().unwrap()).exists(), "{said}");
    let in_backup: Vec<String> = {
        let c = rusqlite::Connection::open(&file).unwrap();
        let mut stmt = c.prepare("SELECT id FROM notifications").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert!(in_backup.len() >= 200, "{} in the backup", in_backup.len());
    for id in &before {
        assert!(in_backup.contains(id), "acknowledged before the backup, missing from it: {id}");
    }
    let mut node = start(&db.url, &admin, outbox.path(), &[]);
    ready(&client, &node).await;
    wait_arrived(&sink, &in_backup, Duration::from_secs(60), &mut node, &db.url).await;
    drop(node);
}

/// The PostgreSQL procedure of the README: `pg_dump -Fc` while Herald takes
/// events, `pg_restore` into a fresh database, start: the queued mail goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pg_dump_under_load_restores_and_delivers_what_was_queued() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let Some(target) = TestDb::new(Backend::Postgres).await else { return };
    let admin = format!("test-admin-{}", uuid::Uuid::now_v7().simple());
    let outbox = tempfile::tempdir().unwrap();
    let sink = TestSmtp::start(Mode::Plain).await;
    let client = crate::support::client_builder().build().unwrap();
    let port = free_port();
    let mut cmd = herald(&db.url, &admin, outbox.path(), &[]);
    cmd.args(["serve", "--no-workers"]).env("HERALD_LISTEN", format!("127.0.0.1:{port}"));
    let node = Node(cmd.spawn().unwrap(), format!("http://127.0.0.1:{port}"), None);
    ready(&client, &node).await;
    let token = org_for(&client, &node, &admin, &sink).await;
    let before = post_many(&client, &node.1, &token, 0, 200).await;
    let load = {
        let (client, url, token) = (client.clone(), node.1.clone(), token.clone());
        tokio::spawn(async move { post_many(&client, &url, &token, 1000, 300).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("herald.dump");
    let out = Command::new("pg_dump").args(["-Fc", "-f"]).arg(&dump).arg(&db.url).output().expect("pg_dump");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    load.await.unwrap();
    drop(node);
    let out =
        Command::new("pg_restore").args(["--no-owner", "-d", &target.url]).arg(&dump).output().expect("pg_restore");
    assert!(out.status.success(), "pg_restore: {}", String::from_utf8_lossy(&out.stderr));
    let mut c = sqlx::PgConnection::connect(&target.url).await.unwrap();
    let restored: Vec<String> = sqlx::query_scalar("SELECT id FROM notifications").fetch_all(&mut c).await.unwrap();
    for id in &before {
        assert!(restored.contains(id), "acknowledged before the dump, missing from it: {id}");
    }
    let mut node = start(&target.url, &admin, outbox.path(), &[]);
    ready(&client, &node).await;
    wait_arrived(&sink, &restored, Duration::from_secs(60), &mut node, &target.url).await;
    drop(node);
}

/// Resolved alerts go after the record days (open ones stay, however old);
/// quota windows go with the records; the suppression list is kept.
async fn resolved_alerts_and_old_quota_windows_go_open_alerts_and_suppressions_stay(app: TestApp) {
    let org = app.new_org().await;
    let other = app.new_org().await;
    let t0 = app.clock.now().0;
    let d = 86_400_000_i64;
    let today = t0.div_euclid(d) * d;
    for (o, id, opened, resolved) in [
        (&org, "alert-old-resolved", t0 - 10 * d, Some(t0 - d)),
        (&org, "alert-recent-resolved", t0, Some(t0 + 2 * d)),
        (&other, "alert-other-resolved", t0 - 10 * d, Some(t0 - d)),
    ] {
        let resolved = resolved.map_or("NULL".to_owned(), |r: i64| r.to_string());
        scalar_exec(
            &app,
            &format!(
                "INSERT INTO alerts (id, org_id, kind, subject, detail, opened_at, resolved_at) \
                 VALUES ('{id}', '{}', 'webhook_disabled', '{id}', 'x', {opened}, {resolved})",
                o.id
            ),
        )
        .await;
    }
    for (period, bucket) in [("hour", t0 - 3 * d), ("day", today)] {
        scalar_exec(
            &app,
            &format!(
                "INSERT INTO org_usage (org_id, period, bucket, used) VALUES ('{}', '{period}', {bucket}, 7)",
                org.id
            ),
        )
        .await;
    }
    let listed = app.post("/v1/suppressions", &org.token, json!({ "email": "kept@example.com" })).await;
    assert_eq!(listed.status, 201, "{}", listed.text);
    let count = |sql: String| {
        let app = &app;
        async move { scalar_i64(app, &sql).await }
    };
    let alert = |id: &str| format!("SELECT COUNT(*) FROM alerts WHERE id = '{id}'");
    let usage = format!("SELECT COUNT(*) FROM org_usage WHERE org_id = '{}'", org.id);

    // Day 0: the record days (90) have not passed for anything.
    let removed = prune(&app).await;
    assert_eq!((removed["alerts"].as_i64(), removed["usageWindows"].as_i64()), (Some(0), Some(0)), "{removed}");
    assert_eq!(count(usage.clone()).await, 2);

    // Day 91: the alert resolved on day -1 goes (in both orgs), the one
    // resolved on day 2 and the open one stay; both quota windows go.
    app.clock.advance(91 * DAY);
    // An alert open since long before (inserted now: the workers' own
    // evaluation may resolve it meanwhile, but not before day 91).
    scalar_exec(
        &app,
        &format!(
            "INSERT INTO alerts (id, org_id, kind, subject, detail, opened_at, resolved_at) \
             VALUES ('alert-old-open', '{}', 'webhook_disabled', 'x', 'x', {}, NULL)",
            org.id,
            t0 - 100 * d
        ),
    )
    .await;
    let removed = prune(&app).await;
    assert_eq!((removed["alerts"].as_i64(), removed["usageWindows"].as_i64()), (Some(2), Some(2)), "{removed}");
    assert_eq!(count(alert("alert-old-resolved")).await, 0);
    assert_eq!(count(alert("alert-other-resolved")).await, 0);
    assert_eq!(count(alert("alert-recent-resolved")).await, 1);
    assert_eq!(count(alert("alert-old-open")).await, 1);
    assert_eq!(count(usage.clone()).await, 0);
    // The suppression list is kept until an address is removed.
    let entry = app.get("/v1/suppressions/kept@example.com", &org.token).await;
    assert_eq!(entry.status, 200, "{}", entry.text);

    // A window of today is never pruned, even with no record days at all.
    let put = app
        .call(
            Method::PUT,
            &format!("/admin/v1/orgs/{}/retention", org.id),
            Auth::Bearer(&app.admin_token),
            Some(json!({ "bodyDays": 0, "deadDays": 0, "recordDays": 0 })),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let now = app.clock.now().0;
    let (today, yesterday) = (now.div_euclid(d) * d, now.div_euclid(d) * d - d);
    for (period, bucket) in [("day", today), ("day", yesterday), ("day", yesterday - d)] {
        scalar_exec(
            &app,
            &format!(
                "INSERT INTO org_usage (org_id, period, bucket, used) VALUES ('{}', '{period}', {bucket}, 1)",
                org.id
            ),
        )
        .await;
    }
    let removed = prune(&app).await;
    assert_eq!(removed["usageWindows"], 1, "only the day before yesterday: {removed}");
    assert_eq!(count(usage).await, 2);
}

/// Mail that bounced or drew a complaint after it was sent follows the
/// delivered-mail rule: body after 7 days, record after 90.
async fn bounced_and_complained_mail_is_pruned_like_delivered_mail(app: TestApp) {
    let org = app.new_org().await;
    let bounced = send(&app, &org, mail("gone@example.com", "a bounced body")).await;
    let complained = send(&app, &org, mail("angry@example.com", "a complained body")).await;
    wait_status(&app, &org, &bounced, "sent").await;
    wait_status(&app, &org, &complained, "sent").await;
    // The status feedback gives them (tests/api/bounces.rs applies real
    // reports; here only the pruning rule is under test).
    scalar_exec(&app, &format!("UPDATE notifications SET status = 'bounced' WHERE id = '{bounced}'")).await;
    scalar_exec(&app, &format!("UPDATE notifications SET status = 'complained' WHERE id = '{complained}'")).await;

    app.clock.advance(6 * DAY);
    assert_eq!(prune(&app).await["bodies"], 0);
    app.clock.advance(2 * DAY);
    let removed = prune(&app).await;
    assert_eq!(removed["bodies"].as_i64(), Some(2), "{removed}");
    assert_eq!(body_len(&app, &bounced).await, 0);
    assert_eq!(body_len(&app, &complained).await, 0);
    assert_eq!(app.get(&format!("/v1/notifications/{bounced}"), &org.token).await.json["status"], "bounced");

    app.clock.advance(83 * DAY);
    let removed = prune(&app).await;
    assert_eq!(removed["notifications"].as_i64(), Some(2), "{removed}");
    assert_eq!(scalar_i64(&app, "SELECT COUNT(*) FROM notifications").await, 0);
}
