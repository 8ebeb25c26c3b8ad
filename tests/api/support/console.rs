//! A console visitor without a browser: keeps its cookies, sends forms with
//! the page's CSRF value and same-origin fetch metadata, and never follows
//! redirects (tests look at them).

use std::collections::HashMap;

use herald::domain::Actor;
use herald::domain::console::{self, ConsoleUser, Role};

use super::{TestApp, TestResponse};

pub const PASSWORD: &str = "correct horse battery staple";

/// Creates a console account directly through the domain (as the CLI does).
pub async fn user(app: &TestApp, email: &str, role: Role) -> ConsoleUser {
    let gate = app.state.hash_gate();
    console::create_user(&app.store, gate, &Actor::cli(), email, PASSWORD, role, app.clock.now()).await.unwrap()
}

pub struct Visitor<'a> {
    pub app: &'a TestApp,
    client: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

impl<'a> Visitor<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        let client = super::client_builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Visitor { app, client, cookies: HashMap::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep_cookies(&mut self, res: &TestResponse) {
        for v in res.headers.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> TestResponse {
        let req = self.client.get(self.app.url(path)).header("cookie", self.cookie_header());
        let res = self.app.send(req).await;
        self.keep_cookies(&res);
        res
    }

    pub fn csrf(&self) -> String {
        self.cookies.get("herald_console_csrf").cloned().unwrap_or_default()
    }

    /// Posts `fields` plus the CSRF value, as a same-origin form.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> TestResponse {
        let csrf = self.csrf();
        let mut all: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all, &[("sec-fetch-site", "same-origin")]).await
    }

    /// Posts exactly `fields` with extra headers (for CSRF tests).
    pub async fn post_raw(&mut self, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> TestResponse {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        let mut req = self
            .client
            .post(self.app.url(path))
            .header("cookie", self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self.app.send(req).await;
        self.keep_cookies(&res);
        res
    }

    /// Signs in (after loading the sign-in page for its CSRF cookie).
    pub async fn sign_in(&mut self, email: &str, password: &str) -> TestResponse {
        let page = self.get("/console/login").await;
        assert_eq!(page.status, 200, "{}", page.text);
        self.post("/console/login", &[("email", email), ("password", password)]).await
    }

    pub async fn signed_in(app: &'a TestApp, email: &str) -> Visitor<'a> {
        let mut v = Visitor::new(app);
        let res = v.sign_in(email, PASSWORD).await;
        assert_eq!(res.status, 303, "{}", res.text);
        v
    }
}

pub fn location(res: &TestResponse) -> &str {
    res.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("")
}
