//! Zitadel notification policy (seed 003, contract §6).

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestApp, TestOrg};

on_each_backend!(
    seed_request_answers_with_object_details,
    policy_state_machine_matches_zitadel,
    instance_default_reaches_only_orgs_without_a_custom_policy,
    sequences_grow_with_every_audited_change_of_the_org,
    bad_input_is_answered_in_the_zitadel_envelope,
    org_choice_follows_the_org_header,
    effective_policy_is_what_the_api_says,
    connect_json_calls_answer_like_rest,
);

const POLICY: &str = "/management/v1/policies/notification";
const DEFAULT: &str = "/management/v1/policies/default/notification";
const ADMIN: &str = "/admin/v1/policies/notification";

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let res = app.call(method, path, Auth::Bearer(token), body).await;
    (res.status, res.json)
}

fn assert_details(details: &Value, owner: &str) -> i64 {
    let obj = details.as_object().unwrap();
    assert_eq!(obj.len(), 4, "{details}");
    assert_eq!(details["resourceOwner"], owner);
    for date in ["creationDate", "changeDate"] {
        let d = details[date].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(d).is_ok(), "{date}: {d}");
    }
    details["sequence"].as_str().expect("sequence is a decimal string").parse().unwrap()
}

fn assert_grpc_error(body: &Value, code: i64) {
    assert_eq!(body["code"], code, "{body}");
    assert!(body["message"].is_string());
    assert_eq!(body["details"][0]["@type"], "type.googleapis.com/zitadel.v1.ErrorDetail");
}

async fn instance_id(app: &TestApp) -> String {
    app.store.instance_id().await.unwrap()
}

async fn seed_request_answers_with_object_details(app: TestApp) {
    let org = app.new_org().await;
    let (status, body) = call(&app, Method::POST, POLICY, &org.token, Some(json!({"passwordChange": false}))).await;
    assert_eq!(status, 200, "{body}");
    // The seed's request, as its curl sends it.
    let req = app
        .client
        .put(app.url(POLICY))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("Authorization", format!("Bearer {}", org.token))
        .body("{\n\"passwordChange\": true\n}");
    let res = app.send(req).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json.as_object().unwrap().len(), 1, "only details: {}", res.text);
    let seq = assert_details(&res.json["details"], &org.id);
    assert_eq!(seq, 4, "org.created, token.created, policy added, policy changed");
}

async fn policy_state_machine_matches_zitadel(app: TestApp) {
    let org = app.new_org().await;
    let instance = instance_id(&app).await;
    let t = org.token.as_str();

    let (s, b) = call(&app, Method::GET, POLICY, t, None).await;
    assert_eq!(s, 200);
    assert_eq!((b["policy"]["isDefault"].clone(), b["policy"]["passwordChange"].clone()), (json!(true), json!(true)));
    assert_details(&b["policy"]["details"], &instance);

    let (s, b) = call(&app, Method::PUT, POLICY, t, Some(json!({"passwordChange": false}))).await;
    assert_eq!(s, 404, "PUT never creates");
    assert_grpc_error(&b, 5);
    let (s, b) = call(&app, Method::DELETE, POLICY, t, None).await;
    assert_eq!(s, 404, "nothing to delete");
    assert_grpc_error(&b, 5);

    let (s, b) = call(&app, Method::POST, POLICY, t, Some(json!({"passwordChange": false}))).await;
    assert_eq!(s, 200, "{b}");
    let added = assert_details(&b["details"], &org.id);
    let (s, b) = call(&app, Method::POST, POLICY, t, Some(json!({"passwordChange": true}))).await;
    assert_eq!(s, 409);
    assert_grpc_error(&b, 6);

    let (s, b) = call(&app, Method::GET, POLICY, t, None).await;
    assert_eq!(s, 200);
    assert_eq!(b["policy"]["isDefault"], false);
    assert_eq!(b["policy"]["passwordChange"], false);
    assert_eq!(assert_details(&b["policy"]["details"], &org.id), added);

    let (s, b) = call(&app, Method::PUT, POLICY, t, Some(json!({"passwordChange": true}))).await;
    assert_eq!(s, 200, "{b}");
    let changed = assert_details(&b["details"], &org.id);
    assert!(changed > added);
    let (s, b) = call(&app, Method::PUT, POLICY, t, Some(json!({"passwordChange": true}))).await;
    assert_eq!(s, 400, "unchanged");
    assert_grpc_error(&b, 9);

    let (s, b) = call(&app, Method::DELETE, POLICY, t, None).await;
    assert_eq!(s, 200, "{b}");
    assert!(assert_details(&b["details"], &org.id) > changed);
    let (_, b) = call(&app, Method::GET, POLICY, t, None).await;
    assert_eq!(b["policy"]["isDefault"], true);
    assert_eq!(b["policy"]["details"]["resourceOwner"], instance.as_str());
    let (s, _) = call(&app, Method::POST, POLICY, t, Some(json!({"passwordChange": true}))).await;
    assert_eq!(s, 200, "a removed policy can be added again");
}

async fn instance_default_reaches_only_orgs_without_a_custom_policy(app: TestApp) {
    let custom = app.new_org().await;
    let plain = app.new_org().await;
    let admin = app.admin_token.as_str();
    let instance = instance_id(&app).await;
    call(&app, Method::POST, POLICY, &custom.token, Some(json!({"passwordChange": true}))).await;

    let (s, b) = call(&app, Method::PUT, ADMIN, admin, Some(json!({"passwordChange": false}))).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(assert_details(&b["details"], &instance), 1, "the instance's own sequence");
    let (s, b) = call(&app, Method::PUT, ADMIN, admin, Some(json!({"passwordChange": false}))).await;
    assert_eq!(s, 400);
    assert_grpc_error(&b, 9);

    let (_, b) = call(&app, Method::GET, POLICY, &plain.token, None).await;
    assert_eq!((b["policy"]["passwordChange"].clone(), b["policy"]["isDefault"].clone()), (json!(false), json!(true)));
    let (_, b) = call(&app, Method::GET, POLICY, &custom.token, None).await;
    assert_eq!((b["policy"]["passwordChange"].clone(), b["policy"]["isDefault"].clone()), (json!(true), json!(false)));

    for token in [plain.token.as_str(), admin] {
        let (s, b) = call(&app, Method::GET, DEFAULT, token, None).await;
        assert_eq!(s, 200);
        assert_eq!(b["policy"]["passwordChange"], false);
        assert_eq!(b["policy"]["isDefault"], true);
    }
    let (s, b) = call(&app, Method::GET, ADMIN, admin, None).await;
    assert_eq!(s, 200);
    assert_eq!(b["policy"]["details"]["sequence"], "1");

    let (s, b) = call(&app, Method::PUT, ADMIN, &plain.token, Some(json!({"passwordChange": true}))).await;
    assert_eq!(s, 403, "org tokens cannot change the default");
    assert_grpc_error(&b, 7);
    let (s, _) = call(&app, Method::GET, ADMIN, &plain.token, None).await;
    assert_eq!(s, 403);

    // Admin `AddNotificationPolicy`: the default exists from the start, as on
    // a Zitadel instance, so it is ALREADY_EXISTS (and takes no number).
    let (s, b) = call(&app, Method::POST, ADMIN, admin, Some(json!({"passwordChange": true}))).await;
    assert_eq!(s, 409, "{b}");
    assert_grpc_error(&b, 6);
    let (s, b) = call(&app, Method::POST, ADMIN, &plain.token, Some(json!({"passwordChange": true}))).await;
    assert_eq!(s, 403);
    assert_grpc_error(&b, 7);

    let log = app.get("/admin/v1/audit", admin).await;
    assert_eq!(log.json["items"].as_array().unwrap().len(), 1, "{}", log.text);
    assert_eq!(log.json["items"][0]["action"], "default_notification_policy.changed");
}

async fn sequences_grow_with_every_audited_change_of_the_org(app: TestApp) {
    let a = app.new_org().await;
    let b = app.new_org().await;
    let seq = |body: &Value| body["details"]["sequence"].as_str().unwrap().parse::<i64>().unwrap();

    let (_, r) = call(&app, Method::POST, POLICY, &a.token, Some(json!({"passwordChange": true}))).await;
    let s1 = seq(&r);
    // A change of another kind in the same org (a new token) takes a number too.
    app.post(&format!("/admin/v1/orgs/{}/tokens", a.id), &app.admin_token, json!({"name": "x"})).await;
    let (_, r) = call(&app, Method::PUT, POLICY, &a.token, Some(json!({"passwordChange": false}))).await;
    let s2 = seq(&r);
    let (_, r) = call(&app, Method::DELETE, POLICY, &a.token, None).await;
    let s3 = seq(&r);
    assert_eq!((s1, s2, s3), (3, 5, 6));

    // A failed change takes no number.
    call(&app, Method::PUT, POLICY, &a.token, Some(json!({"passwordChange": true}))).await;
    let (_, r) = call(&app, Method::POST, POLICY, &a.token, Some(json!({"passwordChange": true}))).await;
    assert_eq!(seq(&r), 7);

    let (_, r) = call(&app, Method::POST, POLICY, &b.token, Some(json!({"passwordChange": true}))).await;
    assert_eq!(seq(&r), 3, "B counts its own changes");
}

async fn bad_input_is_answered_in_the_zitadel_envelope(app: TestApp) {
    let org = app.new_org().await;
    let url = app.url(POLICY);
    let cases: Vec<(&str, &str, u16, i64)> = vec![
        (r#"{"passwordChange": "yes"}"#, "application/json", 400, 3),
        (r#"{"passwordChange": 1}"#, "application/json", 400, 3),
        (r#"{"passwordChange": true, "smsChange": true}"#, "application/json", 400, 3),
        ("", "application/json", 400, 3),
        (r#"{"passwordChange": tru"#, "application/json", 400, 3),
        (r#"[true]"#, "application/json", 400, 3),
        (r#"{"passwordChange": true}"#, "application/grpc", 415, 3),
        (r#"{"passwordChange": true}"#, "application/grpc-web+proto", 415, 3),
        (r#"{"passwordChange": true}"#, "text/plain", 415, 3),
    ];
    for method in [Method::POST, Method::PUT] {
        for (body, ct, status, code) in &cases {
            let req = app
                .client
                .request(method.clone(), &url)
                .bearer_auth(&org.token)
                .header("content-type", *ct)
                .body(body.to_string());
            let res = app.send(req).await;
            assert_eq!(res.status, *status, "{method} {ct} {body}: {}", res.text);
            assert_grpc_error(&res.json, *code);
        }
    }
    let big = format!(r#"{{"passwordChange": true, "pad": "{}"}}"#, "x".repeat(70_000));
    let res = app
        .send(app.client.post(&url).bearer_auth(&org.token).header("content-type", "application/json").body(big))
        .await;
    assert_eq!(res.status, 413);
    assert_grpc_error(&res.json, 3);

    for auth in [Auth::None, Auth::Bearer("hrd_nope"), Auth::Bearer("")] {
        let res = app.call(Method::GET, POLICY, auth, None).await;
        assert_eq!(res.status, 401);
        assert_grpc_error(&res.json, 16);
    }
    let res = app.call(Method::PATCH, POLICY, Auth::Bearer(&org.token), None).await;
    assert_eq!(res.status, 405);
    assert_grpc_error(&res.json, 12);

    // `{}` is proto3's false, and the proto field name is accepted.
    let (s, _) = call(&app, Method::POST, POLICY, &org.token, Some(json!({}))).await;
    assert_eq!(s, 200);
    let (_, b) = call(&app, Method::GET, POLICY, &org.token, None).await;
    assert_eq!(b["policy"]["passwordChange"], false);
    let (s, _) = call(&app, Method::PUT, POLICY, &org.token, Some(json!({"password_change": true}))).await;
    assert_eq!(s, 200);
    let log = app.get("/v1/audit?limit=500", &org.token).await;
    assert_eq!(log.json["items"].as_array().unwrap().len(), 4, "no bad request left a trace");
}

async fn org_choice_follows_the_org_header(app: TestApp) {
    let a = app.new_org().await;
    let b = app.new_org().await;
    let with_org = |token: &str, org: &str| {
        app.client
            .post(app.url(POLICY))
            .bearer_auth(token)
            .header("x-zitadel-orgid", org)
            .json(&json!({"passwordChange": false}))
    };
    let foreign = app.send(with_org(&a.token, &b.id)).await;
    let missing = app.send(with_org(&a.token, &uuid::Uuid::now_v7().to_string())).await;
    assert_eq!(foreign.status, 403);
    assert_grpc_error(&foreign.json, 7);
    assert_eq!(foreign.json, missing.json, "another org is answered like no org");

    let res = app.send(with_org(&app.admin_token, &b.id)).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["details"]["resourceOwner"], b.id.as_str());
    let (_, body) = call(&app, Method::GET, POLICY, &b.token, None).await;
    assert_eq!(body["policy"]["isDefault"], false, "the admin acted on B");
    let (_, body) = call(&app, Method::GET, POLICY, &a.token, None).await;
    assert_eq!(body["policy"]["isDefault"], true, "and not on A");
    let _: &TestOrg = &a;
}

async fn effective_policy_is_what_the_api_says(app: TestApp) {
    use herald::domain::{OrgId, policy};
    let org = app.new_org().await;
    let id = OrgId::parse(&org.id).unwrap();
    assert!(policy::effective(&app.store, &id).await.unwrap().password_change);
    call(&app, Method::POST, POLICY, &org.token, Some(json!({"passwordChange": false}))).await;
    let p = policy::effective(&app.store, &id).await.unwrap();
    assert!(!p.password_change && !p.is_default);
    call(&app, Method::DELETE, POLICY, &org.token, None).await;
    call(&app, Method::PUT, ADMIN, &app.admin_token, Some(json!({"passwordChange": false}))).await;
    let p = policy::effective(&app.store, &id).await.unwrap();
    assert!(!p.password_change && p.is_default);
}

/// Connect unary over HTTP/1.1, as any HTTP client can send it (the official
/// clients are run in `clients.rs`).
async fn connect(app: &TestApp, method: &str, token: &str, content_type: &str, body: &'static str) -> (u16, Value) {
    let req = app
        .client
        .post(app.url(&format!("/zitadel.management.v1.ManagementService/{method}")))
        .header("Content-Type", content_type)
        .header("Connect-Protocol-Version", "1")
        .bearer_auth(token)
        .body(body);
    let res = app.send(req).await;
    (res.status, res.json)
}

async fn connect_json_calls_answer_like_rest(app: TestApp) {
    let org = app.new_org().await;
    let t = org.token.as_str();
    let (s, b) = connect(&app, "GetNotificationPolicy", t, "application/json", "{}").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["policy"]["isDefault"], true);
    assert_eq!(b["policy"]["passwordChange"], true);
    let (s, b) =
        connect(&app, "AddCustomNotificationPolicy", t, "application/json", r#"{"passwordChange":true}"#).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["details"]["sequence"], "3", "uint64 as a string, as protobuf JSON has it: {b}");
    assert_eq!(b["details"]["resourceOwner"], org.id.as_str());
    let (s, b) = connect(&app, "AddCustomNotificationPolicy", t, "application/json", "{}").await;
    assert_eq!((s, b["code"].as_str()), (409, Some("already_exists")), "{b}");
    let (s, b) =
        connect(&app, "UpdateCustomNotificationPolicy", t, "application/json", r#"{"password_change":true}"#).await;
    assert_eq!((s, b["code"].as_str()), (400, Some("failed_precondition")), "{b}");
    // The REST view agrees.
    let (_, b) = call(&app, Method::GET, POLICY, t, None).await;
    assert_eq!(b["policy"]["isDefault"], false);

    // Errors: bad input never quotes the value; tokens; unknown methods.
    let (s, b) =
        connect(&app, "UpdateCustomNotificationPolicy", t, "application/json", r#"{"passwordChange":"canary-7"}"#)
            .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_argument")), "{b}");
    assert!(!b.to_string().contains("canary-7"), "{b}");
    let (s, b) = connect(&app, "GetNotificationPolicy", "hrd_nope", "application/json", "{}").await;
    assert_eq!((s, b["code"].as_str()), (401, Some("unauthenticated")), "{b}");
    let (s, b) = connect(&app, "GetMyOrg", t, "application/json", "{}").await;
    assert_eq!((s, b["code"].as_str()), (501, Some("unimplemented")), "{b}");
    let (s, _) = connect(&app, "GetNotificationPolicy", t, "text/plain", "{}").await;
    assert_eq!(s, 415);
    // Binary: an empty message is an empty body.
    let req = app
        .client
        .post(app.url("/zitadel.management.v1.ManagementService/GetDefaultNotificationPolicy"))
        .header("Content-Type", "application/proto")
        .bearer_auth(t);
    let res = app.client.execute(req.build().unwrap()).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/proto");
    assert!(!res.bytes().await.unwrap().is_empty());
}
