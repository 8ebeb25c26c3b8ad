//! Every documented operation, driven from `/openapi.json` so that new
//! endpoints are covered without being listed here: hostile input gets a
//! 4xx in the family envelope of its path, never a 5xx, never a bare body.

use reqwest::Method;

use crate::support::{TestApp, TestResponse};

on_each_backend!(hostile_input_never_yields_a_5xx_and_keeps_the_family_envelope);

/// The family envelope, recognised from the body's shape.
fn envelope_of(path: &str, res: &TestResponse) -> bool {
    let body = &res.json;
    if path.starts_with("/sender-identity/") {
        res.content_type().starts_with("text/html") && res.text.starts_with("<!DOCTYPE html>")
    } else if path.starts_with("/api/") {
        body["code"].as_str().is_some_and(|c| c.starts_with("LE_ERR_SS_")) && body["errors"].is_array()
    } else if path.starts_with("/email-settings") {
        body["successful"] == false && body["error"]["message"].is_string()
    } else if path.starts_with("/management/") || path.starts_with("/admin/v1/policies") {
        body["code"].is_u64() && body["details"][0]["@type"].is_string()
    } else if path.starts_with("/v1/senderIdentities") {
        body["error"].is_string() || body["errors"].is_object()
    } else {
        body["type"].as_str().is_some_and(|t| t.starts_with("urn:herald:problem:"))
    }
}

async fn hostile_input_never_yields_a_5xx_and_keeps_the_family_envelope(app: TestApp) {
    let org = app.new_org().await;
    let doc = app.send(app.client.get(app.url("/openapi.json"))).await.json;
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(70 * 1024));
    let bodies: Vec<(&str, String)> = vec![
        ("application/json", "{\"broken\": ".to_owned()),
        ("application/json", "[1, 2, 3]".to_owned()),
        ("application/json", "\"\\r\\nInjected: yes\"".to_owned()),
        ("application/json", "{\"name\": {\"deep\": [null, 1e999]}, \"email\": 5, \"params\": 7}".to_owned()),
        ("application/json", big),
        ("text/plain", "hello".to_owned()),
        ("application/grpc", "\u{0}\u{0}".to_owned()),
    ];
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let concrete = path.replace("{orgId}", &org.id).replace("{id}", &uuid::Uuid::now_v7().to_string());
            let method: Method = method.to_uppercase().parse().unwrap();
            let takes_body = op.get("requestBody").is_some();
            let cases: Vec<(&str, String)> =
                if takes_body { bodies.clone() } else { vec![("application/json", String::new())] };
            for (ct, body) in cases {
                for token in [org.token.as_str(), app.admin_token.as_str(), "hrd_forged0000000000000000000000000"] {
                    let req = app
                        .client
                        .request(method.clone(), app.url(&concrete))
                        .bearer_auth(token)
                        .header("X-Auth-Token", token)
                        .header("x-zitadel-orgid", &org.id)
                        .header("content-type", ct)
                        .body(body.clone());
                    let res = app.send(req).await;
                    assert!(res.status < 500, "{method} {path} ({ct}) answered {}: {}", res.status, res.text);
                    if res.status >= 400
                        && !["/healthz", "/readyz", "/metrics", "/openapi.json"].contains(&path.as_str())
                    {
                        assert!(envelope_of(path, &res), "{method} {path} ({ct}): {} {}", res.status, res.text);
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} requests made");
    // Nothing hostile was stored: the org's log holds only its creation and token.
    let log = app.get("/v1/audit?limit=500", &org.token).await;
    let actions: Vec<&str> =
        log.json["items"].as_array().unwrap().iter().map(|i| i["action"].as_str().unwrap()).collect();
    assert!(
        actions.iter().all(|a| !["department.", "user.", "senderIdentity."].iter().any(|p| a.starts_with(p))),
        "{actions:?}"
    );
}
