//! Native API (contract §1–§2): orgs, tokens, authentication, org choice.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestApp};

on_each_backend!(
    admin_creates_and_lists_orgs,
    org_names_are_validated_field_by_field,
    tokens_are_shown_once_and_stored_as_digests,
    token_is_accepted_in_every_family_header,
    missing_unknown_and_malformed_tokens_are_401,
    revoked_token_fails_from_the_next_request,
    org_tokens_cannot_use_admin_endpoints,
    foreign_org_header_is_answered_like_a_missing_org,
    admin_acts_on_an_org_through_the_org_header,
    token_endpoints_of_unknown_orgs_are_404,
    revoking_in_an_unknown_or_foreign_org_is_404,
);

async fn admin_creates_and_lists_orgs(app: TestApp) {
    let res = app.post("/admin/v1/orgs", &app.admin_token, json!({"name": "  Acme GmbH  "})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let id = res.json["id"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(id).unwrap();
    assert_eq!(uuid.get_version_num(), 7);
    assert_eq!(res.json["name"], "Acme GmbH");
    let created = res.json["createdAt"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok() && created.ends_with('Z'), "{created}");

    let list = app.get("/admin/v1/orgs", &app.admin_token).await;
    assert_eq!(list.status, 200);
    let orgs = list.json["orgs"].as_array().unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0], res.json);
}

async fn org_names_are_validated_field_by_field(app: TestApp) {
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": "x".repeat(256)}), "name"),
        (json!({"name": "Acme\r\nX-Injected: 1"}), "name"),
        (json!({"name": 42}), "name"),
        (json!({"name": null}), "name"),
        (json!({}), "name"),
        (json!({"name": "ok", "extra": true}), "extra"),
        (json!(["name"]), "body"),
    ];
    for (body, field) in cases {
        let res = app.post("/admin/v1/orgs", &app.admin_token, body.clone()).await;
        assert_eq!(res.status, 400, "{body}: {}", res.text);
        assert_eq!(res.content_type(), "application/problem+json");
        assert_eq!(res.json["status"], 400);
        assert_eq!(res.json["type"], "urn:herald:problem:invalid-input");
        assert_eq!(res.json["errors"][0]["field"], field, "{body}: {}", res.text);
    }
    let list = app.get("/admin/v1/orgs", &app.admin_token).await;
    assert_eq!(list.json["orgs"].as_array().unwrap().len(), 0, "nothing was created");
}

async fn tokens_are_shown_once_and_stored_as_digests(app: TestApp) {
    let org = app.new_org().await;
    assert!(org.token.starts_with("hrd_") && org.token.len() == 36, "{}", org.token);
    assert!(org.token[4..].bytes().all(|b| b.is_ascii_alphanumeric()));

    let list = app.get(&format!("/admin/v1/orgs/{}/tokens", org.id), &app.admin_token).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json["tokens"].as_array().unwrap().len(), 1);
    assert!(list.json["tokens"][0]["revokedAt"].is_null());
    assert!(!list.text.contains(&org.token), "the list never shows a secret");
    assert!(list.json["tokens"][0].get("token").is_none());

    let everything = app.db.everything().await;
    assert!(!everything.contains(&org.token), "the token is not stored");
    assert!(!everything.contains(&org.token[4..]));
    assert!(everything.contains(&herald::domain::tokens::digest(&org.token)), "its SHA-256 is");

    let audit = app.get("/v1/audit", &org.token).await;
    assert_eq!(audit.status, 200, "the token works");
    assert!(!audit.text.contains(&org.token));
}

async fn token_is_accepted_in_every_family_header(app: TestApp) {
    let org = app.new_org().await;
    for auth in [Auth::Bearer(&org.token), Auth::XAuthToken(&org.token), Auth::XApiKey(&org.token)] {
        let res = app.call(Method::GET, "/v1/audit", auth, None).await;
        assert_eq!(res.status, 200, "{auth:?}: {}", res.text);
    }
    let res = app.call(Method::GET, "/admin/v1/orgs", Auth::XAuthToken(&app.admin_token), None).await;
    assert_eq!(res.status, 200);
}

async fn missing_unknown_and_malformed_tokens_are_401(app: TestApp) {
    let org = app.new_org().await;
    let mut forged = org.token.clone();
    forged.replace_range(10..11, if &forged[10..11] == "a" { "b" } else { "a" });
    let fake_shape = format!("hrd_{}", "A".repeat(32));
    for auth in [
        Auth::None,
        Auth::Bearer(""),
        Auth::Bearer("nonsense"),
        Auth::Bearer(&forged),
        Auth::XApiKey(&fake_shape),
        Auth::XAuthToken("hrd_"),
    ] {
        let res = app.call(Method::GET, "/v1/audit", auth, None).await;
        assert_eq!(res.status, 401, "{auth:?}");
        assert_eq!(res.json["type"], "urn:herald:problem:unauthenticated");
        let res = app.call(Method::GET, "/admin/v1/orgs", auth, None).await;
        assert_eq!(res.status, 401, "{auth:?}");
    }
    // A Basic header is no token, whatever it holds.
    let req = app.client.get(app.url("/v1/audit")).header("authorization", format!("Basic {}", org.token));
    assert_eq!(app.send(req).await.status, 401);
}

async fn revoked_token_fails_from_the_next_request(app: TestApp) {
    let org = app.new_org().await;
    let tokens = app.get(&format!("/admin/v1/orgs/{}/tokens", org.id), &app.admin_token).await;
    let token_id = tokens.json["tokens"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v1/audit", &org.token).await.status, 200);

    let path = format!("/admin/v1/orgs/{}/tokens/{token_id}", org.id);
    let res = app.call(Method::DELETE, &path, Auth::Bearer(&app.admin_token), None).await;
    assert_eq!(res.status, 204, "{}", res.text);
    assert!(res.text.is_empty());

    let res = app.get("/v1/audit", &org.token).await;
    assert_eq!(res.status, 401, "revoked on the very next request");
    let listed = app.get(&format!("/admin/v1/orgs/{}/tokens", org.id), &app.admin_token).await;
    assert!(listed.json["tokens"][0]["revokedAt"].is_string());

    let again = app.call(Method::DELETE, &path, Auth::Bearer(&app.admin_token), None).await;
    assert_eq!(again.status, 404, "already revoked");

    // An org that does not exist (a well-formed id) is a 404 too, not a fault
    // (schemathesis found the 500).
    let nowhere = format!("/admin/v1/orgs/{}/tokens/{token_id}", uuid::Uuid::now_v7());
    let res = app.call(Method::DELETE, &nowhere, Auth::Bearer(&app.admin_token), None).await;
    assert_eq!(res.status, 404, "{}", res.text);
    assert_eq!(res.json["type"], "urn:herald:problem:not-found", "{}", res.text);
}

async fn org_tokens_cannot_use_admin_endpoints(app: TestApp) {
    let org = app.new_org().await;
    let res = app.get("/admin/v1/orgs", &org.token).await;
    assert_eq!(res.status, 403);
    assert_eq!(res.json["type"], "urn:herald:problem:forbidden");
    let res = app.post("/admin/v1/orgs", &org.token, json!({"name": "Mine"})).await;
    assert_eq!(res.status, 403);
    let res = app.post(&format!("/admin/v1/orgs/{}/tokens", org.id), &org.token, json!({"name": "more"})).await;
    assert_eq!(res.status, 403, "not even for its own org");
    assert_eq!(app.get("/admin/v1/audit", &org.token).await.status, 403);
}

async fn foreign_org_header_is_answered_like_a_missing_org(app: TestApp) {
    let a = app.new_org().await;
    let b = app.new_org().await;
    let with_header = |org: &str| {
        app.client.get(app.url("/v1/audit")).bearer_auth(&a.token).header("x-zitadel-orgid", org.to_owned())
    };
    let foreign = app.send(with_header(&b.id)).await;
    let missing = app.send(with_header(&uuid::Uuid::now_v7().to_string())).await;
    let garbage = app.send(with_header("not-an-id")).await;
    assert_eq!(foreign.status, 403, "{}", foreign.text);
    assert_eq!((foreign.status, &foreign.json), (missing.status, &missing.json));
    assert_eq!((foreign.status, &foreign.json), (garbage.status, &garbage.json));
    assert!(!foreign.text.contains(&b.id));
    let own = app.send(with_header(&a.id)).await;
    assert_eq!(own.status, 200, "naming its own org is fine");
}

async fn admin_acts_on_an_org_through_the_org_header(app: TestApp) {
    let org = app.new_org().await;
    let req = app.client.get(app.url("/v1/audit")).bearer_auth(&app.admin_token).header("x-zitadel-orgid", &org.id);
    let res = app.send(req).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["items"][0]["action"], "org.created");

    let res = app.get("/v1/audit", &app.admin_token).await;
    assert_eq!(res.status, 400, "an admin must name the org");
    assert_eq!(res.json["errors"][0]["field"], "x-zitadel-orgid");

    let req = app
        .client
        .get(app.url("/v1/audit"))
        .bearer_auth(&app.admin_token)
        .header("x-zitadel-orgid", uuid::Uuid::now_v7().to_string());
    assert_eq!(app.send(req).await.status, 403, "a nonexistent org");
}

async fn token_endpoints_of_unknown_orgs_are_404(app: TestApp) {
    let a = app.new_org().await;
    let b = app.new_org().await;
    let ghost = uuid::Uuid::now_v7().to_string();
    for org in [ghost.as_str(), "not-a-uuid"] {
        let res = app.post(&format!("/admin/v1/orgs/{org}/tokens"), &app.admin_token, json!({"name": "x"})).await;
        assert_eq!(res.status, 404, "{org}: {}", res.text);
        assert_eq!(app.get(&format!("/admin/v1/orgs/{org}/tokens"), &app.admin_token).await.status, 404);
    }
    // A's token id under B's path is not B's token.
    let tokens = app.get(&format!("/admin/v1/orgs/{}/tokens", a.id), &app.admin_token).await;
    let a_token = tokens.json["tokens"][0]["id"].as_str().unwrap();
    let path = format!("/admin/v1/orgs/{}/tokens/{a_token}", b.id);
    let res = app.call(Method::DELETE, &path, Auth::Bearer(&app.admin_token), None).await;
    assert_eq!(res.status, 404);
    assert_eq!(app.get("/v1/audit", &a.token).await.status, 200, "A's token still works");
}

/// Issue 13, finding 3: these were 500s.
async fn revoking_in_an_unknown_or_foreign_org_is_404(app: TestApp) {
    let a = app.new_org().await;
    let b = app.new_org().await;
    let tokens = app.get(&format!("/admin/v1/orgs/{}/tokens", a.id), &app.admin_token).await;
    let a_token = tokens.json["tokens"][0]["id"].as_str().unwrap().to_owned();
    let ghost_org = uuid::Uuid::now_v7().to_string();
    let ghost_token = uuid::Uuid::now_v7().to_string();
    for (org, token, what) in [
        (ghost_org.as_str(), ghost_token.as_str(), "unknown org, unknown token"),
        (ghost_org.as_str(), a_token.as_str(), "unknown org, A's token"),
        (b.id.as_str(), a_token.as_str(), "B's path, A's token"),
        (b.id.as_str(), ghost_token.as_str(), "B's path, unknown token"),
    ] {
        let path = format!("/admin/v1/orgs/{org}/tokens/{token}");
        let res = app.call(Method::DELETE, &path, Auth::Bearer(&app.admin_token), None).await;
        assert_eq!(res.status, 404, "{what}: {}", res.text);
        assert_eq!(res.content_type(), "application/problem+json", "{what}");
        assert_eq!(res.json["type"], "urn:herald:problem:not-found", "{what}");
        assert_eq!(res.json["instance"], path.as_str(), "{what}");
    }
    assert_eq!(app.get("/v1/audit", &a.token).await.status, 200, "A's token still works");
    // Nothing was audited for the refused revocations.
    let audit = app.get("/v1/audit", &a.token).await;
    assert!(!audit.text.contains("token.revoked"), "{}", audit.text);
}
