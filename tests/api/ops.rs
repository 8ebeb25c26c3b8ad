//! Health, readiness, metrics, OpenAPI, request ids.

use serde_json::Value;

use crate::support::{Backend, TestApp};

on_each_backend!(
    health_and_readiness,
    readiness_fails_when_a_migration_is_missing,
    metrics_count_requests_by_route_template,
    openapi_describes_every_endpoint,
    request_ids_are_assigned_and_kept,
);

async fn health_and_readiness(app: TestApp) {
    let res = app.send(app.client.get(app.url("/healthz"))).await;
    assert_eq!((res.status, res.text.as_str()), (200, "ok"));
    let res = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json["status"], "ready");
}

async fn readiness_fails_when_a_migration_is_missing(app: TestApp) {
    use sqlx::Connection;
    let sql = "DELETE FROM _sqlx_migrations WHERE version = 1";
    if app.backend == crate::support::Backend::Sqlite {
        let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
    let res = app.send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(res.status, 503, "{}", res.text);
    assert_eq!(res.json["status"], "unavailable");
    assert!(!res.text.contains("migration"), "no internals: {}", res.text);
}

async fn metrics_count_requests_by_route_template(app: TestApp) {
    let org = app.new_org().await;
    for _ in 0..3 {
        app.get(&format!("/admin/v1/orgs/{}/tokens", org.id), &app.admin_token).await;
    }
    let res = app.send(app.client.get(app.url("/metrics"))).await;
    assert_eq!(res.status, 200);
    assert!(res.content_type().starts_with("text/plain"));
    let text = res.text;
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("herald_http_requests_total{")
                && l.contains(r#"route="/admin/v1/orgs/{orgId}/tokens""#)
                && l.contains(r#"method="GET""#)
                && l.contains(r#"status="200""#)
        })
        .unwrap_or_else(|| panic!("no counter line in:\n{text}"));
    let count: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{line}");
    assert!(text.contains("herald_http_request_duration_seconds_bucket{"), "latency histogram");
    assert!(!text.contains(&org.id), "raw paths are not labels");
}

async fn openapi_describes_every_endpoint(app: TestApp) {
    let res = app.send(app.client.get(app.url("/openapi.json"))).await;
    assert_eq!(res.status, 200);
    let doc: Value = res.json;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/openapi.json", "get"),
        ("/admin/v1/orgs", "post"),
        ("/admin/v1/orgs", "get"),
        ("/admin/v1/orgs/{orgId}/tokens", "post"),
        ("/admin/v1/orgs/{orgId}/tokens", "get"),
        ("/admin/v1/orgs/{orgId}/tokens/{id}", "delete"),
        ("/v1/audit", "get"),
        ("/v1/events", "post"),
        ("/v1/notifications", "get"),
        ("/v1/notifications/{id}", "get"),
        ("/v1/notifications/{id}/retry", "post"),
        ("/v1/smtp/test", "post"),
        ("/v1/erasures", "post"),
        ("/v1/alerts/contacts", "get"),
        ("/v1/alerts/contacts", "put"),
        ("/admin/v1/retention", "get"),
        ("/admin/v1/retention/runs", "post"),
        ("/admin/v1/orgs/{orgId}/retention", "get"),
        ("/admin/v1/orgs/{orgId}/retention", "put"),
        ("/admin/v1/orgs/{orgId}/retention", "delete"),
        ("/admin/v1/audit", "get"),
        ("/management/v1/policies/notification", "get"),
        ("/management/v1/policies/notification", "post"),
        ("/management/v1/policies/notification", "put"),
        ("/management/v1/policies/notification", "delete"),
        ("/management/v1/policies/default/notification", "get"),
        ("/admin/v1/policies/notification", "get"),
        ("/admin/v1/policies/notification", "put"),
        ("/api/v1/notification-config", "get"),
        ("/api/v1/notification-config", "post"),
        ("/api/v1/notification-config", "put"),
        ("/api/v1/notification-config", "delete"),
        ("/email-settings/edit", "post"),
        ("/email-settings/show", "get"),
        ("/email-settings/show", "post"),
        ("/email-settings/clear", "post"),
        ("/api/v1/departments", "post"),
        ("/api/v1/departments", "get"),
        ("/api/v1/departments/{id}", "get"),
        ("/api/v1/departments/{id}", "put"),
        ("/api/v1/departments/{id}", "delete"),
        ("/api/v1/users", "post"),
        ("/api/v1/users/{id}", "get"),
        ("/api/v1/users/{id}", "put"),
        ("/api/v1/users/{id}", "delete"),
        ("/api/v1/users/search", "post"),
    ] {
        let op = &paths.get(path).unwrap_or_else(|| panic!("{path} missing"))[method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no responses");
    }
    // What generated clients and fuzzers need: unique ids, described
    // responses, and the errors every authenticated operation can answer.
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            let tag = op["tags"][0].as_str().unwrap();
            assert!(id.starts_with(&format!("{tag}_")), "{method} {path}: {id}");
            assert!(ids.insert(id.to_owned()), "{id} is used twice");
            for (status, response) in op["responses"].as_object().unwrap() {
                assert!(
                    response["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                for status in ["400", "401", "403"] {
                    let documented = &op["responses"][status]["content"];
                    assert!(documented.is_object(), "{method} {path} does not document {status}");
                }
            }
        }
    }
    assert_eq!(paths["/api/v1/departments"]["post"]["operationId"], "leegality_create_department");
    // Limits are schema keywords, not prose.
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["SenderIdentityRequest"]["properties"]["Name"]["maxLength"], 80);
    assert_eq!(schemas["SenderIdentityRequest"]["properties"]["Email"]["format"], "email");
    assert_eq!(schemas["DepartmentBody"]["properties"]["name"]["minLength"], 2);
    assert!(schemas["UserBody"]["properties"]["locale"]["enum"].as_array().unwrap().contains(&"ZH_TW".into()));
    assert_eq!(schemas["EditParams"]["properties"]["smtp_port"]["maximum"], 65535);
    assert_eq!(
        paths["/api/v1/departments/{id}"]["put"]["responses"]["415"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/LeegalityError"
    );

    // Every documented operation answers (no route without docs, no docs without a route).
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete = path.replace("{orgId}", &uuid::Uuid::now_v7().to_string()).replace("{id}", "x");
            let req = app.client.request(method.to_uppercase().parse().unwrap(), app.url(&concrete));
            let res = app.send(req).await;
            assert_ne!(res.status, 405, "{method} {path}");
            assert!(!(res.status == 404 && res.text.contains("no-such-endpoint")), "{method} {path} is not routed");
        }
    }
}

async fn request_ids_are_assigned_and_kept(app: TestApp) {
    let res = app.send(app.client.get(app.url("/healthz"))).await;
    let id = res.headers.get("x-request-id").unwrap().to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let res = app.send(app.client.get(app.url("/healthz")).header("x-request-id", "abc-123")).await;
    assert_eq!(res.headers.get("x-request-id").unwrap(), "abc-123");
}

#[tokio::test]
async fn unknown_methods_share_one_metrics_label() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let method = reqwest::Method::from_bytes(b"XYZ1").unwrap();
    let res = app.send(app.client.request(method, app.url("/healthz"))).await;
    assert_eq!(res.status, 405);
    let text = app.send(app.client.get(app.url("/metrics"))).await.text;
    assert!(!text.contains("XYZ1"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("herald_http_requests_total{") && l.contains(r#"method="other""#)),
        "{text}"
    );
}
