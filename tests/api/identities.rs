//! BoldSign sender identities (seed 004, contract §7) over HTTP: the
//! documented calls in both property casings, every documented constraint
//! in BoldSign's error shapes, and the emailed approval flow end to end
//! (mail at a real SMTP socket → link → page → approve, deny, revoke,
//! rerequest, expired, reused and replaced links).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::identity::{
    Visit, approved_identity, bs, create, follow, link_in, parse, press, properties, smtp_for, visit,
};
use crate::support::{TestApp, TestOrg, TestResponse};

on_each_backend!(
    redirect_urls_are_normalised_and_ambiguous_forms_refused,
    the_seed_update_works_in_both_property_casings,
    create_reports_every_documented_constraint,
    lengths_follow_boldsigns_published_openapi,
    update_needs_something_to_update_and_merges_metadata,
    unknown_and_foreign_identities_get_the_same_404,
    list_pages_searches_and_filters_by_brand,
    approval_flow_end_to_end,
    deny_then_rerequest_then_resend_replaces_the_link,
    expired_links_say_so_and_renew_by_mail,
    the_page_refuses_forged_tokens_and_cross_site_or_tokenless_posts,
    link_tokens_are_never_stored_logged_or_returned,
    every_change_is_audited,
);

const SEED_UPDATE: &str = r#"{
  "Name": "Luther",
  "RedirectUrl": "https://boldsign.com",
  "NotificationSettings": {
    "Viewed": true, "Sent": false, "DeliveryFailed": true, "Declined": true, "Revoked": true,
    "Reassigned": true, "Completed": true, "Signed": true, "Expired": true,
    "AuthenticationFailed": true, "Reminders": true, "AttachSignedDocument": false
  },
  "MetaData": { "AccountPlan": "Paid" },
  "Locale": "EN"
}"#;

/// The seed's update, with every property name lower-camel-cased as the
/// official SDKs send them.
fn sdk_casing(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    // MetaData keys are data, not property names.
                    let value = if k == "MetaData" { v.clone() } else { sdk_casing(v) };
                    (format!("{}{}", k[..1].to_lowercase(), &k[1..]), value)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn update(app: &TestApp, org: &TestOrg, email: &str, body: Value) -> TestResponse {
    bs(app, org, Method::POST, &format!("/v1/senderIdentities/update?email={email}"), Some(body)).await
}

async fn the_seed_update_works_in_both_property_casings(app: TestApp) {
    let org = app.new_org().await;
    let seed: Value = serde_json::from_str(SEED_UPDATE).unwrap();
    for (casing, body) in [("docs", seed.clone()), ("sdk", sdk_casing(&seed))] {
        let email = format!("luther.{casing}@cubeflakes.com");
        create(
            &app,
            &org,
            json!({"Name": "Luther Cooper", "Email": email, "MetaData": {"TenantId": "t-1", "AccountPlan": "Free"},
                   "NotificationSettings": {"Viewed": false, "Sent": true}, "Locale": "DE"}),
        )
        .await;
        // The seed's request: email in the query, URL-encoded as curl sends it.
        let res = update(&app, &org, &email.replace('@', "%40"), body).await;
        assert_eq!(res.status, 204, "{casing}: {}", res.text);
        assert!(res.text.is_empty());
        let got = properties(&app, &org, &email).await;
        assert_eq!(got["name"], "Luther", "{casing}: {got}");
        assert_eq!(got["redirectUrl"], "https://boldsign.com/", "stored as the url crate writes it");
        assert_eq!(got["locale"], "EN");
        assert_eq!(got["status"], "Pending");
        assert_eq!(got["approvedDate"], "");
        assert_eq!(got["metaData"], json!({"TenantId": "t-1", "AccountPlan": "Paid"}), "merged, not replaced");
        let flags = &got["notificationSettings"];
        assert_eq!(flags["viewed"], true);
        assert_eq!(flags["sent"], false);
        assert_eq!(flags["attachSignedDocument"], false);
        assert_eq!(flags.as_object().unwrap().len(), 12, "{flags}");
        for key in ["id", "name", "email", "status", "createdBy", "approvedDate", "notificationSettings", "brandId"] {
            assert!(got.get(key).is_some(), "{key} missing from {got}");
        }
    }
}

/// A 400 in ASP.NET's validation-problem shape with an error for `field`.
fn assert_validation(res: &TestResponse, field: &str) {
    assert_eq!(res.status, 400, "{}", res.text);
    assert_eq!(res.json["title"], "One or more validation errors occurred.", "{}", res.text);
    assert_eq!(res.json["status"], 400);
    let messages = res.json["errors"][field].as_array().unwrap_or_else(|| panic!("no {field} in {}", res.text));
    assert!(!messages.is_empty());
}

/// `Name` up to 80 characters (BoldSign's OpenAPI, as its SDKs send it);
/// `BrandId`, `RedirectUrl` and `MetaData` entries have no length limit there.
async fn lengths_follow_boldsigns_published_openapi(app: TestApp) {
    let org = app.new_org().await;
    let name = "ü".repeat(80);
    let body = json!({
        "Name": name, "Email": "eighty@example.com", "BrandId": "b".repeat(300),
        "RedirectUrl": format!("https://example.com/{}", "p".repeat(3000)),
        "MetaData": {"k".repeat(60): "v".repeat(600)},
    });
    create(&app, &org, body).await;
    let got = properties(&app, &org, "eighty@example.com").await;
    assert_eq!(got["name"], name);
    assert_eq!(got["brandId"].as_str().map(str::len), Some(300));
    let res = update(&app, &org, "eighty@example.com", json!({"Name": "n".repeat(81)})).await;
    assert_validation(&res, "Name");
    let res = update(&app, &org, "eighty@example.com", json!({"Name": "n".repeat(80)})).await;
    assert_eq!(res.status, 204, "{}", res.text);
}

async fn create_reports_every_documented_constraint(app: TestApp) {
    let org = app.new_org().await;
    let long_email = format!("{}@example.com", "a".repeat(240));
    let cases: Vec<(Value, &str)> = vec![
        (json!({"Name": "No Email"}), "Email"),
        (json!({"Name": "Empty", "Email": ""}), "Email"),
        (json!({"Name": "Bad", "Email": "not-an-address"}), "Email"),
        (json!({"Name": "Long", "Email": long_email}), "Email"),
        (json!({"Name": "n".repeat(81), "Email": "long.name@example.com"}), "Name"),
        (json!({"Name": "Evil\r\nBcc: x@example.com", "Email": "crlf@example.com"}), "Name"),
        (json!({"Email": "crlf2@example.com\r\nBcc: x@example.com"}), "Email"),
        (json!({"Email": "locale@example.com", "Locale": "XX"}), "Locale"),
        (json!({"Email": "url@example.com", "RedirectUrl": "javascript:alert(1)"}), "RedirectUrl"),
        (json!({"Email": "types@example.com", "Name": 42}), "Name"),
        (
            json!({"Email": "flags@example.com", "NotificationSettings": {"Viewed": "yes"}}),
            "NotificationSettings.Viewed",
        ),
        (json!({"Email": "meta@example.com", "MetaData": {"": "v"}}), "MetaData"),
        (json!({"Email": "meta2@example.com", "MetaData": ["not", "an", "object"]}), "MetaData"),
    ];
    for (body, field) in cases {
        let res = bs(&app, &org, Method::POST, "/v1/senderIdentities/create", Some(body.clone())).await;
        assert_validation(&res, field);
        assert!(!res.text.contains("javascript") && !res.text.contains("Bcc"), "values are never echoed: {}", res.text);
    }
    // Malformed JSON and a JSON array: ASP.NET's "$" key / a body error.
    let raw = app
        .client
        .post(app.url("/v1/senderIdentities/create"))
        .header("X-API-KEY", &org.token)
        .header("content-type", "application/json;odata.metadata=minimal;odata.streaming=true")
        .body("{\"Email\": ");
    assert_validation(&app.send(raw).await, "$");
    // Every invalid field at once.
    let res = bs(
        &app,
        &org,
        Method::POST,
        "/v1/senderIdentities/create",
        Some(json!({"Name": "n".repeat(81), "Locale": "XX"})),
    )
    .await;
    for field in ["Name", "Email", "Locale"] {
        assert_validation(&res, field);
    }
    // A duplicate email (any case) is 409 with {"error"}.
    create(&app, &org, json!({"Name": "Ada", "Email": "ada@example.com"})).await;
    let res = bs(
        &app,
        &org,
        Method::POST,
        "/v1/senderIdentities/create",
        Some(json!({"Name": "Ada", "Email": "ADA@example.com"})),
    )
    .await;
    assert_eq!(res.status, 409, "{}", res.text);
    assert!(res.json["error"].is_string(), "{}", res.text);
    // Nothing invalid was stored; the name defaults to the local part.
    let list = bs(&app, &org, Method::GET, "/v1/senderIdentities/list?Page=1", None).await;
    assert_eq!(list.json["pageDetails"]["totalRecordsCount"], 1, "{}", list.text);
    let res =
        bs(&app, &org, Method::POST, "/v1/senderIdentities/create", Some(json!({"email": "nameless@example.com"})))
            .await;
    assert_eq!(res.status, 201, "{}", res.text);
    assert_eq!(properties(&app, &org, "nameless@example.com").await["name"], "nameless");
    // No token, a bad token: 401 in BoldSign's {"error"} shape.
    let res = app.call(Method::GET, "/v1/senderIdentities/list", crate::support::Auth::XApiKey("hrd_nope"), None).await;
    assert_eq!(res.status, 401);
    assert!(res.json["error"].is_string(), "{}", res.text);
}

async fn update_needs_something_to_update_and_merges_metadata(app: TestApp) {
    let org = app.new_org().await;
    let email = "meta@example.com";
    create(&app, &org, json!({"name": "Meta", "email": email, "metaData": {"a": "1", "b": "2"}})).await;
    // Nothing to update: email and brandId are not part of an update.
    for body in [json!({}), json!({"Email": "other@example.com", "BrandId": "b"}), json!({"Name": null})] {
        let res = update(&app, &org, email, body).await;
        assert_validation(&res, "Request");
    }
    let res = update(&app, &org, email, json!({"Name": "n".repeat(81)})).await;
    assert_validation(&res, "Name");
    let res = update(&app, &org, email, json!({"Locale": "Klingon"})).await;
    assert_validation(&res, "Locale");
    // Wrong types, line breaks and unreadable JSON, as on create.
    for (body, field) in [
        (json!({"Name": "Evil\r\nBcc: x@example.com"}), "Name"),
        (json!({"NotificationSettings": "all"}), "NotificationSettings"),
        (json!({"MetaData": {"k": 5}}), "MetaData"),
        (json!({"MetaData": {" ": "v"}}), "MetaData"),
        (json!({"RedirectUrl": "https://example.com/\r\nSet-Cookie: x"}), "RedirectUrl"),
        (json!({"Locale": 3}), "Locale"),
    ] {
        let res = update(&app, &org, email, body).await;
        assert_validation(&res, field);
        assert!(!res.text.contains("Bcc") && !res.text.contains("Set-Cookie"), "{}", res.text);
    }
    let raw = app
        .client
        .post(app.url(&format!("/v1/senderIdentities/update?email={email}")))
        .header("X-API-KEY", &org.token)
        .header("content-type", "application/json")
        .body("{\"Name\": tru");
    assert_validation(&app.send(raw).await, "$");
    assert_eq!(properties(&app, &org, email).await["name"], "Meta", "nothing changed");
    // "" deletes, new keys add, existing keys are replaced, others stay.
    let res = update(&app, &org, email, json!({"MetaData": {"a": "", "b": "two", "c": "3"}})).await;
    assert_eq!(res.status, 204, "{}", res.text);
    assert_eq!(properties(&app, &org, email).await["metaData"], json!({"b": "two", "c": "3"}));
    // Flags not sent keep their value.
    let res = update(&app, &org, email, json!({"NotificationSettings": {"Sent": true}})).await;
    assert_eq!(res.status, 204);
    let res = update(&app, &org, email, json!({"notificationSettings": {"viewed": false}})).await;
    assert_eq!(res.status, 204);
    let flags = properties(&app, &org, email).await["notificationSettings"].clone();
    assert_eq!(
        (flags["sent"].clone(), flags["viewed"].clone(), flags["signed"].clone()),
        (json!(true), json!(false), json!(true))
    );
    // More than 50 keys in all is refused, and nothing changes.
    let many: serde_json::Map<String, Value> = (0..49).map(|i| (format!("k{i}"), json!("v"))).collect();
    let res = update(&app, &org, email, json!({"MetaData": many})).await;
    assert_validation(&res, "MetaData");
    assert_eq!(properties(&app, &org, email).await["metaData"], json!({"b": "two", "c": "3"}));
    // RedirectUrl "" removes it.
    update(&app, &org, email, json!({"RedirectUrl": "https://example.com/back"})).await;
    update(&app, &org, email, json!({"RedirectUrl": ""})).await;
    assert_eq!(properties(&app, &org, email).await["redirectUrl"], Value::Null);
}

/// Forms that parsers and browsers read differently are refused on create
/// and update; a valid URL is stored, echoed and redirected to as the `url`
/// crate writes it.
async fn redirect_urls_are_normalised_and_ambiguous_forms_refused(app: TestApp) {
    let org = app.new_org().await;
    let email = "redirect@example.com";
    let bad = [
        "https://example.com@evil.test/",
        "https://user:secret@example.com/",
        "http:evil.test",
        "https:evil.test/back",
        "https:/\\evil.test",
        "https://\\evil.test/",
        "//evil.test/",
    ];
    for url in bad {
        let res = bs(
            &app,
            &org,
            Method::POST,
            "/v1/senderIdentities/create",
            Some(json!({"Email": email, "RedirectUrl": url})),
        )
        .await;
        assert_validation(&res, "RedirectUrl");
        assert!(!res.text.contains("secret"), "{}", res.text);
    }
    create(&app, &org, json!({"Email": email, "RedirectUrl": "HTTPS://BoldSign.COM:443/Thanks/../Done?x=1"})).await;
    assert_eq!(properties(&app, &org, email).await["redirectUrl"], "https://boldsign.com/Done?x=1");
    for url in bad {
        let res = update(&app, &org, email, json!({"RedirectUrl": url})).await;
        assert_validation(&res, "RedirectUrl");
    }
    assert_eq!(properties(&app, &org, email).await["redirectUrl"], "https://boldsign.com/Done?x=1", "unchanged");
    let res = update(&app, &org, email, json!({"redirectUrl": "http://Example.com"})).await;
    assert_eq!(res.status, 204, "{}", res.text);
    let got = properties(&app, &org, email).await;
    assert_eq!(got["redirectUrl"], "http://example.com/");
    let list = bs(&app, &org, Method::GET, "/v1/senderIdentities/list?Search=redirect", None).await;
    assert_eq!(list.json["result"][0]["redirectUrl"], "http://example.com/", "{}", list.text);
}

async fn unknown_and_foreign_identities_get_the_same_404(app: TestApp) {
    let (a, b) = (app.new_org().await, app.new_org().await);
    let id = create(&app, &a, json!({"Name": "A's", "Email": "shared@example.com"})).await;
    let calls = [
        (Method::GET, "/v1/senderIdentities/properties?email={e}".to_owned(), None),
        (Method::POST, "/v1/senderIdentities/update?email={e}".to_owned(), Some(json!({"Name": "Taken over"}))),
        (Method::POST, "/v1/senderIdentities/resendInvitation?email={e}".to_owned(), None),
        (Method::POST, "/v1/senderIdentities/rerequest?email={e}".to_owned(), None),
        (Method::DELETE, "/v1/senderIdentities/delete?email={e}".to_owned(), None),
    ];
    for (method, path, body) in calls {
        let foreign = bs(&app, &b, method.clone(), &path.replace("{e}", "shared@example.com"), body.clone()).await;
        let unknown = bs(&app, &b, method.clone(), &path.replace("{e}", "nobody@example.com"), body.clone()).await;
        assert_eq!(foreign.status, 404, "{method} {path}: {}", foreign.text);
        assert_eq!((foreign.status, &foreign.json), (unknown.status, &unknown.json), "{method} {path}");
        assert_eq!(foreign.json, json!({"error": "Sender identity not found."}));
    }
    let by_id = bs(&app, &b, Method::GET, &format!("/v1/senderIdentities/properties?id={id}"), None).await;
    assert_eq!((by_id.status, by_id.json.clone()), (404, json!({"error": "Sender identity not found."})));
    for junk in ["not-a-uuid", "%00", "' OR 1=1 --"] {
        let res = bs(&app, &b, Method::GET, &format!("/v1/senderIdentities/properties?id={junk}"), None).await;
        assert_eq!(res.status, 404, "{junk}: {}", res.text);
    }
    // Still A's, unchanged; and A finds it by id.
    let own = bs(&app, &a, Method::GET, &format!("/v1/senderIdentities/properties?ID={id}"), None).await;
    assert_eq!(own.json["name"], "A's", "{}", own.text);
    // The email parameter: missing or malformed is a 400.
    for path in [
        "/v1/senderIdentities/properties",
        "/v1/senderIdentities/delete?email=",
        "/v1/senderIdentities/delete?email=nope",
    ] {
        let method = if path.contains("delete") { Method::DELETE } else { Method::GET };
        let res = bs(&app, &a, method, path, None).await;
        assert_eq!(res.status, 400, "{path}: {}", res.text);
        assert!(res.json["errors"].is_object(), "{}", res.text);
    }
}

async fn list_pages_searches_and_filters_by_brand(app: TestApp) {
    let org = app.new_org().await;
    let other = app.new_org().await;
    create(&app, &other, json!({"Name": "Elsewhere", "Email": "else@example.com", "BrandId": "brand-a"})).await;
    for i in 0..12 {
        let brand = ["brand-a", "brand-b", "brand-c"][i % 3];
        create(
            &app,
            &org,
            json!({"Name": format!("Person {i:02}"), "Email": format!("p{i:02}@example.com"), "BrandId": brand}),
        )
        .await;
    }
    let res = bs(&app, &org, Method::GET, "/v1/senderIdentities/list?Page=2&PageSize=5", None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.json["pageDetails"],
        json!({"pageSize": 5, "page": 2, "totalRecordsCount": 12, "totalPages": 3, "sortedColumn": "createdDate", "sortDirection": "DESC"})
    );
    let names: Vec<&str> = res.json["result"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Person 06", "Person 05", "Person 04", "Person 03", "Person 02"], "newest first");
    // Defaults (page 1, 10 a page), lower-case parameter names, search by name or email in any case.
    let res = bs(&app, &org, Method::GET, "/v1/senderIdentities/list", None).await;
    assert_eq!(res.json["result"].as_array().unwrap().len(), 10);
    let res =
        bs(&app, &org, Method::GET, "/v1/senderIdentities/list?page=1&pageSize=50&search=PERSON%2011", None).await;
    assert_eq!(res.json["pageDetails"]["totalRecordsCount"], 1, "{}", res.text);
    let res = bs(&app, &org, Method::GET, "/v1/senderIdentities/list?Page=1&Search=p0", None).await;
    assert_eq!(res.json["pageDetails"]["totalRecordsCount"], 10, "{}", res.text);
    // Wildcards are literal.
    let res = bs(&app, &org, Method::GET, "/v1/senderIdentities/list?Page=1&Search=%25", None).await;
    assert_eq!(res.json["pageDetails"]["totalRecordsCount"], 0, "{}", res.text);
    // BrandIds, repeated.
    let res = bs(
        &app,
        &org,
        Method::GET,
        "/v1/senderIdentities/list?Page=1&PageSize=100&BrandIds=brand-a&BrandIds=brand-c",
        None,
    )
    .await;
    assert_eq!(res.json["pageDetails"]["totalRecordsCount"], 8, "{}", res.text);
    assert!(res.json["result"].as_array().unwrap().iter().all(|r| r["brandId"] != "brand-b"));
    let res = bs(&app, &org, Method::GET, "/v1/senderIdentities/list?Page=1&BrandIds=none", None).await;
    assert_eq!(res.json["pageDetails"]["totalRecordsCount"], 0);
    for bad in ["Page=0", "PageSize=101", "PageSize=0", "Page=x", "Page=-1"] {
        let res = bs(&app, &org, Method::GET, &format!("/v1/senderIdentities/list?{bad}"), None).await;
        assert_eq!(res.status, 400, "{bad}: {}", res.text);
        assert!(res.json["errors"].is_object());
    }
}

fn assert_page(visit: &Visit, status: u16, needle: &str) {
    assert_eq!(visit.status, status, "{}", visit.html);
    assert!(visit.html.starts_with("<!DOCTYPE html>"), "{}", visit.html);
    assert!(visit.html.contains(needle), "{needle:?} not in {}", visit.html);
    assert!(!visit.html.contains("<script"), "no scripts");
}

async fn approval_flow_end_to_end(app: TestApp) {
    let org = app.new_org().await;
    let server = smtp_for(&app, &org).await;
    let email = "luther@cubeflakes.com";
    let id = create(
        &app,
        &org,
        json!({"Name": "Luther Cooper", "Email": email, "RedirectUrl": "HTTPS://BoldSign.com/thanks", "Locale": "DE"}),
    )
    .await;
    // The approval mail arrives, in the identity's language, with a link.
    let mails = server.wait_for(1).await;
    assert_eq!(mails[0].to, [email]);
    let mail = parse(&mails[0]);
    assert!(mail.subject.contains("möchte Dokumente in Ihrem Namen versenden"), "{}", mail.subject);
    let link = link_in(&mails[0]);
    assert!(link.starts_with(&format!("http://{}/sender-identity/", app.addr)), "{link}");
    let token = link.rsplit_once('/').unwrap().1;
    assert!(
        mail.html.contains(&format!("&#x2f;sender-identity&#x2f;{token}\"")),
        "the HTML part links too: {}",
        mail.html
    );
    // The page names the org and the identity and protects itself.
    let page = visit(&app, &link).await;
    let org_name = app.get("/admin/v1/orgs", &app.admin_token).await.json["orgs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == org.id.as_str())
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_page(&page, 200, &org_name);
    assert!(page.html.contains("Luther Cooper") && page.html.contains(email), "{}", page.html);
    assert!(page.html.contains("lang=\"de\"") && page.html.contains("Zustimmen"), "{}", page.html);
    let header = |name: &str| page.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"), "{:?}", page.headers);
    assert!(header("content-security-policy").contains("default-src 'none'"));
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "no-referrer");
    let cookie = header("set-cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    // Opening it twice changes nothing (mail scanners open links), and a
    // browser that opens it in a second tab keeps its CSRF value, so the
    // first tab's form stays good.
    let again =
        app.send(crate::support::identity::browser().get(&link).header("cookie", page.cookie.clone().unwrap())).await;
    assert_eq!(again.status, 200);
    assert!(again.text.contains(&format!("value=\"{}\"", page.csrf.clone().unwrap())), "{}", again.text);
    assert_eq!(properties(&app, &org, email).await["status"], "Pending");
    // Approve: the link is used, and the browser goes on to RedirectUrl.
    let res = press(&app, &link, &page, "approve").await;
    assert_eq!(res.status, 303, "{}", res.text);
    assert_eq!(res.headers["location"], "https://boldsign.com/thanks", "as stored: normalised");
    let got = properties(&app, &org, email).await;
    assert_eq!(got["status"], "Approved");
    assert_eq!(got["id"], id.as_str());
    assert!(got["approvedDate"].as_str().unwrap().ends_with('Z'), "{got}");
    // The link is spent: a second press and a reopen both say so.
    let res = press(&app, &link, &page, "approve").await;
    assert_eq!(res.status, 410, "{}", res.text);
    let reused = visit(&app, &link).await;
    assert_page(&reused, 410, "bereits verwendet");
    // The owner was mailed a revoke link; it revokes.
    let mails = server.wait_for(2).await;
    let revoke_link = link_in(&mails[1]);
    assert_ne!(revoke_link, link);
    let revoke_page = visit(&app, &revoke_link).await;
    assert_page(&revoke_page, 200, "widerrufen");
    assert!(!revoke_page.html.contains("value=\"approve\""), "a revoke link only revokes");
    // A review action on the revoke link does nothing.
    let res = press(&app, &revoke_link, &revoke_page, "approve").await;
    assert_eq!(properties(&app, &org, email).await["status"], "Approved", "{}", res.text);
    let revoke_page = visit(&app, &revoke_link).await;
    let res = press(&app, &revoke_link, &revoke_page, "revoke").await;
    assert_eq!(res.status, 303, "{}", res.text);
    assert_eq!(properties(&app, &org, email).await["status"], "Revoked");
    assert_eq!(properties(&app, &org, email).await["approvedDate"], "");
    // Revoked → rerequest → Pending, with a new review link that works.
    let res = bs(&app, &org, Method::POST, &format!("/v1/senderIdentities/rerequest?email={email}"), None).await;
    assert_eq!(res.status, 204, "{}", res.text);
    assert_eq!(properties(&app, &org, email).await["status"], "Pending");
    let mails = server.wait_for(3).await;
    let res = follow(&app, &link_in(&mails[2]), "approve").await;
    assert_eq!(res.status, 303);
    assert_eq!(properties(&app, &org, email).await["status"], "Approved");
    // Without RedirectUrl the result is a page of its own.
    update(&app, &org, email, json!({"RedirectUrl": ""})).await;
    let mails = server.wait_for(4).await;
    let res = follow(&app, &link_in(&mails[3]), "revoke").await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.text.contains("Zustimmung widerrufen"), "{}", res.text);
}

async fn deny_then_rerequest_then_resend_replaces_the_link(app: TestApp) {
    let org = app.new_org().await;
    let server = smtp_for(&app, &org).await;
    let email = "deny@example.com";
    create(&app, &org, json!({"Name": "Denise", "Email": email})).await;
    let first = link_in(&server.wait_for(1).await[0]);
    // Only a Denied or Revoked identity can be asked again.
    let res = bs(&app, &org, Method::POST, &format!("/v1/senderIdentities/rerequest?email={email}"), None).await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(res.json["error"].is_string(), "{}", res.text);
    // Resending mails a new link and retires the first.
    let res = bs(&app, &org, Method::POST, &format!("/v1/senderIdentities/resendInvitation?email={email}"), None).await;
    assert_eq!(res.status, 204, "{}", res.text);
    let second = link_in(&server.wait_for(2).await[1]);
    assert_page(&visit(&app, &first).await, 410, "replaced");
    let res = follow(&app, &second, "deny").await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.text.contains("Denied"), "{}", res.text);
    assert_eq!(properties(&app, &org, email).await["status"], "Denied");
    // Only a Pending identity's invitation can be resent.
    let res = bs(&app, &org, Method::POST, &format!("/v1/senderIdentities/resendInvitation?email={email}"), None).await;
    assert_eq!(res.status, 400, "{}", res.text);
    // Denied → rerequest → Pending; the denial link stays spent.
    let res = bs(&app, &org, Method::POST, &format!("/v1/senderIdentities/rerequest?email={email}"), None).await;
    assert_eq!(res.status, 204, "{}", res.text);
    assert_page(&visit(&app, &second).await, 410, "already been used");
    let third = link_in(&server.wait_for(3).await[2]);
    assert_page(&visit(&app, &third).await, 200, "Approve");
    // Deleting the identity ends its links.
    let res = bs(&app, &org, Method::DELETE, &format!("/v1/senderIdentities/delete?email={email}"), None).await;
    assert_eq!(res.status, 204, "{}", res.text);
    assert_page(&visit(&app, &third).await, 404, "not valid");
    let res = bs(&app, &org, Method::GET, &format!("/v1/senderIdentities/properties?email={email}"), None).await;
    assert_eq!(res.status, 404);
}

async fn expired_links_say_so_and_renew_by_mail(app: TestApp) {
    let org = app.new_org().await;
    let server = smtp_for(&app, &org).await;
    let email = "late@example.com";
    create(&app, &org, json!({"Name": "Late", "Email": email, "Locale": "FR"})).await;
    let link = link_in(&server.wait_for(1).await[0]);
    app.clock.advance(Duration::from_secs(7 * 24 * 3600 + 60));
    let page = visit(&app, &link).await;
    assert_page(&page, 410, "expiré");
    assert!(page.html.contains("value=\"renew\"") && !page.html.contains("value=\"approve\""), "{}", page.html);
    // An expired link cannot approve.
    let res = press(&app, &link, &page, "approve").await;
    assert_eq!(res.status, 410, "{}", res.text);
    assert_eq!(properties(&app, &org, email).await["status"], "Pending");
    // It can ask for a fresh link, once.
    let page = visit(&app, &link).await;
    let res = press(&app, &link, &page, "renew").await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.text.contains(email), "{}", res.text);
    let fresh = link_in(&server.wait_for(2).await[1]);
    assert_ne!(fresh, link);
    assert_eq!(press(&app, &link, &page, "renew").await.status, 410);
    assert_eq!(follow(&app, &fresh, "approve").await.status, 200);
    assert_eq!(properties(&app, &org, email).await["status"], "Approved");
}

async fn the_page_refuses_forged_tokens_and_cross_site_or_tokenless_posts(app: TestApp) {
    let org = app.new_org().await;
    let server = smtp_for(&app, &org).await;
    let email = "victim@example.com";
    create(&app, &org, json!({"Name": "Victim", "Email": email})).await;
    let link = link_in(&server.wait_for(1).await[0]);
    let (base, token) = link.rsplit_once('/').unwrap();
    let (id, mac) = token.split_once('.').unwrap();
    // Forged, truncated and junk tokens: a clear 404 page.
    let flipped = format!("{id}.{}{}", &mac[..mac.len() - 1], if mac.ends_with('A') { 'B' } else { 'A' });
    for forged in [flipped, id.to_owned(), "garbage".to_owned(), format!("{}.{mac}", uuid::Uuid::now_v7())] {
        assert_page(&visit(&app, &format!("{base}/{forged}")).await, 404, "not valid");
    }
    let page = visit(&app, &link).await;
    // No cookie, a wrong CSRF value, another site: 403, nothing changes.
    let mut no_cookie = visit(&app, &link).await;
    no_cookie.cookie = None;
    let mut wrong = visit(&app, &link).await;
    wrong.csrf = Some("wrong".into());
    for attempt in [&no_cookie, &wrong] {
        let res = press(&app, &link, attempt, "approve").await;
        assert_eq!(res.status, 403, "{}", res.text);
        assert!(res.text.starts_with("<!DOCTYPE html>"));
    }
    let csrf = page.csrf.clone().unwrap();
    for (header, value) in [("sec-fetch-site", "cross-site"), ("origin", "https://evil.example")] {
        let req = crate::support::identity::browser()
            .post(&link)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", page.cookie.clone().unwrap())
            .header(header, value)
            .body(format!("csrf={csrf}&action=approve"));
        assert_eq!(app.send(req).await.status, 403, "{header}");
    }
    // JSON is not a form; an unknown action is refused; both as pages.
    let req = crate::support::identity::browser()
        .post(&link)
        .header("content-type", "application/json")
        .header("cookie", page.cookie.clone().unwrap())
        .body("{\"action\":\"approve\"}");
    let res = app.send(req).await;
    assert_eq!(res.status, 415);
    assert!(res.text.starts_with("<!DOCTYPE html>"), "{}", res.text);
    let res = press(&app, &link, &page, "obliterate").await;
    assert_eq!(res.status, 400);
    assert!(res.text.starts_with("<!DOCTYPE html>"), "{}", res.text);
    assert_eq!(properties(&app, &org, email).await["status"], "Pending");
    // Unknown paths and methods below the page stay pages.
    let res = app.send(app.client.get(app.url("/sender-identity/a/b"))).await;
    assert_eq!(res.status, 404);
    assert!(res.text.starts_with("<!DOCTYPE html>"));
    let res = app.send(app.client.delete(&link)).await;
    assert_eq!(res.status, 405);
    assert!(res.text.starts_with("<!DOCTYPE html>"));
    // The real page still works.
    assert_eq!(press(&app, &link, &page, "approve").await.status, 200);
    assert_eq!(properties(&app, &org, email).await["status"], "Approved");
}

async fn link_tokens_are_never_stored_logged_or_returned(app: TestApp) {
    let org = app.new_org().await;
    let server = smtp_for(&app, &org).await;
    let email = "secret@example.com";
    approved_identity(&app, &org, &server, json!({"Name": "Secret", "Email": email})).await;
    let mails = server.wait_for(2).await;
    let tokens: Vec<String> = mails.iter().map(|m| link_in(m).rsplit_once('/').unwrap().1.to_owned()).collect();
    // The delivery log, the identity, the list and the audit log.
    let mut answers = String::new();
    for path in ["/v1/notifications?limit=500", "/v1/audit?limit=500"] {
        answers.push_str(&app.get(path, &org.token).await.text);
    }
    for n in app.get("/v1/notifications?limit=500", &org.token).await.json["items"].as_array().unwrap() {
        answers.push_str(&app.get(&format!("/v1/notifications/{}", n["id"].as_str().unwrap()), &org.token).await.text);
    }
    answers.push_str(&bs(&app, &org, Method::GET, "/v1/senderIdentities/list?Page=1", None).await.text);
    answers.push_str(&properties(&app, &org, email).await.to_string());
    let database = app.db.everything().await;
    let logs = crate::support::logs();
    for token in &tokens {
        let signature = token.split_once('.').unwrap().1;
        assert!(!answers.contains(signature), "a link's token was returned");
        assert!(!database.contains(signature), "a link's token is in the database");
        assert!(!logs.contains(signature), "a link's token was logged");
    }
    // What the database holds instead: the marker the worker replaces.
    assert!(database.contains("/sender-identity/{herald:token}"), "stored bodies carry the marker");
}

async fn every_change_is_audited(app: TestApp) {
    let org = app.new_org().await;
    let server = smtp_for(&app, &org).await;
    let email = "audit@example.com";
    approved_identity(&app, &org, &server, json!({"Name": "Audit", "Email": email})).await;
    update(&app, &org, email, json!({"Name": "Audited"})).await;
    let revoke = link_in(&server.wait_for(2).await[1]);
    follow(&app, &revoke, "revoke").await;
    bs(&app, &org, Method::POST, &format!("/v1/senderIdentities/rerequest?email={email}"), None).await;
    bs(&app, &org, Method::POST, &format!("/v1/senderIdentities/resendInvitation?email={email}"), None).await;
    bs(&app, &org, Method::DELETE, &format!("/v1/senderIdentities/delete?email={email}"), None).await;
    // Refused changes leave no row.
    bs(&app, &org, Method::POST, &format!("/v1/senderIdentities/rerequest?email={email}"), None).await;
    let log = app.get("/v1/audit?limit=500", &org.token).await.json;
    let rows: Vec<(&str, &str)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["resourceType"] == "senderIdentity")
        .map(|r| (r["action"].as_str().unwrap(), r["actor"].as_str().unwrap()))
        .collect();
    let actions: Vec<&str> = rows.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        actions,
        [
            "senderIdentity.created",
            "senderIdentity.approved",
            "senderIdentity.updated",
            "senderIdentity.revoked",
            "senderIdentity.rerequested",
            "senderIdentity.invitationResent",
            "senderIdentity.deleted",
        ],
        "{log}"
    );
    assert!(rows[0].1.starts_with("token:") && rows[1].1.starts_with("link:"), "{rows:?}");
    let ids: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["resourceType"] == "senderIdentity")
        .map(|r| r["resourceId"].as_str().unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0] && !id.is_empty()), "every row names the identity: {ids:?}");
}
