//! The console's delivery-feedback pages (issue 18) without a browser:
//! webhook endpoints (the secret shown once, a signed test event, edit,
//! rotate, delete, the delivery log), the suppression list (add, search,
//! page, remove), alerts and alert contacts; hostile input, missing CSRF
//! values and other orgs' ids answered like unknown ones.

use herald::domain::OrgId;
use herald::domain::console::Role;
use serde_json::{Value, json};

use crate::alerts::{dead_mails, evaluate_in_a_burst};
use crate::support::console::{Visitor, location, user};
use crate::support::{TestApp, TestResponse, logs};
use crate::webhooks::{case, received, receiver, send, verify, wait_sent, wait_until};

on_each_backend!(
    an_org_admin_manages_webhooks_and_sees_each_secret_once,
    webhook_forms_refuse_hostile_input_and_other_orgs_ids,
    suppressions_are_added_searched_paged_and_removed,
    suppression_forms_refuse_hostile_input_and_stay_within_their_org,
    alert_contacts_are_set_and_alerts_listed,
);

/// A page's text with minijinja's HTML escapes undone (`/` is escaped too).
fn text(res: &TestResponse) -> String {
    res.text.replace("&#x2f;", "/").replace("&quot;", "\"").replace("&#x27;", "'").replace("&amp;", "&")
}

/// The secret a page shows once.
fn shown_secret(res: &TestResponse) -> String {
    let page = text(res);
    let start = page.find("id=\"new-secret\">").expect("the page shows a secret") + "id=\"new-secret\">".len();
    page[start..].split('<').next().unwrap().to_owned()
}

async fn org_admin<'a>(app: &'a TestApp, org: &str) -> Visitor<'a> {
    let email = format!("admin-{}@example.com", uuid::Uuid::now_v7().simple());
    user(app, &email, Role::OrgAdmin(OrgId::parse(org).unwrap())).await;
    Visitor::signed_in(app, &email).await
}

async fn webhooks_of(app: &TestApp, token: &str) -> Vec<Value> {
    let res = app.get("/v1/webhooks", token).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.json["items"].as_array().unwrap().clone()
}

async fn an_org_admin_manages_webhooks_and_sees_each_secret_once(app: TestApp) {
    crate::support::capture_logs();
    let org = app.new_org().await;
    let mut v = org_admin(&app, &org.id).await;
    let base = format!("/console/orgs/{}/webhooks", org.id);
    let (url, inbox) = receiver().await;

    // Reachable from the org's page; empty at first.
    let home = v.get(&format!("/console/orgs/{}", org.id)).await;
    assert!(home.text.contains("id=\"webhooks-link\"") && home.text.contains("id=\"alerts-link\""), "{}", home.text);
    let page = v.get(&base).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("webhooks-empty"), "{}", page.text);

    // Create: the answer shows the secret, once.
    let created = v
        .post(
            &base,
            &[("url", url.as_str()), ("description", "ops"), ("event_notification.sent", "on"), ("enabled", "on")],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let secret = shown_secret(&created);
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "{secret}");
    let list = webhooks_of(&app, &org.token).await;
    assert_eq!(list.len(), 1);
    assert_eq!((list[0]["url"].as_str(), list[0]["enabled"].as_bool()), (Some(url.as_str()), Some(true)));
    assert_eq!(list[0]["eventTypes"], json!(["notification.sent"]));
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let one = format!("{base}/{id}");
    // Every page fetched from now on is searched for the secret.
    let mut later: Vec<String> = Vec::new();

    let page = v.get(&base).await;
    assert!(text(&page).contains(&url) && page.text.contains(&format!("data-webhook=\"{id}\"")), "{}", page.text);
    later.push(text(&page));

    // A real event reaches the receiver, signed with that secret.
    let n = send(&app, &org, "ada@example.com").await;
    wait_sent(&app, &org, &n).await;
    wait_until("the webhook arrives", async || !received(&inbox).is_empty()).await;
    if let Some(verdicts) = verify(&secret, &[case(&received(&inbox)[0])]) {
        assert_eq!(verdicts, ["ok"]);
    }
    wait_until("the delivery is logged", async || {
        app.get(&format!("/v1/webhooks/{id}/messages"), &org.token).await.json["items"][0]["status"] == "delivered"
    })
    .await;

    // The endpoint's page: its form and its delivery log with the answer.
    let page = v.get(&one).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let html = text(&page);
    assert!(html.contains("data-status=\"delivered\"") && html.contains("HTTP 204"), "{html}");
    assert!(html.contains("notification.sent") && html.contains(" ms<"), "{html}");
    later.push(html);

    // The test button sends a signed webhook.test now.
    let tested = v.post(&format!("{one}/test"), &[]).await;
    assert_eq!(tested.status, 200, "{}", tested.text);
    assert!(tested.text.contains("id=\"test-outcome\"") && tested.text.contains("HTTP 204"), "{}", tested.text);
    let got = received(&inbox);
    assert_eq!(got.len(), 2);
    assert_eq!(serde_json::from_str::<Value>(&got[1].body).unwrap()["type"], "webhook.test");
    if let Some(verdicts) = verify(&secret, &[case(&got[1])]) {
        assert_eq!(verdicts, ["ok"]);
    }
    later.push(text(&tested));

    // Rotate: the new secret once; both sign during the overlap.
    let rotated = v.post(&one, &[("action", "rotate")]).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new_secret = shown_secret(&rotated);
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    assert!(!text(&rotated).contains(&secret), "the old secret is not shown again");
    let mut after_rotation: Vec<String> = Vec::new();
    let tested = v.post(&format!("{one}/test"), &[]).await;
    assert!(tested.text.contains("HTTP 204"), "{}", tested.text);
    after_rotation.push(text(&tested));
    let got = received(&inbox);
    assert_eq!(got.len(), 3);
    for s in [&secret, &new_secret] {
        if let Some(verdicts) = verify(s, &[case(&got[2])]) {
            assert_eq!(verdicts, ["ok"]);
        }
    }

    // Edit: description, events, disabled (the checkbox left out).
    let saved = v
        .post(
            &one,
            &[
                ("action", "save"),
                ("url", url.as_str()),
                ("description", "changed"),
                ("event_notification.sent", "on"),
                ("event_notification.dead", "on"),
            ],
        )
        .await;
    assert_eq!((saved.status, location(&saved)), (303, format!("{one}?done=saved").as_str()), "{}", saved.text);
    let got = app.get(&format!("/v1/webhooks/{id}"), &org.token).await.json;
    assert_eq!((got["description"].as_str(), got["enabled"].as_bool()), (Some("changed"), Some(false)), "{got}");
    assert_eq!(got["eventTypes"], json!(["notification.sent", "notification.dead"]));
    let page = v.get(&format!("{one}?done=saved")).await;
    assert!(page.text.contains("id=\"done\"") && page.text.contains(">disabled<"), "{}", page.text);
    after_rotation.push(text(&page));
    after_rotation.push(text(&v.get(&base).await));

    // Delete.
    let deleted = v.post(&one, &[("action", "delete")]).await;
    assert_eq!((deleted.status, location(&deleted)), (303, format!("{base}?done=deleted").as_str()));
    assert_eq!(app.get(&format!("/v1/webhooks/{id}"), &org.token).await.status, 404);
    assert_eq!(v.get(&one).await.status, 404);
    after_rotation.push(text(&v.get(&base).await));

    later.extend(after_rotation.iter().cloned());
    for page in &later {
        assert!(!page.contains(&secret) && !page.contains(&secret[6..]), "the first secret reached a later page");
    }
    for page in &after_rotation {
        assert!(!page.contains(&new_secret[6..]), "the rotated secret reached a later page");
    }
    for s in [&secret, &new_secret] {
        assert!(!logs().contains(&s[6..]), "a secret reached the log");
        assert!(!app.db.everything().await.contains(&s[6..]), "a secret is stored in clear");
    }
    // The changes are audited with the console user as the actor.
    let audit = app.get("/v1/audit", &org.token).await;
    let actions: Vec<(&str, &str)> = audit.json["items"]
        .as_array()
        .map(|items| {
            items.iter().map(|e| (e["action"].as_str().unwrap_or(""), e["actor"].as_str().unwrap_or(""))).collect()
        })
        .unwrap_or_default();
    for action in ["webhook.created", "webhook.updated", "webhook.deleted"] {
        assert!(
            actions.iter().any(|(a, actor)| *a == action && actor.starts_with("console:")),
            "{action}: {}",
            audit.text
        );
    }
}

async fn webhook_forms_refuse_hostile_input_and_other_orgs_ids(app: TestApp) {
    let org = app.new_org().await;
    let other = app.new_org().await;
    let mut v = org_admin(&app, &org.id).await;
    let base = format!("/console/orgs/{}/webhooks", org.id);
    let long_url = format!("https://example.com/{}", "x".repeat(3000));
    let long_text = "d".repeat(600);
    let ev = ("event_notification.sent", "on");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("url", "ftp://example.com/hook"), ev], "url: must be an absolute"),
        (vec![("url", "javascript:alert(1)"), ev], "url: must be an absolute"),
        (vec![("url", "not a url"), ev], "url: must be an absolute"),
        (vec![("url", ""), ev], "url: must be an absolute"),
        (vec![("url", "https://user:pw@example.com/hook"), ev], "must not contain credentials"),
        (vec![("url", &long_url), ev], "url: must be at most 2048"),
        (vec![("url", "https://example.com/hook"), ("description", &long_text), ev], "description: must be at most"),
        (vec![("url", "https://example.com/hook"), ("description", "a\u{0}b"), ev], "description: must be at most"),
        (vec![("url", "https://example.com/hook")], "eventTypes: must name at least one"),
        (vec![("url", "https://example.com/hook"), ("event_bogus.type", "on")], "eventTypes: must contain only"),
        (vec![("url", "https://example.com/<img src=x onerror=alert(1)>"), ("event_<script>", "on")], "eventTypes"),
    ];
    for (form, expected) in &cases {
        let res = v.post(&base, form).await;
        assert_eq!(res.status, 400, "{form:?}: {}", res.text);
        assert!(res.content_type().starts_with("text/html"));
        assert!(text(&res).contains(expected), "{expected} for {form:?}: {}", res.text);
        assert!(!res.text.contains("<img src=x") && !res.text.contains("<script>"), "escaped: {}", res.text);
        assert!(!res.text.contains("new-secret"), "{}", res.text);
    }
    // A body far over any field's size: 413 at once, and the browser still
    // sending reads it (CI once saw a reset here instead).
    let huge = "x".repeat(3 << 20);
    let res = v.post(&base, &[("url", huge.as_str()), ev]).await;
    assert_eq!(res.status, 413, "{}", res.text);
    // Without the CSRF value: refused, whatever the form says.
    let res = v.post_raw(&base, &[("url", "https://example.com/hook"), ev], &[("sec-fetch-site", "same-origin")]).await;
    assert_eq!(res.status, 403, "{}", res.text);
    assert!(webhooks_of(&app, &org.token).await.is_empty(), "nothing stored");

    // An internal address the outbound host policy does not allow: stored
    // as the API stores it (the policy is applied when sending, since DNS
    // may change), and the test send is refused with words, not a 5xx.
    let created = v
        .post(&base, &[("url", "http://10.255.255.1/hook"), ("event_notification.dead", "on"), ("enabled", "on")])
        .await;
    assert_eq!(created.status, 200, "{}", created.text);
    let mine = webhooks_of(&app, &org.token).await[0]["id"].as_str().unwrap().to_owned();
    let tested = v.post(&format!("{base}/{mine}/test"), &[]).await;
    assert_eq!(tested.status, 200, "{}", tested.text);
    assert!(tested.text.contains("class=\"bad\" id=\"test-outcome\""), "{}", tested.text);
    // The edit form refuses what the create form refuses, and keeps the endpoint.
    let res = v.post(&format!("{base}/{mine}"), &[("action", "save"), ("url", "gopher://x"), ev]).await;
    assert_eq!(res.status, 400, "{}", res.text);
    assert!(text(&res).contains("url: must be an absolute"), "{}", res.text);
    assert_eq!(app.get(&format!("/v1/webhooks/{mine}"), &org.token).await.json["url"], "http://10.255.255.1/hook");
    let res =
        v.post_raw(&format!("{base}/{mine}"), &[("action", "delete")], &[("sec-fetch-site", "same-origin")]).await;
    assert_eq!(res.status, 403, "{}", res.text);
    assert_eq!(app.get(&format!("/v1/webhooks/{mine}"), &org.token).await.status, 200, "not deleted");

    // Another org's endpoint, an unknown id, a hostile id: the same 404.
    let (url, inbox) = receiver().await;
    let theirs = crate::webhooks::create(&app, &other, &url, &["notification.sent"]).await;
    let theirs = theirs["id"].as_str().unwrap().to_owned();
    let unknown = uuid::Uuid::now_v7().to_string();
    for id in [theirs.as_str(), unknown.as_str(), "..%2F..%2Fetc", "%00", "not-an-id"] {
        let path = format!("{base}/{id}");
        assert_eq!(v.get(&path).await.status, 404, "{id}");
        for (path, form) in [
            (path.clone(), vec![("action", "save"), ("url", "https://example.com/mine"), ev]),
            (path.clone(), vec![("action", "rotate")]),
            (path.clone(), vec![("action", "delete")]),
            (format!("{path}/test"), vec![]),
        ] {
            let res = v.post(&path, &form).await;
            assert_eq!(res.status, 404, "{path} {form:?}: {}", res.text);
            assert!(res.text.contains("This page does not exist"), "{}", res.text);
        }
    }
    let their_base = format!("/console/orgs/{}/webhooks", other.id);
    assert_eq!(v.get(&their_base).await.status, 404);
    assert_eq!(v.post(&their_base, &[("url", "https://example.com/x"), ev]).await.status, 404);
    let still = app.get(&format!("/v1/webhooks/{theirs}"), &other.token).await;
    assert_eq!((still.json["url"].as_str(), still.json["enabled"].as_bool()), (Some(url.as_str()), Some(true)));
    assert_eq!(inbox.lock().unwrap().attempts, 0, "no test event to another org's endpoint");
    assert_eq!(webhooks_of(&app, &other.token).await.len(), 1);

    // Instance admins may open any org's pages.
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let mut ops = Visitor::signed_in(&app, "ops@example.com").await;
    let page = ops.get(&format!("{their_base}/{theirs}")).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(text(&page).contains(&url));
}

async fn suppressions_of(app: &TestApp, token: &str) -> Vec<String> {
    let res = app.get("/v1/suppressions?limit=500", token).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.json["items"].as_array().unwrap().iter().map(|s| s["email"].as_str().unwrap().to_owned()).collect()
}

/// The addresses a list page shows, in order.
fn listed(res: &TestResponse) -> Vec<String> {
    text(res).split("data-email=\"").skip(1).map(|r| r.split('"').next().unwrap().to_owned()).collect()
}

fn next_link(res: &TestResponse) -> Option<String> {
    let page = text(res);
    let at = page.find("id=\"next-page\"")?;
    let href = page[..at].rsplit("href=\"").next()?;
    Some(href.split('"').next()?.to_owned())
}

async fn suppressions_are_added_searched_paged_and_removed(app: TestApp) {
    let org = app.new_org().await;
    let mut v = org_admin(&app, &org.id).await;
    let base = format!("/console/orgs/{}/suppressions", org.id);
    let page = v.get(&base).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("suppressions-empty"), "{}", page.text);

    let emails = ["ada@example.com", "bob@example.com", "carol@example.org", "dan@example.com", "eve@example.net"];
    for e in emails {
        let res = v.post(&base, &[("email", e), ("detail", "asked by phone")]).await;
        assert_eq!((res.status, location(&res)), (303, format!("{base}?done=added").as_str()), "{}", res.text);
    }
    // Listing a listed address again (any case) keeps the first entry.
    let res = v.post(&base, &[("email", "ADA@example.com"), ("detail", "")]).await;
    assert_eq!((res.status, location(&res)), (303, format!("{base}?done=listed").as_str()));
    assert_eq!(suppressions_of(&app, &org.token).await, emails);
    let one = app.get("/v1/suppressions/ada@example.com", &org.token).await.json;
    assert_eq!((one["reason"].as_str(), one["detail"].as_str()), (Some("manual"), Some("asked by phone")), "{one}");

    let page = v.get(&base).await;
    assert_eq!(listed(&page), emails);
    assert!(page.text.contains("listed by hand") && page.text.contains("asked by phone"), "{}", page.text);

    // Search as the API searches: part of the address, any case.
    let found = v.get(&format!("{base}?search=EXAMPLE.COM")).await;
    assert_eq!(listed(&found), ["ada@example.com", "bob@example.com", "dan@example.com"]);
    let none = v.get(&format!("{base}?search=%25")).await;
    assert_eq!((none.status, listed(&none).len()), (200, 0), "% is a literal");
    assert!(none.text.contains("No addresses match."), "{}", none.text);

    // Pages of two, following the links; the API pages the same.
    let mut pages = Vec::new();
    let mut res = v.get(&format!("{base}?limit=2")).await;
    loop {
        assert_eq!(res.status, 200, "{}", res.text);
        pages.push(listed(&res));
        match next_link(&res) {
            Some(next) => res = v.get(&next).await,
            None => break,
        }
    }
    assert_eq!(pages, vec![emails[0..2].to_vec(), emails[2..4].to_vec(), emails[4..].to_vec()]);
    let api = app.get("/v1/suppressions?limit=2", &org.token).await;
    let cursor = api.json["nextCursor"].as_str().unwrap();
    let api2 = app.get(&format!("/v1/suppressions?limit=2&cursor={cursor}"), &org.token).await;
    assert_eq!(api2.json["items"][0]["email"], emails[2]);
    // Searching and paging together.
    let first = v.get(&format!("{base}?search=example.com&limit=2")).await;
    assert_eq!(listed(&first), ["ada@example.com", "bob@example.com"]);
    let second = v.get(&next_link(&first).unwrap()).await;
    assert_eq!(listed(&second), ["dan@example.com"]);

    // Remove one: the API agrees, and mail goes to it again.
    let res = v.post(&format!("{base}/remove"), &[("email", "Bob@Example.com")]).await;
    assert_eq!((res.status, location(&res)), (303, format!("{base}?done=removed").as_str()), "{}", res.text);
    let left = suppressions_of(&app, &org.token).await;
    assert_eq!(left, ["ada@example.com", "carol@example.org", "dan@example.com", "eve@example.net"]);
    assert_eq!(app.get("/v1/suppressions/bob@example.com", &org.token).await.status, 404);
    let page = v.get(&format!("{base}?done=removed")).await;
    assert!(page.text.contains("id=\"done\"") && !page.text.contains("bob@example.com"), "{}", page.text);

    // The changes are audited with the console user as the actor.
    let audit = app.get("/v1/audit", &org.token).await;
    assert!(audit.text.contains("suppression.added") && audit.text.contains("suppression.removed"), "{}", audit.text);
    assert!(audit.text.contains("\"console:"), "{}", audit.text);
}

async fn suppression_forms_refuse_hostile_input_and_stay_within_their_org(app: TestApp) {
    let org = app.new_org().await;
    let other = app.new_org().await;
    let mut v = org_admin(&app, &org.id).await;
    let base = format!("/console/orgs/{}/suppressions", org.id);
    let res = app.post("/v1/suppressions", &other.token, json!({"email": "theirs@example.com"})).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let long_detail = "x".repeat(1001);
    let long_email = format!("{}@example.com", "a".repeat(300));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("email", "not-an-email")], "email"),
        (vec![("email", "")], "email"),
        (vec![("email", "a@example.com\r\nBcc: b@example.com")], "email"),
        (vec![("email", &long_email)], "email"),
        (vec![("email", "<script>alert(1)</script>@example.com")], "email"),
        (vec![("email", "ok@example.com"), ("detail", &long_detail)], "detail: must be at most 1000"),
        (vec![("email", "ok@example.com"), ("detail", "a\u{7}b")], "detail: must be at most 1000"),
    ];
    for (form, expected) in &cases {
        let res = v.post(&base, form).await;
        assert_eq!(res.status, 400, "{form:?}: {}", res.text);
        assert!(res.content_type().starts_with("text/html"));
        assert!(text(&res).contains(expected), "{expected} for {form:?}: {}", res.text);
        assert!(!res.text.contains("<script>"), "escaped");
    }
    let res = v.post_raw(&base, &[("email", "csrf@example.com")], &[("sec-fetch-site", "same-origin")]).await;
    assert_eq!(res.status, 403, "{}", res.text);
    assert!(suppressions_of(&app, &org.token).await.is_empty(), "nothing stored");

    // Bad paging and search: the page says which field, never a 5xx.
    let long_search = "s".repeat(300);
    for query in ["limit=0", "limit=501", "limit=abc", "limit=-1", &format!("search={long_search}")] {
        let res = v.get(&format!("{base}?{query}")).await;
        assert_eq!(res.status, 400, "{query}: {}", res.text);
        assert!(res.text.contains("id=\"page-errors\""), "{query}: {}", res.text);
    }
    let res = v.get(&format!("{base}?cursor=%00%FF&search=%0A")).await;
    assert!(res.status < 500, "{}", res.text);

    // Another org's address is not on this list: removing it is a 404 and
    // leaves their list alone; their pages are 404 too.
    let res = v.post(&format!("{base}/remove"), &[("email", "theirs@example.com")]).await;
    assert_eq!(res.status, 404, "{}", res.text);
    let res = v.post(&format!("{base}/remove"), &[("email", "<script>")]).await;
    assert_eq!(res.status, 404, "{}", res.text);
    let their_base = format!("/console/orgs/{}/suppressions", other.id);
    assert_eq!(v.get(&their_base).await.status, 404);
    assert_eq!(v.post(&their_base, &[("email", "new@example.com")]).await.status, 404);
    assert_eq!(v.post(&format!("{their_base}/remove"), &[("email", "theirs@example.com")]).await.status, 404);
    assert_eq!(suppressions_of(&app, &other.token).await, ["theirs@example.com"]);
}

async fn alert_contacts_are_set_and_alerts_listed(app: TestApp) {
    let org = app.new_org().await;
    let other = app.new_org().await;
    let mut v = org_admin(&app, &org.id).await;
    let base = format!("/console/orgs/{}/alerts", org.id);
    let page = v.get(&base).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("no-open-alerts"), "{}", page.text);

    // Contacts: one a line (commas too); duplicates in any case dropped.
    let res = v
        .post(&format!("{base}/contacts"), &[("emails", "ops@example.com\r\nOPS@example.com, second@example.com\n\n")])
        .await;
    assert_eq!((res.status, location(&res)), (303, format!("{base}?done=saved").as_str()), "{}", res.text);
    let got = app.get("/v1/alerts/contacts", &org.token).await;
    assert_eq!(got.json["emails"], json!(["ops@example.com", "second@example.com"]), "{}", got.text);
    let page = v.get(&format!("{base}?done=saved")).await;
    assert!(page.text.contains("ops@example.com\nsecond@example.com</textarea>"), "{}", page.text);

    // Bad lists are refused with the field named; the list is unchanged.
    let many: String = (0..21).map(|i| format!("c{i}@example.com\n")).collect();
    let long = format!("{}@example.com", "a".repeat(400));
    for (emails, expected) in [
        ("ok@example.com\nnot-an-email", "emails[1]"),
        ("<script>alert(1)</script>", "emails[0]"),
        ("a@example.com\u{0}", "emails[0]"),
        (long.as_str(), "emails[0]"),
        (many.as_str(), "at most 20"),
    ] {
        let res = v.post(&format!("{base}/contacts"), &[("emails", emails)]).await;
        assert_eq!(res.status, 400, "{emails}: {}", res.text);
        assert!(text(&res).contains(expected), "{expected}: {}", res.text);
        assert!(!res.text.contains("<script>"), "escaped");
    }
    let res = v
        .post_raw(&format!("{base}/contacts"), &[("emails", "x@example.com")], &[("sec-fetch-site", "same-origin")])
        .await;
    assert_eq!(res.status, 403);
    assert_eq!(
        app.get("/v1/alerts/contacts", &org.token).await.json["emails"],
        json!(["ops@example.com", "second@example.com"])
    );

    // Emptying the list is allowed (no one is mailed).
    let res = v.post(&format!("{base}/contacts"), &[("emails", "")]).await;
    assert_eq!(res.status, 303, "{}", res.text);
    assert_eq!(app.get("/v1/alerts/contacts", &org.token).await.json["emails"], json!([]));

    // A burst of dead mail opens an alert: listed as open, then resolved.
    dead_mails(&app, &org, 12).await;
    evaluate_in_a_burst(&app).await;
    let page = v.get(&base).await;
    let open = page.text.split("id=\"open-alerts\"").nth(1).unwrap_or_default();
    assert!(open.contains("data-kind=\"dead_mail\"") && open.contains("mails went dead"), "{}", page.text);
    app.clock.advance(std::time::Duration::from_secs(2 * 3600));
    evaluate_in_a_burst(&app).await;
    let page = v.get(&base).await;
    assert!(page.text.contains("no-open-alerts"), "{}", page.text);
    let resolved = page.text.split("id=\"resolved-alerts\"").nth(1).unwrap_or_default();
    assert!(resolved.contains("data-kind=\"dead_mail\""), "{}", page.text);

    // Another org's alert pages are 404; its contacts stay as they were.
    let theirs = format!("/console/orgs/{}/alerts", other.id);
    assert_eq!(v.get(&theirs).await.status, 404);
    assert_eq!(v.post(&format!("{theirs}/contacts"), &[("emails", "evil@example.com")]).await.status, 404);
    assert_eq!(app.get("/v1/alerts/contacts", &other.token).await.json["emails"], json!([]));
    assert!(!v.get(&theirs).await.text.contains("dead_mail"));
}
