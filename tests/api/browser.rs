//! The approval page in a real browser: Debian's headless Chromium, driven
//! through chromedriver (WebDriver), opens the link from the mail that
//! arrived at the test SMTP server, clicks Approve and sees the result; then
//! revokes through the second mail's link and follows the redirect to the
//! identity's RedirectUrl on another origin (which the page's CSP must allow).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages
//! `chromium`, `chromium-driver`; `.ci/run` installs them). Without them the
//! test says loudly that it was skipped, and fails under `CI`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Method;
use serde_json::json;

use crate::support::identity::{bs, create, link_in, properties, smtp_for};
use crate::support::{Backend, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, stopped when dropped.
pub(crate) struct Driver {
    child: Child,
    url: String,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// `None` (said loudly) when Chromium or chromedriver is missing.
    pub(crate) async fn start() -> Option<Driver> {
        if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
            assert!(std::env::var_os("CI").is_none(), "CI must install chromium and chromium-driver");
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: the browser test, because {CHROMIUM} or {CHROMEDRIVER} is missing \
                 (apt-get install chromium chromium-driver) ***\n"
            );
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if reqwest::get(format!("{url}/status")).await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(Driver { child, url, _profile: tempfile::tempdir().unwrap() })
    }

    /// A headless Chromium session with a fresh profile; flags as this
    /// machine's closed network wants them (no background connections).
    pub(crate) async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", self._profile.path().display()),
                ]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector).capabilities(caps).connect(&self.url).await.expect("start a Chromium session")
    }
}

/// The page's heading, once it says `expected` (up to 20 s).
async fn heading(browser: &Client, expected: &str) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        if let Ok(h1) = browser.find(Locator::Css("h1")).await {
            last = h1.text().await.unwrap_or_default();
            if last == expected {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page's heading stayed {last:?}, expected {expected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_approves_then_revokes_through_the_mailed_links() {
    let Some(driver) = Driver::start().await else { return };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let org = app.new_org().await;
    let server = smtp_for(&app, &org).await;
    let email = "luther@cubeflakes.com";
    create(&app, &org, json!({"Name": "Luther Cooper", "Email": email})).await;
    let review = link_in(&server.wait_for(1).await[0]);

    let browser = driver.browser().await;
    browser.goto(&review).await.unwrap();
    heading(&browser, "Approve this sender identity?").await;
    let source = browser.source().await.unwrap();
    assert!(source.contains("Luther Cooper") && source.contains(email), "the page names the identity");
    browser.find(Locator::Css("button[value=approve]")).await.unwrap().click().await.unwrap();
    heading(&browser, "Approved").await;
    let message = browser.find(Locator::Id("message")).await.unwrap().text().await.unwrap();
    assert!(message.contains("may now send documents on your behalf"), "{message}");
    assert_eq!(properties(&app, &org, email).await["status"], "Approved");

    // Back to the first link: it is spent, and says so.
    browser.goto(&review).await.unwrap();
    heading(&browser, "This link has already been used").await;

    // Revoke, then on to RedirectUrl: another origin (localhost, not
    // 127.0.0.1), which the page's form-action allows for this identity.
    let target = format!("http://localhost:{}/healthz", app.addr.port());
    let res = bs(
        &app,
        &org,
        Method::POST,
        &format!("/v1/senderIdentities/update?email={email}"),
        Some(json!({"redirectUrl": target})),
    )
    .await;
    assert_eq!(res.status, 204, "{}", res.text);
    let revoke = link_in(&server.wait_for(2).await[1]);
    browser.goto(&revoke).await.unwrap();
    heading(&browser, "Revoke your approval?").await;
    browser.find(Locator::Css("button[value=revoke]")).await.unwrap().click().await.unwrap();
    let target_url = url::Url::parse(&target).unwrap();
    browser.wait().at_most(Duration::from_secs(20)).for_url(&target_url).await.unwrap();
    let body = browser.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    assert_eq!(body.trim(), "ok", "the redirect target loaded");
    assert_eq!(properties(&app, &org, email).await["status"], "Revoked");
    browser.close().await.unwrap();
}
