//! Providers end to end (issue 17): each kind is created with
//! `POST /v1/providers`, a real event is posted, and the mail arrives at a
//! real server we did not write; the delivery log names the provider, and
//! `POST /v1/providers/{id}/test` reports each step. The servers are the
//! ones of `transports.rs`: `oauth2-mock-server` (with the test SMTP server
//! checking `AUTH XOAUTH2`), moto in server mode for SES, and a receiver
//! verifying the Standard Webhooks signature with the reference library.
//! Every secret is a canary that must not appear in any API answer or log.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mail_parser::MimeHeaders as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::delivery::{message, send, wait_status};
use crate::support::identity::{approved_identity, bs, smtp_for};
use crate::support::smtp::{Mode, TestSmtp};
use crate::support::{TestApp, TestOrg};
use crate::transports::{GOOGLE_SCOPE, SERVICE_ACCOUNT, assert_absent, google_token_endpoint, key_canary, moto, node};

on_each_backend!(
    an_xoauth2_provider_delivers_an_event_with_a_token_from_a_real_oauth2_server,
    a_google_workspace_provider_delivers_with_a_token_for_a_jose_verified_assertion,
    an_ses_provider_delivers_the_raw_message_with_its_message_id_and_attachment,
    an_http_provider_delivers_an_event_the_standardwebhooks_library_verifies,
);

/// Every answer an org got in this test, to search for canaries.
#[derive(Default)]
struct Answers(Vec<String>);

impl Answers {
    fn keep(&mut self, text: &str) {
        self.0.push(text.to_owned());
    }
    fn assert_without(&self, canary: &str) {
        let texts: Vec<&str> = self.0.iter().map(String::as_str).collect();
        assert_absent(canary, &texts);
    }
}

async fn create(app: &TestApp, org: &TestOrg, body: Value, answers: &mut Answers) -> String {
    let res = app.post("/v1/providers", &org.token, body).await;
    answers.keep(&res.text);
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(res.json["secretSet"], true, "{}", res.text);
    res.json["id"].as_str().unwrap().to_owned()
}

/// Sends through `id` with the test send; returns the answer.
async fn test_send(app: &TestApp, org: &TestOrg, id: &str, answers: &mut Answers) -> Value {
    let res = app.post(&format!("/v1/providers/{id}/test"), &org.token, json!({ "to": "ada@example.com" })).await;
    answers.keep(&res.text);
    assert_eq!(res.status, 200, "{}", res.text);
    res.json
}

fn steps(report: &Value) -> Vec<(String, bool)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_owned(), s["ok"].as_bool().unwrap()))
        .collect()
}

/// The one attempt of a sent notification, through `provider`.
async fn sent_through(app: &TestApp, org: &TestOrg, id: &str, provider: &str, answers: &mut Answers) -> Value {
    let got = wait_status(app, org, id, "sent").await;
    answers.keep(&got.to_string());
    let log = got["attemptLog"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{got}");
    assert_eq!((log[0]["provider"].as_str(), log[0]["outcome"].as_str()), (Some(provider), Some("sent")), "{got}");
    got
}

async fn an_xoauth2_provider_delivers_an_event_with_a_token_from_a_real_oauth2_server(app: TestApp) {
    crate::support::capture_logs();
    let secret = format!("canary-e2e-client-secret-{}", uuid::Uuid::now_v7().simple());
    let Some(oauth) = node("oauth2-server.mjs", &[("CLIENT_ID", "herald-e2e"), ("CLIENT_SECRET", &secret)]).await
    else {
        return;
    };
    let smtp = TestSmtp::start(Mode::Plain).await;
    let org = app.new_org().await;
    let mut answers = Answers::default();
    let provider = |name: &str, secret: &str| {
        json!({ "name": name, "kind": "smtp", "smtp": {
            "host": "127.0.0.1", "port": smtp.port(), "security": "plain", "auth": "xoauth2",
            "username": "mailbox@contoso.example", "tokenUrl": oauth.url("/token"), "clientId": "herald-e2e",
            "clientSecret": secret, "scope": "https://outlook.office365.com/.default",
            "fromEmail": "mailbox@contoso.example" } })
    };
    let id = create(&app, &org, provider("m365", &secret), &mut answers).await;

    // Two events, one token: the cache serves the second send.
    for n in 0..2 {
        let sent = send(&app, &org, message("ada@example.com", &format!("Via XOAUTH2 {n}"))).await;
        sent_through(&app, &org, &sent, "m365", &mut answers).await;
    }
    let arrived = smtp.wait_for(2).await;
    assert_eq!(arrived[1].header("Subject").as_deref(), Some("Via XOAUTH2 1"));
    let tokens = oauth.wait_events("token", 1).await;
    assert_eq!(tokens.len(), 1, "one token for both sends: {tokens:?}");
    assert_eq!(tokens[0]["grant_type"], "client_credentials");
    let issued = tokens[0]["access_token"].as_str().unwrap().to_owned();
    let exchanges = smtp.xoauth2_attempts();
    assert!(!exchanges.is_empty());
    for (user, token, well_formed) in &exchanges {
        assert_eq!((user.as_str(), token.as_str(), *well_formed), ("mailbox@contoso.example", issued.as_str(), true));
    }

    // The test send: the token step, then the SMTP steps with their replies.
    let report = test_send(&app, &org, &id, &mut answers).await;
    assert_eq!(report["success"], true, "{report}");
    let names: Vec<String> = steps(&report).into_iter().map(|(s, _)| s).collect();
    assert_eq!(names.first().map(String::as_str), Some("token"), "{report}");
    assert!(names.iter().any(|s| s == "auth"), "the AUTH XOAUTH2 step is reported: {report}");
    let auth = report["steps"].as_array().unwrap().iter().find(|s| s["step"] == "auth").unwrap();
    assert_eq!(auth["reply"], "235 2.7.0 authenticated", "{report}");

    // A wrong client secret: a clear failure at the token step, no mail.
    let wrong = format!("canary-e2e-wrong-secret-{}", uuid::Uuid::now_v7().simple());
    let bad = create(&app, &org, provider("m365 wrong secret", &wrong), &mut answers).await;
    let report = test_send(&app, &org, &bad, &mut answers).await;
    assert_eq!(report["success"], false, "{report}");
    assert_eq!(steps(&report), [("token".to_owned(), false)], "{report}");
    let text = report["message"].as_str().unwrap();
    assert!(text.contains("OAuth2 access token") && text.contains("invalid_client"), "{report}");
    assert_eq!(smtp.messages().len(), 3, "the test mail, not the refused one");

    for list in [app.get("/v1/providers", &org.token).await, app.get(&format!("/v1/providers/{bad}"), &org.token).await]
    {
        answers.keep(&list.text);
    }
    answers.assert_without(&secret);
    answers.assert_without(&wrong);
    for token in oauth.events("token").iter().filter_map(|t| t["access_token"].as_str()) {
        answers.assert_without(token);
    }
}

async fn a_google_workspace_provider_delivers_with_a_token_for_a_jose_verified_assertion(app: TestApp) {
    crate::support::capture_logs();
    let mailbox = "mailbox@workspace.example";
    let Some((google, key, untrusted)) = google_token_endpoint(mailbox).await else { return };
    let smtp = TestSmtp::start(Mode::Plain).await;
    let org = app.new_org().await;
    let mut answers = Answers::default();
    let provider = |name: &str| {
        json!({ "name": name, "kind": "smtp", "smtp": {
            "host": "127.0.0.1", "port": smtp.port(), "security": "plain", "auth": "xoauth2", "grant": "jwt_bearer",
            "username": mailbox, "tokenUrl": google.url("/token"), "clientEmail": SERVICE_ACCOUNT,
            "scope": GOOGLE_SCOPE, "fromEmail": mailbox } })
    };
    let mut body = provider("google");
    body["smtp"]["privateKey"] = json!(key);
    let id = create(&app, &org, body, &mut answers).await;
    let shown = app.get(&format!("/v1/providers/{id}"), &org.token).await;
    answers.keep(&shown.text);
    let settings = &shown.json["smtp"];
    assert_eq!(
        (settings["grant"].as_str(), settings["clientEmail"].as_str()),
        (Some("jwt_bearer"), Some(SERVICE_ACCOUNT))
    );
    assert!(settings.get("privateKey").is_none() && settings.get("subject").is_none(), "{settings}");

    // Two events, one token: the sub is the username (the mailbox).
    for n in 0..2 {
        let sent = send(&app, &org, message("ada@example.com", &format!("Via Google {n}"))).await;
        sent_through(&app, &org, &sent, "google", &mut answers).await;
    }
    smtp.wait_for(2).await;
    let tokens = google.wait_events("token", 1).await;
    assert_eq!(tokens.len(), 1, "one token for both sends: {tokens:?}");
    assert_eq!((tokens[0]["ok"].as_bool(), tokens[0]["sub"].as_str()), (Some(true), Some(mailbox)), "{tokens:?}");
    let issued = tokens[0]["access_token"].as_str().unwrap().to_owned();
    let exchanges = smtp.xoauth2_attempts();
    assert!(!exchanges.is_empty());
    for (user, token, well_formed) in &exchanges {
        assert_eq!((user.as_str(), token.as_str(), *well_formed), (mailbox, issued.as_str(), true));
    }

    // The test send: the token step, then AUTH XOAUTH2 accepted.
    let report = test_send(&app, &org, &id, &mut answers).await;
    assert_eq!(report["success"], true, "{report}");
    assert_eq!(steps(&report).first(), Some(&("token".to_owned(), true)), "{report}");
    let auth = report["steps"].as_array().unwrap().iter().find(|s| s["step"] == "auth").unwrap();
    assert_eq!(auth["reply"], "235 2.7.0 authenticated", "{report}");

    // A key the service account does not have, given as the key file: a
    // clear failure at the token step of the test send, and in the log.
    let mut body = provider("google wrong key");
    let file = body["smtp"].as_object_mut().unwrap();
    file.remove("tokenUrl");
    file.remove("clientEmail");
    body["smtp"]["serviceAccount"] = json!({ "type": "service_account", "project_id": "herald-test",
        "private_key_id": "0123abcd", "private_key": untrusted, "client_email": SERVICE_ACCOUNT,
        "token_uri": google.url("/token") });
    let bad = create(&app, &org, body, &mut answers).await;
    let report = test_send(&app, &org, &bad, &mut answers).await;
    assert_eq!((report["success"].as_bool(), steps(&report)), (Some(false), vec![("token".to_owned(), false)]));
    let text = report["message"].as_str().unwrap();
    assert!(text.contains("OAuth2 access token") && text.contains("invalid_grant"), "{report}");
    let mut off = provider("google");
    off["enabled"] = json!(false);
    let res = app
        .call(Method::PUT, &format!("/v1/providers/{id}"), crate::support::Auth::Bearer(&org.token), Some(off))
        .await;
    answers.keep(&res.text);
    assert_eq!(
        (res.status, res.json["secretSet"].as_bool()),
        (200, Some(true)),
        "the same place keeps the key: {}",
        res.text
    );
    let failing = send(&app, &org, message("ada@example.com", "Via the wrong key")).await;
    let got = wait_status(&app, &org, &failing, "retrying").await;
    answers.keep(&got.to_string());
    assert_eq!(got["attemptLog"][0]["provider"], "google wrong key", "{got}");
    assert!(got["lastError"].as_str().unwrap().contains("invalid_grant"), "{got}");
    assert_eq!(smtp.messages().len(), 3, "the refused key sent nothing");

    answers.keep(&app.get("/v1/providers", &org.token).await.text);
    let stored = app.db.everything().await;
    for pem in [&key, &untrusted] {
        answers.assert_without(&key_canary(pem));
        assert!(!stored.contains(&key_canary(pem)), "a private key is stored in clear");
    }
    for token in google.events("token").iter().filter_map(|t| t["access_token"].as_str()) {
        answers.assert_without(token);
    }
}

/// Turns the org's notification-config off (it stays, disabled).
async fn disable_notification_config(app: &TestApp, org: &TestOrg, port: u16) {
    use herald::domain::Actor;
    use herald::domain::smtp::{self, PasswordChange, Security, SmtpDraft};
    let org_id = herald::domain::OrgId::parse(&org.id).unwrap();
    let draft = SmtpDraft {
        enabled: Some(false),
        host: "localhost".into(),
        port,
        security: Security::Plain,
        accept_invalid_certs: false,
        username: None,
        password: PasswordChange::Keep,
        from_email: Some("notify@acme.example".into()),
        from_name: None,
        reply_to: None,
    };
    smtp::replace_org_config(&app.store, app.state.cipher(), &Actor::cli(), &org_id, draft, app.clock.now())
        .await
        .unwrap();
}

async fn an_ses_provider_delivers_the_raw_message_with_its_message_id_and_attachment(app: TestApp) {
    crate::support::capture_logs();
    let Some(moto) = moto().await else { return };
    let org = app.new_org().await;
    let mut answers = Answers::default();
    // A document.completed event carries files: its sender identity is
    // approved by mail first (through a test SMTP server), then the org
    // sends through SES only.
    let approvals = smtp_for(&app, &org).await;
    let email = "files@herald.test";
    approved_identity(&app, &org, &approvals, json!({"Name": "Files", "Email": email, "Locale": "EN"})).await;
    let res = bs(
        &app,
        &org,
        Method::POST,
        &format!("/v1/senderIdentities/update?email={email}"),
        Some(json!({"NotificationSettings": {"AttachSignedDocument": true}})),
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.text);
    disable_notification_config(&app, &org, approvals.port()).await;
    let id = create(
        &app,
        &org,
        json!({ "name": "ses", "kind": "ses", "ses": {
            "region": "eu-west-1", "accessKeyId": moto.access_key_id, "secretAccessKey": moto.secret_access_key,
            "endpoint": moto.tool.url(""), "fromEmail": "noreply@herald.test", "fromName": "Herald" } }),
        &mut answers,
    )
    .await;

    let pdf: Vec<u8> = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj signed\n".iter().copied().cycle().take(9_000).collect();
    let res = app
        .post(
            "/v1/events",
            &org.token,
            json!({ "type": "document.completed", "senderIdentity": email, "data": {
                "documentTitle": "Contract", "documentUrl": "https://sign.example/d/7",
                "attachments": [{ "fileName": "contract.pdf", "contentType": "application/pdf", "content": STANDARD.encode(&pdf) }] } }),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    let notification = res.json["notifications"][0]["id"].as_str().unwrap().to_owned();
    let got = sent_through(&app, &org, &notification, "ses", &mut answers).await;

    let sent = moto.sent().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    // The delivery log keeps SES's MessageId.
    assert_eq!(got["attemptLog"][0]["smtpResponse"].as_str(), sent[0]["id"].as_str(), "{got}");
    let raw = sent[0]["raw_data"].as_str().unwrap();
    let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
    let message_id = parsed.message_id().unwrap_or_default();
    assert!(message_id.starts_with(&format!("{notification}@")), "{message_id} for {notification}");
    let attachment = parsed.attachments().next().expect("the attachment arrives");
    assert_eq!(attachment.attachment_name(), Some("contract.pdf"));
    assert_eq!(attachment.contents(), pdf.as_slice());
    assert_eq!(approvals.messages().len(), 2, "nothing but the approval mails went by SMTP");

    let report = test_send(&app, &org, &id, &mut answers).await;
    assert_eq!(report["success"], true, "{report}");
    assert_eq!(steps(&report), [("api".to_owned(), true)], "{report}");
    assert_eq!(report["steps"][0]["reply"].as_str(), moto.sent().await[1]["id"].as_str(), "{report}");

    // A wrong secret key: a clear failure naming the signature problem.
    let wrong = format!("canary-e2e-ses-secret-{}", uuid::Uuid::now_v7().simple());
    let bad = create(
        &app,
        &org,
        json!({ "name": "ses wrong", "kind": "ses", "ses": {
            "region": "eu-west-1", "accessKeyId": moto.access_key_id, "secretAccessKey": wrong,
            "endpoint": moto.tool.url(""), "fromEmail": "noreply@herald.test" } }),
        &mut answers,
    )
    .await;
    let report = test_send(&app, &org, &bad, &mut answers).await;
    assert_eq!((report["success"].as_bool(), steps(&report)), (Some(false), vec![("api".to_owned(), false)]));
    assert!(report["message"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{report}");

    answers.keep(&app.get("/v1/providers", &org.token).await.text);
    answers.assert_without(&moto.secret_access_key);
    answers.assert_without(&wrong);
}

async fn an_http_provider_delivers_an_event_the_standardwebhooks_library_verifies(app: TestApp) {
    crate::support::capture_logs();
    let secret = herald::domain::signing::generate_secret();
    let Some(receiver) = node("webhook-receiver.mjs", &[("WEBHOOK_SECRET", secret.expose())]).await else {
        return;
    };
    let org = app.new_org().await;
    let mut answers = Answers::default();
    let id = create(
        &app,
        &org,
        json!({ "name": "hook", "kind": "http", "http": {
            "url": receiver.url("/hooks/mail"), "secret": secret.expose(), "fromEmail": "notify@acme.example" } }),
        &mut answers,
    )
    .await;
    let notification = send(&app, &org, message("ada@example.com", "Via HTTP")).await;
    let got = sent_through(&app, &org, &notification, "hook", &mut answers).await;
    assert_eq!(got["attemptLog"][0]["smtpResponse"], "HTTP 204", "{got}");
    let requests = receiver.wait_events("request", 1).await;
    let request = &requests[0];
    assert_eq!(request["verified"], true, "{request}");
    assert_eq!(request["id"], format!("msg_{notification}"));
    let payload = &request["payload"];
    assert_eq!(payload["subject"], "Via HTTP", "{payload}");
    assert_eq!(payload["to"][0]["address"], "ada@example.com", "{payload}");
    assert_eq!(payload["from"]["address"], "notify@acme.example", "{payload}");
    assert!(payload["messageId"].as_str().unwrap().starts_with(&format!("<{notification}@")), "{payload}");
    assert!(payload["html"].as_str().unwrap().contains("<b>from</b>"), "{payload}");

    let report = test_send(&app, &org, &id, &mut answers).await;
    assert_eq!(report["success"], true, "{report}");
    assert_eq!(steps(&report), [("api".to_owned(), true)], "{report}");
    assert_eq!(receiver.wait_events("request", 2).await[1]["verified"], true);

    // Signed with another secret: the receiver refuses, the report says so.
    let other = herald::domain::signing::generate_secret();
    let res = app
        .call(
            Method::PUT,
            &format!("/v1/providers/{id}"),
            crate::support::Auth::Bearer(&org.token),
            Some(json!({ "name": "hook", "kind": "http", "http": {
                "url": receiver.url("/hooks/mail"), "secret": other.expose(), "fromEmail": "notify@acme.example" } })),
        )
        .await;
    answers.keep(&res.text);
    assert_eq!(res.status, 200, "{}", res.text);
    let report = test_send(&app, &org, &id, &mut answers).await;
    assert_eq!((report["success"].as_bool(), steps(&report)), (Some(false), vec![("api".to_owned(), false)]));
    assert!(report["steps"][0]["reply"].as_str().unwrap_or_default().contains("401"), "{report}");

    answers.keep(&app.get("/v1/providers", &org.token).await.text);
    for s in [&secret, &other] {
        let key = STANDARD.encode(herald::domain::signing::secret_key(s).unwrap());
        answers.assert_without(s.expose());
        answers.assert_without(&key);
    }
}
