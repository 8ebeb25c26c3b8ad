//! A SQLite database made by the previous release keeps working: that
//! release (a21342d) migrated and wrote through sqlx's SQLite driver with
//! `synchronous = NORMAL`; this one reads and writes on rusqlite and still
//! migrates through sqlx, so the `_sqlx_migrations` history goes on.

use std::str::FromStr;

use serde_json::json;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};

use crate::support::{Backend, TestApp, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_the_previous_release_opens_migrates_and_keeps_working() {
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    // The previous release's migrations, as it ran them, and rows as it wrote them.
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-a21342d/migrations");
    let old = sqlx::migrate::Migrator::new(fixture).await.unwrap();
    let options = SqliteConnectOptions::from_str(&db.url)
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true);
    let mut c = SqliteConnection::connect_with(&options).await.unwrap();
    old.run(&mut c).await.unwrap();
    let digest = herald::domain::tokens::digest("old-release-token");
    let org = uuid::Uuid::now_v7().to_string();
    for (sql, binds) in [
        ("INSERT INTO orgs (id, name, seq, created_at) VALUES ($1, 'Old', 1, 1000)", vec![org.as_str()]),
        (
            "INSERT INTO tokens (id, org_id, name, digest, created_at) VALUES ('tok-old', $1, 't', $2, 1000)",
            vec![org.as_str(), digest.as_str()],
        ),
        (
            "INSERT INTO audit_log VALUES ($1, 1, 1000, 'env:HERALD_ADMIN_TOKEN', 'org.created', 'org', $1, '{}')",
            vec![org.as_str()],
        ),
    ] {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = q.bind(b);
        }
        q.execute(&mut c).await.unwrap();
    }
    c.close().await.unwrap();

    let app = TestApp::spawn_with(Backend::Sqlite, db, |_| {}).await;
    assert_eq!(app.send(app.client.get(app.url("/readyz"))).await.status, 200, "the new migration was applied");
    let made = app.post(&format!("/admin/v1/orgs/{org}/tokens"), &app.admin_token, json!({"name": "new"})).await;
    assert_eq!(made.status, 201, "{}", made.text);
    let tokens = app.get(&format!("/admin/v1/orgs/{org}/tokens"), &app.admin_token).await;
    let ids: Vec<&str> = tokens.json["tokens"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"tok-old"), "{}", tokens.text);
    let log = app.get("/v1/audit", made.json["token"].as_str().unwrap()).await;
    assert_eq!(log.status, 200, "{}", log.text);
    let items = log.json["items"].as_array().unwrap();
    let seen: Vec<(i64, &str)> =
        items.iter().map(|i| (i["sequence"].as_i64().unwrap(), i["action"].as_str().unwrap())).collect();
    assert_eq!(seen, [(1, "org.created"), (2, "token.created")], "old rows kept, numbering goes on");
}
