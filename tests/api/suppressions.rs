//! The suppression list (issue 18): listed addresses get no mail, removal
//! re-enables them, the password-change notice bypasses the list, and one
//! org's list never touches another's.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestApp, TestOrg};

on_each_backend!(
    suppressed_recipients_are_accepted_recorded_and_not_mailed_until_removed,
    another_orgs_list_is_untouched_and_its_entries_are_not_found,
    password_change_notices_bypass_the_list,
    the_list_pages_in_address_order_and_searches_literally,
    suppression_endpoints_reject_bad_input_with_problems,
);

async fn send(app: &TestApp, org: &TestOrg, to: &str) -> Value {
    let res = app
        .post(
            "/v1/events",
            &org.token,
            json!({"type": "message.send", "data": {"to": to, "subject": "Hi", "text": "Hello"}}),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    res.json
}

async fn list(app: &TestApp, org: &TestOrg, email: &str) -> Value {
    let res = app.post("/v1/suppressions", &org.token, json!({"email": email, "detail": "asked to stop"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.json
}

async fn suppressed_recipients_are_accepted_recorded_and_not_mailed_until_removed(app: TestApp) {
    let org = app.new_org().await;
    let entry = list(&app, &org, "Ada@Example.com").await;
    assert_eq!(entry["email"], "Ada@Example.com");
    assert_eq!(entry["reason"], "manual");
    assert_eq!(entry["detail"], "asked to stop");
    // Listing it again (in another case) keeps the first entry: 200.
    let again = app.post("/v1/suppressions", &org.token, json!({"email": "ada@example.COM"})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["email"], "Ada@Example.com");

    // Accepted, recorded as suppressed with the reason, nothing queued.
    let accepted = send(&app, &org, "ada@example.com").await;
    assert_eq!(accepted["notifications"], json!([]));
    let reason = accepted["suppressed"].as_str().unwrap();
    assert!(reason.contains("suppression list") && reason.contains("manual"), "{reason}");
    let log = app.get("/v1/notifications", &org.token).await;
    assert_eq!(log.json["items"], json!([]), "{}", log.text);

    // Another address of the same org is mailed.
    let other = send(&app, &org, "bob@example.com").await;
    assert_eq!(other["notifications"][0]["status"], "queued");

    // Removed (any case): mailed again.
    let res = app.call(Method::DELETE, "/v1/suppressions/ADA@example.com", Auth::Bearer(&org.token), None).await;
    assert_eq!(res.status, 204, "{}", res.text);
    let res = app.get("/v1/suppressions/ada@example.com", &org.token).await;
    assert_eq!(res.status, 404);
    let accepted = send(&app, &org, "ada@example.com").await;
    assert_eq!(accepted["notifications"][0]["status"], "queued", "{accepted}");
    assert!(accepted.get("suppressed").is_none_or(Value::is_null), "{accepted}");

    // Both changes are in the org's audit log.
    let audit = app.get("/v1/audit?limit=500", &org.token).await;
    let actions: Vec<&str> =
        audit.json["items"].as_array().unwrap().iter().map(|i| i["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"suppression.added") && actions.contains(&"suppression.removed"), "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "suppression.added").count(), 1, "a repeat adds no audit row");
}

async fn another_orgs_list_is_untouched_and_its_entries_are_not_found(app: TestApp) {
    let a = app.new_org().await;
    let b = app.new_org().await;
    list(&app, &a, "shared@example.com").await;

    // B mails the address A suppressed.
    let accepted = send(&app, &b, "shared@example.com").await;
    assert_eq!(accepted["notifications"][0]["status"], "queued", "{accepted}");
    // B sees nothing of A's list; A's entry is "not found" to B, exactly as
    // an address nobody listed.
    let page = app.get("/v1/suppressions", &b.token).await;
    assert_eq!(page.json["items"], json!([]));
    let foreign = app.get("/v1/suppressions/shared@example.com", &b.token).await;
    let unknown = app.get("/v1/suppressions/nobody@example.com", &b.token).await;
    assert_eq!((foreign.status, unknown.status), (404, 404));
    let strip = |v: &Value| {
        let mut v = v.clone();
        v["instance"] = Value::Null;
        v
    };
    assert_eq!(strip(&foreign.json), strip(&unknown.json));
    let res = app.call(Method::DELETE, "/v1/suppressions/shared@example.com", Auth::Bearer(&b.token), None).await;
    assert_eq!(res.status, 404);
    // A's entry is still there, and still suppresses A's mail.
    assert_eq!(app.get("/v1/suppressions/shared@example.com", &a.token).await.status, 200);
    let accepted = send(&app, &a, "shared@example.com").await;
    assert_eq!(accepted["notifications"], json!([]));
}

async fn password_change_notices_bypass_the_list(app: TestApp) {
    let org = app.new_org().await;
    list(&app, &org, "owner@example.com").await;
    let res = app
        .post(
            "/v1/events",
            &org.token,
            json!({"type": "user.password_changed", "recipient": {"email": "owner@example.com"}}),
        )
        .await;
    assert_eq!(res.status, 202, "{}", res.text);
    assert_eq!(res.json["notifications"][0]["to"], "owner@example.com", "{}", res.text);
    assert_eq!(res.json["notifications"][0]["status"], "queued");
}

async fn the_list_pages_in_address_order_and_searches_literally(app: TestApp) {
    let org = app.new_org().await;
    for email in ["d@example.com", "a_b@example.com", "axb@example.com", "c@example.org", "b@example.com"] {
        list(&app, &org, email).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/suppressions?limit=2&cursor={}", urlencode(c)),
            None => "/v1/suppressions?limit=2".to_owned(),
        };
        let page = app.get(&path, &org.token).await;
        assert_eq!(page.status, 200, "{}", page.text);
        for item in page.json["items"].as_array().unwrap() {
            seen.push(item["email"].as_str().unwrap().to_owned());
        }
        match page.json["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["a_b@example.com", "axb@example.com", "b@example.com", "c@example.org", "d@example.com"]);
    // `_` is a literal, not LIKE's wildcard; search ignores case.
    let found = app.get("/v1/suppressions?search=A_B", &org.token).await;
    let emails: Vec<&str> =
        found.json["items"].as_array().unwrap().iter().map(|i| i["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["a_b@example.com"]);
    let found = app.get("/v1/suppressions?search=.org", &org.token).await;
    assert_eq!(found.json["items"].as_array().unwrap().len(), 1);
    let found = app.get("/v1/suppressions?search=%25", &org.token).await;
    assert_eq!(found.json["items"], json!([]));
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn suppression_endpoints_reject_bad_input_with_problems(app: TestApp) {
    let org = app.new_org().await;
    let long_detail = "x".repeat(1001);
    let long_email = format!("{}@example.com", "a".repeat(300));
    let bad: Vec<(Value, &str)> = vec![
        (json!({}), ""),
        (json!({"email": 5}), ""),
        (json!({"email": "not an address"}), "email"),
        (json!({"email": long_email}), "email"),
        (json!({"email": "a@example.com\r\nBcc: x@example.com"}), "email"),
        (json!({"email": "a@example.com", "detail": long_detail}), "detail"),
        (json!({"email": "a@example.com", "detail": "line\nbreak"}), "detail"),
        (json!({"email": "a@example.com", "reason": "hard_bounce"}), ""),
        (json!(["a@example.com"]), ""),
    ];
    for (body, field) in bad {
        let res = app.post("/v1/suppressions", &org.token, body.clone()).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
        assert_eq!(res.content_type(), "application/problem+json");
        if !field.is_empty() {
            assert_eq!(res.json["errors"][0]["field"], field, "{body}: {}", res.text);
        }
    }
    let malformed = app
        .send(
            app.client
                .post(app.url("/v1/suppressions"))
                .bearer_auth(&org.token)
                .header("content-type", "application/json")
                .body("{\"email\":"),
        )
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json["type"], "urn:herald:problem:malformed-json");
    for query in ["limit=0", "limit=501", "limit=x", "search=%00"] {
        let res = app.get(&format!("/v1/suppressions?{query}"), &org.token).await;
        assert_eq!(res.status, 400, "{query}: {}", res.text);
        assert_eq!(res.content_type(), "application/problem+json");
    }
    let huge = format!("/v1/suppressions/{}", "a".repeat(4000));
    assert_eq!(app.get(&huge, &org.token).await.status, 404);
    assert_eq!(app.call(Method::GET, "/v1/suppressions", Auth::None, None).await.status, 401);
    // Nothing was stored.
    assert_eq!(app.get("/v1/suppressions", &org.token).await.json["items"], json!([]));
}
