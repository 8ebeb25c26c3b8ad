//! Every documented operation, driven from `/openapi.json` so that new
//! endpoints are covered without being listed here: hostile input gets a
//! 4xx in the family envelope of its path, never a 5xx, never a bare body.

use reqwest::Method;

use crate::support::{TestApp, TestResponse};

on_each_backend!(
    hostile_input_never_yields_a_5xx_and_keeps_the_family_envelope,
    console_routes_answer_hostile_input_with_a_page_never_a_5xx
);

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

/// Every console route (they are HTML, not in `/openapi.json`, so listed
/// here), signed in as an instance admin, an org admin and nobody, with
/// hostile forms, queries and ids: a page in HTML, never a 5xx.
async fn console_routes_answer_hostile_input_with_a_page_never_a_5xx(app: TestApp) {
    use crate::support::console::{Visitor, user};
    use herald::domain::OrgId;
    use herald::domain::console::Role;

    let org = app.new_org().await;
    user(&app, "root@example.com", Role::InstanceAdmin).await;
    user(&app, "acme@example.com", Role::OrgAdmin(OrgId::parse(&org.id).unwrap())).await;
    let n = uuid::Uuid::now_v7().to_string();
    let routes: Vec<(Method, String)> = [
        ("GET", "/console"),
        ("GET", "/console/"),
        ("GET", "/console/login"),
        ("POST", "/console/login"),
        ("GET", "/console/setup"),
        ("POST", "/console/setup"),
        ("GET", "/console/orgs"),
        ("POST", "/console/orgs"),
        ("GET", "/console/orgs/{org}"),
        ("POST", "/console/orgs/{org}/tokens"),
        ("POST", "/console/orgs/{org}/tokens/{id}/revoke"),
        ("GET", "/console/orgs/{org}/smtp"),
        ("POST", "/console/orgs/{org}/smtp"),
        ("POST", "/console/orgs/{org}/smtp/test"),
        ("GET", "/console/orgs/{org}/log"),
        ("GET", "/console/orgs/{org}/log/{id}"),
        ("POST", "/console/orgs/{org}/log/{id}/retry"),
        ("GET", "/console/orgs/{org}/audit"),
        ("GET", "/console/orgs/{org}/providers"),
        ("GET", "/console/audit"),
        ("GET", "/console/smtp"),
        ("GET", "/console/users"),
        ("POST", "/console/users"),
        ("GET", "/console/orgs/{org}/policy"),
        ("POST", "/console/orgs/{org}/policy"),
        ("GET", "/console/orgs/{org}/people"),
        ("POST", "/console/orgs/{org}/departments"),
        ("POST", "/console/orgs/{org}/users"),
        ("GET", "/console/orgs/{org}/identities"),
        ("POST", "/console/orgs/{org}/identities"),
        ("POST", "/console/smtp"),
        ("GET", "/console/orgs/{org}/webhooks"),
        ("POST", "/console/orgs/{org}/webhooks"),
        ("GET", "/console/orgs/{org}/webhooks/{id}"),
        ("POST", "/console/orgs/{org}/webhooks/{id}"),
        ("POST", "/console/orgs/{org}/webhooks/{id}/test"),
        ("GET", "/console/orgs/{org}/suppressions"),
        ("POST", "/console/orgs/{org}/suppressions"),
        ("POST", "/console/orgs/{org}/suppressions/remove"),
        ("GET", "/console/orgs/{org}/alerts"),
        ("POST", "/console/orgs/{org}/alerts/contacts"),
        ("DELETE", "/console/orgs/{org}"),
        ("GET", "/console/orgs/%00%ff/log/..%2f..%2f"),
        // Last: it ends the session.
        ("POST", "/console/logout"),
    ]
    .iter()
    .map(|(m, p)| (m.parse().unwrap(), p.replace("{org}", &org.id).replace("{id}", &n)))
    .collect();
    let long = "x".repeat(70 * 1024);
    let forms: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("name", "a\r\nInjected: yes"), ("email", "a@b\r\nc"), ("password", "\u{0}")],
        vec![
            ("host", "-bad-.example"),
            ("port", "-1"),
            ("security", "rot13"),
            ("password_action", "set"),
            ("password", ""),
            ("to", "<script>"),
            ("action", "delete'; DROP TABLE orgs;--"),
            ("delete", "../../etc"),
            ("department", "not-a-uuid"),
            ("resend", "x@y\r\n"),
            ("url", "javascript:alert(1)"),
            ("event_<script>", "on"),
            ("emails", "a@b\r\n\u{0},,<x>"),
            ("detail", "\u{0}"),
        ],
        vec![("name", &long)],
    ];
    let queries = [
        "",
        "?status=%ff&to=%00&from=yesterday&until=9999-99-99T99:99&before=zzz&after=-5",
        "?after=99999999999999999999",
        "?search=%00%ff&cursor=..%2f&limit=99999999999999&done=%3Cscript%3E",
    ];
    for who in [Some("root@example.com"), Some("acme@example.com"), None] {
        let mut v = match who {
            Some(email) => Visitor::signed_in(&app, email).await,
            None => Visitor::new(&app),
        };
        v.get("/console/login").await;
        for (method, path) in &routes {
            if *method == Method::POST {
                for form in &forms {
                    let res = v.post(path, form).await;
                    check(path, &res);
                }
                let raw = app
                    .send(app.client.post(app.url(path)).header("content-type", "application/json").body("{\"a\":1}"))
                    .await;
                check(path, &raw);
            } else {
                for q in queries {
                    let req = app.client.request(method.clone(), app.url(&format!("{path}{q}")));
                    let res = app.send(req).await;
                    check(path, &res);
                    let res = v.get(&format!("{path}{q}")).await;
                    check(path, &res);
                }
            }
        }
    }
    let orgs = app.get("/admin/v1/orgs", &app.admin_token).await;
    assert_eq!(orgs.json["orgs"].as_array().map_or(0, Vec::len), 1, "no hostile org was created: {}", orgs.text);
}

fn check(path: &str, res: &TestResponse) {
    assert!(res.status < 500, "{path} answered {}: {}", res.status, res.text);
    if res.status >= 400 || res.status == 200 {
        assert!(res.content_type().starts_with("text/html"), "{path}: {} {}", res.status, res.text);
        assert!(res.text.starts_with("<!DOCTYPE html>"), "{path}: {}", res.text);
        assert!(!res.text.contains("internal"), "{path}: {}", res.text);
    }
}
