//! SMTP settings: Leegality notification-config (seed 000, contract §3) and
//! Dbvisit email-settings (seed 002, §5), with write-only encrypted passwords.

use herald::domain::OrgId;
use herald::domain::audit::Scope;
use herald::domain::smtp::{self, Security};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, Backend, TestApp, TestDb};

on_each_backend!(
    leegality_seed_request_round_trips,
    leegality_put_never_upserts_and_post_never_overwrites,
    leegality_bad_input_names_every_field,
    leegality_errors_keep_their_envelope,
    password_survives_a_ui_round_trip_and_leaves_with_its_host,
    a_weaker_transport_or_another_account_drops_the_kept_password,
    dbvisit_edit_keeps_the_password_only_for_the_same_server_account_and_transport,
    another_org_never_sees_or_changes_a_config,
    dbvisit_seed_request_round_trips,
    dbvisit_params_not_sent_keep_their_value,
    dbvisit_bad_input_is_unsuccessful,
    dbvisit_is_for_instance_admins_only,
    effective_server_prefers_the_enabled_org_config,
    secret_canary_appears_nowhere,
    changes_are_audited_without_secrets,
    a_password_moved_to_another_row_does_not_decrypt,
);

const CONFIG: &str = "/api/v1/notification-config";

/// Seed 000's sample request.
fn seed_config() -> Value {
    json!({
        "emailServerHost": "smtp.example.com", "emailServerPort": "587",
        "username": "anagha.babu@leegality.com", "password": "NewPassword@123",
        "fromEmail": "testuser@leegality.com", "fromName": "Leegality Test User",
        "replyTo": "testuser@leegality.com", "tlsEnabled": true, "enabled": false
    })
}

async fn le(app: &TestApp, method: Method, token: &str, body: Option<Value>) -> (u16, Value) {
    let res = app.call(method, CONFIG, Auth::XAuthToken(token), body).await;
    (res.status, res.json)
}

async fn org_id(org: &crate::support::TestOrg) -> OrgId {
    OrgId::parse(&org.id).unwrap()
}

async fn leegality_seed_request_round_trips(app: TestApp) {
    let org = app.new_org().await;
    let (status, body) = le(&app, Method::POST, &org.token, Some(seed_config())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], "LE_SCS_SS_200");
    assert!(body["message"].is_string());
    let data = &body["data"];
    for (field, value) in seed_config().as_object().unwrap() {
        if field != "password" {
            assert_eq!(&data[field], value, "{field}");
        }
    }
    assert!(data.get("password").is_none(), "write-only");
    assert_eq!(data["passwordSet"], true);
    assert!(uuid::Uuid::parse_str(data["id"].as_str().unwrap()).is_ok());
    // As the seed shows them: UTC to the second, no zone, no fraction.
    for ts in ["createdAt", "updatedAt"] {
        let raw = data[ts].as_str().unwrap();
        assert!(chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S").is_ok(), "{ts}: {raw}");
        assert_eq!(raw.len(), "2025-10-10T15:42:45".len(), "{ts}: {raw}");
    }

    let (status, got) = le(&app, Method::GET, &org.token, None).await;
    assert_eq!(status, 200);
    assert_eq!(got["data"], *data);

    let mut update = seed_config();
    update["emailServerHost"] = json!("smtp.gmail.com");
    update["fromName"] = json!("Himanshu Kumar");
    let (status, body) = le(&app, Method::PUT, &org.token, Some(update)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["message"], "Notification configuration updated successfully");
    assert_eq!(body["data"]["emailServerHost"], "smtp.gmail.com");
    assert_eq!(body["data"]["id"], data["id"], "the same configuration");
    assert_eq!(body["data"]["passwordSet"], true, "a new password came with the new host");

    // Ports follow the TLS flag when absent; 465 is implicit TLS.
    let (_, b) = le(&app, Method::PUT, &org.token, Some(json!({"emailServerHost": "mx.example.org"}))).await;
    assert_eq!((b["data"]["emailServerPort"].clone(), b["data"]["tlsEnabled"].clone()), (json!("25"), json!(false)));
    let (_, b) =
        le(&app, Method::PUT, &org.token, Some(json!({"emailServerHost": "mx.example.org", "tlsEnabled": true}))).await;
    assert_eq!(b["data"]["emailServerPort"], "587");
    let s = smtp::org_config(&app.store, &org_id(&org).await).await.unwrap();
    assert_eq!(s.security, Security::StartTls);
    le(
        &app,
        Method::PUT,
        &org.token,
        Some(json!({"emailServerHost": "mx.example.org", "emailServerPort": "465", "tlsEnabled": true})),
    )
    .await;
    let s = smtp::org_config(&app.store, &org_id(&org).await).await.unwrap();
    assert_eq!((s.security, s.effective_port()), (Security::Tls, 465));
    assert!(!s.enabled, "enabled absent on PUT keeps the stored value");
}

async fn leegality_put_never_upserts_and_post_never_overwrites(app: TestApp) {
    let org = app.new_org().await;
    let not_found = json!({"code": "LE_ERR_SS_404", "errors": [{
        "message": "Configuration not found.", "path": CONFIG, "code": "LE_ERR_SS_1301"}]});
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let body = (method == Method::PUT).then(seed_config);
        let (status, json) = le(&app, method.clone(), &org.token, body).await;
        assert_eq!((status, &json), (404, &not_found), "{method}");
    }
    assert_eq!(le(&app, Method::POST, &org.token, Some(seed_config())).await.0, 200);
    let (status, body) =
        le(&app, Method::POST, &org.token, Some(json!({"emailServerHost": "other.example.com"}))).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "LE_ERR_SS_409");
    let (_, got) = le(&app, Method::GET, &org.token, None).await;
    assert_eq!(got["data"]["emailServerHost"], "smtp.example.com", "the conflict changed nothing");

    let (status, body) = le(&app, Method::DELETE, &org.token, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], "LE_SCS_SS_200");
    assert_eq!(le(&app, Method::GET, &org.token, None).await.0, 404);
    assert_eq!(le(&app, Method::POST, &org.token, Some(seed_config())).await.0, 200, "created again");
}

async fn leegality_bad_input_names_every_field(app: TestApp) {
    let org = app.new_org().await;
    let with = |field: &str, value: Value| {
        let mut body = seed_config();
        if value.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = value;
        }
        body
    };
    let cases: Vec<(&str, Value)> = vec![
        ("emailServerHost", Value::Null),
        ("emailServerHost", json!("")),
        ("emailServerHost", json!("smtp example.com")),
        ("emailServerHost", json!("smtp.example.com\r\nMAIL FROM:<x@y.z>")),
        ("emailServerHost", json!(format!("{}.com", "a".repeat(250)))),
        ("emailServerHost", json!(42)),
        ("emailServerPort", json!("0")),
        ("emailServerPort", json!("65536")),
        ("emailServerPort", json!("abc")),
        ("emailServerPort", json!("-25")),
        ("emailServerPort", json!(587)),
        ("fromEmail", json!("not-an-address")),
        ("fromEmail", json!("ops@example.com\r\nBcc: victim@example.com")),
        ("replyTo", json!("x@")),
        ("fromName", json!("x".repeat(256))),
        ("fromName", json!("Ops\r\nBcc: victim@example.com")),
        ("username", json!("u".repeat(256))),
        ("username", json!("user\nname")),
        ("password", json!("p".repeat(1025))),
        ("password", json!(12345)),
        ("tlsEnabled", json!("yes")),
        ("enabled", json!(1)),
    ];
    for (field, value) in cases {
        let body = with(field, value.clone());
        let (status, json) = le(&app, Method::POST, &org.token, Some(body)).await;
        assert_eq!(status, 400, "{field}={value}: {json}");
        assert_eq!(json["code"], "LE_ERR_SS_400");
        let message = json["errors"][0]["message"].as_str().unwrap();
        assert!(message.starts_with(&format!("Invalid value for field [{field}], ")), "{field}: {message}");
        assert_eq!(json["errors"][0]["path"], CONFIG);
    }
    assert_eq!(
        le(&app, Method::POST, &org.token, Some(with("replyTo", json!("x@")))).await.1["errors"][0]["message"],
        "Invalid value for field [replyTo], Reply to must be a valid email address"
    );
    let all_bad = json!({"emailServerHost": "", "emailServerPort": "99999", "fromEmail": "a", "replyTo": "b"});
    let (status, json) = le(&app, Method::POST, &org.token, Some(all_bad)).await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["message"].as_str().unwrap().split(']').next().unwrap().trim_start_matches("Invalid value for field [")
        })
        .collect();
    assert_eq!(fields, ["emailServerHost", "emailServerPort", "fromEmail", "replyTo"], "all reported at once");
    assert_eq!(le(&app, Method::GET, &org.token, None).await.0, 404, "nothing was stored");
}

async fn leegality_errors_keep_their_envelope(app: TestApp) {
    let org = app.new_org().await;
    let url = app.url(CONFIG);
    for (body, ct, status) in [
        ("{\"emailServerHost\": ", "application/json", 400),
        ("", "application/json", 400),
        ("{}", "text/plain", 415),
        ("{}", "application/x-www-form-urlencoded", 415),
    ] {
        let req = app.client.post(&url).header("X-Auth-Token", &org.token).header("content-type", ct).body(body);
        let res = app.send(req).await;
        assert_eq!(res.status, status, "{ct} {body:?}");
        assert_eq!(res.json["code"], format!("LE_ERR_SS_{status}"));
    }
    let big = json!({"emailServerHost": "a.com", "fromName": "x".repeat(70_000)});
    let res = app.send(app.client.post(&url).header("X-Auth-Token", &org.token).json(&big)).await;
    assert_eq!((res.status, res.json["code"].clone()), (413, json!("LE_ERR_SS_413")));
    for auth in [Auth::None, Auth::XAuthToken("hrd_wrong"), Auth::XAuthToken(&app.admin_token)] {
        let res = app.call(Method::GET, CONFIG, auth, None).await;
        if let Auth::XAuthToken(t) = auth
            && t == app.admin_token
        {
            assert_eq!(res.status, 400, "admin must name the org: {}", res.text);
            continue;
        }
        assert_eq!(res.status, 401);
        assert_eq!(
            res.json,
            json!({"code": "LE_ERR_SS_401", "errors": [{"message": "Invalid or expired token", "path": "/api/v1/*", "code": "LE_ERR_SS_303"}]})
        );
    }
    let res = app.call(Method::PATCH, CONFIG, Auth::XAuthToken(&org.token), None).await;
    assert_eq!((res.status, res.json["code"].clone()), (405, json!("LE_ERR_SS_405")));
}

async fn password_survives_a_ui_round_trip_and_leaves_with_its_host(app: TestApp) {
    let org = app.new_org().await;
    let id = org_id(&org).await;
    let mut config = seed_config();
    config["enabled"] = json!(true);
    le(&app, Method::POST, &org.token, Some(config)).await;
    assert_eq!(stored_password(&app, &id).await.as_deref(), Some("NewPassword@123"));

    // What a settings page does: GET, edit a field, PUT back what it has.
    let (_, got) = le(&app, Method::GET, &org.token, None).await;
    let mut form = got["data"].clone();
    form["fromName"] = json!("Renamed");
    let (status, put) = le(&app, Method::PUT, &org.token, Some(form.clone())).await;
    assert_eq!(status, 200, "{put}");
    assert_eq!(put["data"]["passwordSet"], true);
    assert_eq!(stored_password(&app, &id).await.as_deref(), Some("NewPassword@123"), "kept");

    form["password"] = Value::Null;
    le(&app, Method::PUT, &org.token, Some(form.clone())).await;
    assert_eq!(stored_password(&app, &id).await.as_deref(), Some("NewPassword@123"), "null keeps it too");

    form["emailServerPort"] = json!("2525");
    let (_, put) = le(&app, Method::PUT, &org.token, Some(form.clone())).await;
    assert_eq!(put["data"]["passwordSet"], false, "a new port never gets the old secret");

    form["password"] = json!("second-secret");
    le(&app, Method::PUT, &org.token, Some(form.clone())).await;
    form["password"] = Value::Null;
    form["emailServerHost"] = json!("SMTP.Example.COM");
    let (_, put) = le(&app, Method::PUT, &org.token, Some(form.clone())).await;
    assert_eq!(put["data"]["passwordSet"], true, "the same host in other case is the same host");
    form["emailServerHost"] = json!("smtp.elsewhere.example");
    let (_, put) = le(&app, Method::PUT, &org.token, Some(form.clone())).await;
    assert_eq!(put["data"]["passwordSet"], false, "a new host never gets the old secret");

    form["password"] = json!("third");
    le(&app, Method::PUT, &org.token, Some(form.clone())).await;
    form["password"] = json!("");
    let (_, put) = le(&app, Method::PUT, &org.token, Some(form)).await;
    assert_eq!(put["data"]["passwordSet"], false, "\"\" clears it");
    assert_eq!(stored_password(&app, &id).await, None);
}

/// Issue 13, finding 1: a PUT without a password keeps it only for the same
/// server, account and transport (contract §3).
async fn a_weaker_transport_or_another_account_drops_the_kept_password(app: TestApp) {
    let org = app.new_org().await;
    let id = org_id(&org).await;
    let mut form = seed_config();
    form["enabled"] = json!(true);
    le(&app, Method::POST, &org.token, Some(form.clone())).await;
    form.as_object_mut().unwrap().remove("password");
    let (status, put) = le(&app, Method::PUT, &org.token, Some(form.clone())).await;
    assert_eq!((status, put["data"]["passwordSet"].clone()), (200, json!(true)), "unchanged: kept");

    // TLS switched off on the same host and port.
    let mut plain = form.clone();
    plain["tlsEnabled"] = json!(false);
    let (_, put) = le(&app, Method::PUT, &org.token, Some(plain)).await;
    assert_eq!(put["data"]["passwordSet"], false, "{put}");
    assert_eq!(stored_password(&app, &id).await, None);

    // Another username on the same server.
    let mut again = form.clone();
    again["password"] = json!("NewPassword@123");
    le(&app, Method::PUT, &org.token, Some(again)).await;
    let mut renamed = form.clone();
    renamed["username"] = json!("someone.else@leegality.com");
    let (_, put) = le(&app, Method::PUT, &org.token, Some(renamed)).await;
    assert_eq!(put["data"]["passwordSet"], false, "{put}");
}

/// Issue 13, finding 1: the same rule for Dbvisit's partial edits.
async fn dbvisit_edit_keeps_the_password_only_for_the_same_server_account_and_transport(app: TestApp) {
    let admin = app.admin_token.clone();
    let set = json!({"params": {"smtp_host": "relay.example.com", "smtp_port": 0, "encryption": "StartTLS",
        "username": "relay", "password": "pw-1", "allow_selfsigned_certs": true}});
    let password_set = |body: Value| body["result"]["password_set"].clone();
    assert_eq!(password_set(db(&app, "edit", &admin, Some(set.clone())).await.1), true);
    for (params, kept, why) in [
        (json!({"from_email": "b@example.com"}), true, "another sender keeps it"),
        (json!({"allow_selfsigned_certs": false}), true, "checking certificates is stronger"),
        (json!({"smtp_port": 587}), true, "the mode's default port, spelt out"),
        (json!({"allow_selfsigned_certs": true}), false, "certificate checking turned off"),
    ] {
        let (_, body) = db(&app, "edit", &admin, Some(json!({ "params": params }))).await;
        assert_eq!(password_set(body.clone()), kept, "{why}: {body}");
    }
    for (params, why) in [
        (json!({"encryption": "Plain"}), "TLS switched off"),
        (json!({"encryption": "TLS"}), "another security mode"),
        (json!({"username": "other"}), "another username"),
        (json!({"username": ""}), "no username"),
    ] {
        assert_eq!(password_set(db(&app, "edit", &admin, Some(set.clone())).await.1), true);
        let (_, body) = db(&app, "edit", &admin, Some(json!({ "params": params }))).await;
        assert_eq!(password_set(body.clone()), false, "{why}: {body}");
    }
}

/// The password `id`'s mail would be sent with, decrypted.
async fn stored_password(app: &TestApp, id: &OrgId) -> Option<String> {
    let server = smtp::effective_server(&app.store, &cipher_of(app), id).await.unwrap();
    server.and_then(|s| s.password).map(|p| p.expose().to_owned())
}

/// The cipher of a test app's server, as the server loads it.
fn cipher_of(app: &TestApp) -> herald::crypto::Cipher {
    let key = (app.backend == Backend::Postgres).then(|| herald::secret::Secret::new(crate::support::TEST_SECRET_KEY));
    herald::crypto::Cipher::load(key.as_ref(), app.store.sqlite_file()).unwrap()
}

async fn another_org_never_sees_or_changes_a_config(app: TestApp) {
    let a = app.new_org().await;
    let b = app.new_org().await;
    le(&app, Method::POST, &a.token, Some(seed_config())).await;
    let (_, before) = le(&app, Method::GET, &a.token, None).await;

    assert_eq!(le(&app, Method::GET, &b.token, None).await.0, 404);
    assert_eq!(le(&app, Method::PUT, &b.token, Some(json!({"emailServerHost": "evil.example"}))).await.0, 404);
    assert_eq!(le(&app, Method::DELETE, &b.token, None).await.0, 404);
    let req = app.client.get(app.url(CONFIG)).header("X-Auth-Token", &b.token).header("x-zitadel-orgid", &a.id);
    let res = app.send(req).await;
    assert_eq!(res.status, 403);
    assert_eq!(res.json["code"], "LE_ERR_SS_403");
    assert!(!res.text.contains("smtp.example.com"));

    let (_, after) = le(&app, Method::GET, &a.token, None).await;
    assert_eq!(before, after);
    let req = app.client.get(app.url(CONFIG)).header("X-Auth-Token", &app.admin_token).header("x-zitadel-orgid", &a.id);
    assert_eq!(app.send(req).await.json["data"], before["data"], "an admin names the org");
}

const EMAIL: &str = "/email-settings";

async fn db(app: &TestApp, action: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let res = app.call(Method::POST, &format!("{EMAIL}/{action}"), Auth::Bearer(token), body).await;
    (res.status, res.json)
}

async fn dbvisit_seed_request_round_trips(app: TestApp) {
    let admin = app.admin_token.clone();
    // Seed 002's request, with real values in its placeholders.
    let params = json!({"params": {
        "allow_selfsigned_certs": false, "encryption": "Plain", "from_email": "standby@example.com",
        "password": "string", "smtp_host": "mail.example.com", "smtp_port": 123, "username": "string"}});
    let (status, body) = db(&app, "edit", &admin, Some(params)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["successful"], true);
    assert!(body["error"].is_null());
    let expected = json!({"allow_selfsigned_certs": false, "encryption": "Plain", "from_email": "standby@example.com",
        "smtp_host": "mail.example.com", "smtp_port": 123, "username": "string", "password_set": true});
    assert_eq!(body["result"], expected);
    for show in [
        app.call(Method::GET, "/email-settings/show", Auth::Bearer(&admin), None).await.json,
        db(&app, "show", &admin, None).await.1,
    ] {
        assert_eq!(show, json!({"successful": true, "result": expected, "error": null}));
    }
    let (status, body) = db(&app, "clear", &admin, None).await;
    assert_eq!((status, body["successful"].clone()), (200, json!(true)));
    let (_, show) = db(&app, "show", &admin, None).await;
    assert_eq!(show["result"]["smtp_host"], "");
    assert_eq!(show["result"]["password_set"], false);
    assert!(smtp::instance_settings(&app.store).await.unwrap().is_none());
}

async fn dbvisit_params_not_sent_keep_their_value(app: TestApp) {
    let admin = app.admin_token.clone();
    let full = json!({"params": {"smtp_host": "mail.example.com", "smtp_port": 0, "encryption": "StartTLS",
        "username": "relay", "password": "pw-1", "from_email": "a@example.com", "allow_selfsigned_certs": true}});
    db(&app, "edit", &admin, Some(full)).await;
    let s = smtp::instance_settings(&app.store).await.unwrap().unwrap();
    assert_eq!((s.security, s.effective_port()), (Security::StartTls, 587), "0 is the mode's default port");

    let (_, body) = db(&app, "edit", &admin, Some(json!({"params": {"from_email": "b@example.com"}}))).await;
    let r = &body["result"];
    assert_eq!(
        (r["smtp_host"].clone(), r["encryption"].clone(), r["username"].clone(), r["password_set"].clone()),
        (json!("mail.example.com"), json!("StartTLS"), json!("relay"), json!(true))
    );
    assert_eq!((r["from_email"].clone(), r["allow_selfsigned_certs"].clone()), (json!("b@example.com"), json!(true)));
    for encryption in ["Plain", "TLS"] {
        let (_, body) = db(&app, "edit", &admin, Some(json!({"params": {"encryption": encryption}}))).await;
        assert_eq!(body["result"]["encryption"], encryption);
    }
    let (_, body) = db(&app, "edit", &admin, Some(json!({"params": {"smtp_port": 2525}}))).await;
    assert_eq!(body["result"]["password_set"], false, "a new port drops the password");
    let (_, body) = db(&app, "edit", &admin, Some(json!({"params": {"password": "pw-2", "username": ""}}))).await;
    assert_eq!((body["result"]["password_set"].clone(), body["result"]["username"].clone()), (json!(true), json!("")));
    let (_, body) = db(&app, "edit", &admin, Some(json!({"params": {"password": ""}}))).await;
    assert_eq!(body["result"]["password_set"], false);
}

async fn dbvisit_bad_input_is_unsuccessful(app: TestApp) {
    let admin = app.admin_token.clone();
    let (status, body) = db(&app, "edit", &admin, Some(json!({"params": {"smtp_port": 25}}))).await;
    assert_eq!(status, 400, "a first edit needs a host: {body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("smtp_host"));
    db(&app, "edit", &admin, Some(json!({"params": {"smtp_host": "mail.example.com"}}))).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"smtp_port": 65536}), "smtp_port"),
        (json!({"smtp_port": -1}), "smtp_port"),
        (json!({"smtp_port": "abc"}), "smtp_port"),
        (json!({"smtp_port": 25.5}), "smtp_port"),
        (json!({"encryption": "SSL"}), "Plain, StartTLS, TLS"),
        (json!({"encryption": "plain"}), "encryption"),
        (json!({"from_email": "nope"}), "from_email"),
        (json!({"smtp_host": "bad host"}), "smtp_host"),
        (json!({"smtp_host": "mail.example.com\r\nQUIT"}), "smtp_host"),
        (json!({"username": "a\r\nb"}), "username"),
        (json!({"password": "p".repeat(1025)}), "password"),
        (json!({"allow_selfsigned_certs": "yes"}), "allow_selfsigned_certs"),
    ];
    for (params, needle) in cases {
        let (status, body) = db(&app, "edit", &admin, Some(json!({ "params": params }))).await;
        assert_eq!(status, 400, "{params}: {body}");
        assert_eq!(body["successful"], false);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{params}: {message}");
    }
    for raw in ["{\"params\": ", "{}", "[]", ""] {
        let req = app
            .client
            .post(app.url("/email-settings/edit"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(raw);
        let res = app.send(req).await;
        assert_eq!(res.status, 400, "{raw:?}");
        assert_eq!(res.json["successful"], false);
    }
    let (_, show) = db(&app, "show", &admin, None).await;
    assert_eq!(show["result"]["smtp_host"], "mail.example.com", "nothing bad was stored");
}

async fn dbvisit_is_for_instance_admins_only(app: TestApp) {
    let org = app.new_org().await;
    for action in ["edit", "show", "clear"] {
        let body = Some(json!({"params": {"smtp_host": "evil.example"}}));
        let (status, json) = db(&app, action, &org.token, body.clone()).await;
        assert_eq!(status, 403, "{action}");
        assert_eq!(json["successful"], false);
        let res = app.call(Method::POST, &format!("{EMAIL}/{action}"), Auth::None, body).await;
        assert_eq!((res.status, res.json["successful"].clone()), (401, json!(false)));
    }
    let res = app.call(Method::GET, "/email-settings/nope", Auth::Bearer(&app.admin_token), None).await;
    assert_eq!((res.status, res.json["successful"].clone()), (404, json!(false)));
    assert!(smtp::instance_settings(&app.store).await.unwrap().is_none());
}

async fn effective_server_prefers_the_enabled_org_config(app: TestApp) {
    let org = app.new_org().await;
    let id = org_id(&org).await;
    let cipher = cipher_of(&app);
    assert!(smtp::effective_server(&app.store, &cipher, &id).await.unwrap().is_none(), "nothing configured");

    db(
        &app,
        "edit",
        &app.admin_token,
        Some(json!({"params": {"smtp_host": "instance.example.com", "password": "ipw", "username": "i"}})),
    )
    .await;
    let s = smtp::effective_server(&app.store, &cipher, &id).await.unwrap().unwrap();
    assert_eq!(
        (s.scope.clone(), s.host.as_str(), s.password.as_ref().unwrap().expose()),
        (Scope::Instance, "instance.example.com", "ipw")
    );

    le(
        &app,
        Method::POST,
        &org.token,
        Some(json!({"emailServerHost": "org.example.com", "password": "opw", "enabled": true})),
    )
    .await;
    let s = smtp::effective_server(&app.store, &cipher, &id).await.unwrap().unwrap();
    assert_eq!((s.scope.clone(), s.host.as_str(), s.port), (Scope::Org(id.clone()), "org.example.com", 25));
    assert_eq!(s.password.as_ref().unwrap().expose(), "opw");
    let v1 = s.version;

    le(&app, Method::PUT, &org.token, Some(json!({"emailServerHost": "org.example.com", "enabled": false}))).await;
    let s = smtp::effective_server(&app.store, &cipher, &id).await.unwrap().unwrap();
    assert_eq!(s.scope, Scope::Instance, "a disabled config falls back");
    le(&app, Method::PUT, &org.token, Some(json!({"emailServerHost": "org.example.com", "enabled": true}))).await;
    let s = smtp::effective_server(&app.store, &cipher, &id).await.unwrap().unwrap();
    assert!(s.version > v1, "every change is a new version");

    le(&app, Method::DELETE, &org.token, None).await;
    let s = smtp::effective_server(&app.store, &cipher, &id).await.unwrap().unwrap();
    assert_eq!(s.scope, Scope::Instance, "deleted: back to the instance settings");
}

async fn secret_canary_appears_nowhere(app: TestApp) {
    let org = app.new_org().await;
    let canary = format!("canary-{}", uuid::Uuid::now_v7().simple());
    let instance_canary = format!("icanary-{}", uuid::Uuid::now_v7().simple());
    let mut responses = Vec::new();
    let mut config = seed_config();
    config["password"] = json!(canary);
    config["enabled"] = json!(true);
    responses.push(app.call(Method::POST, CONFIG, Auth::XAuthToken(&org.token), Some(config.clone())).await.text);
    responses.push(app.call(Method::PUT, CONFIG, Auth::XAuthToken(&org.token), Some(config.clone())).await.text);
    responses.push(app.call(Method::GET, CONFIG, Auth::XAuthToken(&org.token), None).await.text);
    config["emailServerPort"] = json!("bad");
    responses.push(app.call(Method::PUT, CONFIG, Auth::XAuthToken(&org.token), Some(config)).await.text);
    let edit = json!({"params": {"smtp_host": "m.example.com", "password": instance_canary}});
    responses
        .push(app.call(Method::POST, "/email-settings/edit", Auth::Bearer(&app.admin_token), Some(edit)).await.text);
    let bad = json!({"params": {"smtp_port": 70000, "password": instance_canary}});
    responses
        .push(app.call(Method::POST, "/email-settings/edit", Auth::Bearer(&app.admin_token), Some(bad)).await.text);
    responses.push(app.call(Method::GET, "/email-settings/show", Auth::Bearer(&app.admin_token), None).await.text);
    responses.push(app.get("/v1/audit?limit=500", &org.token).await.text);
    responses.push(app.get("/admin/v1/audit?limit=500", &app.admin_token).await.text);
    responses.push(app.call(Method::GET, "/metrics", Auth::None, None).await.text);

    // The secrets are really stored: they decrypt for sending.
    let s = smtp::effective_server(&app.store, &cipher_of(&app), &org_id(&org).await).await.unwrap().unwrap();
    assert_eq!(s.password.as_ref().unwrap().expose(), canary);
    assert!(!format!("{s:?}").contains(&canary), "Debug of the server redacts it");

    let stored = app.db.everything().await;
    let logs = crate::support::logs();
    assert!(logs.contains("/api/v1/notification-config"), "logs were captured");
    for secret in [&canary, &instance_canary] {
        for (i, body) in responses.iter().enumerate() {
            assert!(!body.contains(secret.as_str()), "response {i} leaks the password: {body}");
        }
        assert!(!stored.contains(secret.as_str()), "plaintext in the database");
        assert!(!logs.contains(secret.as_str()), "the password reached a log line");
    }
}

async fn changes_are_audited_without_secrets(app: TestApp) {
    let org = app.new_org().await;
    le(&app, Method::POST, &org.token, Some(seed_config())).await;
    le(&app, Method::PUT, &org.token, Some(json!({"emailServerHost": "b.example.com"}))).await;
    le(&app, Method::PUT, &org.token, Some(json!({"emailServerHost": "b.example.com", "emailServerPort": "bad"})))
        .await;
    le(&app, Method::DELETE, &org.token, None).await;
    let log = app.get("/v1/audit", &org.token).await;
    let items = log.json["items"].as_array().unwrap();
    let actions: Vec<&str> = items.iter().map(|i| i["action"].as_str().unwrap()).collect();
    assert_eq!(actions[2..], ["smtp_config.created", "smtp_config.replaced", "smtp_config.deleted"]);
    assert_eq!(items[2]["detail"]["passwordSet"], true);
    assert_eq!(
        (items[3]["detail"]["passwordSet"].clone(), items[3]["detail"]["passwordChanged"].clone()),
        (json!(false), json!(true))
    );
    assert!(!log.text.contains("NewPassword@123"));
    assert!(items[2]["actor"].as_str().unwrap().starts_with("token:"));

    db(&app, "edit", &app.admin_token, Some(json!({"params": {"smtp_host": "m.example.com"}}))).await;
    db(&app, "clear", &app.admin_token, None).await;
    let log = app.get("/admin/v1/audit", &app.admin_token).await;
    let actions: Vec<&str> =
        log.json["items"].as_array().unwrap().iter().map(|i| i["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["instance_smtp.edited", "instance_smtp.cleared"]);
}

async fn a_password_moved_to_another_row_does_not_decrypt(app: TestApp) {
    use sqlx::Connection;
    let a = app.new_org().await;
    let b = app.new_org().await;
    for org in [&a, &b] {
        let mut config = seed_config();
        config["enabled"] = json!(true);
        le(&app, Method::POST, &org.token, Some(config)).await;
    }
    // Someone with database access copies A's ciphertext into B's row.
    let sql = "UPDATE smtp_servers SET password = (SELECT password FROM smtp_servers WHERE scope_id = $1) WHERE scope_id = $2";
    match app.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).bind(&a.id).bind(&b.id).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query(sql).bind(&a.id).bind(&b.id).execute(&mut c).await.unwrap();
        }
    }
    // Behind the server's back: without waiting out its cache (README, Storage).
    app.store.forget_cached_reads();
    let cipher = cipher_of(&app);
    assert!(smtp::effective_server(&app.store, &cipher, &org_id(&a).await).await.is_ok());
    let err = smtp::effective_server(&app.store, &cipher, &org_id(&b).await).await.unwrap_err();
    let chain = match err {
        herald::error::Error::Internal(e) => format!("{e:#}"),
        other => panic!("{other:?}"),
    };
    assert!(chain.contains("cannot be decrypted"), "{chain}");
}

/// A different key on restart is refused at start, with a message that says
/// what to do and shows no key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_changed_key_is_refused_at_start() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let mut config = herald::Config::new(db.url.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let first = herald::Server::build(&config, herald::clock::Clock::default()).await.unwrap();
    first.state().store().close().await;
    drop(first);
    assert!(db.sqlite_path.as_ref().unwrap().with_file_name("herald.key").exists(), "key file beside the database");

    let other_key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    config.secret_key = Some(herald::secret::Secret::new(other_key));
    let err = herald::Server::build(&config, herald::clock::Clock::default()).await.err().expect("refused");
    let text = format!("{err:#}");
    assert!(text.contains("does not match") && text.contains("HERALD_SECRET_KEY"), "{text}");
    assert!(!text.contains(other_key));
    config.secret_key = None;
    assert!(herald::Server::build(&config, herald::clock::Clock::default()).await.is_ok(), "the original key works");
}

#[tokio::test]
async fn postgres_needs_an_explicit_key() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let mut config = herald::Config::new(db.url.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let err = herald::Server::build(&config, herald::clock::Clock::default()).await.err().expect("refused");
    assert!(format!("{err:#}").contains("HERALD_SECRET_KEY is required"), "{err:#}");
}

/// Two nodes on one PostgreSQL database must share the key: a node with
/// another key is refused at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_node_with_another_key_is_refused() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let mut config = herald::Config::new(db.url.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.secret_key = Some(herald::secret::Secret::new(crate::support::TEST_SECRET_KEY));
    let first = herald::Server::build(&config, herald::clock::Clock::default()).await.unwrap();
    config.secret_key = Some(herald::secret::Secret::new("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="));
    let err = herald::Server::build(&config, herald::clock::Clock::default()).await.err().expect("refused");
    assert!(format!("{err:#}").contains("does not match"), "{err:#}");
    config.secret_key = Some(herald::secret::Secret::new(crate::support::TEST_SECRET_KEY));
    let second = herald::Server::build(&config, herald::clock::Clock::default()).await.unwrap();
    first.state().store().close().await;
    second.state().store().close().await;
}
