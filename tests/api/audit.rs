//! The audit log: rows for every change, gapless per-org sequences, paging.

use futures::future::join_all;
use reqwest::Method;
use serde_json::json;

use crate::support::{Auth, TestApp};

on_each_backend!(
    every_change_writes_an_audit_row_with_its_actor,
    sequences_are_gapless_under_concurrent_changes,
    sequences_are_independent_between_orgs,
    audit_pages_cover_every_row_once,
    audit_paging_rejects_bad_cursors_and_limits,
    instance_changes_have_their_own_log,
);

async fn every_change_writes_an_audit_row_with_its_actor(app: TestApp) {
    let org = app.new_org().await;
    let tokens = app.get(&format!("/admin/v1/orgs/{}/tokens", org.id), &app.admin_token).await;
    let token_id = tokens.json["tokens"][0]["id"].as_str().unwrap().to_owned();
    let second = app.post(&format!("/admin/v1/orgs/{}/tokens", org.id), &app.admin_token, json!({"name": "ci"})).await;
    let second_token = second.json["token"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/orgs/{}/tokens/{token_id}", org.id);
    assert_eq!(app.call(Method::DELETE, &path, Auth::Bearer(&app.admin_token), None).await.status, 204);

    let log = app.get("/v1/audit", &second_token).await;
    assert_eq!(log.status, 200, "{}", log.text);
    let items = log.json["items"].as_array().unwrap();
    let actions: Vec<&str> = items.iter().map(|i| i["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["org.created", "token.created", "token.created", "token.revoked"]);
    let seqs: Vec<i64> = items.iter().map(|i| i["sequence"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(items[3]["resourceType"], "token");
    assert_eq!(items[3]["resourceId"], token_id.as_str());
    assert_eq!(items[0]["resourceId"], org.id.as_str());
    for item in items {
        assert_eq!(item["actor"], "env:HERALD_ADMIN_TOKEN");
        assert!(item["at"].as_str().unwrap().ends_with('Z'));
    }
    assert!(!log.text.contains(&org.token) && !log.text.contains(&second_token), "no secrets in the log");
    assert!(log.json["nextCursor"].is_null());
}

async fn sequences_are_gapless_under_concurrent_changes(app: TestApp) {
    let org = app.new_org().await;
    let path = format!("/admin/v1/orgs/{}/tokens", org.id);
    let results = join_all((0..50).map(|i| app.post(&path, &app.admin_token, json!({"name": format!("t{i}")})))).await;
    for res in &results {
        assert_eq!(res.status, 201, "{}", res.text);
    }
    let log = app.get("/v1/audit?limit=500", &org.token).await;
    let seqs: Vec<i64> =
        log.json["items"].as_array().unwrap().iter().map(|i| i["sequence"].as_i64().unwrap()).collect();
    // org.created + its first token + 50 concurrent tokens, numbered 1..=52.
    assert_eq!(seqs, (1..=52).collect::<Vec<_>>());
}

async fn sequences_are_independent_between_orgs(app: TestApp) {
    let a = app.new_org().await;
    let b = app.new_org().await;
    for _ in 0..3 {
        app.post(&format!("/admin/v1/orgs/{}/tokens", a.id), &app.admin_token, json!({"name": "x"})).await;
    }
    let a_log = app.get("/v1/audit", &a.token).await;
    let b_log = app.get("/v1/audit", &b.token).await;
    assert_eq!(a_log.json["items"].as_array().unwrap().len(), 5);
    let b_items = b_log.json["items"].as_array().unwrap();
    assert_eq!(b_items.len(), 2, "B sees only its own rows");
    assert_eq!(b_items.last().unwrap()["sequence"], 2);
    assert!(b_items.iter().all(|i| i["resourceId"] != a.id.as_str()));
}

async fn audit_pages_cover_every_row_once(app: TestApp) {
    let org = app.new_org().await;
    for i in 0..9 {
        app.post(&format!("/admin/v1/orgs/{}/tokens", org.id), &app.admin_token, json!({"name": format!("{i}")})).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/audit?limit=4&cursor={c}"),
            None => "/v1/audit?limit=4".to_owned(),
        };
        let page = app.get(&path, &org.token).await;
        assert_eq!(page.status, 200, "{}", page.text);
        seen.extend(page.json["items"].as_array().unwrap().iter().map(|i| i["sequence"].as_i64().unwrap()));
        match page.json["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, (1..=11).collect::<Vec<_>>());
}

async fn audit_paging_rejects_bad_cursors_and_limits(app: TestApp) {
    let org = app.new_org().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=-5", "cursor"),
    ] {
        let res = app.get(&format!("/v1/audit?{query}"), &org.token).await;
        assert_eq!(res.status, 400, "{query}: {}", res.text);
        assert_eq!(res.json["errors"][0]["field"], field, "{query}");
    }
}

async fn instance_changes_have_their_own_log(app: TestApp) {
    let now = app.clock.now();
    herald::domain::tokens::create_admin(&app.store, &herald::domain::Actor::cli(), "ops", now).await.unwrap();
    let res = app.get("/admin/v1/audit", &app.admin_token).await;
    assert_eq!(res.status, 200, "{}", res.text);
    let items = res.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["action"], "admin_token.created");
    assert_eq!(items[0]["sequence"], 1);
    assert_eq!(items[0]["actor"], "cli");
}
