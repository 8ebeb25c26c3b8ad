//! The in-process cache of token lookups and SMTP settings (issue 15,
//! README "Storage"): a revocation or settings change holds at once on the
//! node that made it, and within a second on every other node. The other
//! node is a second `Store` on the same database (its own cache, as another
//! process has); its bound is checked by polling up to a generous deadline,
//! never by measuring time.

use std::future::Future;
use std::time::{Duration, Instant};

use herald::domain::tokens;
use herald::store::Store;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Auth, TestApp};

on_each_backend!(
    a_revocation_holds_at_once_here_and_soon_on_another_node,
    a_settings_change_holds_at_once_here_and_soon_on_another_node,
);

const CONFIG: &str = "/api/v1/notification-config";

/// Waits until `check` holds on the other node; fails after 10 s (the bound
/// is 1 s: the margin is for a loaded machine, not part of the promise).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not seen on the other node");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_revocation_holds_at_once_here_and_soon_on_another_node(app: TestApp) {
    let org = app.new_org().await;
    let digest = tokens::digest(&org.token);
    let other = Store::connect(&app.db.url).await.unwrap();
    // Both nodes have looked the token up (and so cached it).
    for _ in 0..3 {
        assert_eq!(app.get("/v1/audit", &org.token).await.status, 200);
        assert!(other.token_by_digest(&digest).await.unwrap().is_some());
    }

    let listed = app.get(&format!("/admin/v1/orgs/{}/tokens", org.id), &app.admin_token).await;
    let token_id = listed.json["tokens"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/orgs/{}/tokens/{token_id}", org.id);
    let res = app.call(Method::DELETE, &path, Auth::Bearer(&app.admin_token), None).await;
    assert_eq!(res.status, 204, "{}", res.text);

    // This node: from the very next request, whichever header carries it.
    for auth in [Auth::Bearer(&org.token), Auth::XAuthToken(&org.token), Auth::XApiKey(&org.token)] {
        assert_eq!(app.call(Method::GET, "/v1/audit", auth, None).await.status, 401);
    }
    assert_eq!(app.call(Method::GET, CONFIG, Auth::XAuthToken(&org.token), None).await.status, 401);
    // The other node: within the bound.
    eventually("the revocation", || async { other.token_by_digest(&digest).await.unwrap().is_none() }).await;
    // And it stays revoked there (a revoked token is never cached).
    assert!(other.token_by_digest(&digest).await.unwrap().is_none());
    other.close().await;
}

async fn from_name(app: &TestApp, token: &str) -> (u16, Value) {
    let res = app.call(Method::GET, CONFIG, Auth::XAuthToken(token), None).await;
    (res.status, res.json["data"]["fromName"].clone())
}

async fn a_settings_change_holds_at_once_here_and_soon_on_another_node(app: TestApp) {
    let org = app.new_org().await;
    let other = Store::connect(&app.db.url).await.unwrap();
    let other_name = || async { other.smtp_row(&org.id).await.unwrap().and_then(|r| r.from_name) };
    // Neither node has a configuration yet (and both cache that).
    assert_eq!(from_name(&app, &org.token).await.0, 404);
    assert_eq!(other_name().await, None);

    let mut config = json!({
        "emailServerHost": "smtp.example.com", "emailServerPort": "587",
        "fromEmail": "mail@example.com", "fromName": "First", "tlsEnabled": true, "enabled": true
    });
    let res = app.call(Method::POST, CONFIG, Auth::XAuthToken(&org.token), Some(config.clone())).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(from_name(&app, &org.token).await, (200, json!("First")), "created: at once here");
    eventually("the new configuration", || async { other_name().await.as_deref() == Some("First") }).await;

    config["fromName"] = json!("Second");
    let res = app.call(Method::PUT, CONFIG, Auth::XAuthToken(&org.token), Some(config)).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(from_name(&app, &org.token).await, (200, json!("Second")), "changed: at once here");
    eventually("the change", || async { other_name().await.as_deref() == Some("Second") }).await;

    let res = app.call(Method::DELETE, CONFIG, Auth::XAuthToken(&org.token), None).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(from_name(&app, &org.token).await.0, 404, "deleted: at once here");
    eventually("the deletion", || async { other.smtp_row(&org.id).await.unwrap().is_none() }).await;
    other.close().await;
}
