//! The vendors' own published clients, unchanged, against Herald: Zitadel's
//! `@zitadel/node` (gRPC over cleartext HTTP/2) and `@zitadel/client`
//! (Connect JSON and binary, gRPC-web), and BoldSign's Node SDK (`boldsign`).
//! The scripts and their pinned versions are in `tests/clients/`; `.ci/run`
//! installs them with `npm ci`. Without `tests/clients/node_modules` (or
//! `node`) the tests say loudly that they were skipped, and fail under `CI`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{TestApp, TestOrg};

on_each_backend!(
    zitadel_node_client_speaks_grpc,
    zitadel_client_speaks_connect_and_grpc_web,
    boldsign_node_sdk_creates_with_an_80_character_name,
);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs `node <script>` in `tests/clients` with `env`; `None` when skipped.
async fn node(script: &str, env: Vec<(&'static str, String)>) -> Option<String> {
    let dir = clients_dir();
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !dir.join("node_modules").is_dir() || !node_ok {
        assert!(std::env::var_os("CI").is_none(), "CI must install the Node clients (npm ci in tests/clients)");
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: {script}, because node or tests/clients/node_modules is missing \
             (cd tests/clients && npm ci) ***\n"
        );
        return None;
    }
    let script = script.to_owned();
    let out =
        tokio::task::spawn_blocking(move || Command::new("node").arg(&script).current_dir(dir).envs(env).output())
            .await
            .unwrap()
            .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "node failed ({}):\n{stdout}\n{stderr}", out.status);
    Some(stdout)
}

fn env(app: &TestApp, org: &TestOrg) -> Vec<(&'static str, String)> {
    vec![
        ("HERALD_URL", app.url("")),
        ("ORG_ID", org.id.clone()),
        ("ORG_TOKEN", org.token.clone()),
        ("ADMIN_TOKEN", app.admin_token.clone()),
    ]
}

async fn audit_actions(app: &TestApp, token: &str, path: &str) -> Vec<String> {
    let log = app.get(path, token).await;
    log.json["items"].as_array().unwrap().iter().map(|i| i["action"].as_str().unwrap().to_owned()).collect()
}

async fn zitadel_node_client_speaks_grpc(app: TestApp) {
    let org = app.new_org().await;
    let mut env = env(&app, &org);
    env.push(("INSTANCE_ID", app.store.instance_id().await.unwrap()));
    let Some(out) = node("zitadel-node.mjs", env).await else { return };
    assert!(out.contains("ok management calls") && out.contains("ok admin calls"), "{out}");
    // The same domain calls as REST: the same audit rows, in order.
    let actions = audit_actions(&app, &org.token, "/v1/audit").await;
    assert_eq!(
        actions,
        [
            "org.created",
            "token.created",
            "notification_policy.added",
            "notification_policy.changed",
            "notification_policy.removed"
        ]
    );
    let actions = audit_actions(&app, &app.admin_token, "/admin/v1/audit").await;
    assert_eq!(actions, ["default_notification_policy.changed"]);
    // And REST sees what gRPC did.
    let res = app.get("/admin/v1/policies/notification", &app.admin_token).await;
    assert_eq!(res.json["policy"]["passwordChange"], false, "{}", res.text);
}

async fn zitadel_client_speaks_connect_and_grpc_web(app: TestApp) {
    let org = app.new_org().await;
    let Some(out) = node("zitadel-client.mjs", env(&app, &org)).await else { return };
    for transport in ["connect+json", "connect+proto", "grpc-web"] {
        assert!(out.contains(&format!("ok {transport}")), "{out}");
    }
    let actions = audit_actions(&app, &org.token, "/v1/audit").await;
    let expected = ["notification_policy.added", "notification_policy.removed"].repeat(3);
    assert_eq!(actions[2..], expected);
}

async fn boldsign_node_sdk_creates_with_an_80_character_name(app: TestApp) {
    let org = app.new_org().await;
    let Some(out) = node("boldsign.mjs", env(&app, &org)).await else { return };
    assert!(out.contains("ok 80 accepted") && out.contains("ok 81 refused"), "{out}");
    let res = app.get("/v1/senderIdentities/properties?email=eighty%40example.com", &org.token).await;
    assert_eq!(res.json["name"].as_str().map(|n| n.chars().count()), Some(80), "{}", res.text);
}
