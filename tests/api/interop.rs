//! Interoperability with an SMTP server we did not write: Postfix's
//! `smtp-sink` (Debian package `postfix`, installed by `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald::domain::smtp::{self, PasswordChange, Security, SmtpDraft};
use herald::domain::{Actor, OrgId};
use serde_json::json;

use crate::support::{Backend, TestApp};

fn smtp_sink() -> Option<PathBuf> {
    let found = ["/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"].into_iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must install postfix (smtp-sink)");
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n*** SKIPPED: the smtp-sink interop test, because smtp-sink is not installed ***\n"
        );
    }
    found
}

struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts smtp-sink on a free port, dumping each message under `dir`.
fn start_sink(bin: &Path, dir: &Path) -> (Sink, u16) {
    use std::os::unix::fs::PermissionsExt;
    // smtp-sink drops root privileges to `nobody`, who must write the dumps.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let template = format!("{}/msg.", dir.display());
    let child = Command::new(bin)
        .args(["-u", "nobody", "-d", &template, &format!("127.0.0.1:{port}"), "64"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start smtp-sink");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (Sink(child), port)
}

fn dumps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_smtp_sink_receives_our_mail() {
    let Some(bin) = smtp_sink() else { return };
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (_sink, port) = start_sink(&bin, dir.path());
    let org = app.new_org().await;
    let draft = SmtpDraft {
        enabled: Some(true),
        host: "127.0.0.1".into(),
        port,
        security: Security::Plain,
        accept_invalid_certs: false,
        username: None,
        password: PasswordChange::Keep,
        from_email: Some("ops@interop.example".into()),
        from_name: Some("Interop".into()),
        reply_to: None,
    };
    let org_id = OrgId::parse(&org.id).unwrap();
    smtp::create_org_config(&app.store, app.state.cipher(), &Actor::cli(), &org_id, draft, app.clock.now())
        .await
        .unwrap();

    let mut ids = Vec::new();
    for i in 0..3 {
        let body = json!({ "type": "message.send", "data": { "to": format!("r{i}@example.com"), "subject": format!("interop {i}"), "text": "plain", "html": "<p>html</p>" } });
        let res = app.post("/v1/events", &org.token, body).await;
        assert_eq!(res.status, 202, "{}", res.text);
        ids.push(res.json["notifications"][0]["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let mut status = String::new();
        for _ in 0..200 {
            let res = app.get(&format!("/v1/notifications/{id}"), &org.token).await;
            status = res.json["status"].as_str().unwrap_or_default().to_owned();
            if status == "sent" {
                assert!(res.json["smtpResponse"].as_str().unwrap().starts_with("250"), "{}", res.text);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status, "sent", "{id}");
    }
    // The synchronous test send works against it too.
    let res = app.post("/v1/smtp/test", &org.token, json!({ "to": "check@example.com" })).await;
    assert_eq!(res.json["success"], true, "{}", res.text);

    let mut files = Vec::new();
    for _ in 0..100 {
        files = dumps(dir.path());
        if files.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(files.len(), 4, "three notifications and one test message");
    for id in &ids {
        let file = files.iter().find(|f| f.contains(&format!("<{id}@"))).unwrap_or_else(|| panic!("no dump for {id}"));
        assert!(file.contains("From: Interop <ops@interop.example>"), "{file}");
        assert!(file.contains("multipart/alternative"));
    }
}
