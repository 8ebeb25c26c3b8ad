//! Alerts (issue 18): a burst of dead mail opens one alert, reported once
//! to webhooks, however many evaluations run at the same time; it resolves
//! once when the window has passed. Same for a disabled webhook endpoint.

use std::time::Duration;

use herald::domain::smtp::Security;
use serde_json::{Value, json};

use crate::delivery::use_server;
use crate::support::smtp::{Action, Mode, TestSmtp};
use crate::support::{TestApp, TestOrg};
use crate::webhooks::{create, receiver};

on_each_backend!(
    a_burst_of_dead_mail_opens_one_alert_and_resolves_it_once,
    alerts_reject_bad_queries_and_stay_within_their_org,
);

async fn evaluate_in_a_burst(app: &TestApp) -> (usize, usize) {
    let now = app.clock.now();
    let runs = (0..8).map(|_| herald::domain::alerts::evaluate(&app.store, now));
    futures::future::join_all(runs).await.into_iter().map(Result::unwrap).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
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
    for _ in 0..400 {
        if inbox.lock().unwrap().got.len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {n} webhooks");
}

async fn dead_mails(app: &TestApp, org: &TestOrg, n: usize) {
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
