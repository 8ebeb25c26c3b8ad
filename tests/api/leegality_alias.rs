//! Leegality documents its base as `https://app1.leegality.com/api/api/v1/…`
//! (seeds 000 and 001). The seeds' samples, replayed under that base and
//! under `/api/v1`, get the same answers.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestApp};

on_each_backend!(seed_samples_answer_alike_under_both_bases);

/// What differs between two runs by nature: generated ids and times.
fn normalised(mut v: Value) -> Value {
    match &mut v {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                *value = match key.as_str() {
                    "id" | "createdAt" | "updatedAt" => json!("…"),
                    "departmentIds" => json!(["…"]),
                    _ => normalised(value.take()),
                };
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| *i = normalised(i.take())),
        _ => {}
    }
    v
}

/// Seeds 000 and 001 in order, plus the errors they document, under `base`.
async fn replay(app: &TestApp, base: &str) -> Vec<(String, u16, Value)> {
    let org = app.new_org().await;
    let config = json!({
        "emailServerHost": "smtp.example.com", "emailServerPort": "587",
        "username": "anagha.babu@leegality.com", "password": "NewPassword@123",
        "fromEmail": "testuser@leegality.com", "fromName": "Leegality Test User",
        "replyTo": "testuser@leegality.com", "tlsEnabled": true, "enabled": false
    });
    let mut steps: Vec<(Method, String, Option<Value>, &str)> = vec![
        (Method::GET, "/notification-config".into(), None, &org.token),
        (Method::PUT, "/notification-config".into(), Some(config.clone()), &org.token),
        (Method::POST, "/notification-config".into(), Some(config.clone()), &org.token),
        (Method::GET, "/notification-config".into(), None, &org.token),
        (Method::PUT, "/notification-config".into(), Some(json!({"emailServerHost": "smtp.gmail.com"})), &org.token),
        (
            Method::PUT,
            "/notification-config".into(),
            Some(json!({"emailServerHost": "x", "replyTo": "no"})),
            &org.token,
        ),
        (Method::GET, "/notification-config".into(), None, "hrd_not-a-token"),
        (Method::POST, "/departments".into(), Some(json!({"name": "Human Resources"})), &org.token),
        (Method::POST, "/departments".into(), Some(json!({"name": "human resources"})), &org.token),
        (Method::GET, "/departments?page=1&size=20".into(), None, &org.token),
        (Method::GET, "/departments/acd77746-6eb2-4ad3-9356-e9f12f7ef502".into(), None, &org.token),
        (
            Method::PUT,
            "/departments/acd77746-6eb2-4ad3-9356-e9f12f7ef502".into(),
            Some(json!({"name": "x y"})),
            &org.token,
        ),
        (Method::GET, "/no-such-endpoint".into(), None, &org.token),
        (Method::PATCH, "/notification-config".into(), None, &org.token),
        (Method::DELETE, "/notification-config".into(), None, &org.token),
    ];
    let mut out = Vec::new();
    for (method, path, body, token) in steps.drain(..) {
        let res = app.call(method.clone(), &format!("{base}{path}"), Auth::XAuthToken(token), body).await;
        out.push((format!("{method} {path}"), res.status, normalised(res.json)));
    }
    // A department's own id, and a user in it, through the same base.
    let (_, _, list) = &out[9];
    assert_eq!(list["data"]["total"], 1, "{list}");
    let res =
        app.call(Method::GET, &format!("{base}/departments?page=1&size=20"), Auth::XAuthToken(&org.token), None).await;
    let dept = res.json["data"]["items"][0]["id"].as_str().unwrap().to_owned();
    for (method, path, body) in [
        (Method::GET, format!("/departments/{dept}"), None),
        (Method::PUT, format!("/departments/{dept}"), Some(json!({"name": "People", "enabled": false}))),
        (
            Method::POST,
            "/users".into(),
            Some(json!({"name": "Ann Example", "email": "ann@example.com", "departmentIds": [dept], "locale": "DE"})),
        ),
        (
            Method::POST,
            "/users/search".into(),
            Some(json!({"search": "ann", "departmentId": dept, "page": 1, "size": 20})),
        ),
        (Method::DELETE, format!("/departments/{dept}"), None),
    ] {
        let res = app.call(method.clone(), &format!("{base}{path}"), Auth::XAuthToken(&org.token), body).await;
        let label = format!("{method} {}", path.replace(&dept, "{id}"));
        out.push((label, res.status, normalised(res.json)));
    }
    out
}

async fn seed_samples_answer_alike_under_both_bases(app: TestApp) {
    let plain = replay(&app, "/api/v1").await;
    let documented = replay(&app, "/api/api/v1").await;
    let statuses: Vec<u16> = plain.iter().map(|(_, s, _)| *s).collect();
    assert_eq!(
        statuses,
        [404, 404, 200, 200, 200, 400, 401, 200, 409, 200, 404, 404, 404, 405, 200, 200, 200, 200, 200, 200]
    );
    for (a, b) in plain.iter().zip(&documented) {
        assert_eq!(a, b, "{} answers alike under both bases", a.0);
    }
    // Errors name the path as Leegality does, under `/api/v1`.
    let (_, _, not_found) = &documented[10];
    assert_eq!(not_found["errors"][0]["path"], "/api/v1/departments/acd77746-6eb2-4ad3-9356-e9f12f7ef502");
    // Only the documented base is an alias, not any path that contains it.
    let org = app.new_org().await;
    let res = app.call(Method::GET, "/api/api/v10/notification-config", Auth::XAuthToken(&org.token), None).await;
    assert_eq!(res.status, 404);
}
