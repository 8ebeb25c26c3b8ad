//! Helpers for sender identities (BoldSign) and their approval page: the
//! API with `X-API-KEY`, the links in received mails, and page visits the
//! way a browser makes them (cookie in, form out, no redirect following).

use mail_parser::{MessageParser, MimeHeaders};
use reqwest::Method;
use serde_json::Value;

use super::smtp::{Mode, Received, TestSmtp};
use super::{Auth, TestApp, TestOrg, TestResponse};

/// Calls a BoldSign endpoint with the org's token in `X-API-KEY`.
pub async fn bs(app: &TestApp, org: &TestOrg, method: Method, path: &str, body: Option<Value>) -> TestResponse {
    app.call(method, path, Auth::XApiKey(&org.token), body).await
}

/// Creates an identity and returns its id (asserting the 201).
pub async fn create(app: &TestApp, org: &TestOrg, body: Value) -> String {
    let res = bs(app, org, Method::POST, "/v1/senderIdentities/create", Some(body)).await;
    assert_eq!(res.status, 201, "{}", res.text);
    res.json["senderIdentityId"].as_str().expect("senderIdentityId").to_owned()
}

/// The identity as `properties?email=` shows it.
pub async fn properties(app: &TestApp, org: &TestOrg, email: &str) -> Value {
    let res = bs(app, org, Method::GET, &format!("/v1/senderIdentities/properties?email={email}"), None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    res.json
}

/// A received mail, parsed.
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// (file name, content type, bytes) of each attachment.
    pub attachments: Vec<(String, String, Vec<u8>)>,
}

pub fn parse(received: &Received) -> Mail {
    let message = MessageParser::default().parse(received.data.as_bytes()).expect("a MIME message");
    Mail {
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        html: message.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
        attachments: message
            .attachments()
            .map(|a| {
                let ct = a
                    .content_type()
                    .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
                    .unwrap_or_default();
                (a.attachment_name().unwrap_or_default().to_owned(), ct, a.contents().to_vec())
            })
            .collect(),
    }
}

/// The approval-page link in a mail's text part.
pub fn link_in(received: &Received) -> String {
    let mail = parse(received);
    mail.text
        .split_whitespace()
        .find(|w| w.contains("/sender-identity/"))
        .unwrap_or_else(|| panic!("no link in: {}", mail.text))
        .to_owned()
}

/// A test SMTP server (plain) configured as the org's server.
pub async fn smtp_for(app: &TestApp, org: &TestOrg) -> TestSmtp {
    let server = TestSmtp::start(Mode::Plain).await;
    crate::delivery::use_server(app, org, &server, herald::domain::smtp::Security::Plain, false, None).await;
    server
}

/// A page as a browser got it.
#[derive(Debug)]
pub struct Visit {
    pub status: u16,
    pub html: String,
    pub headers: reqwest::header::HeaderMap,
    /// `herald_csrf=…` from `Set-Cookie`, ready for a `Cookie` header.
    pub cookie: Option<String>,
    /// The form's hidden CSRF value.
    pub csrf: Option<String>,
}

/// A client that does not follow redirects (to see the 303 itself).
pub fn browser() -> reqwest::Client {
    super::client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

pub async fn visit(app: &TestApp, link: &str) -> Visit {
    let res = app.send(browser().get(link)).await;
    let cookie = res
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("herald_csrf="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned());
    let csrf =
        res.text.split("name=\"csrf\" value=\"").nth(1).and_then(|rest| rest.split('"').next()).map(str::to_owned);
    Visit { status: res.status, html: res.text, headers: res.headers, cookie, csrf }
}

/// Presses a button of a visited page: a same-origin form POST.
pub async fn press(app: &TestApp, link: &str, page: &Visit, action: &str) -> TestResponse {
    let csrf = page.csrf.clone().unwrap_or_default();
    let mut req = browser()
        .post(link)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", format!("http://{}", app.addr))
        .header("sec-fetch-site", "same-origin")
        .body(format!("csrf={csrf}&action={action}"));
    if let Some(cookie) = &page.cookie {
        req = req.header("cookie", cookie);
    }
    app.send(req).await
}

/// Opens `link` and presses `action` on it.
pub async fn follow(app: &TestApp, link: &str, action: &str) -> TestResponse {
    let page = visit(app, link).await;
    assert_eq!(page.status, 200, "{}", page.html);
    press(app, link, &page, action).await
}

/// Creates an identity and approves it through the mailed link; returns
/// the number of mails `server` had received by then.
pub async fn approved_identity(app: &TestApp, org: &TestOrg, server: &TestSmtp, body: Value) -> usize {
    let before = server.messages().len();
    create(app, org, body).await;
    let mails = server.wait_for(before + 1).await;
    let res = follow(app, &link_in(&mails[before]), "approve").await;
    assert!(res.status == 200 || res.status == 303, "{} {}", res.status, res.text);
    // The approval mail (with the revoke link) follows.
    server.wait_for(before + 2).await.len()
}
