//! Issue 13, finding 7b: an SMTP server that accepts the connection and then
//! stops answering fails the attempt as a timeout at whatever step it stalls
//! (`HERALD_SMTP_TIMEOUT_SECONDS`, 1 s here), for the test send and for
//! deliveries, which are retried instead of holding a worker.

use std::time::Duration;

use herald::domain::smtp::Security;
use serde_json::json;

use crate::delivery::{message, send, smtp_test, use_port, wait_status};
use crate::support::smtp::{StallAt, stalling};
use crate::support::{Backend, TestApp, TestDb};

async fn spawn(backend: Backend) -> Option<TestApp> {
    let db = TestDb::new(backend).await?;
    Some(TestApp::spawn_with(backend, db, |c| c.delivery.smtp_timeout = Duration::from_secs(1)).await)
}

async fn every_smtp_step_times_out_in_the_test_send(backend: Backend) {
    let Some(app) = spawn(backend).await else { return };
    let org = app.new_org().await;
    let cases = [
        (StallAt::Greeting, "none", "connect"),
        (StallAt::Ehlo, "none", "connect"),
        (StallAt::StartTls, "starttls", "tls"),
        (StallAt::Auth, "none", "auth"),
        (StallAt::Mail, "none", "sender"),
        (StallAt::Rcpt, "none", "recipient"),
        (StallAt::Data, "none", "data"),
        (StallAt::EndOfData, "none", "data"),
    ];
    let runs = cases.map(|(at, security, step)| {
        let (app, org) = (&app, &org);
        async move {
            let (addr, _server) = stalling(at).await;
            let config = json!({ "host": "127.0.0.1", "port": addr.port(), "security": security,
                                 "username": "mailer", "password": "pw" });
            let r = smtp_test(app, org, json!({ "to": "ada@example.com", "config": config })).await;
            assert_eq!((r["success"].clone(), r["failedStep"].clone()), (json!(false), json!(step)), "{at:?}: {r}");
            assert!(r["message"].as_str().unwrap().contains("timed out"), "{at:?}: {r}");
        }
    });
    futures::future::join_all(runs).await;
}

async fn a_stalled_delivery_times_out_and_is_retried(backend: Backend) {
    let Some(app) = spawn(backend).await else { return };
    let runs = [StallAt::Greeting, StallAt::Mail, StallAt::EndOfData].map(|at| {
        let app = &app;
        async move {
            let (addr, _server) = stalling(at).await;
            let org = app.new_org().await;
            use_port(app, &org, addr.port(), Security::Plain, false, None).await;
            let id = send(app, &org, message("ada@example.com", "Stalled")).await;
            let n = wait_status(app, &org, &id, "retrying").await;
            assert!(n["lastError"].as_str().unwrap().contains("timed out"), "{at:?}: {n}");
            assert_eq!(n["attempts"], 1, "{at:?}: {n}");
        }
    });
    futures::future::join_all(runs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_smtp_step_times_out_in_the_test_send() {
    every_smtp_step_times_out_in_the_test_send(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_smtp_step_times_out_in_the_test_send() {
    every_smtp_step_times_out_in_the_test_send(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_stalled_delivery_times_out_and_is_retried() {
    a_stalled_delivery_times_out_and_is_retried(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_stalled_delivery_times_out_and_is_retried() {
    a_stalled_delivery_times_out_and_is_retried(Backend::Postgres).await;
}
