//! Document events (contract §8) for sender identities (§7): each of the
//! twelve notification flags routes or suppresses its event, mail goes to
//! Approved identities only, and document.completed carries the signed
//! files when AttachSignedDocument is on. Mail is read at a real SMTP socket.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::identity::{approved_identity, bs, create, parse, smtp_for};
use crate::support::{TestApp, TestOrg, TestResponse};

on_each_backend!(
    each_flag_routes_or_suppresses_its_event,
    completed_attaches_the_signed_files_only_with_attach_signed_document,
    only_approved_identities_of_the_org_are_mailed,
    document_events_reject_bad_input,
);

/// Every document event, its flag, and the English subject it is mailed with.
const EVENTS: [(&str, &str, &str); 11] = [
    ("viewed", "Viewed", "Document viewed"),
    ("sent", "Sent", "Document sent"),
    ("delivery_failed", "DeliveryFailed", "Document could not be delivered"),
    ("declined", "Declined", "Document declined"),
    ("revoked", "Revoked", "Document revoked"),
    ("reassigned", "Reassigned", "Document reassigned"),
    ("completed", "Completed", "Document completed"),
    ("signed", "Signed", "Document signed"),
    ("expired", "Expired", "Document expired"),
    ("authentication_failed", "AuthenticationFailed", "Signer authentication failed"),
    ("reminder", "Reminders", "Reminder: a document awaits signature"),
];

async fn event(app: &TestApp, org: &TestOrg, body: Value) -> TestResponse {
    app.post("/v1/events", &org.token, body).await
}

async fn set_flag(app: &TestApp, org: &TestOrg, email: &str, flag: &str, on: bool) {
    let res = bs(
        app,
        org,
        Method::POST,
        &format!("/v1/senderIdentities/update?email={email}"),
        Some(json!({"NotificationSettings": {flag: on}})),
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.text);
}

async fn each_flag_routes_or_suppresses_its_event(app: TestApp) {
    let org = app.new_org().await;
    let server = smtp_for(&app, &org).await;
    let email = "luther@cubeflakes.com";
    let before = approved_identity(&app, &org, &server, json!({"Name": "Luther", "Email": email})).await;
    for (name, flag, _) in EVENTS {
        // Off: accepted, kept, suppressed with the flag named.
        set_flag(&app, &org, email, flag, false).await;
        let body =
            json!({"type": format!("document.{name}"), "senderIdentity": email, "data": {"documentTitle": "NDA"}});
        let res = event(&app, &org, body.clone()).await;
        assert_eq!(res.status, 202, "{}", res.text);
        assert_eq!(res.json["notifications"], json!([]), "{name}: {}", res.text);
        let reason = res.json["suppressed"].as_str().unwrap_or_default();
        assert!(reason.contains(flag) && reason.contains("off"), "{name}: {reason}");
        // On: one notification to the identity.
        set_flag(&app, &org, email, flag, true).await;
        let res = event(&app, &org, body).await;
        assert_eq!(res.status, 202, "{}", res.text);
        let notifications = res.json["notifications"].as_array().unwrap();
        assert_eq!(notifications.len(), 1, "{name}: {}", res.text);
        assert_eq!(notifications[0]["to"], email);
        assert!(res.json.get("suppressed").is_none_or(Value::is_null), "{}", res.text);
    }
    // Workers send concurrently: mails may arrive in any order.
    let mails = server.wait_for(before + EVENTS.len()).await;
    let mut subjects: Vec<String> = mails[before..].iter().map(|m| parse(m).subject).collect();
    let mut expected: Vec<String> = EVENTS.iter().map(|(_, _, subject)| format!("{subject}: NDA")).collect();
    subjects.sort();
    expected.sort();
    assert_eq!(subjects, expected);
    assert!(mails[before..].iter().all(|m| m.to == [email]));
    // Nothing else went out for the suppressed ones.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(server.messages().len(), before + EVENTS.len());
}

async fn completed_attaches_the_signed_files_only_with_attach_signed_document(app: TestApp) {
    let org = app.new_org().await;
    let server = smtp_for(&app, &org).await;
    let email = "files@example.com";
    let mut seen =
        approved_identity(&app, &org, &server, json!({"Name": "Files", "Email": email, "Locale": "ES"})).await;
    let pdf: Vec<u8> = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj signed\n".iter().copied().cycle().take(20_000).collect();
    let completed = json!({
        "type": "document.completed", "senderIdentity": email,
        "data": {
            "documentTitle": "Contrato", "documentUrl": "https://sign.example/d/7",
            "attachments": [
                {"fileName": "Contrato firmado.pdf", "contentType": "application/pdf", "content": STANDARD.encode(&pdf)},
                {"fileName": "audit-trail.txt", "content": STANDARD.encode(b"signed by Ada")}
            ]
        }
    });
    // AttachSignedDocument is off by default: the mail goes, without files.
    assert_eq!(event(&app, &org, completed.clone()).await.status, 202);
    let mail = parse(&server.wait_for(seen + 1).await[seen]);
    seen += 1;
    assert!(mail.subject.starts_with("Documento completado"), "{}", mail.subject);
    assert!(mail.attachments.is_empty(), "{:?}", mail.attachments.iter().map(|a| &a.0).collect::<Vec<_>>());
    assert!(mail.text.contains("https://sign.example/d/7"), "{}", mail.text);
    // On: both files arrive, byte for byte.
    set_flag(&app, &org, email, "AttachSignedDocument", true).await;
    assert_eq!(event(&app, &org, completed.clone()).await.status, 202);
    let mail = parse(&server.wait_for(seen + 1).await[seen]);
    seen += 1;
    assert_eq!(mail.attachments.len(), 2, "{}", mail.text);
    let (name, content_type, bytes) = &mail.attachments[0];
    assert_eq!((name.as_str(), content_type.as_str()), ("Contrato firmado.pdf", "application/pdf"));
    assert_eq!(bytes, &pdf);
    assert_eq!(mail.attachments[1].1, "application/octet-stream");
    assert_eq!(mail.attachments[1].2, b"signed by Ada");
    // Completed off: suppressed, files or not.
    set_flag(&app, &org, email, "Completed", false).await;
    let res = event(&app, &org, completed).await;
    assert!(res.json["suppressed"].as_str().unwrap().contains("Completed"), "{}", res.text);
    // Only document.completed carries files; they are limited in number and size.
    let signed_with_file = json!({"type": "document.signed", "senderIdentity": email,
        "data": {"attachments": [{"fileName": "x.pdf", "content": "AAAA"}]}});
    let res = event(&app, &org, signed_with_file).await;
    assert_eq!(res.status, 400, "{}", res.text);
    let too_big = json!({"type": "document.completed", "senderIdentity": email,
        "data": {"attachments": [{"fileName": "big.pdf", "content": STANDARD.encode(vec![7u8; 170 * 1024])}]}});
    let res = event(&app, &org, too_big).await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(res.text.contains("data.attachments"), "{}", res.text);
    let over_body_limit = json!({"type": "document.completed", "senderIdentity": email,
        "data": {"attachments": [{"fileName": "huge.pdf", "content": STANDARD.encode(vec![7u8; 300 * 1024])}]}});
    assert_eq!(event(&app, &org, over_body_limit).await.status, 413);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(server.messages().len(), seen, "nothing else went out");
}

async fn only_approved_identities_of_the_org_are_mailed(app: TestApp) {
    let (org, other) = (app.new_org().await, app.new_org().await);
    let server = smtp_for(&app, &org).await;
    let seen = approved_identity(&app, &org, &server, json!({"Name": "Approved", "Email": "ok@example.com"})).await;
    create(&app, &org, json!({"Name": "Pending", "Email": "pending@example.com"})).await;
    let viewed = |email: &str| json!({"type": "document.viewed", "senderIdentity": email});
    let cases = [
        ("pending@example.com", &org, "Pending, not Approved"),
        ("nobody@example.com", &org, "no sender identity"),
        // Another org's approved identity is no identity of this org.
        ("ok@example.com", &other, "no sender identity"),
    ];
    for (email, who, reason) in cases {
        let res = event(&app, who, viewed(email)).await;
        assert_eq!(res.status, 202, "{}", res.text);
        assert_eq!(res.json["notifications"], json!([]));
        assert!(res.json["suppressed"].as_str().unwrap().contains(reason), "{email}: {}", res.text);
    }
    // The identity is found whatever the case of the address.
    let res = event(&app, &org, viewed("OK@Example.com")).await;
    assert_eq!(res.json["notifications"].as_array().unwrap().len(), 1, "{}", res.text);
    // The Pending identity got its approval request, and ok@ its document mail.
    let mails = server.wait_for(seen + 2).await;
    let to_ok: Vec<String> =
        mails[seen..].iter().filter(|m| m.to == ["ok@example.com"]).map(|m| parse(m).subject).collect();
    assert_eq!(to_ok, ["Document viewed"]);
    // The suppressed events made no notification.
    let log = app.get("/v1/notifications?limit=500", &org.token).await.json;
    let kinds: Vec<&str> = log["items"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "document.viewed").count(), 1, "{kinds:?}");
}

async fn document_events_reject_bad_input(app: TestApp) {
    let org = app.new_org().await;
    let cases = [
        (json!({"type": "document.viewed"}), "senderIdentity"),
        (json!({"type": "document.viewed", "senderIdentity": "not-an-address"}), "senderIdentity"),
        (json!({"type": "document.viewed", "senderIdentity": "a@example.com\r\nBcc: x@example.com"}), "senderIdentity"),
        (json!({"type": "document.viewed", "senderIdentity": 5}), "senderIdentity"),
        (
            json!({"type": "document.viewed", "senderIdentity": "a@example.com", "recipient": {"email": "b@example.com"}}),
            "recipient",
        ),
        (json!({"type": "document.viewed", "senderIdentity": "a@example.com", "data": {"bogus": 1}}), "data.bogus"),
        (
            json!({"type": "document.viewed", "senderIdentity": "a@example.com", "data": {"documentTitle": "a\r\nb"}}),
            "data.documentTitle",
        ),
        (
            json!({"type": "document.viewed", "senderIdentity": "a@example.com", "data": {"documentTitle": 7}}),
            "data.documentTitle",
        ),
        (
            json!({"type": "document.viewed", "senderIdentity": "a@example.com", "data": {"documentUrl": "javascript:x"}}),
            "data.documentUrl",
        ),
        (
            json!({"type": "document.viewed", "senderIdentity": "a@example.com", "data": {"signerEmail": "nope"}}),
            "data.signerEmail",
        ),
        (json!({"type": "document.exploded", "senderIdentity": "a@example.com"}), "type"),
        (
            json!({"type": "message.send", "senderIdentity": "a@example.com",
                "data": {"to": "b@example.com", "subject": "s", "text": "t"}}),
            "senderIdentity",
        ),
    ];
    for (body, field) in cases {
        let res = event(&app, &org, body.clone()).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
        assert!(res.json["errors"].as_array().unwrap().iter().any(|e| e["field"] == field), "{field}: {}", res.text);
        assert!(!res.text.contains("Bcc"), "values are never echoed: {}", res.text);
    }
    let events = app.get("/v1/notifications?limit=500", &org.token).await.json;
    assert_eq!(events["items"], json!([]), "nothing was accepted");
}
