//! A database outage (issue 13, finding 7a): requests that need the database
//! are answered 503 with `Retry-After` in their family's envelope, never 500,
//! `/readyz` says 503, and everything answers again once the database is back.
//!
//! The outage is real and touches this test's database only: it stops taking
//! connections (`ALLOW_CONNECTIONS false`) and the server's open connections
//! are ended, as a PostgreSQL restart ends them. The shared server keeps
//! running for everyone else.

use reqwest::Method;
use serde_json::Value;

use crate::support::{Auth, Backend, TestApp, TestResponse};

/// The database's name in a `postgres://…/NAME` URL.
pub(crate) fn database_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default()
}

/// Stops (`false`) or restarts (`true`) connections to `db`; on stop, also
/// ends the ones that are open.
pub(crate) async fn set_connections(db: &str, allowed: bool) {
    use sqlx::Connection;
    let base = crate::support::postgres_base_url().unwrap();
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS {allowed}")))
        .execute(&mut admin)
        .await
        .unwrap();
    if !allowed {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(db)
        .execute(&mut admin)
        .await
        .unwrap();
    }
    admin.close().await.unwrap();
}

struct Probe<'a> {
    family: &'static str,
    method: Method,
    path: String,
    auth: Auth<'a>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_is_503_with_retry_after_in_every_envelope() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else { return };
    let org = app.new_org().await;
    let (token, admin) = (org.token.as_str(), app.admin_token.as_str());
    let link = app.state.cipher().sign_link("sender-identity", &uuid::Uuid::now_v7().to_string());
    let probes = [
        Probe { family: "native", method: Method::GET, path: "/v1/audit".into(), auth: Auth::Bearer(token) },
        Probe {
            family: "leegality",
            method: Method::GET,
            path: "/api/v1/departments".into(),
            auth: Auth::XAuthToken(token),
        },
        Probe {
            family: "dbvisit",
            method: Method::GET,
            path: "/email-settings/show".into(),
            auth: Auth::Bearer(admin),
        },
        Probe {
            family: "zitadel",
            method: Method::GET,
            path: "/management/v1/policies/notification".into(),
            auth: Auth::Bearer(token),
        },
        Probe {
            family: "boldsign",
            method: Method::GET,
            path: "/v1/senderIdentities/list".into(),
            auth: Auth::XApiKey(token),
        },
        Probe { family: "page", method: Method::GET, path: format!("/sender-identity/{link}"), auth: Auth::None },
    ];
    for p in &probes {
        let res = app.call(p.method.clone(), &p.path, p.auth, None).await;
        assert!(res.status == 200 || (p.family == "page" && res.status == 404), "{}: {}", p.family, res.text);
    }

    let db = database_name(&app.db.url).to_owned();
    set_connections(&db, false).await;
    // Reads cached in the last 500 ms (tokens, SMTP rows: README, Storage)
    // would still answer; the outage is about what needs the database.
    app.store.forget_cached_reads();
    for p in &probes {
        let res = app.call(p.method.clone(), &p.path, p.auth, None).await;
        assert_eq!(res.status, 503, "{}: {}", p.family, res.text);
        assert_eq!(res.headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("5"), "{}", p.family);
        assert_envelope(p.family, &res);
    }
    let ready = app.call(Method::GET, "/readyz", Auth::None, None).await;
    assert_eq!(ready.status, 503, "{}", ready.text);
    assert!(ready.headers.contains_key("retry-after"));
    assert_eq!(app.call(Method::GET, "/healthz", Auth::None, None).await.status, 200);

    set_connections(&db, true).await;
    assert_eq!(app.call(Method::GET, "/readyz", Auth::None, None).await.status, 200);
    for p in &probes {
        let res = app.call(p.method.clone(), &p.path, p.auth, None).await;
        assert!(res.status == 200 || (p.family == "page" && res.status == 404), "{}: {}", p.family, res.text);
    }
}

fn assert_envelope(family: &str, res: &TestResponse) {
    let j: &Value = &res.json;
    match family {
        "native" => {
            assert_eq!(res.content_type(), "application/problem+json");
            assert_eq!(j["type"], "urn:herald:problem:unavailable");
            assert_eq!(j["status"], 503);
            assert_eq!(j["detail"], "the service is temporarily unavailable; retry later", "no cause");
        }
        "leegality" => {
            assert_eq!(j["code"], "LE_ERR_SS_503");
            assert_eq!(j["errors"][0]["message"], "Service Unavailable");
        }
        "dbvisit" => {
            assert_eq!(j["successful"], false);
            assert!(j["error"]["message"].as_str().unwrap().contains("unavailable"), "{j}");
        }
        "zitadel" => {
            assert_eq!(j["code"], 14, "UNAVAILABLE");
            assert_eq!(j["details"][0]["id"], "HERALD-UNAVAILABLE");
        }
        "boldsign" => assert!(j["error"].as_str().unwrap().contains("unavailable"), "{j}"),
        "page" => {
            assert!(res.content_type().starts_with("text/html"), "{}", res.content_type());
            assert!(res.text.contains("try again later"), "{}", res.text);
        }
        other => panic!("unknown family {other}"),
    }
}
