//! The operator console without a browser: sign-in, sessions, CSRF, the
//! sign-in lock, security headers, org isolation, and the pages that
//! configure, test, watch and repair delivery.

use std::time::Duration;

use herald::domain::OrgId;
use herald::domain::console::Role;
use serde_json::json;

use crate::support::console::{PASSWORD, Visitor, location, user};
use crate::support::smtp::{Action, Mode, TestSmtp};
use crate::support::{Auth, TestApp, logs};

on_each_backend!(
    sign_in_session_and_sign_out,
    a_session_past_its_expiry_is_refused,
    posts_without_csrf_or_from_another_site_change_nothing,
    twenty_wrong_passwords_lock_the_account_for_a_while,
    wrong_passwords_at_once_cannot_pass_the_account_limit_together,
    every_console_page_sends_csp_and_refuses_framing,
    org_admins_see_only_their_org,
    bad_smtp_input_shows_the_field_error_and_stores_nothing,
    configure_test_watch_and_retry_delivery,
    the_first_admin_comes_from_the_bootstrap_token,
    passwords_never_reach_a_page_a_log_or_the_database,
    instance_smtp_settings_keep_the_password_write_only,
    policy_people_and_identities_change_through_the_domain,
    one_address_may_try_only_so_often,
    successful_sign_ins_do_not_count_against_the_address,
    instance_admins_create_console_accounts,
    long_lists_link_to_a_next_page_that_opens,
);

async fn sign_in_session_and_sign_out(app: TestApp) {
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let mut v = Visitor::new(&app);
    let res = v.get("/console/").await;
    assert_eq!((res.status, location(&res)), (303, "/console/login"));

    let res = v.sign_in("ops@example.com", "wrong password, surely").await;
    assert_eq!(res.status, 401);
    assert!(res.text.contains("Wrong email or password."), "{}", res.text);
    let res = v.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(res.status, 401, "an unknown email gets the same answer");
    assert!(res.text.contains("Wrong email or password."));

    let res = v.sign_in("OPS@example.com", PASSWORD).await;
    assert_eq!((res.status, location(&res)), (303, "/console/"), "{}", res.text);
    let cookie = res.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.starts_with("herald_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/console"));
    assert!(!cookie.contains("Secure"), "the public URL is http here");
    let session = v.cookies["herald_session"].clone();

    let res = v.get("/console/").await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert!(res.text.contains("Dashboard") && res.text.contains("ops@example.com"));

    let res = v.post("/console/logout", &[]).await;
    assert_eq!((res.status, location(&res)), (303, "/console/login"));
    assert!(!v.cookies.contains_key("herald_session"));
    // The old cookie value no longer names a session.
    v.cookies.insert("herald_session".into(), session);
    let res = v.get("/console/").await;
    assert_eq!((res.status, location(&res)), (303, "/console/login"));
}

async fn a_session_past_its_expiry_is_refused(app: TestApp) {
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let mut v = Visitor::signed_in(&app, "ops@example.com").await;
    assert_eq!(v.get("/console/").await.status, 200);
    app.clock.advance(Duration::from_secs(11 * 3600));
    assert_eq!(v.get("/console/").await.status, 200, "still within 12 hours");
    app.clock.advance(Duration::from_secs(3600 + 1));
    let res = v.get("/console/orgs").await;
    assert_eq!((res.status, location(&res)), (303, "/console/login"));
}

async fn posts_without_csrf_or_from_another_site_change_nothing(app: TestApp) {
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let mut v = Visitor::signed_in(&app, "ops@example.com").await;
    let csrf = v.csrf();
    type Pairs<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Pairs, Pairs)> = vec![
        (vec![("name", "NoCsrf")], vec![]),
        (vec![("csrf", "forged-value"), ("name", "Forged")], vec![]),
        (vec![("csrf", &csrf), ("name", "CrossSite")], vec![("sec-fetch-site", "cross-site")]),
        (vec![("csrf", &csrf), ("name", "SameSite")], vec![("sec-fetch-site", "same-site")]),
        (vec![("csrf", &csrf), ("name", "Origin")], vec![("origin", "https://evil.example")]),
    ];
    for (fields, headers) in cases {
        let res = v.post_raw("/console/orgs", &fields, &headers).await;
        assert_eq!(res.status, 403, "{fields:?} {headers:?}: {}", res.text);
        assert!(res.content_type().starts_with("text/html"));
        assert!(res.text.contains("Reload the page"), "{}", res.text);
    }
    // Without the cookie, the form's value alone does not do.
    let mut stranger = Visitor::new(&app);
    stranger.cookies.insert("herald_session".into(), v.cookies["herald_session"].clone());
    let res = stranger.post_raw("/console/orgs", &[("csrf", &csrf), ("name", "NoCookie")], &[]).await;
    assert_eq!(res.status, 403);
    let orgs = app.get("/admin/v1/orgs", &app.admin_token).await;
    assert_eq!(orgs.json["orgs"].as_array().unwrap().len(), 0, "{}", orgs.text);
    // The same form with the right value goes through.
    let res = v.post("/console/orgs", &[("name", "Acme")]).await;
    assert_eq!(res.status, 303, "{}", res.text);
}

async fn twenty_wrong_passwords_lock_the_account_for_a_while(app: TestApp) {
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    user(&app, "other@example.com", Role::InstanceAdmin).await;
    let mut v = Visitor::new(&app);
    for i in 1..=20 {
        let res = v.sign_in("ops@example.com", "not the password").await;
        let expected = if i < 20 { 401 } else { 429 };
        assert_eq!(res.status, expected, "attempt {i}");
    }
    let res = v.sign_in("ops@example.com", PASSWORD).await;
    assert_eq!(res.status, 429, "locked even with the right password");
    assert!(res.text.contains("locked"), "{}", res.text);
    // Another account is not affected.
    assert_eq!(Visitor::new(&app).sign_in("other@example.com", PASSWORD).await.status, 303);
    app.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(v.sign_in("ops@example.com", PASSWORD).await.status, 303, "the lock ends");
}

/// Forty wrong passwords sent at once: each attempt is counted before its
/// password is checked, so at most twenty are checked and the account locks.
async fn wrong_passwords_at_once_cannot_pass_the_account_limit_together(app: TestApp) {
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let tries = (0..40).map(|_| async {
        let mut v = Visitor::new(&app);
        v.sign_in("ops@example.com", "not the password").await.status
    });
    let statuses = futures::future::join_all(tries).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(checked < 20, "{checked} wrong passwords were checked: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    let res = Visitor::new(&app).sign_in("ops@example.com", PASSWORD).await;
    assert_eq!(res.status, 429, "locked even with the right password");
}

async fn every_console_page_sends_csp_and_refuses_framing(app: TestApp) {
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let org = app.new_org().await;
    let mut v = Visitor::signed_in(&app, "ops@example.com").await;
    let pages = [
        "/console/login".to_owned(),
        "/console/".into(),
        "/console/orgs".into(),
        format!("/console/orgs/{}", org.id),
        format!("/console/orgs/{}/smtp", org.id),
        format!("/console/orgs/{}/log", org.id),
        format!("/console/orgs/{}/log?status=bogus", org.id),
        format!("/console/orgs/{}/log/{}", org.id, uuid::Uuid::now_v7()),
        format!("/console/orgs/{}/audit", org.id),
        format!("/console/orgs/{}/policy", org.id),
        format!("/console/orgs/{}/people?q=%25&page=x", org.id),
        format!("/console/orgs/{}/identities", org.id),
        format!("/console/orgs/{}/providers", org.id),
        format!("/console/orgs/{}/webhooks", org.id),
        format!("/console/orgs/{}/webhooks/{}", org.id, uuid::Uuid::now_v7()),
        format!("/console/orgs/{}/suppressions?search=%25&limit=2", org.id),
        format!("/console/orgs/{}/suppressions?limit=0", org.id),
        format!("/console/orgs/{}/alerts", org.id),
        "/console/audit".into(),
        "/console/smtp".into(),
        "/console/users".into(),
        "/console/no-such-page".into(),
        format!("/console/orgs/{}", uuid::Uuid::now_v7()),
    ];
    for path in pages {
        let res = v.get(&path).await;
        assert!(res.status < 500, "{path}: {}", res.status);
        assert!(res.content_type().starts_with("text/html"), "{path}");
        assert!(res.text.starts_with("<!DOCTYPE html>"), "{path}: {}", res.text);
        let csp = res.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"), "{path}: {csp}");
        let nonce = csp.split("'nonce-").nth(1).and_then(|r| r.split('\'').next()).unwrap();
        assert!(res.text.contains(&format!("<style nonce=\"{nonce}\">")), "{path}");
        assert!(!res.text.contains("<script") && !res.text.contains(" onclick="), "{path}");
        assert_eq!(res.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(res.headers["cache-control"], "no-store", "{path}");
    }
}

async fn org_admins_see_only_their_org(app: TestApp) {
    let own = app.new_org().await;
    let other = app.new_org().await;
    let own_id = OrgId::parse(&own.id).unwrap();
    user(&app, "acme@example.com", Role::OrgAdmin(own_id)).await;
    let mut v = Visitor::signed_in(&app, "acme@example.com").await;
    let board = v.get("/console/").await;
    assert_eq!(board.status, 200);
    assert!(board.text.contains(&own.id) && !board.text.contains(&other.id), "the dashboard shows its org only");
    for page in ["", "/smtp", "/log", "/audit", "/policy", "/people", "/identities"] {
        assert_eq!(v.get(&format!("/console/orgs/{}{page}", own.id)).await.status, 200, "{page}");
        let res = v.get(&format!("/console/orgs/{}{page}", other.id)).await;
        assert_eq!(res.status, 404, "{page}");
        assert!(res.content_type().starts_with("text/html") && res.text.contains("does not exist"));
    }
    for page in ["/console/orgs", "/console/audit", "/console/smtp", "/console/users"] {
        assert_eq!(v.get(page).await.status, 404, "{page}: instance admins only");
    }
    let res = v.post(&format!("/console/orgs/{}/smtp", other.id), &[("host", "smtp.example.com")]).await;
    assert_eq!(res.status, 404);
    let res = v.post(&format!("/console/orgs/{}/tokens", own.id), &[("name", "x")]).await;
    assert_eq!(res.status, 404, "tokens are for instance admins");
    let res = v.post("/console/orgs", &[("name", "Mine")]).await;
    assert_eq!(res.status, 404);
}

async fn bad_smtp_input_shows_the_field_error_and_stores_nothing(app: TestApp) {
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let org = app.new_org().await;
    let mut v = Visitor::signed_in(&app, "ops@example.com").await;
    let path = format!("/console/orgs/{}/smtp", org.id);
    let res = v
        .post(
            &path,
            &[
                ("enabled", "on"),
                ("host", "bad host!"),
                ("port", "99999"),
                ("security", "starttls"),
                ("from_email", "not-an-address"),
                ("password_action", "set"),
                ("password", "canary-pw-1\r\nRSET"),
            ],
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.text);
    for msg in
        ["Host must be a valid hostname", "Port must be a number", "From email must be a valid email", "Password"]
    {
        assert!(res.text.contains(msg), "{msg}: {}", res.text);
    }
    assert!(res.text.contains("value=\"bad host!\""), "the form keeps what was typed");
    assert!(!res.text.contains("canary-pw-1"), "never the password");
    let stored =
        app.call(reqwest::Method::GET, "/api/v1/notification-config", Auth::XAuthToken(&org.token), None).await;
    assert_eq!(stored.status, 404, "nothing stored: {}", stored.text);
    let res = v.post(&format!("/console/orgs/{}/orgs", org.id), &[]).await;
    assert_eq!(res.status, 404);
    let bad_org = v.post("/console/orgs", &[("name", "   ")]).await;
    assert_eq!(bad_org.status, 400);
    assert!(bad_org.text.contains("must not be empty"), "{}", bad_org.text);
    let log = app.get("/v1/audit?limit=500", &org.token).await;
    assert_eq!(log.json["items"].as_array().unwrap().len(), 2, "org.created and token.created only: {}", log.text);
}

async fn configure_test_watch_and_retry_delivery(app: TestApp) {
    let admin = user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let mut v = Visitor::signed_in(&app, "ops@example.com").await;
    let res = v.post("/console/orgs", &[("name", "Acme")]).await;
    assert_eq!(res.status, 303, "{}", res.text);
    let org_page = location(&res).to_owned();
    let org_id = org_page.rsplit('/').next().unwrap().to_owned();
    let res = v.post(&format!("{org_page}/tokens"), &[("name", "billing")]).await;
    assert_eq!(res.status, 201, "{}", res.text);
    let token = res.text.split("id=\"new-token\">").nth(1).unwrap().split('<').next().unwrap().to_owned();
    assert!(token.starts_with("hrd_"), "{token}");
    let again = v.get(&org_page).await;
    assert!(!again.text.contains(&token), "a token is shown once");
    let board = v.get("/console/").await;
    assert!(board.text.contains("has no SMTP server"), "the red banner: {}", board.text);

    let server = TestSmtp::start(Mode::Plain).await;
    server.require_auth("mailer", "s3cret-smtp");
    let port = server.port().to_string();
    let res = v
        .post(
            &format!("{org_page}/smtp"),
            &[
                ("enabled", "on"),
                ("host", "127.0.0.1"),
                ("port", &port),
                ("security", "plain"),
                ("username", "mailer"),
                ("password_action", "set"),
                ("password", "s3cret-smtp"),
                ("from_email", "noreply@acme.example"),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text);
    let page = v.get(&format!("{org_page}/smtp")).await;
    assert!(page.text.contains("A password is set.") && !page.text.contains("s3cret-smtp"), "{}", page.text);

    let res = v.post(&format!("{org_page}/smtp/test"), &[("to", "check@example.com")]).await;
    assert_eq!(res.status, 200, "{}", res.text);
    for step in ["connect", "auth", "sender", "recipient", "data"] {
        assert!(res.text.contains(&format!("data-step=\"{step}\"")), "{step}: {}", res.text);
    }
    assert!(res.text.contains("The server accepted the test mail.") && res.text.contains("250"), "{}", res.text);
    // Each step shows the server's reply to it (as the test server words them).
    for reply in ["250 localhost", "2.1.0 ok", "2.1.5 ok", "queued as"] {
        assert!(res.text.contains(reply), "{reply}: {}", res.text);
    }
    server.wait_for(1).await;

    // Events through the API show up on the dashboard and in the log.
    let send = |to: &'static str| {
        let token = token.clone();
        let app = &app;
        async move {
            let body = json!({"type": "message.send", "data": {"to": to, "subject": "Hi", "text": "Hello"}});
            let res = app.post("/v1/events", &token, body).await;
            assert_eq!(res.status, 202, "{}", res.text);
            res.json["notifications"][0]["id"].as_str().unwrap().to_owned()
        }
    };
    send("ada@example.com").await;
    server.wait_for(2).await;
    server.script([Action::Reply("550 5.1.1 no such mailbox".into())]);
    let dead = send("nobody@example.com").await;
    let detail = format!("{org_page}/log/{dead}");
    let mut page = v.get(&detail).await;
    for _ in 0..200 {
        if page.text.contains("id=\"retry\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        page = v.get(&detail).await;
    }
    assert!(page.text.contains("550 5.1.1 no such mailbox"), "{}", page.text);
    let log = v.get(&format!("{org_page}/log?status=dead")).await;
    assert!(log.text.contains("nobody@example.com") && !log.text.contains("ada@example.com"), "{}", log.text);
    let log = v.get(&format!("{org_page}/log?to=ADA")).await;
    assert!(log.text.contains("ada@example.com") && !log.text.contains("nobody@example.com"), "{}", log.text);
    let log = v.get(&format!("{org_page}/log?until=2000-01-01T00:00")).await;
    assert!(log.text.contains("No notifications match."), "{}", log.text);
    let board = v.get("/console/").await;
    assert!(board.text.contains("has dead mail"), "{}", board.text);
    // The test mail is no delivery attempt: one mail sent, one dead.
    let last_hour = board.text.split("id=\"last-hour\">").nth(1).unwrap().split("</p>").next().unwrap();
    assert!(last_hour.contains(">1 sent<") && last_hour.contains(">1 dead<"), "{last_hour}");
    assert!(board.text.contains("<title>") && board.text.contains("1 sent, 0 retrying, 1 dead"), "the chart's bar");

    let res = v.post(&format!("{detail}/retry"), &[]).await;
    assert_eq!((res.status, location(&res)), (303, detail.as_str()));
    server.wait_for(3).await;
    let mut page = v.get(&detail).await;
    for _ in 0..200 {
        if page.text.contains("id=\"status\" class=\"ok\">sent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        page = v.get(&detail).await;
    }
    assert!(page.text.contains("id=\"status\" class=\"ok\">sent"), "{}", page.text);
    let res = v.post(&format!("{detail}/retry"), &[]).await;
    assert_eq!(res.status, 400, "only dead mail is retried");
    assert!(res.text.contains("only a dead notification can be retried"));

    // Every change is in the audit log, by this console user.
    let audit = v.get(&format!("{org_page}/audit")).await;
    let actor = format!("console:{}", admin.id);
    for action in ["org.created", "token.created", "smtp_config.created", "notification.retried"] {
        let row = audit.text.split("<tr>").find(|r| r.contains(&format!("<td>{action}</td>"))).unwrap_or("");
        assert!(row.contains(&actor), "{action}: {}", audit.text);
    }
    let api_log = app.get("/v1/audit?limit=500", &token).await;
    assert!(api_log.text.contains(&org_id));
}

async fn the_first_admin_comes_from_the_bootstrap_token(app: TestApp) {
    let mut v = Visitor::new(&app);
    let res = v.get("/console/login").await;
    assert_eq!((res.status, location(&res)), (303, "/console/setup"));
    let page = v.get("/console/setup").await;
    assert_eq!(page.status, 200);
    let res = v
        .post(
            "/console/setup",
            &[("token", "hrd_wrong00000000000000000000000000"), ("email", "a@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status, 401);
    let org = app.new_org().await;
    let res =
        v.post("/console/setup", &[("token", &org.token), ("email", "a@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(res.status, 401, "an org token is not enough");
    let res = v
        .post("/console/setup", &[("token", &app.admin_token), ("email", "a@example.com"), ("password", "short")])
        .await;
    assert_eq!(res.status, 400);
    assert!(res.text.contains("at least 12 characters"));
    let res = v
        .post("/console/setup", &[("token", &app.admin_token), ("email", "a@example.com"), ("password", PASSWORD)])
        .await;
    assert_eq!((res.status, location(&res)), (303, "/console/login"), "{}", res.text);
    // Once an account exists, the form is gone.
    let res = v
        .post("/console/setup", &[("token", &app.admin_token), ("email", "b@example.com"), ("password", PASSWORD)])
        .await;
    assert_eq!(res.status, 303);
    assert_eq!(location(&v.get("/console/setup").await), "/console/login");
    assert_eq!(Visitor::new(&app).sign_in("b@example.com", PASSWORD).await.status, 401);
    let mut v = Visitor::signed_in(&app, "a@example.com").await;
    let audit = v.get("/console/audit").await;
    assert!(
        audit.text.contains("console_user.created") && audit.text.contains("env:HERALD_ADMIN_TOKEN"),
        "{}",
        audit.text
    );
}

async fn passwords_never_reach_a_page_a_log_or_the_database(app: TestApp) {
    let canary = "canary-console-5d1f9e";
    herald::domain::console::create_user(
        &app.store,
        app.state.hash_gate(),
        &herald::domain::Actor::cli(),
        "ops@example.com",
        canary,
        Role::InstanceAdmin,
        app.clock.now(),
    )
    .await
    .unwrap();
    let mut v = Visitor::new(&app);
    let mut pages = vec![v.sign_in("ops@example.com", &format!("{canary}-wrong")).await];
    pages.push(v.sign_in("ops@example.com", canary).await);
    let org = app.new_org().await;
    let smtp_canary = "canary-smtp-77ab01";
    pages.push(
        v.post(
            &format!("/console/orgs/{}/smtp", org.id),
            &[
                ("host", "smtp.example.com"),
                ("security", "starttls"),
                ("password_action", "set"),
                ("password", smtp_canary),
            ],
        )
        .await,
    );
    pages.push(v.get(&format!("/console/orgs/{}/smtp", org.id)).await);
    pages.push(v.get(&format!("/console/orgs/{}/audit", org.id)).await);
    pages.push(v.get("/console/audit").await);
    for page in &pages {
        assert!(!page.text.contains(canary) && !page.text.contains(smtp_canary), "{}", page.text);
    }
    let logs = logs();
    assert!(!logs.contains(canary) && !logs.contains(smtp_canary), "a password reached the log");
    let db = app.db.everything().await;
    assert!(!db.contains(canary) && !db.contains(smtp_canary), "a password is stored in clear");
    assert!(db.contains("$argon2id$"), "the hash is argon2id");
}

/// `herald console-user create`: the password from the environment or stdin,
/// never a flag; the account then signs in to a server on that database.
async fn console_user_create_from_the_command_line(backend: crate::support::Backend) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let Some(db) = crate::support::TestDb::new(backend).await else { return };
    let herald = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_herald"));
        c.env("HERALD_DATABASE_URL", &db.url).env_remove("HERALD_CONSOLE_PASSWORD");
        c
    };
    let out = herald()
        .args(["console-user", "create", "--admin", "--email", "root@example.com"])
        .env("HERALD_CONSOLE_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((json["email"].as_str(), json["instanceAdmin"].as_bool()), (Some("root@example.com"), Some(true)));

    let org = herald().args(["org", "create", "Acme"]).output().unwrap();
    let org: serde_json::Value = serde_json::from_slice(&org.stdout).unwrap();
    let org_id = org["id"].as_str().unwrap();
    let mut child = herald()
        .args(["console-user", "create", "--org", org_id, "--email", "acme@example.com"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains(PASSWORD));

    let out = herald()
        .args(["console-user", "create", "--admin", "--email", "x@example.com", "--password", "p"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "there is no password flag");
    let out = herald()
        .args(["console-user", "create", "--admin", "--email", "root@example.com"])
        .env("HERALD_CONSOLE_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the email is taken");
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists"), "{}", String::from_utf8_lossy(&out.stderr));

    let app = TestApp::spawn_on(backend, db).await;
    let mut v = Visitor::signed_in(&app, "acme@example.com").await;
    assert_eq!(v.get(&format!("/console/orgs/{org_id}")).await.status, 200);
    Visitor::signed_in(&app, "root@example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_user_create_on_sqlite() {
    console_user_create_from_the_command_line(crate::support::Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_user_create_on_postgres() {
    console_user_create_from_the_command_line(crate::support::Backend::Postgres).await;
}

async fn instance_smtp_settings_keep_the_password_write_only(app: TestApp) {
    let admin = user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let mut v = Visitor::signed_in(&app, "ops@example.com").await;
    let canary = "canary-instance-smtp-3e9a";
    let form = |action: &'static str, password: &'static str| {
        vec![
            ("host", "relay.example.com"),
            ("port", ""),
            ("security", "tls"),
            ("username", "relay"),
            ("password_action", action),
            ("password", password),
            ("from_email", "herald@example.com"),
        ]
    };
    let res = v.post("/console/smtp", &form("set", canary)).await;
    assert_eq!((res.status, location(&res)), (303, "/console/smtp?saved=1"), "{}", res.text);
    let shown = app.get("/email-settings/show", &app.admin_token).await;
    assert_eq!(shown.json["result"]["smtp_host"], "relay.example.com", "{}", shown.text);
    assert_eq!(shown.json["result"]["encryption"], "TLS");
    assert_eq!(shown.json["result"]["password_set"], true);
    let page = v.get("/console/smtp?saved=1").await;
    assert!(page.text.contains("Saved.") && page.text.contains("A password is set."), "{}", page.text);
    assert!(!page.text.contains(canary));
    // Keep keeps it, clear clears it.
    assert_eq!(v.post("/console/smtp", &form("keep", "")).await.status, 303);
    assert_eq!(app.get("/email-settings/show", &app.admin_token).await.json["result"]["password_set"], true);
    assert_eq!(v.post("/console/smtp", &form("clear", "")).await.status, 303);
    assert_eq!(app.get("/email-settings/show", &app.admin_token).await.json["result"]["password_set"], false);
    let res = v.post("/console/smtp", &[("host", ""), ("security", "tls")]).await;
    assert_eq!(res.status, 400);
    assert!(res.text.contains("Host is required"), "{}", res.text);
    let audit = v.get("/console/audit").await;
    assert!(audit.text.contains("instance_smtp.edited") && audit.text.contains(&format!("console:{}", admin.id)));
    assert!(!audit.text.contains(canary) && !logs().contains(canary));
}

async fn policy_people_and_identities_change_through_the_domain(app: TestApp) {
    let admin = user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let org = app.new_org().await;
    let mut v = Visitor::signed_in(&app, "ops@example.com").await;
    let base = format!("/console/orgs/{}", org.id);

    // Policy: the org's own, then back to the default.
    let page = v.get(&format!("{base}/policy")).await;
    assert!(page.text.contains("follows the instance default") && page.text.contains(" checked"), "{}", page.text);
    assert_eq!(v.post(&format!("{base}/policy"), &[("action", "save")]).await.status, 303);
    let p = zitadel(&app, &org.id).await;
    assert_eq!(
        (p.json["policy"]["passwordChange"].as_bool(), p.json["policy"]["isDefault"].as_bool()),
        (Some(false), Some(false)),
        "{}",
        p.text
    );
    assert_eq!(v.post(&format!("{base}/policy"), &[("action", "save")]).await.status, 303, "unchanged is no error");
    assert_eq!(v.post(&format!("{base}/policy"), &[("action", "reset")]).await.status, 303);
    assert_eq!(zitadel(&app, &org.id).await.json["policy"]["isDefault"], true);

    // Departments and users.
    assert_eq!(v.post(&format!("{base}/departments"), &[("name", "Sales")]).await.status, 303);
    let dup = v.post(&format!("{base}/departments"), &[("name", "SALES")]).await;
    assert_eq!(dup.status, 400);
    assert!(dup.text.contains("a department with this name exists"), "{}", dup.text);
    let depts = app.call(reqwest::Method::GET, "/api/v1/departments", Auth::XAuthToken(&org.token), None).await;
    let dept_id = depts.text.split("\"id\":\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let bad = v.post(&format!("{base}/users"), &[("name", ""), ("email", "nope"), ("department", &dept_id)]).await;
    assert_eq!(bad.status, 400);
    assert!(bad.text.contains("Name is required") && bad.text.contains("Email must be a valid email"), "{}", bad.text);
    let res = v
        .post(
            &format!("{base}/users"),
            &[("name", "Ada Lovelace"), ("email", "ada@example.com"), ("locale", "DE"), ("department", &dept_id)],
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.text);
    let page = v.get(&format!("{base}/people?q=ADA")).await;
    assert!(page.text.contains("Ada Lovelace") && page.text.contains("<td>Sales</td>"), "{}", page.text);
    let user_id = page.text.split("name=\"delete\" value=\"").nth(2).unwrap().split('"').next().unwrap().to_owned();
    assert_eq!(v.post(&format!("{base}/users"), &[("delete", &user_id)]).await.status, 303);
    assert!(!v.get(&format!("{base}/people")).await.text.contains("Ada Lovelace"));

    // Sender identities: create (its owner is mailed), resend.
    let bad = v.post(&format!("{base}/identities"), &[("name", "Luther"), ("email", "not an address")]).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let res =
        v.post(&format!("{base}/identities"), &[("name", "Luther Cooper"), ("email", "luther@example.com")]).await;
    assert_eq!(res.status, 303, "{}", res.text);
    let page = v.get(&format!("{base}/identities")).await;
    assert!(page.text.contains("data-status=\"Pending\"") && page.text.contains("name=\"resend\""), "{}", page.text);
    assert_eq!(v.post(&format!("{base}/identities"), &[("resend", "luther@example.com")]).await.status, 303);
    let res = v.post(&format!("{base}/identities"), &[("rerequest", "luther@example.com")]).await;
    assert_eq!(res.status, 400, "a Pending identity cannot be requested again");
    assert!(res.text.contains("Only a Denied or Revoked"), "{}", res.text);

    let audit = app.get("/v1/audit?limit=500", &org.token).await;
    let actor = format!("console:{}", admin.id);
    for action in [
        "notification_policy.added",
        "notification_policy.removed",
        "department.created",
        "user.created",
        "user.deleted",
        "senderIdentity.created",
        "senderIdentity.invitationResent",
    ] {
        let row = audit.json["items"].as_array().unwrap().iter().find(|i| i["action"] == action);
        assert_eq!(row.map(|r| r["actor"].as_str().unwrap()), Some(actor.as_str()), "{action}: {}", audit.text);
    }
}

async fn zitadel(app: &TestApp, org: &str) -> crate::support::TestResponse {
    let req = app
        .client
        .get(app.url("/management/v1/policies/notification"))
        .bearer_auth(&app.admin_token)
        .header("x-zitadel-orgid", org);
    app.send(req).await
}

async fn one_address_may_try_only_so_often(app: TestApp) {
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let mut v = Visitor::new(&app);
    // Fifty attempts from one address, each on another (unknown) account.
    for i in 0..50 {
        assert_eq!(v.sign_in(&format!("guess{i}@example.com"), "guess").await.status, 401, "attempt {i}");
    }
    let res = v.sign_in("ops@example.com", PASSWORD).await;
    assert_eq!(res.status, 429, "the address is over its limit, whatever the account");
    app.clock.advance(Duration::from_secs(5 * 60));
    assert_eq!(v.sign_in("ops@example.com", PASSWORD).await.status, 303, "the window has passed");
}

async fn successful_sign_ins_do_not_count_against_the_address(app: TestApp) {
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    // More than the address's limit, all from 127.0.0.1: never refused.
    for i in 0..60 {
        let res = Visitor::new(&app).sign_in("ops@example.com", PASSWORD).await;
        assert_eq!(res.status, 303, "sign-in {i}: {}", res.text);
    }
    // Failures still count (each on another, unknown, account).
    let mut v = Visitor::new(&app);
    for i in 0..50 {
        assert_eq!(v.sign_in(&format!("guess{i}@example.com"), "guess").await.status, 401, "attempt {i}");
    }
    assert_eq!(v.sign_in("ops@example.com", PASSWORD).await.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_beyond_the_hashing_limit_are_turned_away() {
    let db = crate::support::TestDb::new(crate::support::Backend::Sqlite).await.unwrap();
    let app = TestApp::spawn_with(crate::support::Backend::Sqlite, db, |c| {
        c.console.hash_permits = 1;
        c.console.hash_wait = Duration::ZERO;
    })
    .await;
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    // Another sign-in holds the one turn to hash.
    let turn = app.state.hash_gate().enter().await.unwrap();
    let mut v = Visitor::new(&app);
    let res = v.sign_in("ops@example.com", PASSWORD).await;
    assert_eq!(res.status, 429, "{}", res.text);
    assert_eq!(res.headers["retry-after"], "5");
    assert!(res.content_type().starts_with("text/html"), "{}", res.content_type());
    assert!(res.text.contains("Too many sign-ins at once"), "{}", res.text);
    // Once the turn is free, the same sign-in goes through.
    drop(turn);
    assert_eq!(v.sign_in("ops@example.com", PASSWORD).await.status, 303);
    // Creating an account is turned away the same way.
    let _turn = app.state.hash_gate().enter().await.unwrap();
    let res =
        v.post("/console/users", &[("role", "instance"), ("email", "b@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(res.status, 429, "{}", res.text);
    assert_eq!(res.headers["retry-after"], "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let db = crate::support::TestDb::new(crate::support::Backend::Sqlite).await.unwrap();
    let app = TestApp::spawn_with(crate::support::Backend::Sqlite, db, |c| {
        c.delivery.public_url = Some("https://herald.example".into());
    })
    .await;
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let mut v = Visitor::new(&app);
    let page = v.get("/console/login").await;
    let csrf = page.headers["set-cookie"].to_str().unwrap();
    assert!(csrf.starts_with("herald_console_csrf=") && csrf.ends_with("; Secure"), "{csrf}");
    let res = v.sign_in("ops@example.com", PASSWORD).await;
    let session = res.headers["set-cookie"].to_str().unwrap();
    assert!(session.contains("HttpOnly; SameSite=Strict; Secure"), "{session}");
}

async fn instance_admins_create_console_accounts(app: TestApp) {
    let admin = user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let org = app.new_org().await;
    let mut v = Visitor::signed_in(&app, "ops@example.com").await;
    let res =
        v.post("/console/users", &[("email", "acme@example.com"), ("password", "short"), ("role", &org.id)]).await;
    assert_eq!(res.status, 400);
    assert!(res.text.contains("at least 12 characters"), "{}", res.text);
    let res =
        v.post("/console/users", &[("email", "acme@example.com"), ("password", PASSWORD), ("role", "nope")]).await;
    assert_eq!(res.status, 400);
    let missing = uuid::Uuid::now_v7().to_string();
    let res =
        v.post("/console/users", &[("email", "acme@example.com"), ("password", PASSWORD), ("role", &missing)]).await;
    assert_eq!(res.status, 400);
    assert!(res.text.contains("no such organisation"));
    let res =
        v.post("/console/users", &[("email", "acme@example.com"), ("password", PASSWORD), ("role", &org.id)]).await;
    assert_eq!((res.status, location(&res)), (303, "/console/users"), "{}", res.text);
    let res =
        v.post("/console/users", &[("email", "ACME@example.com"), ("password", PASSWORD), ("role", "instance")]).await;
    assert_eq!(res.status, 400, "the email is taken, in any case");
    let page = v.get("/console/users").await;
    assert!(page.text.contains("acme@example.com") && !page.text.contains(PASSWORD), "{}", page.text);
    // The new org admin signs in and sees that org.
    let mut acme = Visitor::signed_in(&app, "acme@example.com").await;
    assert_eq!(acme.get(&format!("/console/orgs/{}", org.id)).await.status, 200);
    let audit = app.get("/v1/audit?limit=500", &org.token).await;
    let row = audit.json["items"].as_array().unwrap().iter().find(|i| i["action"] == "console_user.created").cloned();
    assert_eq!(row.map(|r| r["actor"].clone()), Some(json!(format!("console:{}", admin.id))), "{}", audit.text);
}

/// The delivery log and the people page show 50 rows and link to the next
/// page; the links are built with the templates' `urlencode` filter, which
/// minijinja builds only with its `urlencode` feature (without it these
/// pages failed as soon as a next page existed).
async fn long_lists_link_to_a_next_page_that_opens(app: TestApp) {
    user(&app, "ops@example.com", Role::InstanceAdmin).await;
    let org = app.new_org().await;
    for n in 0..51 {
        let to = format!("p{n}@example.com");
        let body = json!({"type": "message.send", "data": {"to": &to, "subject": "Hi", "text": "Hello"}});
        let res = app.post("/v1/events", &org.token, body).await;
        assert_eq!(res.status, 202, "{}", res.text);
        let body = json!({ "name": format!("Person {n}"), "email": &to, "departmentIds": [] });
        let res = app.call(reqwest::Method::POST, "/api/v1/users", Auth::XAuthToken(&org.token), Some(body)).await;
        assert_eq!(res.status, 200, "{}", res.text);
    }
    let mut v = Visitor::signed_in(&app, "ops@example.com").await;
    let pages = [
        (format!("/console/orgs/{}/log?to=example.com&status=", org.id), "before="),
        (format!("/console/orgs/{}/people?q=Person%20%26", org.id), "page=2"),
        (format!("/console/orgs/{}/people?q=Person", org.id), "page=2"),
    ];
    for (page, marker) in pages {
        let first = v.get(&page).await;
        assert_eq!(first.status, 200, "{page}: {}", first.text);
        let Some(next) =
            first.text.split("href=\"").map(|h| h.split('"').next().unwrap_or_default()).find(|h| h.contains(marker))
        else {
            // A search for "Person &" finds nobody: no next page.
            assert!(page.contains("%26"), "{page}: no link to the next page: {}", first.text);
            continue;
        };
        let next = next.replace("&amp;", "&");
        let next = if next.starts_with('?') { format!("{}{next}", page.split('?').next().unwrap()) } else { next };
        let second = v.get(&next).await;
        assert_eq!(second.status, 200, "{next}: {}", second.text);
        assert!(
            second.text.contains("p0@example.com") != first.text.contains("p0@example.com"),
            "{next} is the other page"
        );
    }
}
