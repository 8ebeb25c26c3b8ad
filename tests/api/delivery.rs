//! The delivery engine (contract §8) over real sockets: events in over
//! HTTP, mail out over SMTP to the test server (plain, STARTTLS, implicit
//! TLS) or to `.eml` files, retries, the delivery log and test sends.

use std::time::Duration;

use herald::domain::smtp::{self, PasswordChange, Security, SmtpDraft};
use herald::domain::{Actor, OrgId};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::smtp::{Action, Mode, TestSmtp};
use crate::support::{Auth, TestApp, TestOrg, TestResponse};

on_each_backend!(
    file_transport_writes_eml_files_when_nothing_is_configured,
    plain_smtp_delivers_with_typed_headers_and_derived_message_id,
    a_4xx_is_retried_with_backoff_then_sent,
    a_5xx_is_dead_and_retry_requeues_it,
    a_connection_dropped_mid_data_is_retried,
    starttls_required_but_not_offered_sends_nothing_in_clear,
    starttls_auth_keeps_the_password_off_the_plaintext_wire,
    self_signed_certificates_only_when_allowed,
    outbound_host_policy_refusal_is_visible,
    password_changed_follows_policy_and_locale,
    idempotency_replays_rejects_and_serialises,
    idempotent_replays_survive_later_changes_and_failures_free_the_key,
    delivery_log_pages_filters_and_hides_other_orgs,
    events_reject_bad_input_and_store_nothing,
    smtp_test_reports_each_step,
    smtp_test_never_lends_the_password_to_another_host,
    smtp_test_lends_the_password_only_to_the_same_server_account_and_transport,
    smtp_test_never_lends_the_instance_password_to_an_org,
    an_unrecognised_stored_security_mode_fails_closed,
    smtp_test_refusals_and_file_results_name_no_internal_facts,
    a_changed_config_gets_a_new_connection_pool,
);

const CANARY: &str = "canary-Pa55w0rd-7f3e9c";

/// Gives `org` its own SMTP server on `server`.
pub(crate) async fn use_server(
    app: &TestApp,
    org: &TestOrg,
    server: &TestSmtp,
    security: Security,
    invalid_certs: bool,
    auth: Option<(&str, &str)>,
) {
    use_port(app, org, server.port(), security, invalid_certs, auth).await;
}

/// Gives `org` its own SMTP server at `localhost:port`.
pub(crate) async fn use_port(
    app: &TestApp,
    org: &TestOrg,
    port: u16,
    security: Security,
    invalid_certs: bool,
    auth: Option<(&str, &str)>,
) {
    let org_id = OrgId::parse(&org.id).unwrap();
    let draft = SmtpDraft {
        enabled: Some(true),
        host: "localhost".into(),
        port,
        security,
        accept_invalid_certs: invalid_certs,
        username: auth.map(|(u, _)| u.to_owned()),
        password: auth.map_or(PasswordChange::Keep, |(_, p)| PasswordChange::Set(herald::secret::Secret::new(p))),
        from_email: Some("notify@acme.example".into()),
        from_name: Some("Acme Notifications".into()),
        reply_to: Some("help@acme.example".into()),
    };
    let now = app.clock.now();
    let cipher = app.state.cipher();
    let result = match smtp::org_config(&app.store, &org_id).await {
        Ok(_) => smtp::replace_org_config(&app.store, cipher, &Actor::cli(), &org_id, draft, now).await,
        Err(_) => smtp::create_org_config(&app.store, cipher, &Actor::cli(), &org_id, draft, now).await,
    };
    result.unwrap();
}

pub(crate) fn message(to: &str, subject: &str) -> Value {
    json!({ "type": "message.send", "data": { "to": to, "subject": subject, "text": "Hello from Herald.", "html": "<p>Hello <b>from</b> Herald.</p>" } })
}

async fn post_event(app: &TestApp, org: &TestOrg, body: Value) -> TestResponse {
    let res = app.post("/v1/events", &org.token, body).await;
    assert_eq!(res.status, 202, "{}", res.text);
    res
}

/// Posts an event and returns its one notification's id.
pub(crate) async fn send(app: &TestApp, org: &TestOrg, body: Value) -> String {
    let res = post_event(app, org, body).await;
    res.json["notifications"][0]["id"].as_str().unwrap().to_owned()
}

/// Polls the delivery log until notification `id` has `status` (20 s at most).
pub(crate) async fn wait_status(app: &TestApp, org: &TestOrg, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    // Up to a minute: CI's PostgreSQL, busy creating a database for every
    // test, may stall for seconds; a read that meets a stall is a 503
    // (an outage, by design), and the next poll reads again.
    for _ in 0..1200 {
        let res = app.get(&format!("/v1/notifications/{id}"), &org.token).await;
        if res.status == 503 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(res.status, 200, "{}", res.text);
        if res.json["status"] == status {
            return res.json;
        }
        last = res.json;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("notification {id} never reached {status}: {last}");
}

/// Makes every retry due now.
fn skip_backoff(app: &TestApp) {
    app.clock.advance(Duration::from_secs(2 * 3600));
}

async fn file_transport_writes_eml_files_when_nothing_is_configured(app: TestApp) {
    let org = app.new_org().await;
    let id = send(&app, &org, message("ada@example.com", "Fresh install")).await;
    let n = wait_status(&app, &org, &id, "sent").await;
    let path = app.outbox_dir.join(format!("{id}.eml"));
    let eml = std::fs::read_to_string(&path).unwrap();
    assert!(eml.contains("Subject: Fresh install"), "{eml}");
    assert!(eml.contains(&format!("<{id}@")), "Message-ID derives from the id: {eml}");
    assert!(n["smtpResponse"].as_str().unwrap().contains("written to"), "{n}");
    assert_eq!(n["attempts"], 1);
    assert!(n["sentAt"].is_string());
    let leftovers: Vec<_> = std::fs::read_dir(&app.outbox_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no partial files: {leftovers:?}");
}

/// The sum of the samples on `/metrics` whose line starts with `prefix`.
fn metric_sum(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn plain_smtp_delivers_with_typed_headers_and_derived_message_id(app: TestApp) {
    let server = TestSmtp::start(Mode::Plain).await;
    let org = app.new_org().await;
    use_server(&app, &org, &server, Security::Plain, false, None).await;
    let before = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let id = send(&app, &org, message("ada@example.com", "Quarterly report")).await;
    let n = wait_status(&app, &org, &id, "sent").await;
    let got = server.wait_for(1).await;
    let m = &got[0];
    assert_eq!(m.from, "notify@acme.example");
    assert_eq!(m.to, ["ada@example.com"]);
    assert_eq!(m.header("Subject").as_deref(), Some("Quarterly report"));
    assert_eq!(m.header("From").as_deref(), Some("\"Acme Notifications\" <notify@acme.example>"));
    assert_eq!(m.header("Reply-To").as_deref(), Some("help@acme.example"));
    let message_id = m.header("Message-ID").unwrap();
    assert!(message_id.starts_with(&format!("<{id}@")), "{message_id}");
    assert!(m.data.contains("multipart/alternative"), "text and HTML parts");
    assert!(n["smtpResponse"].as_str().unwrap().starts_with("250"), "{n}");
    assert_eq!(n["lastError"], Value::Null);
    // The delivery metrics are on /metrics (the recorder is process-wide).
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for name in [
        "herald_events_total{type=\"message.send\"}",
        "herald_notifications_total{status=\"sent\"}",
        "herald_smtp_send_seconds_bucket",
        "herald_outbox_depth",
        "herald_outbox_oldest_due_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    // Where a mail's time goes: its commit (a new org's event takes the
    // urgent lane), the claim that leased it (unless the commit did) and
    // acceptance to the first attempt's result. The recorder is shared
    // with the other tests, so these only grow.
    for prefix in ["herald_commit_seconds_count{lane=\"urgent\"}", "herald_delivery_seconds_count{outcome=\"sent\"}"] {
        assert!(metric_sum(&metrics, prefix) > metric_sum(&before, prefix), "{prefix} did not grow");
    }
    assert!(metrics.contains("herald_claim_seconds_bucket{claim="), "herald_claim_seconds missing from /metrics");
}

async fn a_4xx_is_retried_with_backoff_then_sent(app: TestApp) {
    let server = TestSmtp::start(Mode::Plain).await;
    server.script([Action::Reply("451 4.3.0 mailbox busy, try later".into())]);
    let org = app.new_org().await;
    use_server(&app, &org, &server, Security::Plain, false, None).await;
    let id = send(&app, &org, message("ada@example.com", "Retry me")).await;
    let n = wait_status(&app, &org, &id, "retrying").await;
    assert!(n["smtpResponse"].as_str().unwrap().starts_with("451"), "{n}");
    assert!(n["lastError"].as_str().unwrap().contains("transient"), "{n}");
    // The back-off holds: nothing more happens until it has passed.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(server.messages().len(), 0);
    assert_eq!(wait_status(&app, &org, &id, "retrying").await["attempts"], 1);
    skip_backoff(&app);
    let n = wait_status(&app, &org, &id, "sent").await;
    assert_eq!(n["attempts"], 2);
    assert_eq!(n["lastError"], Value::Null);
    let log = n["attemptLog"].as_array().unwrap();
    assert_eq!(log.len(), 2, "{n}");
    assert_eq!(log[0]["outcome"], "retrying");
    assert!(log[0]["smtpResponse"].as_str().unwrap().starts_with("451"));
    assert_eq!(log[1]["outcome"], "sent");
    assert_eq!(server.wait_for(1).await.len(), 1);
}

async fn a_5xx_is_dead_and_retry_requeues_it(app: TestApp) {
    let server = TestSmtp::start(Mode::Plain).await;
    server.script([Action::Reply("550 5.1.1 no such mailbox".into())]);
    let org = app.new_org().await;
    use_server(&app, &org, &server, Security::Plain, false, None).await;
    let id = send(&app, &org, message("nobody@example.com", "Bounce")).await;
    let n = wait_status(&app, &org, &id, "dead").await;
    assert!(n["smtpResponse"].as_str().unwrap().starts_with("550 5.1.1"), "{n}");
    assert_eq!(n["attempts"], 1);
    // Dead stays dead (no automatic retry), until asked.
    skip_backoff(&app);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(wait_status(&app, &org, &id, "dead").await["attempts"], 1);
    let res = app.post(&format!("/v1/notifications/{id}/retry"), &org.token, json!({})).await;
    assert_eq!(res.status, 202, "{}", res.text);
    let n = wait_status(&app, &org, &id, "sent").await;
    assert_eq!(n["attempts"], 2);
    // Only a dead notification can be requeued.
    let res = app.post(&format!("/v1/notifications/{id}/retry"), &org.token, json!({})).await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert_eq!(res.content_type(), "application/problem+json");
    let other = app.new_org().await;
    let res = app.post(&format!("/v1/notifications/{id}/retry"), &other.token, json!({})).await;
    assert_eq!(res.status, 404, "{}", res.text);
}

async fn a_connection_dropped_mid_data_is_retried(app: TestApp) {
    let server = TestSmtp::start(Mode::Plain).await;
    server.script([Action::Drop]);
    let org = app.new_org().await;
    use_server(&app, &org, &server, Security::Plain, false, None).await;
    let id = send(&app, &org, message("ada@example.com", "Dropped")).await;
    let n = wait_status(&app, &org, &id, "retrying").await;
    assert!(n["lastError"].is_string(), "{n}");
    skip_backoff(&app);
    wait_status(&app, &org, &id, "sent").await;
    let got = server.wait_for(1).await;
    assert_eq!(got.len(), 1);
}

async fn starttls_required_but_not_offered_sends_nothing_in_clear(app: TestApp) {
    let server = TestSmtp::start(Mode::Plain).await;
    let org = app.new_org().await;
    use_server(&app, &org, &server, Security::StartTls, true, Some(("mailer", CANARY))).await;
    let id = send(&app, &org, message("ada@example.com", "Secret plans")).await;
    let n = wait_status(&app, &org, &id, "retrying").await;
    assert!(n["lastError"].as_str().unwrap().to_lowercase().contains("starttls"), "{n}");
    let wire = server.plaintext();
    assert!(!wire.contains("MAIL FROM") && !wire.contains("AUTH"), "nothing but EHLO in clear: {wire}");
    assert!(!wire.contains("Secret plans"));
    assert!(server.messages().is_empty());
}

async fn starttls_auth_keeps_the_password_off_the_plaintext_wire(app: TestApp) {
    let server = TestSmtp::start(Mode::StartTls).await;
    server.require_auth("mailer", CANARY);
    let org = app.new_org().await;
    use_server(&app, &org, &server, Security::StartTls, true, Some(("mailer", CANARY))).await;
    let id = send(&app, &org, message("ada@example.com", "Over TLS")).await;
    wait_status(&app, &org, &id, "sent").await;
    let m = &server.wait_for(1).await[0];
    assert!(m.tls, "the message went over TLS");
    assert_eq!(m.auth, Some(("mailer".to_owned(), CANARY.to_owned())));
    let wire = server.plaintext();
    assert!(wire.contains("STARTTLS") && !wire.contains("AUTH"), "{wire}");
    use base64::Engine as _;
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0mailer\0{CANARY}"));
    assert!(!wire.contains(CANARY) && !wire.contains(&plain));
    // Nor in anything Herald said or logged.
    let res = app.get(&format!("/v1/notifications/{id}"), &org.token).await;
    assert!(!res.text.contains(CANARY));
    assert!(!crate::support::logs().contains(CANARY), "the password was logged");
}

async fn self_signed_certificates_only_when_allowed(app: TestApp) {
    let server = TestSmtp::start(Mode::ImplicitTls).await;
    let org = app.new_org().await;
    use_server(&app, &org, &server, Security::Tls, false, None).await;
    let id = send(&app, &org, message("ada@example.com", "Implicit TLS")).await;
    let n = wait_status(&app, &org, &id, "retrying").await;
    assert!(n["lastError"].as_str().unwrap().contains("certificate"), "{n}");
    assert!(server.messages().is_empty());
    // Allowing this server's self-signed certificate (a new config version)
    // lets the retry through.
    use_server(&app, &org, &server, Security::Tls, true, None).await;
    skip_backoff(&app);
    wait_status(&app, &org, &id, "sent").await;
    let m = &server.wait_for(1).await[0];
    assert!(m.tls);
    assert!(server.plaintext().is_empty(), "implicit TLS: no byte in clear");
}

async fn outbound_host_policy_refusal_is_visible(app: TestApp) {
    let org = app.new_org().await;
    let org_id = OrgId::parse(&org.id).unwrap();
    let draft = SmtpDraft {
        enabled: Some(true),
        host: "10.255.255.1".into(),
        port: 25,
        security: Security::Plain,
        accept_invalid_certs: false,
        username: None,
        password: PasswordChange::Keep,
        from_email: None,
        from_name: None,
        reply_to: None,
    };
    smtp::create_org_config(&app.store, app.state.cipher(), &Actor::cli(), &org_id, draft, app.clock.now())
        .await
        .unwrap();
    let id = send(&app, &org, message("ada@example.com", "Internal")).await;
    let n = wait_status(&app, &org, &id, "dead").await;
    let error = n["lastError"].as_str().unwrap();
    assert!(error.contains("outbound host policy") && error.contains("HERALD_SMTP_ALLOW_HOSTS"), "{error}");
    assert!(crate::support::logs().contains("refused by the outbound host policy"));
}

async fn create_user(app: &TestApp, org: &TestOrg, email: &str, locale: &str) -> String {
    let body = json!({ "name": "Grete Müller", "email": email, "locale": locale });
    let res = app.call(Method::POST, "/api/v1/users", Auth::XAuthToken(&org.token), Some(body)).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.json["data"]["id"].as_str().unwrap().to_owned()
}

async fn password_changed_follows_policy_and_locale(app: TestApp) {
    let server = TestSmtp::start(Mode::Plain).await;
    let org = app.new_org().await;
    use_server(&app, &org, &server, Security::Plain, false, None).await;
    let user = create_user(&app, &org, "grete@example.com", "DE").await;
    let res = post_event(&app, &org, json!({ "type": "user.password_changed", "recipient": { "userId": user } })).await;
    assert_eq!(res.json["notifications"].as_array().unwrap().len(), 1, "{}", res.text);
    assert_eq!(res.json["notifications"][0]["to"], "grete@example.com");
    assert!(res.json.get("suppressed").is_none());
    // By email, with a user who has no template language: English.
    create_user(&app, &org, "jun@example.com", "JA").await;
    post_event(&app, &org, json!({ "type": "user.password_changed", "recipient": { "email": "JUN@example.com" } }))
        .await;
    let got = server.wait_for(2).await;
    let german = got.iter().find(|m| m.to == ["grete@example.com"]).unwrap();
    assert!(german.header("Subject").unwrap().contains("Passwort"), "{:?}", german.header("Subject"));
    assert!(german.data.contains("Content-Type: text/html"), "an HTML part too");
    let english = got.iter().find(|m| m.to == ["jun@example.com"]).unwrap();
    assert!(english.header("Subject").unwrap().starts_with("Your "), "{:?}", english.header("Subject"));

    // Policy off (Zitadel API) → suppressed, with the reason, nothing queued.
    let res = app.post("/management/v1/policies/notification", &org.token, json!({ "passwordChange": false })).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let res = post_event(&app, &org, json!({ "type": "user.password_changed", "recipient": { "userId": user } })).await;
    assert_eq!(res.json["notifications"], json!([]));
    assert!(res.json["suppressed"].as_str().unwrap().contains("passwordChange"), "{}", res.text);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.messages().len(), 2);

    // An unknown or foreign user is 404, in the native envelope.
    let other = app.new_org().await;
    let res = app
        .post("/v1/events", &other.token, json!({ "type": "user.password_changed", "recipient": { "userId": user } }))
        .await;
    assert_eq!(res.status, 404, "{}", res.text);
}

async fn idempotency_replays_rejects_and_serialises(app: TestApp) {
    let org = app.new_org().await;
    let post = |key: &str, body: Value| {
        app.client.post(app.url("/v1/events")).bearer_auth(&org.token).header("Idempotency-Key", key).json(&body)
    };
    let first = app.send(post("order-1", message("ada@example.com", "Once"))).await;
    assert_eq!(first.status, 202, "{}", first.text);
    // Same body, other formatting and key order: the first answer again.
    let reordered = app
        .send(
            app.client
                .post(app.url("/v1/events"))
                .bearer_auth(&org.token)
                .header("Idempotency-Key", "order-1")
                .header("content-type", "application/json")
                .body(r#"{ "data": {"html":"<p>Hello <b>from</b> Herald.</p>", "text":"Hello from Herald.", "subject":"Once", "to":"ada@example.com"}, "type":"message.send" }"#),
        )
        .await;
    assert_eq!(reordered.status, 202, "{}", reordered.text);
    assert_eq!(reordered.json, first.json);
    assert_eq!(reordered.headers.get("idempotent-replayed").unwrap(), "true");
    let other = app.send(post("order-1", message("ada@example.com", "Twice?"))).await;
    assert_eq!(other.status, 422, "{}", other.text);
    assert_eq!(other.json["type"], "urn:herald:problem:idempotency-key-reused");
    // Keys are per org.
    let org2 = app.new_org().await;
    let res = app
        .send(
            app.client
                .post(app.url("/v1/events"))
                .bearer_auth(&org2.token)
                .header("Idempotency-Key", "order-1")
                .json(&message("ada@example.com", "Twice?")),
        )
        .await;
    assert_eq!(res.status, 202);
    // After 24 h the key is forgotten.
    app.clock.advance(Duration::from_secs(24 * 3600 + 1));
    let later = app.send(post("order-1", message("ada@example.com", "Twice?"))).await;
    assert_eq!(later.status, 202);
    assert_ne!(later.json["id"], first.json["id"]);

    // 100 parallel requests with one key: one event; the others replay it or
    // are told it is in flight.
    let body = message("ada@example.com", "Parallel");
    let calls = (0..100).map(|_| app.send(post("parallel", body.clone())));
    let answers = futures::future::join_all(calls).await;
    let mut ids = std::collections::HashSet::new();
    for a in &answers {
        match a.status {
            202 => {
                ids.insert(a.json["id"].as_str().unwrap().to_owned());
            }
            409 => assert_eq!(a.json["type"], "urn:herald:problem:request-in-progress", "{}", a.text),
            other => panic!("unexpected {other}: {}", a.text),
        }
    }
    assert_eq!(ids.len(), 1, "exactly one event: {ids:?}");
    let log = app.get("/v1/notifications?limit=500", &org.token).await;
    let parallel = log.json["items"].as_array().unwrap().iter().filter(|n| n["subject"] == "Parallel").count();
    assert_eq!(parallel, 1);
    // Bad keys are refused.
    let res = app.send(post(&"k".repeat(300), body.clone())).await;
    assert_eq!(res.status, 400);
    assert_eq!(res.json["errors"][0]["field"], "Idempotency-Key");
}

async fn delivery_log_pages_filters_and_hides_other_orgs(app: TestApp) {
    let org = app.new_org().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(send(&app, &org, message("ada@example.com", &format!("n{i}"))).await);
    }
    for id in &ids {
        wait_status(&app, &org, id, "sent").await;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let res = app.get(&format!("/v1/notifications?limit=2&cursor={cursor}"), &org.token).await;
        assert_eq!(res.status, 200, "{}", res.text);
        for n in res.json["items"].as_array().unwrap() {
            seen.push(n["id"].as_str().unwrap().to_owned());
            assert_eq!(n["to"], "ada@example.com");
            assert!(n["createdAt"].is_string() && n["subject"].is_string());
        }
        match res.json["nextCursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let sent = app.get("/v1/notifications?status=sent", &org.token).await;
    assert_eq!(sent.json["items"].as_array().unwrap().len(), 5);
    let dead = app.get("/v1/notifications?status=dead", &org.token).await;
    assert_eq!(dead.json["items"], json!([]));
    for bad in ["status=lost", "limit=0", "limit=501", "cursor=abc", "limit=x"] {
        let res = app.get(&format!("/v1/notifications?{bad}"), &org.token).await;
        assert_eq!(res.status, 400, "{bad}: {}", res.text);
        assert_eq!(res.content_type(), "application/problem+json");
    }
    let other = app.new_org().await;
    let res = app.get(&format!("/v1/notifications/{}", ids[0]), &other.token).await;
    assert_eq!(res.status, 404);
    let missing = app.get(&format!("/v1/notifications/{}", uuid::Uuid::now_v7()), &other.token).await;
    assert_eq!((missing.status, &missing.json["detail"]), (404, &res.json["detail"]));
    let res = app.get("/v1/notifications", &other.token).await;
    assert_eq!(res.json["items"], json!([]));
}

async fn events_reject_bad_input_and_store_nothing(app: TestApp) {
    let org = app.new_org().await;
    let cases = [
        (json!({ "type": "nope" }), "type"),
        (json!({ "type": 5 }), "type"),
        (json!({ "type": "message.send" }), "data.to"),
        (json!({ "type": "message.send", "data": { "to": "x", "subject": "s", "text": "t" } }), "data.to"),
        (
            json!({ "type": "message.send", "data": { "to": "a@b.example\r\nBcc: c@d.example", "subject": "s", "text": "t" } }),
            "data.to",
        ),
        (
            json!({ "type": "message.send", "data": { "to": "a@b.example", "subject": "s\r\nBcc: c@d.example", "text": "t" } }),
            "data.subject",
        ),
        (json!({ "type": "message.send", "data": { "to": "a@b.example", "subject": 1, "text": "t" } }), "data.subject"),
        (json!({ "type": "message.send", "data": { "to": "a@b.example", "subject": "s" } }), "data.text"),
        (
            json!({ "type": "message.send", "data": { "to": "a@b.example", "subject": "s", "text": "t", "bcc": "x" } }),
            "data.bcc",
        ),
        (
            json!({ "type": "message.send", "data": { "to": "a@b.example", "subject": "x".repeat(999), "text": "t" } }),
            "data.subject",
        ),
        (json!({ "type": "user.password_changed" }), "recipient"),
        (
            json!({ "type": "user.password_changed", "recipient": { "userId": "u", "email": "a@b.example" } }),
            "recipient",
        ),
        (json!({ "type": "user.password_changed", "recipient": { "email": "not an address" } }), "recipient.email"),
        (json!({ "type": "message.send", "extra": true }), "extra"),
    ];
    for (body, field) in cases {
        let res = app.post("/v1/events", &org.token, body.clone()).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
        let fields: Vec<&str> =
            res.json["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert!(fields.iter().any(|f| f.starts_with(field)), "{body}: {fields:?}");
    }
    // 256 KiB is the events limit (not 64 KiB): 200 KiB passes, 300 KiB is 413.
    let big = "x".repeat(200 * 1024);
    let res = app
        .post(
            "/v1/events",
            &org.token,
            json!({ "type": "message.send", "data": { "to": "a@b.example", "subject": "big", "text": big } }),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    let huge = "x".repeat(300 * 1024);
    let res = app
        .post(
            "/v1/events",
            &org.token,
            json!({ "type": "message.send", "data": { "to": "a@b.example", "subject": "big", "text": huge } }),
        )
        .await;
    assert_eq!(res.status, 413);
    assert_eq!(res.content_type(), "application/problem+json");
    let log = app.get("/v1/notifications", &org.token).await;
    assert_eq!(log.json["items"].as_array().unwrap().len(), 1, "only the valid event left a notification");
}

pub(crate) async fn smtp_test(app: &TestApp, org: &TestOrg, body: Value) -> Value {
    let res = app.post("/v1/smtp/test", &org.token, body).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.json
}

async fn smtp_test_reports_each_step(app: TestApp) {
    let org = app.new_org().await;
    // Nothing configured: the outbox directory.
    let r = smtp_test(&app, &org, json!({ "to": "ada@example.com" })).await;
    assert_eq!((r["success"].clone(), r["transport"].clone()), (json!(true), json!("file")), "{r}");

    let plain = TestSmtp::start(Mode::Plain).await;
    use_server(&app, &org, &plain, Security::Plain, false, None).await;
    let r = smtp_test(&app, &org, json!({ "to": "ada@example.com" })).await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["steps"], json!(["policy", "connect", "sender", "recipient", "data"]));
    assert!(r["smtpResponse"].as_str().unwrap().starts_with("250"));
    assert_eq!(plain.wait_for(1).await[0].header("Subject").as_deref(), Some("Herald test message"));

    // STARTTLS required, not offered.
    let r = smtp_test(&app, &org, json!({ "to": "ada@example.com", "config": { "host": "localhost", "port": plain.port(), "security": "starttls" } })).await;
    assert_eq!((r["success"].clone(), r["failedStep"].clone()), (json!(false), json!("tls")), "{r}");

    // Wrong password: the auth step, with the server's reply.
    let tls = TestSmtp::start(Mode::StartTls).await;
    tls.require_auth("mailer", "right");
    let cfg = json!({ "host": "localhost", "port": tls.port(), "security": "starttls", "allowSelfsignedCerts": true, "username": "mailer", "password": "wrong" });
    let r = smtp_test(&app, &org, json!({ "to": "ada@example.com", "config": cfg })).await;
    assert_eq!(r["failedStep"], "auth", "{r}");
    assert!(r["smtpResponse"].as_str().unwrap().starts_with("535"), "{r}");
    assert_eq!(r["steps"], json!(["policy", "connect", "tls"]));
    // The self-signed certificate is refused unless allowed.
    let cfg = json!({ "host": "localhost", "port": tls.port(), "security": "starttls", "username": "mailer", "password": "right" });
    let r = smtp_test(&app, &org, json!({ "to": "ada@example.com", "config": cfg })).await;
    assert_eq!(r["failedStep"], "tls", "{r}");

    // Nobody listening: the connect step.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = smtp_test(
        &app,
        &org,
        json!({ "to": "ada@example.com", "config": { "host": "127.0.0.1", "port": closed, "security": "none" } }),
    )
    .await;
    assert_eq!(r["failedStep"], "connect", "{r}");
    // An internal address not allow-listed: the policy step.
    let r = smtp_test(
        &app,
        &org,
        json!({ "to": "ada@example.com", "config": { "host": "192.168.0.1", "security": "none" } }),
    )
    .await;
    assert_eq!(r["failedStep"], "policy", "{r}");

    // Bad input.
    for body in [
        json!({ "to": "nope" }),
        json!({}),
        json!({ "to": "a@b.example", "config": { "host": "bad host" } }),
        json!({ "to": "a@b.example", "config": { "host": "h.example", "security": "ssl3" } }),
        json!({ "to": "a@b.example", "config": { "host": "h.example", "password": "a\r\nb" } }),
    ] {
        let res = app.post("/v1/smtp/test", &org.token, body.clone()).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
    }
}

async fn smtp_test_never_lends_the_password_to_another_host(app: TestApp) {
    let stored = TestSmtp::start(Mode::Plain).await;
    stored.require_auth("mailer", CANARY);
    let other = TestSmtp::start(Mode::Plain).await;
    let org = app.new_org().await;
    use_server(&app, &org, &stored, Security::Plain, false, Some(("mailer", CANARY))).await;
    // Same host and port as stored, no password given: the stored one is used.
    let cfg = json!({ "host": "localhost", "port": stored.port(), "security": "none", "username": "mailer" });
    let r = smtp_test(&app, &org, json!({ "to": "ada@example.com", "config": cfg })).await;
    assert_eq!(r["success"], true, "{r}");
    // Another host (here: another port) without a password: never the stored one.
    let cfg = json!({ "host": "localhost", "port": other.port(), "security": "none", "username": "mailer" });
    let r = smtp_test(&app, &org, json!({ "to": "ada@example.com", "config": cfg })).await;
    assert_eq!(r["success"], true, "{r}");
    let m = &other.wait_for(1).await[0];
    assert_eq!(m.auth, Some(("mailer".to_owned(), String::new())));
    assert!(!other.plaintext().contains(CANARY));
    use base64::Engine as _;
    let lent = base64::engine::general_purpose::STANDARD.encode(format!("\0mailer\0{CANARY}"));
    assert!(!other.plaintext().contains(&lent), "the stored password went to another server");
}

/// Base64 of AUTH PLAIN with `password`: what would cross the wire.
fn auth_plain(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}

/// The canary password never crossed `server`'s wire in clear and was
/// presented to it exactly `times` times.
fn assert_canary_presented(server: &TestSmtp, times: usize, why: &str) {
    let plaintext = server.plaintext();
    assert!(!plaintext.contains(CANARY) && !plaintext.contains(&auth_plain("mailer", CANARY)), "{why}");
    let presented = server.auth_attempts().iter().filter(|(_, p)| p == CANARY).count();
    assert_eq!(presented, times, "{why}: {:?}", server.auth_attempts());
}

/// Issue 13, finding 1: an unsaved config gets the stored password only for
/// exactly the stored server, account and transport.
async fn smtp_test_lends_the_password_only_to_the_same_server_account_and_transport(app: TestApp) {
    let stored = TestSmtp::start(Mode::StartTls).await;
    stored.require_auth("mailer", CANARY);
    let other = TestSmtp::start(Mode::StartTls).await;
    other.require_auth("mailer", CANARY);
    let org = app.new_org().await;
    use_server(&app, &org, &stored, Security::StartTls, true, Some(("mailer", CANARY))).await;
    let cfg = |port: u16, security: &str, username: &str| {
        json!({ "to": "ada@example.com", "config": { "host": "localhost", "port": port, "security": security,
                "allowSelfsignedCerts": true, "username": username } })
    };
    // Exactly the stored server: lent.
    let r = smtp_test(&app, &org, cfg(stored.port(), "starttls", "mailer")).await;
    assert_eq!(r["success"], true, "{r}");
    assert_canary_presented(&stored, 1, "the exact stored server gets it");
    // Elsewhere or weaker: the AUTH carries no password, and fails.
    for (body, why) in [
        (cfg(stored.port(), "none", "mailer"), "TLS switched off"),
        (cfg(stored.port(), "tls", "mailer"), "another security mode"),
        (cfg(stored.port(), "starttls", "other"), "another username"),
        (cfg(other.port(), "starttls", "mailer"), "another port"),
    ] {
        let r = smtp_test(&app, &org, body).await;
        assert_eq!(r["success"], false, "{why}: {r}");
        assert_canary_presented(&stored, 1, why);
        assert_canary_presented(&other, 0, why);
    }
    let r = smtp_test(&app, &org, cfg(stored.port(), "none", "mailer")).await;
    assert_eq!(r["failedStep"], "auth", "{r}");
    assert!(stored.auth_attempts().contains(&("mailer".to_owned(), String::new())), "no password sent in clear");
    // Certificate checking turned off where the stored server has it on.
    use_server(&app, &org, &stored, Security::StartTls, false, Some(("mailer", CANARY))).await;
    let r = smtp_test(&app, &org, cfg(stored.port(), "starttls", "mailer")).await;
    assert_eq!((r["success"].clone(), r["failedStep"].clone()), (json!(false), json!("auth")), "{r}");
    assert_canary_presented(&stored, 1, "an unverified certificate never gets it");
}

/// Issue 13, finding 1: the instance's relay password is the admins'. An
/// org's test send goes through the relay as configured, but an unsaved
/// config never borrows its password, not even for the same server.
async fn smtp_test_never_lends_the_instance_password_to_an_org(app: TestApp) {
    let relay = TestSmtp::start(Mode::StartTls).await;
    relay.require_auth("mailer", CANARY);
    let params = json!({ "params": { "smtp_host": "localhost", "smtp_port": relay.port(), "encryption": "StartTLS",
        "username": "mailer", "password": CANARY, "allow_selfsigned_certs": true } });
    let res = app.post("/email-settings/edit", &app.admin_token, params).await;
    assert_eq!(res.json["successful"], true, "{}", res.text);
    let org = app.new_org().await;
    let r = smtp_test(&app, &org, json!({ "to": "ada@example.com" })).await;
    assert_eq!(r["success"], true, "the relay itself works: {r}");
    assert_canary_presented(&relay, 1, "the relay as configured");
    for (security, selfsigned) in [("starttls", true), ("none", false), ("starttls", false)] {
        let body = json!({ "to": "ada@example.com", "config": { "host": "localhost", "port": relay.port(),
            "security": security, "allowSelfsignedCerts": selfsigned, "username": "mailer" } });
        let r = smtp_test(&app, &org, body).await;
        assert_eq!(r["success"], false, "{security} {selfsigned}: {r}");
        assert_canary_presented(&relay, 1, "an unsaved config never gets the instance password");
    }
}

/// Writes `security` into `org`'s stored SMTP row, as another program could.
async fn set_stored_security(app: &TestApp, org: &TestOrg, security: &str) {
    use sqlx::Connection;
    let sql = "UPDATE smtp_servers SET security = $1 WHERE scope_id = $2";
    match app.backend {
        crate::support::Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).bind(security).bind(&org.id).execute(&mut c).await.unwrap();
        }
        crate::support::Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).bind(security).bind(&org.id).execute(&mut c).await.unwrap();
        }
    }
    // Behind the server's back: without waiting out its cache (README, Storage).
    app.store.forget_cached_reads();
}

/// Issue 13, finding 1: a stored security value Herald does not know is
/// neither sent through nor read as plain.
async fn an_unrecognised_stored_security_mode_fails_closed(app: TestApp) {
    let server = TestSmtp::start(Mode::Plain).await;
    server.require_auth("mailer", CANARY);
    let org = app.new_org().await;
    use_server(&app, &org, &server, Security::Plain, false, Some(("mailer", CANARY))).await;
    set_stored_security(&app, &org, "opportunistic").await;
    let r = smtp_test(&app, &org, json!({ "to": "ada@example.com" })).await;
    assert_eq!((r["success"].clone(), r["failedStep"].clone()), (json!(false), json!("tls")), "{r}");
    assert!(r["message"].as_str().unwrap().contains("does not recognise"), "{r}");
    assert_eq!(server.connections(), 0, "nothing was sent, in clear or otherwise");
    // Nor is its password lent to a plain config for the same server.
    let cfg = json!({ "host": "localhost", "port": server.port(), "security": "none", "username": "mailer" });
    let r = smtp_test(&app, &org, json!({ "to": "ada@example.com", "config": cfg })).await;
    assert_eq!(r["failedStep"], "auth", "{r}");
    assert_canary_presented(&server, 0, "an unrecognised mode lends nothing");
    // A delivery fails as a configuration error, at once.
    let id = send(&app, &org, message("ada@example.com", "Unknown mode")).await;
    let n = wait_status(&app, &org, &id, "dead").await;
    assert!(n["lastError"].as_str().unwrap().contains("does not recognise"), "{n}");
    assert_eq!(server.connections(), 1, "only the unsaved config connected");
    let show = app.get("/email-settings/show", &app.admin_token).await;
    assert_eq!(show.status, 200);
}

/// Issue 13, findings 4, 5 and 6: embedded and multicast forms of internal
/// addresses are refused; refusals and file results name no internal
/// address or path; a name that does not resolve fails the connect step; a
/// file transport that cannot write is a failed step, not an HTTP error.
async fn smtp_test_refusals_and_file_results_name_no_internal_facts(app: TestApp) {
    let org = app.new_org().await;
    let test = |host: &str| json!({ "to": "ada@example.com", "config": { "host": host, "security": "none" } });
    for host in
        ["::ffff:127.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "2002:7f00:1::1", "fec0::1", "224.0.0.1", "ff02::1"]
    {
        let r = smtp_test(&app, &org, test(host)).await;
        assert_eq!((r["success"].clone(), r["failedStep"].clone()), (json!(false), json!("policy")), "{host}: {r}");
        assert!(r["message"].as_str().unwrap().contains("is an internal address"), "{r}");
    }
    let r = smtp_test(&app, &org, test("no-such-host.invalid")).await;
    assert_eq!(r["failedStep"], "connect", "DNS failures are the connect step: {r}");
    assert_eq!(r["steps"], json!([]), "{r}");

    let outbox = app.outbox_dir.display().to_string();
    let r = smtp_test(&app, &org, json!({ "to": "ada@example.com" })).await;
    assert_eq!(
        (r["success"].clone(), r["transport"].clone(), r["steps"].clone()),
        (json!(true), json!("file"), json!(["file"])),
        "{r}"
    );
    assert!(r["message"].as_str().unwrap().contains(".eml") && !r.to_string().contains(&outbox), "{r}");
    let id = send(&app, &org, message("ada@example.com", "To a file")).await;
    let n = wait_status(&app, &org, &id, "sent").await;
    assert_eq!(n["smtpResponse"], format!("written to {id}.eml in the outbox directory"), "{n}");

    // The outbox directory goes away (a file takes its place).
    std::fs::remove_dir_all(&app.outbox_dir).unwrap();
    std::fs::write(&app.outbox_dir, b"").unwrap();
    let res = app.post("/v1/smtp/test", &org.token, json!({ "to": "ada@example.com" })).await;
    assert_eq!(res.status, 200, "a failed send is not an HTTP error: {}", res.text);
    let r = res.json;
    assert_eq!((r["success"].clone(), r["failedStep"].clone()), (json!(false), json!("file")), "{r}");
    assert!(!r.to_string().contains(&outbox), "{r}");
    let id = send(&app, &org, message("ada@example.com", "Cannot write")).await;
    let n = wait_status(&app, &org, &id, "retrying").await;
    let error = n["lastError"].as_str().unwrap();
    assert!(error.contains(&format!("{id}.eml")) && !error.contains(&outbox), "{error}");
    assert!(crate::support::logs().contains(&outbox), "the operator's log has the path");
}

/// Issue 13, finding 5: a refusal of a name does not say where it resolves.
async fn a_refused_name_keeps_its_address_to_the_log(backend: crate::support::Backend) {
    let Some(db) = crate::support::TestDb::new(backend).await else { return };
    let app = TestApp::spawn_with(backend, db, |c| c.delivery.allow_hosts = vec!["127.0.0.2".into()]).await;
    let org = app.new_org().await;
    let r = smtp_test(
        &app,
        &org,
        json!({ "to": "ada@example.com", "config": { "host": "localhost", "security": "none" } }),
    )
    .await;
    assert_eq!(r["failedStep"], "policy", "{r}");
    let message = r["message"].as_str().unwrap();
    assert!(message.contains("localhost resolves to an internal address"), "{message}");
    assert!(!message.contains("127.0.0.1") && !message.contains("::1"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_refused_name_keeps_its_address_to_the_log() {
    a_refused_name_keeps_its_address_to_the_log(crate::support::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_refused_name_keeps_its_address_to_the_log() {
    a_refused_name_keeps_its_address_to_the_log(crate::support::Backend::Postgres).await;
}

/// Issue 13, finding 6: `serve` and `worker` refuse to start with an outbox
/// directory they cannot write, and say which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_outbox_directory_stops_start_up() {
    let db = crate::support::TestDb::new(crate::support::Backend::Sqlite).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"").unwrap();
    let mut config = herald::Config::new(db.url.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.delivery.outbox_dir = blocker.join("outbox");
    let err = match herald::Server::build(&config, herald::clock::Clock::default()).await {
        Ok(_) => panic!("started with an outbox directory it cannot create"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains(&config.delivery.outbox_dir.display().to_string()) && err.contains("not writable"), "{err}");
    let (_, stop) = tokio::sync::oneshot::channel::<()>();
    let worker = herald::app::run_workers(&config, herald::clock::Clock::default(), async {
        let _ = stop.await;
    });
    let err = format!("{:#}", worker.await.unwrap_err());
    assert!(err.contains("not writable"), "{err}");
}

async fn a_changed_config_gets_a_new_connection_pool(app: TestApp) {
    let first = TestSmtp::start(Mode::Plain).await;
    let second = TestSmtp::start(Mode::Plain).await;
    let org = app.new_org().await;
    use_server(&app, &org, &first, Security::Plain, false, None).await;
    for i in 0..3 {
        let a = send(&app, &org, message("ada@example.com", &format!("first {i}"))).await;
        wait_status(&app, &org, &a, "sent").await;
    }
    // Pooled: fewer connections than mails. The claim loops and the
    // express lane keep pools of their own, and which one sends a mail
    // depends on whether a loop was idle when it was committed, so up to
    // one connection each.
    let opened = first.connections();
    assert!((1..=2).contains(&opened), "{opened} connections for three mails: not pooled");
    use_server(&app, &org, &second, Security::Plain, false, None).await;
    let b = send(&app, &org, message("ada@example.com", "second")).await;
    wait_status(&app, &org, &b, "sent").await;
    assert_eq!(first.messages().len(), 3);
    assert_eq!(second.wait_for(1).await[0].header("Subject").as_deref(), Some("second"));
}

/// A worker that lost its lease (it stalled past the end and another took
/// the row) cannot overwrite the newer attempt; with workers off nothing is
/// sent.
async fn a_result_without_its_lease_changes_nothing(backend: crate::support::Backend) {
    use herald::clock::Millis;
    use herald::domain::delivery::Outcome;
    let Some(db) = crate::support::TestDb::new(backend).await else { return };
    let app = TestApp::spawn_with(backend, db, |c| c.delivery.workers = false).await;
    let org = app.new_org().await;
    let id = send(&app, &org, message("ada@example.com", "Leases")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(wait_status(&app, &org, &id, "queued").await["attempts"], 0, "no workers, no sends");
    let now = app.clock.now();
    let first = app.store.claim_outbox("lease-a", now, Millis(now.0 + 1000), 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(app.store.claim_outbox("lease-x", now, Millis(now.0 + 1000), 10).await.unwrap().is_empty(), "leased");
    app.clock.advance(Duration::from_secs(2));
    let now = app.clock.now();
    let second = app.store.claim_outbox("lease-b", now, Millis(now.0 + 60_000), 10).await.unwrap();
    assert_eq!((second.len(), second[0].attempt), (1, 2), "the expired lease was taken over");
    let late = vec![(&first[0], Outcome::Sent { response: "250 late".into() }, None)];
    app.store.finish_sends("lease-a", &late, app.clock.now()).await.unwrap();
    let n = wait_status(&app, &org, &id, "sending").await;
    assert_eq!(n["attemptLog"].as_array().unwrap().len(), 1, "the late attempt is kept: {n}");
    let retry =
        Outcome::Retry { error: "451 busy".into(), response: Some("451 busy".into()), at: Millis(now.0 + 5000) };
    app.store.finish_sends("lease-b", &[(&second[0], retry, None)], app.clock.now()).await.unwrap();
    let n = wait_status(&app, &org, &id, "retrying").await;
    assert_eq!(n["lastError"], "451 busy");
    assert_eq!(n["attemptLog"].as_array().unwrap().len(), 2);
}

/// Retried mails read their last attempt's provider before they are sent,
/// so each send in flight may hold a pool connection. With many more in
/// flight than the pool has connections, the writing of the first results
/// still gets one: every retry is recorded once, as its second attempt.
/// (The sends were once left unpolled while results waited for a
/// connection, holding every connection: the write failed after its
/// acquire timeouts and the mails were sent again when their lease ended.)
async fn many_retries_in_flight_leave_connections_for_their_results(backend: crate::support::Backend) {
    const MAILS: usize = 120;
    let Some(db) = crate::support::TestDb::new(backend).await else { return };
    // One loop's claim holds every mail, all sent at once, and the first
    // refusals do not open the server's circuit.
    let app = TestApp::spawn_with(backend, db, |c| {
        c.delivery.concurrency = 2 * MAILS;
        c.delivery.circuit_failures = 2 * MAILS as i64;
    })
    .await;
    let server = TestSmtp::start(Mode::Plain).await;
    server.script((0..MAILS).map(|_| Action::Reply("451 4.3.0 mailbox busy, try later".into())));
    let org = app.new_org().await;
    use_server(&app, &org, &server, Security::Plain, false, None).await;
    let mut ids = Vec::new();
    for i in 0..MAILS {
        ids.push(send(&app, &org, message(&format!("r{i}@example.com"), "Retry me")).await);
    }
    for id in &ids {
        wait_status(&app, &org, id, "retrying").await;
    }
    skip_backoff(&app);
    for id in &ids {
        let n = wait_status(&app, &org, id, "sent").await;
        assert_eq!(n["attempts"], 2, "{n}");
        assert_eq!(n["attemptLog"].as_array().unwrap().len(), 2, "{n}");
    }
    assert_eq!(server.wait_for(MAILS).await.len(), MAILS, "each retry sent once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_many_retries_in_flight_leave_connections_for_their_results() {
    many_retries_in_flight_leave_connections_for_their_results(crate::support::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_many_retries_in_flight_leave_connections_for_their_results() {
    many_retries_in_flight_leave_connections_for_their_results(crate::support::Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_result_without_its_lease_changes_nothing() {
    a_result_without_its_lease_changes_nothing(crate::support::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_result_without_its_lease_changes_nothing() {
    a_result_without_its_lease_changes_nothing(crate::support::Backend::Postgres).await;
}

async fn idempotent_replays_survive_later_changes_and_failures_free_the_key(app: TestApp) {
    let org = app.new_org().await;
    let user = create_user(&app, &org, "kim@example.com", "EN").await;
    let keyed = |key: &str, body: &Value| {
        app.client.post(app.url("/v1/events")).bearer_auth(&org.token).header("Idempotency-Key", key).json(body)
    };
    let body = json!({ "type": "user.password_changed", "recipient": { "userId": user } });
    let first = app.send(keyed("pw-1", &body)).await;
    assert_eq!(first.status, 202, "{}", first.text);
    let res = app.call(Method::DELETE, &format!("/api/v1/users/{user}"), Auth::XAuthToken(&org.token), None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    // The user is gone, but the replay is the first answer, not a 404.
    let again = app.send(keyed("pw-1", &body)).await;
    assert_eq!((again.status, &again.json), (202, &first.json), "{}", again.text);
    // A request that failed leaves its key free for the next one.
    let failed = app.send(keyed("pw-2", &body)).await;
    assert_eq!(failed.status, 404, "{}", failed.text);
    let next = app.send(keyed("pw-2", &message("kim@example.com", "Other body"))).await;
    assert_eq!(next.status, 202, "{}", next.text);
    // A request with a field error claims no key either.
    let invalid = app.send(keyed("pw-3", &json!({ "type": "message.send" }))).await;
    assert_eq!(invalid.status, 400);
    assert_eq!(app.send(keyed("pw-3", &message("kim@example.com", "Valid"))).await.status, 202);
}
