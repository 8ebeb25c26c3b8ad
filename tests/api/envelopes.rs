//! One error type, five envelopes: every error rendered in every family's
//! shape, and the framework's own errors (no route, wrong method, oversized
//! or non-JSON bodies, internal faults) reaching clients in the family
//! envelope of the path, never as a bare body and never with internals.

use axum::body::to_bytes;
use herald::api::Family;
use herald::error::{Denial, Error, FieldError, Resource};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, Backend, TestApp};

on_each_backend!(
    unknown_routes_answer_in_their_family_envelope,
    oversized_wrong_type_and_malformed_bodies,
    wrong_method_is_405_with_allow,
    internal_errors_say_nothing_about_their_cause,
);

const CAUSE_CANARY: &str = "cause-canary-7f3e";

fn every_error() -> Vec<(Error, u16)> {
    vec![
        (Error::Invalid(vec![FieldError::new("name", "must not be empty"), FieldError::new("port", "bad")]), 400),
        (Error::MalformedJson("expected value at line 1 column 1".into()), 400),
        (Error::Unauthenticated, 401),
        (Error::Forbidden(Denial::OrgNotAccessible), 403),
        (Error::Forbidden(Denial::AdminOnly), 403),
        (Error::NotFound(Resource::Route), 404),
        (Error::NotFound(Resource::Token), 404),
        (Error::MethodNotAllowed, 405),
        (Error::Conflict(Resource::Org), 409),
        (Error::PayloadTooLarge, 413),
        (Error::UnsupportedMediaType, 415),
        (Error::RateLimited(7), 429),
        (Error::Precondition("nothing to change"), 400),
        (Error::Internal(anyhow::anyhow!("{CAUSE_CANARY}").context("load department")), 500),
    ]
}

async fn rendered(family: Family, err: &Error, path: &str) -> (u16, String, Value) {
    let res = family.render(err, path);
    let status = res.status().as_u16();
    let ct = res.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    let bytes = to_bytes(res.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(!text.contains(CAUSE_CANARY) && !text.contains("load department"), "internals leaked: {text}");
    (status, ct, serde_json::from_str(&text).unwrap())
}

#[tokio::test]
async fn native_errors_are_problem_documents() {
    for (err, status) in every_error() {
        let (got, ct, body) = rendered(Family::Native, &err, "/v1/x").await;
        assert_eq!(got, status, "{err:?}");
        assert_eq!(ct, "application/problem+json");
        assert_eq!(body["status"], status);
        assert!(body["type"].as_str().unwrap().starts_with("urn:herald:problem:"));
        assert!(body["title"].is_string() && body["detail"].is_string());
        assert_eq!(body["instance"], "/v1/x");
        if let Error::Invalid(_) = err {
            assert_eq!(body["errors"][1], json!({"field": "port", "message": "bad"}));
        }
    }
}

#[tokio::test]
async fn leegality_errors_use_le_codes() {
    for (err, status) in every_error() {
        let (got, _, body) = rendered(Family::Leegality, &err, "/api/v1/departments/1").await;
        assert_eq!(got, status, "{err:?}");
        assert_eq!(body["code"], format!("LE_ERR_SS_{status}"));
        let errors = body["errors"].as_array().unwrap();
        assert!(!errors.is_empty());
        for e in errors {
            assert!(e["message"].is_string() && e.get("path").is_some() && e.get("code").is_some(), "{e}");
        }
        match err {
            Error::Invalid(_) => {
                assert_eq!(errors.len(), 2, "one entry per field");
                assert_eq!(errors[0]["message"], "Invalid value for field [name], must not be empty");
                assert_eq!(errors[0]["path"], "/api/v1/departments/1");
            }
            Error::Unauthenticated => assert_eq!(
                errors[0],
                json!({"message": "Invalid or expired token", "path": "/api/v1/*", "code": "LE_ERR_SS_303"})
            ),
            Error::Internal(_) => {
                assert_eq!(errors[0], json!({"message": "Internal Server Error", "path": null, "code": null}))
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn dbvisit_errors_are_unsuccessful() {
    for (err, status) in every_error() {
        let (got, _, body) = rendered(Family::Dbvisit, &err, "/email-settings/edit").await;
        assert_eq!(got, status, "{err:?}");
        assert_eq!(body["successful"], false);
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }
    let (_, _, body) = rendered(Family::Dbvisit, &every_error().remove(0).0, "/").await;
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("name") && msg.contains("port"), "every field named: {msg}");
}

#[tokio::test]
async fn zitadel_errors_are_grpc_status_json() {
    let codes = [3, 3, 16, 7, 7, 5, 5, 12, 6, 3, 3, 8, 9, 13];
    for ((err, status), code) in every_error().into_iter().zip(codes) {
        let (got, _, body) = rendered(Family::Zitadel, &err, "/management/v1/policies/notification").await;
        assert_eq!(got, status, "{err:?}");
        assert_eq!(body["code"], code, "{err:?}");
        assert!(body["message"].is_string());
        let detail = &body["details"][0];
        assert_eq!(detail["@type"], "type.googleapis.com/zitadel.v1.ErrorDetail");
        assert!(detail["id"].is_string() && detail["message"].is_string());
    }
}

#[tokio::test]
async fn boldsign_errors_are_validation_problems_or_error_strings() {
    for (err, status) in every_error() {
        let (got, ct, body) = rendered(Family::BoldSign, &err, "/v1/senderIdentities/create").await;
        assert_eq!(got, status, "{err:?}");
        match err {
            Error::Invalid(_) | Error::MalformedJson(_) => {
                assert_eq!(ct, "application/problem+json");
                assert_eq!(body["title"], "One or more validation errors occurred.");
                assert_eq!(body["status"], 400);
                assert!(body["errors"].as_object().is_some_and(|e| !e.is_empty()));
            }
            _ => {
                assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
                assert!(body["error"].is_string());
            }
        }
    }
    let (_, _, body) = rendered(Family::BoldSign, &every_error().remove(0).0, "/").await;
    assert_eq!(body["errors"]["name"], json!(["must not be empty"]));
}

async fn unknown_routes_answer_in_their_family_envelope(app: TestApp) {
    type Shape = fn(&Value) -> bool;
    let checks: Vec<(&str, Shape)> = vec![
        ("/api/v1/no-such-thing", |b| b["code"] == "LE_ERR_SS_404" && b["errors"].is_array()),
        ("/email-settings/no-such-thing", |b| b["successful"] == false && b["error"]["message"].is_string()),
        ("/management/v1/no-such-thing", |b| b["code"] == 5 && b["details"].is_array()),
        ("/admin/v1/policies/no-such-thing", |b| b["code"] == 5),
        ("/v1/senderIdentities/no-such-thing", |b| b["error"].is_string()),
        ("/v1/no-such-thing", |b| b["type"] == "urn:herald:problem:no-such-endpoint"),
        ("/", |b| b["status"] == 404),
    ];
    for (path, shape) in checks {
        let res = app.call(Method::GET, path, Auth::None, None).await;
        assert_eq!(res.status, 404, "{path}");
        assert!(shape(&res.json), "{path}: {}", res.text);
    }
}

async fn oversized_wrong_type_and_malformed_bodies(app: TestApp) {
    let url = app.url("/admin/v1/orgs");
    let big = json!({ "name": "x".repeat(70 * 1024) }).to_string();
    let cases = [
        (big.clone(), "application/json", 413, "payload-too-large"),
        ("{\"name\": \"Acme\"}".to_owned(), "text/plain", 415, "unsupported-media-type"),
        ("{\"name\": \"Acme\"}".to_owned(), "application/grpc", 415, "unsupported-media-type"),
        ("{\"name\": \"Acme\"".to_owned(), "application/json", 400, "malformed-json"),
        (String::new(), "application/json", 400, "malformed-json"),
        ("\u{0}\u{1}binary".to_owned(), "application/json", 400, "malformed-json"),
    ];
    for (body, ct, status, kind) in cases {
        let req = app.client.post(&url).bearer_auth(&app.admin_token).header("content-type", ct).body(body);
        let res = app.send(req).await;
        assert_eq!(res.status, status, "{ct} {kind}: {}", res.text);
        assert_eq!(res.json["type"], format!("urn:herald:problem:{kind}"));
    }
    // No content type at all is not JSON either.
    let res = app.send(app.client.post(&url).bearer_auth(&app.admin_token).body("{}")).await;
    assert_eq!(res.status, 415);
    let list = app.get("/admin/v1/orgs", &app.admin_token).await;
    assert_eq!(list.json["orgs"].as_array().unwrap().len(), 0);
}

async fn wrong_method_is_405_with_allow(app: TestApp) {
    let res = app.call(Method::PATCH, "/admin/v1/orgs", Auth::Bearer(&app.admin_token), None).await;
    assert_eq!(res.status, 405);
    assert_eq!(res.json["type"], "urn:herald:problem:method-not-allowed");
    let allow = res.headers.get("allow").unwrap().to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

async fn internal_errors_say_nothing_about_their_cause(app: TestApp) {
    use sqlx::Connection;
    // Take a table away under the running server: a genuine internal fault.
    let sql = "DROP TABLE audit_log";
    match app.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).execute(&mut c).await.unwrap();
        }
    }
    let res = app.post("/admin/v1/orgs", &app.admin_token, json!({"name": "Acme"})).await;
    assert_eq!(res.status, 500, "{}", res.text);
    assert_eq!(res.json["type"], "urn:herald:problem:internal");
    assert_eq!(res.json["detail"], "internal server error");
    for word in ["audit", "sql", "table", "relation"] {
        assert!(!res.text.to_lowercase().contains(word), "{word} in {}", res.text);
    }
    let orgs = app.get("/admin/v1/orgs", &app.admin_token).await;
    assert_eq!(orgs.json["orgs"].as_array().unwrap().len(), 0, "the failed change left nothing behind");
}
