//! Delivery workers: claim due outbox rows under a lease, send them, and
//! record every result, in batches.
//!
//! Each process runs a few claim loops. A loop leases up to `batch` rows
//! (one statement), sends them concurrently through the pooled transports,
//! and writes all results in one transaction. A process that dies while
//! holding a lease loses nothing: the rows become due again when the lease
//! ends, and another loop (in this or any process) takes them. A mail that
//! was handed to the server just before the crash is then sent twice, with
//! the same Message-ID.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::http::OutboundHttp;
use super::mailer::{Delivery, MailParts, Mailer};
use crate::clock::{Clock, Millis};
use crate::crypto::Cipher;
use crate::domain::delivery::{self, Claimed, Outcome, RetryPolicy, documents};
use crate::domain::smtp::{SmtpServer, effective_server};
use crate::domain::{OrgId, identities};
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Claim loops per process.
    pub loops: usize,
    /// Rows one loop leases at a time.
    pub batch: i64,
    /// Sends in flight per loop.
    pub concurrency: usize,
    /// How long a lease lasts; a crashed worker's rows return after it.
    pub lease: Duration,
    /// How often an idle loop looks for due rows (retries, other processes).
    pub poll: Duration,
    pub retry: RetryPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            loops: 2,
            batch: 100,
            concurrency: 16,
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(500),
            retry: RetryPolicy::default(),
        }
    }
}

/// Everything the workers share.
pub struct Engine {
    pub store: Store,
    pub cipher: Cipher,
    pub clock: Clock,
    pub mailer: Arc<Mailer>,
    /// Outbound HTTP on a tenant's behalf, under the host policy.
    pub http: OutboundHttp,
    /// Woken after each commit of new events in this process.
    pub wake: Arc<Notify>,
    pub config: WorkerConfig,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Runs the workers until `stop` turns true; in-flight batches finish and
/// record their results first.
pub async fn run(engine: Arc<Engine>, stop: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    for n in 0..engine.config.loops.max(1) {
        tasks.spawn(claim_loop(engine.clone(), stop.clone(), n));
    }
    tasks.spawn(housekeeping(engine.clone(), stop.clone()));
    tasks.spawn(super::webhooks::run(engine.clone(), stop.clone()));
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "a delivery task failed");
        }
    }
    tracing::info!("delivery workers stopped");
}

async fn claim_loop(engine: Arc<Engine>, mut stop: watch::Receiver<bool>, n: usize) {
    let wake = engine.wake.clone();
    loop {
        if *stop.borrow() {
            return;
        }
        // Registered before the claim, so a commit between an empty claim
        // and the wait still wakes this loop.
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let worked = match run_batch(&engine).await {
            Ok(count) => count > 0,
            Err(e) => {
                tracing::error!(worker = n, error = format!("{e:#}"), "delivery batch failed");
                false
            }
        };
        if !worked {
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(engine.config.poll) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Claims, sends and records one batch; returns how many rows it held.
pub async fn run_batch(engine: &Engine) -> anyhow::Result<usize> {
    let lease_id = uuid::Uuid::now_v7().to_string();
    let now = engine.clock.now();
    let claimed = engine
        .store
        .claim_outbox(&lease_id, now, Millis(now.0 + millis(engine.config.lease)), engine.config.batch)
        .await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let mut servers: HashMap<OrgId, Result<Option<SmtpServer>, String>> = HashMap::new();
    for c in &claimed {
        if !servers.contains_key(&c.org) {
            let server = effective_server(&engine.store, &engine.cipher, &c.org).await.map_err(|e| {
                tracing::error!(org = %c.org, error = %e, "could not load the effective SMTP server");
                "the SMTP settings could not be loaded".to_owned()
            });
            servers.insert(c.org.clone(), server);
        }
    }
    let (claimed_ref, servers_ref) = (&claimed, &servers);
    let concurrency = engine.config.concurrency.max(1);
    // Results are written as they come in, in chunks of whatever finished
    // meanwhile: one transaction for many mails under load, and after a
    // crash only the sends in flight (or in the chunk being written) repeat.
    let mut chunks = std::pin::pin!(
        futures_util::stream::iter(0..claimed.len())
            .map(|i| async move {
                let c = &claimed_ref[i];
                (i, send_one(engine, &servers_ref[&c.org], c).await)
            })
            .buffer_unordered(concurrency)
            .ready_chunks(concurrency)
    );
    while let Some(chunk) = chunks.next().await {
        let results: Vec<(&Claimed, Outcome)> = chunk.into_iter().map(|(i, o)| (&claimed[i], o)).collect();
        record(engine, &lease_id, &results).await?;
    }
    Ok(claimed.len())
}

/// Writes send results. The sends happened: if their results are not
/// written, the rows come back at the lease's end and are sent again, so
/// this tries a few times before giving up.
async fn record(engine: &Engine, lease_id: &str, results: &[(&Claimed, Outcome)]) -> anyhow::Result<()> {
    let mut tries = 0;
    loop {
        match engine.store.finish_sends(lease_id, results, engine.clock.now()).await {
            Ok(()) => break,
            Err(e) if tries < 5 => {
                tries += 1;
                tracing::warn!(error = format!("{e:#}"), "recording send results failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
            }
            Err(e) => return Err(e),
        }
    }
    for (_, outcome) in results {
        let status = match outcome {
            Outcome::Sent { .. } => "sent",
            Outcome::Retry { .. } => "retrying",
            Outcome::Dead { .. } => "dead",
        };
        metrics::counter!("herald_notifications_total", "status" => status).increment(1);
    }
    Ok(())
}

async fn send_one(engine: &Engine, server: &Result<Option<SmtpServer>, String>, c: &Claimed) -> Outcome {
    let now = || engine.clock.now();
    let server = match server {
        Ok(s) => s.as_ref(),
        Err(error) => {
            metrics::counter!("herald_smtp_errors_total", "class" => "config").increment(1);
            return engine.config.retry.after_transient(c, now(), error.clone(), None);
        }
    };
    let attachments = match c.attachments.as_deref().map(documents::decode).transpose() {
        Ok(files) => files.unwrap_or_default(),
        Err(error) => return Outcome::Dead { error, response: None },
    };
    // The approval flow's mails get their link's token signed only now, so
    // the stored body never holds a usable link.
    let sign = |body| identities::sign_link(&c.kind, &c.id, body, &engine.cipher);
    let text = sign(&c.body_text);
    let html = c.body_html.as_deref().map(sign);
    let parts = MailParts {
        id: &c.id,
        to_addr: &c.to_addr,
        to_name: c.to_name.as_deref(),
        subject: &c.subject,
        text: &text,
        html: html.as_deref(),
        attachments: &attachments,
        envelope_from: None,
    };
    match engine.mailer.deliver(server, &parts).await {
        Delivery::Accepted { response } => Outcome::Sent { response },
        Delivery::Transient { class, error, response } => {
            metrics::counter!("herald_smtp_errors_total", "class" => class).increment(1);
            tracing::info!(notification = %c.id, attempt = c.attempt, class, error = %error, "send failed; will retry");
            engine.config.retry.after_transient(c, now(), error, response)
        }
        Delivery::Permanent { class, error, response } => {
            metrics::counter!("herald_smtp_errors_total", "class" => class).increment(1);
            tracing::warn!(notification = %c.id, attempt = c.attempt, class, error = %error, "send failed permanently");
            Outcome::Dead { error, response }
        }
    }
}

/// Every few seconds: queue depth and the oldest due row's age for
/// `/metrics`, and expired idempotency keys removed.
async fn housekeeping(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut purged_at = Millis(0);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let now = engine.clock.now();
        match engine.store.outbox_stats().await {
            Ok((depth, oldest)) => {
                metrics::gauge!("herald_outbox_depth").set(depth as f64);
                let age = oldest.map_or(0.0, |o| ((now.0 - o.0).max(0) as f64) / 1000.0);
                metrics::gauge!("herald_outbox_oldest_due_seconds").set(age);
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "could not read outbox stats"),
        }
        if now.0 - purged_at.0 > 3_600_000 {
            purged_at = now;
            let before = Millis(now.0 - delivery::IDEMPOTENCY_WINDOW_MS);
            if let Err(e) = engine.store.purge_idempotency_keys(before).await {
                tracing::warn!(error = format!("{e:#}"), "could not purge idempotency keys");
            }
        }
    }
}
