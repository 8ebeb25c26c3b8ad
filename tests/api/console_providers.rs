//! The console's Providers pages (issue 17) without a browser: add, edit,
//! reorder, delete and test-send an org's providers, the instance's page
//! for instance admins, write-only secrets (keep / set / clear), hostile
//! input, and another org's ids answered like unknown ones.

use herald::domain::OrgId;
use herald::domain::console::Role;

use crate::support::console::{Visitor, location, user};
use crate::support::smtp::{Mode, TestSmtp};
use crate::support::{TestApp, logs};

on_each_backend!(
    an_org_admin_adds_edits_reorders_tests_and_deletes_providers,
    provider_forms_refuse_hostile_input_and_other_orgs_ids,
    instance_admins_manage_the_instance_providers,
    a_google_workspace_provider_is_added_with_its_key_which_no_page_shows,
);

const CANARY: &str = "canary-console-provider-5f2e";

fn smtp_form<'a>(name: &'a str, port: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("kind", "smtp"),
        ("enabled", "on"),
        ("host", "127.0.0.1"),
        ("port", port),
        ("security", "plain"),
        ("auth", "password"),
        ("from_email", "notify@acme.example"),
        ("secret_action", "keep"),
    ]
}

async fn providers_of(app: &TestApp, token: &str, path: &str) -> Vec<serde_json::Value> {
    let list = app.get(path, token).await;
    assert_eq!(list.status, 200, "{}", list.text);
    list.json["providers"].as_array().unwrap().clone()
}

async fn an_org_admin_adds_edits_reorders_tests_and_deletes_providers(app: TestApp) {
    crate::support::capture_logs();
    let org = app.new_org().await;
    user(&app, "acme@example.com", Role::OrgAdmin(OrgId::parse(&org.id).unwrap())).await;
    let mut v = Visitor::signed_in(&app, "acme@example.com").await;
    let base = format!("/console/orgs/{}/providers", org.id);
    let smtp = TestSmtp::start(Mode::Plain).await;
    let port = smtp.port().to_string();

    // Add two, the first with a password (write-only).
    let mut first = smtp_form("first", &port);
    first.extend([("username", "mailer"), ("secret_action", "set"), ("secret", CANARY)]);
    let res = v.post(&base, &first).await;
    assert_eq!((res.status, location(&res)), (303, format!("{base}?saved=1").as_str()), "{}", res.text);
    let mut second = smtp_form("second", &port);
    second.extend([("max_per_minute", "30"), ("max_concurrent", "2")]);
    let res = v.post(&base, &second).await;
    assert_eq!(res.status, 303, "{}", res.text);
    let list = providers_of(&app, &org.token, "/v1/providers").await;
    let names: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!((list[0]["secretSet"].as_bool(), list[0]["smtp"]["username"].as_str()), (Some(true), Some("mailer")));
    assert_eq!((list[1]["maxPerMinute"].as_i64(), list[1]["maxConcurrent"].as_i64()), (Some(30), Some(2)));
    let (a, b) = (list[0]["id"].as_str().unwrap().to_owned(), list[1]["id"].as_str().unwrap().to_owned());

    // The page lists them in order with their health and actions.
    let page = v.get(&base).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.find(">first<").unwrap() < page.text.find(">second<").unwrap(), "{}", page.text);
    assert!(page.text.contains("healthy") && page.text.contains("in flight at most 2"), "{}", page.text);

    // The edit form shows the settings, never the secret; saving without a
    // new secret keeps it (same server), clearing clears it.
    let edit = v.get(&format!("{base}/{a}")).await;
    assert_eq!(edit.status, 200, "{}", edit.text);
    assert!(edit.text.contains("value=\"mailer\"") && edit.text.contains("A secret is set."), "{}", edit.text);
    let mut renamed = smtp_form("primary", &port);
    renamed.push(("username", "mailer"));
    let res = v.post(&format!("{base}/{a}"), &renamed).await;
    assert_eq!(res.status, 303, "{}", res.text);
    let one = app.get(&format!("/v1/providers/{a}"), &org.token).await.json;
    assert_eq!((one["name"].as_str(), one["secretSet"].as_bool()), (Some("primary"), Some(true)), "{one}");
    assert_eq!(one["position"], 1, "saving does not move it");

    // Reorder: second up.
    let res = v.post(&format!("{base}/{b}"), &[("action", "up")]).await;
    assert_eq!(res.status, 303, "{}", res.text);
    let names: Vec<String> = providers_of(&app, &org.token, "/v1/providers")
        .await
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["second", "primary"]);

    // Test send: each step with the server's reply.
    let res = v.post(&format!("{base}/{b}/test"), &[("to", "check@example.com")]).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.text.contains("data-step=\"data\"") && res.text.contains("The provider accepted"), "{}", res.text);
    assert_eq!(smtp.wait_for(1).await[0].to, ["check@example.com"]);
    let res = v.post(&format!("{base}/{b}/test"), &[("to", "<script>alert(1)</script>")]).await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(!res.text.contains("<script>alert(1)"), "escaped: {}", res.text);

    // Clear the secret, then delete.
    let mut cleared = renamed.clone();
    cleared.retain(|(k, _)| *k != "secret_action");
    cleared.push(("secret_action", "clear"));
    let res = v.post(&format!("{base}/{a}"), &cleared).await;
    assert_eq!(res.status, 303, "{}", res.text);
    assert_eq!(app.get(&format!("/v1/providers/{a}"), &org.token).await.json["secretSet"], false);
    let res = v.post(&format!("{base}/{a}"), &[("action", "delete")]).await;
    assert_eq!(res.status, 303, "{}", res.text);
    assert_eq!(app.get(&format!("/v1/providers/{a}"), &org.token).await.status, 404);

    for page in [v.get(&base).await, v.get(&format!("{base}/{b}")).await] {
        assert!(!page.text.contains(CANARY), "a secret reached a page");
    }
    assert!(!logs().contains(CANARY), "a secret reached the log");
    assert!(!app.db.everything().await.contains(CANARY), "a secret is stored in clear");
}

async fn provider_forms_refuse_hostile_input_and_other_orgs_ids(app: TestApp) {
    let org = app.new_org().await;
    let other = app.new_org().await;
    user(&app, "acme@example.com", Role::OrgAdmin(OrgId::parse(&org.id).unwrap())).await;
    let mut v = Visitor::signed_in(&app, "acme@example.com").await;
    let base = format!("/console/orgs/{}/providers", org.id);
    let long = "x".repeat(5000);
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("name", "x"), ("kind", "pigeon")], "Kind must be one of"),
        (vec![("name", ""), ("kind", "smtp"), ("host", "a.example")], "name"),
        (vec![("name", &long), ("kind", "smtp"), ("host", "a.example")], "name"),
        (vec![("name", "x"), ("kind", "smtp"), ("host", "a.example\r\nRCPT TO:<x@y>")], "smtp.host"),
        (vec![("name", "x"), ("kind", "smtp"), ("host", "a.example"), ("port", "70000")], "port"),
        (vec![("name", "x"), ("kind", "smtp"), ("host", "a.example"), ("port", "abc")], "Port must be a whole number"),
        (vec![("name", "x"), ("kind", "smtp"), ("host", "a.example"), ("max_per_minute", "-1")], "maxPerMinute"),
        (vec![("name", "x"), ("kind", "smtp"), ("host", "a.example"), ("max_concurrent", "1e9")], "whole number"),
        (vec![("name", "x"), ("kind", "smtp"), ("host", "a.example"), ("auth", "xoauth2")], "smtp."),
        (vec![("name", "x"), ("kind", "smtp"), ("host", "a.example"), ("secret_action", "set")], "secret"),
        (vec![("name", "x"), ("kind", "ses"), ("region", "eu-west-1"), ("access_key_id", "AKIA")], "ses."),
        (vec![("name", "x"), ("kind", "http"), ("url", "ftp://x.example")], "http.url"),
        (vec![("name", "<img src=x onerror=alert(1)>"), ("kind", "http"), ("url", "javascript:alert(1)")], "http.url"),
    ];
    for (form, expected) in &cases {
        let res = v.post(&base, form).await;
        assert_eq!(res.status, 400, "{form:?}: {}", res.text);
        assert!(res.content_type().starts_with("text/html"));
        assert!(res.text.contains(expected), "{expected} for {form:?}: {}", res.text);
        assert!(!res.text.contains("<img src=x"), "escaped");
    }
    assert!(providers_of(&app, &org.token, "/v1/providers").await.is_empty(), "nothing stored");

    // Another org's provider, an unknown id, a hostile id: the same 404.
    let smtp = TestSmtp::start(Mode::Plain).await;
    let port = smtp.port().to_string();
    let theirs = app
        .post(
            "/v1/providers",
            &other.token,
            serde_json::json!({ "name": "theirs", "kind": "smtp", "smtp": { "host": "127.0.0.1", "port": smtp.port(), "security": "plain" } }),
        )
        .await;
    assert_eq!(theirs.status, 201, "{}", theirs.text);
    let theirs = theirs.json["id"].as_str().unwrap().to_owned();
    let unknown = uuid::Uuid::now_v7().to_string();
    for id in [theirs.as_str(), unknown.as_str(), "..%2F..%2Fetc", "%00"] {
        assert_eq!(v.get(&format!("{base}/{id}")).await.status, 404, "{id}");
        for (path, form) in [
            (format!("{base}/{id}"), smtp_form("mine now", &port)),
            (format!("{base}/{id}"), vec![("action", "delete")]),
            (format!("{base}/{id}/test"), vec![("to", "a@example.com")]),
        ] {
            let res = v.post(&path, &form).await;
            assert_eq!(res.status, 404, "{path}: {}", res.text);
        }
    }
    for path in [format!("/console/orgs/{}/providers", other.id), "/console/providers".into()] {
        assert_eq!(v.get(&path).await.status, 404, "{path}");
        assert_eq!(v.post(&path, &smtp_form("x", &port)).await.status, 404, "{path}");
    }
    assert_eq!(app.get(&format!("/v1/providers/{theirs}"), &other.token).await.json["name"], "theirs", "untouched");
    assert!(smtp.messages().is_empty(), "no test mail through another org's provider");
    // Any other id (here the org's own) is not a provider.
    let res = v.get(&format!("{base}/{}", org.id)).await;
    assert_eq!(res.status, 404);
}

async fn instance_admins_manage_the_instance_providers(app: TestApp) {
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let mut v = Visitor::signed_in(&app, "ops@example.com").await;
    let smtp = TestSmtp::start(Mode::Plain).await;
    let port = smtp.port().to_string();
    let board = v.get("/console/").await;
    assert!(board.text.contains("instance-providers-link"), "{}", board.text);
    let res = v.post("/console/providers", &smtp_form("instance relay", &port)).await;
    assert_eq!((res.status, location(&res)), (303, "/console/providers?saved=1"), "{}", res.text);
    let list = providers_of(&app, &app.admin_token, "/admin/v1/providers").await;
    assert_eq!(list.len(), 1);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let page = v.get("/console/providers").await;
    assert!(page.text.contains("instance relay") && page.text.contains("healthy"), "{}", page.text);
    let res = v.post(&format!("/console/providers/{id}/test"), &[("to", "ops@example.com")]).await;
    assert!(res.text.contains("The provider accepted"), "{}", res.text);
    smtp.wait_for(1).await;
    // Not an org's: an org admin's console does not reach it.
    let org = app.new_org().await;
    user(&app, "acme@example.com", Role::OrgAdmin(OrgId::parse(&org.id).unwrap())).await;
    let mut o = Visitor::signed_in(&app, "acme@example.com").await;
    assert_eq!(o.get(&format!("/console/orgs/{}/providers/{id}", org.id)).await.status, 404);
    assert_eq!(o.post(&format!("/console/providers/{id}"), &[("action", "delete")]).await.status, 404);
    let res = v.post(&format!("/console/providers/{id}"), &[("action", "delete")]).await;
    assert_eq!(res.status, 303, "{}", res.text);
    assert!(providers_of(&app, &app.admin_token, "/admin/v1/providers").await.is_empty());
}

async fn a_google_workspace_provider_is_added_with_its_key_which_no_page_shows(app: TestApp) {
    crate::support::capture_logs();
    let Some(key) = crate::providers::openssl_key(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]) else {
        return;
    };
    let canary = key.lines().nth(3).unwrap().to_owned();
    let org = app.new_org().await;
    user(&app, "acme@example.com", Role::OrgAdmin(OrgId::parse(&org.id).unwrap())).await;
    let mut v = Visitor::signed_in(&app, "acme@example.com").await;
    let base = format!("/console/orgs/{}/providers", org.id);
    let sa = "mailer@acme-project.iam.gserviceaccount.com";
    fn form<'a>(sa: &'a str, key: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("name", "google"),
            ("kind", "smtp"),
            ("enabled", "on"),
            ("preset", "google"),
            ("username", "mailer@acme.example"),
            ("client_email", sa),
            ("secret_action", "keep"),
            ("private_key", key),
        ]
    }

    // A bad key: the field error, and the key is not shown back.
    let bad = "-----BEGIN PRIVATE KEY-----\ncanary-console-bad-key-7d1e\n-----END PRIVATE KEY-----\n";
    let res = v.post(&base, &form(sa, bad)).await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(res.text.contains("smtp.privateKey"), "{}", res.text);
    assert!(!res.text.contains("canary-console-bad-key"), "the posted key is not shown back");
    assert!(res.text.contains(sa), "the other fields are: {}", res.text);

    // The real key, pasted: set without touching the radio buttons.
    let res = v.post(&base, &form(sa, &key)).await;
    assert_eq!(res.status, 303, "{}", res.text);
    let list = providers_of(&app, &org.token, "/v1/providers").await;
    let g = &list[0];
    assert_eq!((g["secretSet"].as_bool(), g["smtp"]["grant"].as_str()), (Some(true), Some("jwt_bearer")), "{g}");
    assert_eq!((g["smtp"]["host"].as_str(), g["smtp"]["clientEmail"].as_str()), (Some("smtp.gmail.com"), Some(sa)));
    let id = g["id"].as_str().unwrap().to_owned();

    // The edit form shows the grant and service account, never the key;
    // saving it unchanged keeps the key.
    let edit = v.get(&format!("{base}/{id}")).await;
    assert_eq!(edit.status, 200, "{}", edit.text);
    assert!(edit.text.contains("value=\"jwt_bearer\" selected") && edit.text.contains(sa), "{}", edit.text);
    assert!(edit.text.contains("A secret is set."), "{}", edit.text);
    let saved = [
        ("name", "google"),
        ("kind", "smtp"),
        ("enabled", "on"),
        ("host", "smtp.gmail.com"),
        ("port", "465"),
        ("security", "tls"),
        ("username", "mailer@acme.example"),
        ("auth", "xoauth2"),
        ("grant", "jwt_bearer"),
        ("token_url", "https://oauth2.googleapis.com/token"),
        ("scope", "https://mail.google.com/"),
        ("client_email", sa),
        ("secret_action", "keep"),
    ];
    let res = v.post(&format!("{base}/{id}"), &saved).await;
    assert_eq!(res.status, 303, "{}", res.text);
    assert_eq!(app.get(&format!("/v1/providers/{id}"), &org.token).await.json["secretSet"], true);

    for page in [v.get(&base).await, v.get(&format!("{base}/{id}")).await] {
        assert!(!page.text.contains(&canary), "the key reached a page");
    }
    assert!(!logs().contains(&canary), "the key reached the log");
    assert!(!app.db.everything().await.contains(&canary), "the key is stored in clear");
}
