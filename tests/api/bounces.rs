//! Bounces and complaints (issue 18) end to end, on both backends: VERP as
//! the real SMTP envelope sender, the real Postfix bounce and the RFC 5965
//! ARF sample fed through the inbound SMTP listener (a real TCP socket) and
//! `POST /v1/inbound/bounces`, Amazon SES JSON, and hostile input.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::delivery::{message, send, wait_status};
use crate::support::smtp::{Mode, TestSmtp};
use crate::support::{Auth, Backend, TestApp, TestDb, TestOrg, TestResponse};

macro_rules! on_each_backend_with_inbound {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = super::inbound_app(crate::support::Backend::Sqlite).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = super::inbound_app(crate::support::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

on_each_backend_with_inbound!(
    verp_is_the_smtp_envelope_sender_and_the_from_header_is_unchanged,
    a_real_postfix_bounce_over_http_bounces_suppresses_reports_and_is_idempotent,
    reports_over_the_smtp_listener_apply_and_forged_addresses_are_refused,
    ses_bounce_and_complaint_json_find_the_notification_by_message_id,
    hostile_input_and_other_orgs_notifications_are_refused_without_5xx,
);

const BOUNCE_DOMAIN: &str = "bounces.acme.example";
const FIXTURE_VERP: &str = "bounces+01938a5e7c2b7d4e9f00123456789abc.5aed76c48c3aca849ed3@localhost";
const FIXTURE_ID: &str = "01938a5e-7c2b-7d4e-9f00-123456789abc";

async fn inbound_app(backend: Backend) -> Option<TestApp> {
    let db = TestDb::new(backend).await?;
    Some(TestApp::spawn_with(backend, db, |c| c.inbound_listen = Some("127.0.0.1:0".parse().unwrap())).await)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/fixtures/bounces/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// An org whose SMTP provider (on `smtp`) has the bounce domain.
async fn org_with_bounce_domain(app: &TestApp, smtp: &TestSmtp) -> TestOrg {
    let org = app.new_org().await;
    let body = json!({
        "name": "main", "kind": "smtp", "bounceDomain": BOUNCE_DOMAIN,
        "smtp": { "host": "localhost", "port": smtp.port(), "security": "plain", "fromEmail": "notify@acme.example" }
    });
    let res = app.post("/v1/providers", &org.token, body).await;
    assert_eq!(res.status, 201, "{}", res.text);
    org
}

/// Sends one mail to `to` and returns (notification id, its envelope sender).
async fn sent(app: &TestApp, org: &TestOrg, smtp: &TestSmtp, to: &str) -> (String, String) {
    let before = smtp.messages().len();
    let id = send(app, org, message(to, "Hello")).await;
    wait_status(app, org, &id, "sent").await;
    let got = smtp.wait_for(before + 1).await;
    (id, got[before].from.clone())
}

/// A webhook endpoint subscribed to the feedback events (never reachable:
/// its delivery log shows what was queued).
async fn webhook(app: &TestApp, org: &TestOrg) -> String {
    let body = json!({ "url": "http://127.0.0.1:9/hook",
        "eventTypes": ["notification.bounced", "notification.complained"] });
    let res = app.post("/v1/webhooks", &org.token, body).await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.json["id"].as_str().unwrap().to_owned()
}

async fn hook_events(app: &TestApp, org: &TestOrg, hook: &str) -> Vec<String> {
    let res = app.get(&format!("/v1/webhooks/{hook}/messages?limit=100"), &org.token).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.json["items"].as_array().unwrap().iter().map(|m| m["eventType"].as_str().unwrap().to_owned()).collect()
}

async fn post_raw(app: &TestApp, token: &str, content_type: &str, body: impl Into<reqwest::Body>) -> TestResponse {
    let req = app
        .client
        .post(app.url("/v1/inbound/bounces"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body);
    app.send(req).await
}

/// The real Postfix bounce, re-addressed to `verp` (the address Postfix
/// bounced to) and to notification `id` (the returned Message-ID).
fn postfix_bounce_for(verp: &str, id: &str) -> String {
    fixture("postfix-unknown-user.eml").replace(FIXTURE_VERP, verp).replace(FIXTURE_ID, id)
}

async fn verp_is_the_smtp_envelope_sender_and_the_from_header_is_unchanged(app: TestApp) {
    let smtp = TestSmtp::start(Mode::Plain).await;
    let org = org_with_bounce_domain(&app, &smtp).await;
    let (id, from) = sent(&app, &org, &smtp, "ada@example.com").await;
    let cipher = &app.state.engine().cipher;
    assert!(from.starts_with("bounces+") && from.ends_with(&format!("@{BOUNCE_DOMAIN}")), "{from}");
    assert_eq!(herald::domain::bounces::verp_notification(cipher, &from).as_deref(), Some(id.as_str()));
    let msg = smtp.messages().pop().unwrap();
    assert!(msg.header("From").unwrap().contains("notify@acme.example"), "{:?}", msg.header("From"));
    assert!(!msg.data.contains("bounces+"), "the VERP address is in no header");
    // The provider test send carries a VERP sender too.
    let list = app.get("/v1/providers", &org.token).await.json;
    let pid = list["providers"].as_array().unwrap().iter().find(|p| p["name"] == "main").unwrap()["id"].clone();
    let res = app
        .post(&format!("/v1/providers/{}/test", pid.as_str().unwrap()), &org.token, json!({"to": "t@example.com"}))
        .await;
    assert_eq!((res.status, res.json["success"].as_bool()), (200, Some(true)), "{}", res.text);
    let test_from = smtp.wait_for(2).await[1].from.clone();
    assert!(test_from.starts_with("bounces+") && test_from.ends_with(&format!("@{BOUNCE_DOMAIN}")), "{test_from}");
    // Without a bounce domain the envelope sender is the From address.
    let plain = TestSmtp::start(Mode::Plain).await;
    let other = app.new_org().await;
    let body = json!({ "name": "p", "kind": "smtp",
        "smtp": { "host": "localhost", "port": plain.port(), "security": "plain", "fromEmail": "notify@acme.example" } });
    assert_eq!(app.post("/v1/providers", &other.token, body).await.status, 201);
    let (_, from) = sent(&app, &other, &plain, "bob@example.com").await;
    assert_eq!(from, "notify@acme.example");
}

async fn a_real_postfix_bounce_over_http_bounces_suppresses_reports_and_is_idempotent(app: TestApp) {
    let smtp = TestSmtp::start(Mode::Plain).await;
    let org = org_with_bounce_domain(&app, &smtp).await;
    let hook = webhook(&app, &org).await;
    let (id, verp) = sent(&app, &org, &smtp, "ada@example.com").await;
    let dsn = postfix_bounce_for(&verp, &id);
    let res = post_raw(&app, &org.token, "message/rfc822", dsn.clone()).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.json["applied"],
        json!([{"notificationId": id, "kind": "hard_bounce", "status": "bounced", "changed": true}])
    );

    let n = app.get(&format!("/v1/notifications/{id}"), &org.token).await.json;
    assert_eq!(n["status"], "bounced", "{n}");
    assert_eq!(n["feedback"].as_array().unwrap().len(), 1, "{n}");
    assert_eq!(n["feedback"][0]["kind"], "hard_bounce");
    assert_eq!(n["feedback"][0]["status"], "5.1.1");
    assert_eq!(n["feedback"][0]["source"], "http");
    assert_eq!(n["feedback"][0]["recipient"], "nosuchuser@localhost");
    let listed = app.get("/v1/notifications?status=bounced", &org.token).await.json;
    assert_eq!(listed["items"][0]["id"], id.as_str());

    // The notification's own recipient is listed (not the reported address).
    let s = app.get("/v1/suppressions/ada@example.com", &org.token).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(
        (s.json["reason"].as_str(), s.json["notificationId"].as_str()),
        (Some("hard_bounce"), Some(id.as_str()))
    );
    assert_eq!(app.get("/v1/suppressions/nosuchuser@localhost", &org.token).await.status, 404);
    // The next mail to the address is suppressed at acceptance.
    let res = app.post("/v1/events", &org.token, message("ada@example.com", "Again")).await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert!(res.json["suppressed"].as_str().unwrap().contains("hard_bounce"), "{}", res.text);

    // A report larger than the JSON endpoints' 256 KiB (a long returned
    // message) is still taken, and is the same report (nothing new).
    let padded = dsn.replacen(
        "The mail system",
        &format!("The mail system\n{}", format!("{}\n", "x".repeat(990)).repeat(400)),
        1,
    );
    assert!(padded.len() > 300 * 1024);
    let res = post_raw(&app, &org.token, "message/rfc822", padded).await;
    assert_eq!((res.status, res.json["applied"][0]["changed"].as_bool()), (200, Some(false)), "{}", res.text);

    // The same DSN again: accepted, nothing more changes.
    let again = post_raw(&app, &org.token, "message/rfc822", dsn).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["applied"][0]["changed"], false);
    let n = app.get(&format!("/v1/notifications/{id}"), &org.token).await.json;
    assert_eq!(n["feedback"].as_array().unwrap().len(), 1, "{n}");
    assert_eq!(hook_events(&app, &org, &hook).await, ["notification.bounced"]);
    let audit = app.get("/v1/audit?limit=100", &org.token).await;
    let actions: Vec<&str> = audit.json["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(actions.iter().filter(|a| **a == "notification.bounced").count(), 1, "{}", audit.text);

    // Another org cannot apply it (its notification is unknown there).
    let stranger = app.new_org().await;
    let dsn = postfix_bounce_for(&verp, &id);
    let res = post_raw(&app, &stranger.token, "message/rfc822", dsn).await;
    assert_eq!(res.status, 404, "{}", res.text);
}

/// A minimal SMTP client over a real socket.
struct Smtp {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Smtp {
    async fn connect(app: &TestApp) -> Smtp {
        let (read, writer) = TcpStream::connect(app.inbound_addr.unwrap()).await.unwrap().into_split();
        let mut s = Smtp { reader: BufReader::new(read), writer };
        assert!(s.reply().await.starts_with("220 "));
        s
    }
    async fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await.unwrap();
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_owned();
            }
        }
    }
    async fn command(&mut self, line: &str) -> String {
        self.writer.write_all(format!("{line}\r\n").as_bytes()).await.unwrap();
        self.reply().await
    }
    /// MAIL, RCPT to `to`, DATA with `message`: the reply to the final dot.
    async fn mail(&mut self, to: &str, message: &str) -> String {
        assert!(self.command("MAIL FROM:<>").await.starts_with("250 "));
        let rcpt = self.command(&format!("RCPT TO:<{to}>")).await;
        if !rcpt.starts_with("250 ") {
            return rcpt;
        }
        assert!(self.command("DATA").await.starts_with("354 "));
        let mut wire = String::new();
        for line in message.lines() {
            if line.starts_with('.') {
                wire.push('.');
            }
            wire.push_str(line);
            wire.push_str("\r\n");
        }
        wire.push_str(".\r\n");
        self.writer.write_all(wire.as_bytes()).await.unwrap();
        self.reply().await
    }
}

async fn reports_over_the_smtp_listener_apply_and_forged_addresses_are_refused(app: TestApp) {
    let smtp = TestSmtp::start(Mode::Plain).await;
    let org = org_with_bounce_domain(&app, &smtp).await;
    let hook = webhook(&app, &org).await;
    let (bounced, verp) = sent(&app, &org, &smtp, "ada@example.com").await;
    let (complained, verp2) = sent(&app, &org, &smtp, "bob@example.com").await;

    let mut c = Smtp::connect(&app).await;
    assert!(c.command("EHLO mx.example").await.starts_with("250 "));
    // The real Postfix bounce, to the VERP address Herald sent with.
    assert!(c.mail(&verp, &postfix_bounce_for(&verp, &bounced)).await.starts_with("250 "));
    // The RFC 5965 example report about the second mail.
    let arf = fixture("rfc5965-example.eml")
        .replace("Original-Mail-From: <somespammer@example.net>", &format!("Original-Mail-From: <{verp2}>"));
    assert!(c.mail(&verp2, &arf).await.starts_with("250 "));
    // Forged: a signature under another key, an altered id, a plain address.
    let forged = herald::domain::bounces::verp_address(
        &herald::crypto::Cipher::from_key(&[8u8; 32]).unwrap(),
        &bounced,
        BOUNCE_DOMAIN,
    );
    assert!(c.mail(&forged, "x").await.starts_with("550 "));
    let altered = verp.replacen(&bounced.replace('-', "")[..8], "00000000", 1);
    assert!(c.mail(&altered, "x").await.starts_with("550 "));
    assert!(c.mail(&format!("postmaster@{BOUNCE_DOMAIN}"), "x").await.starts_with("550 "));
    // Validly signed but not at a configured bounce domain: refused too.
    let elsewhere = verp.replace(BOUNCE_DOMAIN, "elsewhere.example");
    assert!(c.mail(&elsewhere, "x").await.starts_with("550 "));
    // A valid recipient with a message that is no report: 554, nothing applied.
    assert!(c.mail(&verp, "Subject: hello\r\n\r\njust a reply").await.starts_with("554 "));
    assert!(c.command("QUIT").await.starts_with("221 "));

    let n = app.get(&format!("/v1/notifications/{bounced}"), &org.token).await.json;
    assert_eq!(n["status"], "bounced", "{n}");
    assert_eq!(n["feedback"][0]["source"], "smtp");
    let n = app.get(&format!("/v1/notifications/{complained}"), &org.token).await.json;
    assert_eq!(n["status"], "complained", "{n}");
    assert_eq!(n["feedback"][0]["kind"], "complaint");
    assert_eq!(n["feedback"][0]["status"], "abuse");
    let s = app.get("/v1/suppressions/bob@example.com", &org.token).await.json;
    assert_eq!((s["reason"].as_str(), s["notificationId"].as_str()), (Some("complaint"), Some(complained.as_str())));
    let mut events = hook_events(&app, &org, &hook).await;
    events.sort();
    assert_eq!(events, ["notification.bounced", "notification.complained"]);

    // The same bounce again by SMTP: accepted, nothing more.
    let mut c = Smtp::connect(&app).await;
    assert!(c.command("HELO mx.example").await.starts_with("250 "));
    assert!(c.mail(&verp, &postfix_bounce_for(&verp, &bounced)).await.starts_with("250 "));
    assert_eq!(hook_events(&app, &org, &hook).await.len(), 2);
    let n = app.get(&format!("/v1/notifications/{bounced}"), &org.token).await.json;
    assert_eq!(n["feedback"].as_array().unwrap().len(), 1, "{n}");
}

/// A database outage while a bounce comes in: the listener answers `451`
/// (at RCPT, where the notification is looked up), so the sending MTA
/// keeps the report and tries again; once the database is back the same
/// report is taken. PostgreSQL only: the outage is real (the test's
/// database stops taking connections), as in tests/api/outage.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_database_outage_is_451_and_the_retry_is_taken() {
    let Some(app) = inbound_app(Backend::Postgres).await else { return };
    let smtp = TestSmtp::start(Mode::Plain).await;
    let org = org_with_bounce_domain(&app, &smtp).await;
    let (bounced, verp) = sent(&app, &org, &smtp, "ada@example.com").await;
    let db = crate::outage::database_name(&app.db.url).to_owned();

    crate::outage::set_connections(&db, false).await;
    app.store.forget_cached_reads();
    let mut c = Smtp::connect(&app).await;
    assert!(c.command("EHLO mx.example").await.starts_with("250 "));
    let reply = c.mail(&verp, &postfix_bounce_for(&verp, &bounced)).await;
    assert_eq!(reply, "451 4.3.0 Temporary failure, try again later", "a temporary answer naming no cause");
    assert!(c.command("RSET").await.starts_with("250 "));

    crate::outage::set_connections(&db, true).await;
    let reply = c.mail(&verp, &postfix_bounce_for(&verp, &bounced)).await;
    assert!(reply.starts_with("250 "), "{reply}");
    assert!(c.command("QUIT").await.starts_with("221 "));
    let n = app.get(&format!("/v1/notifications/{bounced}"), &org.token).await.json;
    assert_eq!(n["status"], "bounced", "{n}");
    assert_eq!(n["feedback"].as_array().map(Vec::len), Some(1), "{n}");
}

fn ses_bounce(kind: &str, message_id: &str) -> Value {
    json!({
        "notificationType": "Bounce",
        "bounce": { "bounceType": kind, "bounceSubType": "General",
            "bouncedRecipients": [{ "emailAddress": "ada@example.com", "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown" }],
            "timestamp": "2026-11-29T10:00:00.000Z", "feedbackId": "0100-feedback" },
        "mail": { "timestamp": "2026-11-29T09:59:58.000Z", "source": "notify@acme.example",
            "messageId": "0100018c-ses", "destination": ["ada@example.com"],
            "headers": [{ "name": "From", "value": "notify@acme.example" },
                        { "name": "Message-ID", "value": message_id }] }
    })
}

async fn ses_bounce_and_complaint_json_find_the_notification_by_message_id(app: TestApp) {
    let smtp = TestSmtp::start(Mode::Plain).await;
    let org = org_with_bounce_domain(&app, &smtp).await;
    let (soft, _) = sent(&app, &org, &smtp, "ada@example.com").await;
    let (hard, _) = sent(&app, &org, &smtp, "carl@example.com").await;
    let (complaint, _) = sent(&app, &org, &smtp, "bob@example.com").await;
    let domain = app.state.engine().mailer.config().domain.clone();
    let mid = |id: &str| format!("<{id}@{domain}>");

    // A transient bounce, bare JSON: recorded only.
    let res = app.post("/v1/inbound/bounces", &org.token, ses_bounce("Transient", &mid(&soft))).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["applied"][0]["kind"], "soft_bounce");
    let n = app.get(&format!("/v1/notifications/{soft}"), &org.token).await.json;
    assert_eq!((n["status"].as_str(), n["feedback"][0]["kind"].as_str()), (Some("sent"), Some("soft_bounce")), "{n}");
    assert_eq!(n["feedback"][0]["source"], "ses");
    assert_eq!(app.get("/v1/suppressions/ada@example.com", &org.token).await.status, 404);

    // A permanent one in its SNS envelope, as SNS posts it (text/plain).
    let envelope = json!({ "Type": "Notification", "MessageId": "sns-1",
        "Message": ses_bounce("Permanent", &mid(&hard)).to_string() });
    let res = post_raw(&app, &org.token, "text/plain; charset=UTF-8", envelope.to_string()).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(wait_status(&app, &org, &hard, "bounced").await["feedback"][0]["kind"], "hard_bounce");
    assert_eq!(app.get("/v1/suppressions/carl@example.com", &org.token).await.json["reason"], "hard_bounce");

    let complaint_json = json!({ "Type": "Notification", "Message": json!({
        "notificationType": "Complaint",
        "complaint": { "complainedRecipients": [{ "emailAddress": "bob@example.com" }],
            "complaintFeedbackType": "abuse", "timestamp": "2026-11-29T10:00:00.000Z" },
        "mail": { "source": "notify@acme.example", "headers": [{ "name": "Message-ID", "value": mid(&complaint) }] }
    }).to_string() });
    let res = app.post("/v1/inbound/bounces", &org.token, complaint_json).await;
    assert_eq!(res.status, 200, "{}", res.text);
    wait_status(&app, &org, &complaint, "complained").await;
    assert_eq!(app.get("/v1/suppressions/bob@example.com", &org.token).await.json["reason"], "complaint");

    // A Message-ID of another domain, or of no notification: not Herald's / 404.
    let res = app.post("/v1/inbound/bounces", &org.token, ses_bounce("Permanent", "<x@elsewhere.example>")).await;
    assert_eq!(res.status, 400, "{}", res.text);
    let unknown = mid("01938a5e-7c2b-7d4e-9f00-000000000000");
    let res = app.post("/v1/inbound/bounces", &org.token, ses_bounce("Permanent", &unknown)).await;
    assert_eq!(res.status, 404, "{}", res.text);
}

async fn hostile_input_and_other_orgs_notifications_are_refused_without_5xx(app: TestApp) {
    let smtp = TestSmtp::start(Mode::Plain).await;
    let org = org_with_bounce_domain(&app, &smtp).await;
    let (id, verp) = sent(&app, &org, &smtp, "ada@example.com").await;
    let domain = app.state.engine().mailer.config().domain.clone();
    let problem = |res: &TestResponse, status: u16| {
        assert_eq!(res.status, status, "{}", res.text);
        assert_eq!(res.content_type(), "application/problem+json", "{}", res.text);
    };
    // Unauthenticated.
    let res = app.call(Method::POST, "/v1/inbound/bounces", Auth::None, Some(json!({}))).await;
    problem(&res, 401);
    // Wrong content type.
    problem(&post_raw(&app, &org.token, "application/x-www-form-urlencoded", "a=b").await, 415);
    problem(&post_raw(&app, &org.token, "image/png", vec![0x89u8, b'P', b'N', b'G']).await, 415);
    // Garbage and empty bodies.
    problem(&post_raw(&app, &org.token, "message/rfc822", "").await, 400);
    problem(&post_raw(&app, &org.token, "message/rfc822", vec![0xffu8; 5000]).await, 400);
    problem(&post_raw(&app, &org.token, "message/rfc822", "Subject: hi\r\n\r\nhello").await, 400);
    problem(&post_raw(&app, &org.token, "application/json", "{not json").await, 400);
    problem(&post_raw(&app, &org.token, "application/json", "[1,2,3]").await, 400);
    problem(&app.post("/v1/inbound/bounces", &org.token, json!({"Type": "SubscriptionConfirmation"})).await, 400);
    problem(&app.post("/v1/inbound/bounces", &org.token, json!({"notificationType": 7, "bounce": "x"})).await, 400);
    // Too large: more than 1000 KiB.
    let huge = format!("{}\r\n", "a".repeat(998)).repeat(1030);
    problem(&post_raw(&app, &org.token, "message/rfc822", huge).await, 413);
    // A DSN naming a forged VERP address and no Herald Message-ID.
    let forged = herald::domain::bounces::verp_address(
        &herald::crypto::Cipher::from_key(&[8u8; 32]).unwrap(),
        &id,
        BOUNCE_DOMAIN,
    );
    let dsn = fixture("postfix-unknown-user.eml").replace(FIXTURE_VERP, &forged);
    problem(&post_raw(&app, &org.token, "message/rfc822", dsn).await, 400);
    // Another org's notification, by signed VERP address and by Message-ID:
    // 404 like an unknown one, and nothing changes.
    let stranger = app.new_org().await;
    problem(&post_raw(&app, &stranger.token, "message/rfc822", postfix_bounce_for(&verp, &id)).await, 404);
    let res =
        app.post("/v1/inbound/bounces", &stranger.token, ses_bounce("Permanent", &format!("<{id}@{domain}>"))).await;
    problem(&res, 404);
    let n = app.get(&format!("/v1/notifications/{id}"), &org.token).await.json;
    assert_eq!(n["status"], "sent", "{n}");
    assert!(n["feedback"].as_array().unwrap().is_empty(), "{n}");
    assert_eq!(app.get("/v1/suppressions/ada@example.com", &org.token).await.status, 404);

    // The SMTP listener: junk commands, an overlong line, then a normal end.
    let mut c = Smtp::connect(&app).await;
    assert!(c.command("DATA").await.starts_with("503 "));
    assert!(c.command(&"X".repeat(4000)).await.starts_with("500 "));
    assert!(c.command("EHLO x").await.starts_with("250 "));
    assert!(c.command("RCPT TO:<a@b>").await.starts_with("503 "));
    assert!(c.command("QUIT").await.starts_with("221 "));
    tokio::time::sleep(Duration::from_millis(10)).await;
}
