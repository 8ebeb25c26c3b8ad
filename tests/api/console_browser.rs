//! The console in a real browser (headless Chromium through chromedriver,
//! as the approval page test), on SQLite and PostgreSQL: sign in, create an
//! org and a token, configure SMTP against the test SMTP server, run the test
//! send and see its steps, post events through the API and see them on the
//! dashboard and in the log, make one fail with a 5xx and retry it from the
//! log, check that an org admin cannot reach another org's pages, sign out,
//! and find a session past its expiry refused.
//!
//! With `HERALD_UPDATE_SCREENSHOT=1` the SQLite run writes screenshots of
//! the dashboard and of a test send to `docs/console.png` and
//! `docs/console-smtp-test.png` (committed; the README shows them).

use std::time::Duration;

use fantoccini::{Client, Locator};
use herald::domain::OrgId;
use herald::domain::console::Role;
use serde_json::json;

use crate::browser::Driver;
use crate::support::console::{PASSWORD, user};
use crate::support::smtp::{Action, Mode, TestSmtp};
use crate::support::{Backend, TestApp};

on_each_backend!(an_operator_configures_tests_watches_and_repairs_delivery_in_a_browser);

/// Waits (up to 20 s) until the page's source contains `text`, reloading
/// `reload` between looks when given.
async fn wait_for_text(browser: &Client, text: &str, reload: Option<&str>) -> String {
    let mut source = String::new();
    for _ in 0..200 {
        source = browser.source().await.unwrap_or_default();
        if source.contains(text) {
            return source;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(url) = reload {
            browser.goto(url).await.unwrap();
        }
    }
    panic!("the page never showed {text:?}: {source}");
}

/// With `HERALD_UPDATE_SCREENSHOT` set, the SQLite run writes the page to `docs/<name>`.
async fn screenshot(browser: &Client, app: &TestApp, name: &str) {
    if app.backend == Backend::Sqlite && std::env::var_os("HERALD_UPDATE_SCREENSHOT").is_some() {
        let png = browser.screenshot().await.unwrap();
        std::fs::write(format!("{}/docs/{name}", env!("CARGO_MANIFEST_DIR")), png).unwrap();
    }
}

async fn fill(browser: &Client, css: &str, value: &str) {
    let field = browser.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

async fn click(browser: &Client, css: &str) {
    browser.find(Locator::Css(css)).await.unwrap().click().await.unwrap();
}

async fn sign_in(browser: &Client, app: &TestApp, email: &str) {
    browser.goto(&app.url("/console/login")).await.unwrap();
    fill(browser, "#email", email).await;
    fill(browser, "#password", PASSWORD).await;
    click(browser, "#sign-in").await;
    wait_for_text(browser, "Signed in as", None).await;
}

async fn an_operator_configures_tests_watches_and_repairs_delivery_in_a_browser(app: TestApp) {
    let Some(driver) = Driver::start().await else { return };
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let browser = driver.browser().await;
    browser.set_window_size(1100, 1300).await.unwrap();

    // Unsigned, the console sends to the sign-in page.
    browser.goto(&app.url("/console/")).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().ends_with("/console/login"));
    sign_in(&browser, &app, "ops@example.com").await;

    // An org, and a token for the API (shown once).
    click(&browser, "header a[href='/console/orgs']").await;
    fill(&browser, "#name", "Acme Travel").await;
    click(&browser, "#create-org").await;
    wait_for_text(&browser, "API tokens", None).await;
    let org_url = browser.current_url().await.unwrap();
    let org_id = org_url.path().rsplit('/').next().unwrap().to_owned();
    fill(&browser, "#token-name", "booking-service").await;
    click(&browser, "#create-token").await;
    wait_for_text(&browser, "id=\"new-token\"", None).await;
    let token = browser.find(Locator::Id("new-token")).await.unwrap().text().await.unwrap();
    assert!(token.starts_with("hrd_"), "{token}");

    // SMTP against the test server, with a password, then the test send.
    let server = TestSmtp::start(Mode::Plain).await;
    server.require_auth("mailer", "s3cret-smtp");
    click(&browser, "#smtp-link").await;
    wait_for_text(&browser, "Send a test mail", None).await;
    fill(&browser, "#host", "127.0.0.1").await;
    fill(&browser, "#port", &server.port().to_string()).await;
    click(&browser, "#security option[value=plain]").await;
    fill(&browser, "#username", "mailer").await;
    click(&browser, "#password-set").await;
    fill(&browser, "#password", "s3cret-smtp").await;
    fill(&browser, "#from_email", "noreply@acme.example").await;
    click(&browser, "#save-smtp").await;
    let page = wait_for_text(&browser, "Saved.", None).await;
    assert!(page.contains("A password is set.") && !page.contains("s3cret-smtp"));
    fill(&browser, "#to", "check@example.com").await;
    click(&browser, "#send-test").await;
    let page = wait_for_text(&browser, "id=\"steps\"", None).await;
    for step in ["connect", "auth", "sender", "recipient", "data"] {
        assert!(page.contains(&format!("data-step=\"{step}\"")), "{step}");
    }
    let outcome = browser.find(Locator::Id("test-outcome")).await.unwrap().text().await.unwrap();
    assert_eq!(outcome, "The server accepted the test mail.");
    screenshot(&browser, &app, "console-smtp-test.png").await;
    server.wait_for(1).await;

    // Events through the API: on the dashboard and in the log.
    let post = |to: &'static str, subject: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            let body = json!({"type": "message.send", "data": {"to": to, "subject": subject, "text": "Hello"}});
            let res = app.post("/v1/events", &token, body).await;
            assert_eq!(res.status, 202, "{}", res.text);
            res.json["notifications"][0]["id"].as_str().unwrap().to_owned()
        }
    };
    for to in ["ada@example.com", "grace@example.com", "linus@example.com"] {
        post(to, "Your booking is confirmed").await;
    }
    server.wait_for(4).await;
    server.script([Action::Reply("550 5.1.1 no such mailbox".into())]);
    let dead = post("nobody@example.com", "Your booking is confirmed").await;
    let dashboard = app.url("/console/");
    browser.goto(&dashboard).await.unwrap();
    let page = wait_for_text(&browser, "has dead mail", Some(&dashboard)).await;
    assert!(page.contains("3 sent") && page.contains("1 dead"), "{page}");

    let log = app.url(&format!("/console/orgs/{org_id}/log"));
    browser.goto(&log).await.unwrap();
    click(&browser, "#status option[value=dead]").await;
    click(&browser, "#filter").await;
    // The filtered page comes from the server with the choice as an
    // attribute (a click sets only the property), so this waits for it.
    let page = wait_for_text(&browser, "value=\"dead\" selected", None).await;
    assert!(page.contains("nobody@example.com"), "{page}");
    assert!(!page.contains("ada@example.com"), "the filter keeps dead mail only");
    click(&browser, &format!("a[href$='/log/{dead}']")).await;
    let page = wait_for_text(&browser, "550 5.1.1 no such mailbox", None).await;
    assert!(page.contains("id=\"retry\""));
    click(&browser, "#retry").await;
    let detail = app.url(&format!("/console/orgs/{org_id}/log/{dead}"));
    wait_for_text(&browser, "class=\"ok\">sent", Some(&detail)).await;
    server.wait_for(5).await;

    browser.goto(&dashboard).await.unwrap();
    let page = wait_for_text(&browser, "4 sent", Some(&dashboard)).await;
    assert!(!page.contains("has dead mail"), "the banner is gone once the mail is sent");
    screenshot(&browser, &app, "console.png").await;
    // On a phone-sized screen no page is wider than the screen (tables scroll
    // inside their own box).
    browser.set_window_size(390, 844).await.unwrap();
    for path in [
        "/console/".to_owned(),
        format!("/console/orgs/{org_id}"),
        format!("/console/orgs/{org_id}/smtp"),
        format!("/console/orgs/{org_id}/log"),
        format!("/console/orgs/{org_id}/log/{dead}"),
        format!("/console/orgs/{org_id}/audit"),
    ] {
        browser.goto(&app.url(&path)).await.unwrap();
        wait_for_text(&browser, "Signed in as", None).await;
        let fits =
            browser.execute("return document.documentElement.scrollWidth <= window.innerWidth;", vec![]).await.unwrap();
        assert_eq!(fits, json!(true), "{path} is wider than a phone's screen");
    }
    browser.set_window_size(1100, 1300).await.unwrap();
    click(&browser, "#logout").await;
    wait_for_text(&browser, "id=\"sign-in\"", None).await;
    browser.goto(&dashboard).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().ends_with("/console/login"), "signed out");

    // An org admin of another org sees only that one.
    let other = app.new_org().await;
    user(&app, "other@example.com", Role::OrgAdmin(OrgId::parse(&other.id).unwrap())).await;
    sign_in(&browser, &app, "other@example.com").await;
    let page = browser.source().await.unwrap();
    assert!(!page.contains("Acme Travel"), "another org is not on the dashboard");
    for path in ["", "/smtp", "/log", "/audit"] {
        browser.goto(&app.url(&format!("/console/orgs/{org_id}{path}"))).await.unwrap();
        wait_for_text(&browser, "This page does not exist, or you may not see it.", None).await;
    }
    browser.goto(&app.url(&format!("/console/orgs/{org_id}/log/{dead}"))).await.unwrap();
    let page = wait_for_text(&browser, "does not exist", None).await;
    assert!(!page.contains("nobody@example.com"));

    // A session past its expiry is refused.
    app.clock.advance(Duration::from_secs(13 * 3600));
    browser.goto(&dashboard).await.unwrap();
    wait_for_text(&browser, "id=\"sign-in\"", None).await;
    assert!(browser.current_url().await.unwrap().path().ends_with("/console/login"));
    browser.close().await.unwrap();
}
