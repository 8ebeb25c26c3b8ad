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
use tokio::sync::Semaphore;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::express::{Express, Lane};
use super::http::OutboundHttp;
use super::mailer::{Delivery, MailParts, Mailer};
use super::providers::{Transports, failure_kind, send_via};
use crate::clock::{Clock, Millis};
use crate::crypto::Cipher;
use crate::domain::delivery::{self, Claimed, Outcome, RetryPolicy, Via, documents};
use crate::domain::providers::{self, FailureKind, Pick, Route};
use crate::domain::{OrgId, bounces, identities};
use crate::store::{LeaseTerms, RateParams, Store};

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
    /// Consecutive failures that open a provider's circuit.
    pub circuit_failures: i64,
    /// How long an open circuit skips its provider.
    pub circuit_cooldown: Duration,
    /// The window `maxPerMinute` counts in (a minute, shorter in tests).
    pub rate_window: Duration,
    /// Rows an express claim leases (`domain::fairness::express_orgs`).
    pub express_batch: i64,
    /// Express claims sending at once in this process.
    pub express_tasks: usize,
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
            circuit_failures: 5,
            circuit_cooldown: Duration::from_secs(60),
            rate_window: Duration::from_secs(60),
            express_batch: crate::domain::fairness::EXPRESS_BATCH,
            express_tasks: 8,
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
    /// OAuth2 access tokens for XOAUTH2 SMTP, cached until shortly before expiry.
    pub oauth_tokens: Arc<super::oauth2::TokenCache>,
    /// Woken after each commit of new events in this process.
    pub wake: Arc<Notify>,
    /// In flight per org, idle loops and the express claims' queue.
    pub express: Arc<Express>,
    /// The express lane's runtime, and its mailer, whose connections are
    /// opened on that runtime (`express.rs`).
    pub express_lane: Lane,
    pub express_mailer: Arc<Mailer>,
    pub config: WorkerConfig,
}

pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// Runs the workers until `stop` turns true; in-flight batches finish and
/// record their results first.
pub async fn run(engine: Arc<Engine>, stop: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    for n in 0..engine.config.loops.max(1) {
        tasks.spawn(claim_loop(engine.clone(), stop.clone(), n));
    }
    tasks.spawn(express_loop(engine.clone(), stop.clone()));
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
            // Idle: a commit wakes this loop, so it needs no express claim.
            engine.express.set_idle(true);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(engine.config.poll) => {}
                _ = stop.changed() => {}
            }
            engine.express.set_idle(false);
        }
    }
}

/// The express lane: an org whose mail was committed while it had little
/// in flight here and every claim loop was busy gets a claim of its own at
/// once, instead of waiting for a loop to finish its batch
/// (`domain::fairness::express_orgs`). The urgent commit lane makes that
/// claim in the transaction that commits the mail (`committer.rs`); the
/// other lane's orgs are claimed here. Each claim sends in a task of its
/// own, so one org's slow server does not hold up the next org, on the
/// lane's own runtime (`express::Lane`).
async fn express_loop(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(engine.config.express_tasks.max(1)));
    let mut sends = JoinSet::new();
    engine.express.set_open(true);
    loop {
        if *stop.borrow() {
            break;
        }
        let leased = engine.express.take_leased().into_iter().map(|(id, rows)| ExpressWork::Leased(id, rows));
        for work in leased.chain(engine.express.take_pending().into_iter().map(ExpressWork::Claim)) {
            let permit = tokio::select! {
                p = permits.clone().acquire_owned() => p,
                _ = stop.changed() => break,
            };
            let Ok(permit) = permit else { break };
            let lane = engine.express_lane.handle().clone();
            let engine = engine.clone();
            let send = async move {
                let sent = match work {
                    ExpressWork::Leased(lease_id, rows) => {
                        metrics::counter!("herald_express_claims_total").increment(1);
                        send_claimed(&engine, &engine.express_mailer, &lease_id, rows).await
                    }
                    ExpressWork::Claim(org) => run_org_batch(&engine, &org).await,
                };
                if let Err(e) = sent {
                    tracing::error!(error = format!("{e:#}"), "express delivery batch failed");
                }
                drop(permit);
            };
            sends.spawn_on(send, &lane);
        }
        while sends.try_join_next().is_some() {}
        tokio::select! {
            () = engine.express.wake.notified() => {}
            _ = stop.changed() => {}
        }
    }
    engine.express.set_open(false);
    while sends.join_next().await.is_some() {}
}

/// Work of the express lane.
enum ExpressWork {
    /// Rows the commit leased (lease id, rows): to send.
    Leased(String, Vec<Claimed>),
    /// An org to claim for.
    Claim(OrgId),
}

/// One express claim: up to `express_batch` of the org's oldest due rows,
/// sent (through the express lane's mailer) and recorded like a regular
/// batch.
pub async fn run_org_batch(engine: &Engine, org: &OrgId) -> anyhow::Result<usize> {
    let lease_id = uuid::Uuid::now_v7().to_string();
    let now = engine.clock.now();
    let until = Millis(now.0 + millis(engine.config.lease));
    let terms = LeaseTerms { now, until, limit: engine.config.express_batch };
    let started = std::time::Instant::now();
    let claimed = engine.store.claim_org_outbox(&lease_id, org, terms).await?;
    metrics::histogram!("herald_claim_seconds", "claim" => "express").record(started.elapsed().as_secs_f64());
    if !claimed.is_empty() {
        metrics::counter!("herald_express_claims_total").increment(1);
    }
    send_claimed(engine, &engine.express_mailer, &lease_id, claimed).await
}

/// Claims, sends and records one batch; returns how many rows it held.
pub async fn run_batch(engine: &Engine) -> anyhow::Result<usize> {
    let lease_id = uuid::Uuid::now_v7().to_string();
    let now = engine.clock.now();
    let started = std::time::Instant::now();
    let claimed = engine
        .store
        .claim_outbox(&lease_id, now, Millis(now.0 + millis(engine.config.lease)), engine.config.batch)
        .await?;
    metrics::histogram!("herald_claim_seconds", "claim" => "fair").record(started.elapsed().as_secs_f64());
    send_claimed(engine, &engine.mailer, &lease_id, claimed).await
}

/// Sends and records claimed rows (SMTP through `mailer`: the express
/// lane's has its own connections); returns how many there were.
async fn send_claimed(
    engine: &Engine,
    mailer: &Mailer,
    lease_id: &str,
    claimed: Vec<Claimed>,
) -> anyhow::Result<usize> {
    if claimed.is_empty() {
        return Ok(0);
    }
    // Orgs take turns in the sending order too, not only in the claim.
    let order = crate::domain::fairness::send_order(&claimed.iter().map(|c| &c.org).collect::<Vec<_>>());
    let mut rows: Vec<Option<Claimed>> = claimed.into_iter().map(Some).collect();
    let claimed: Vec<Claimed> = order.into_iter().filter_map(|i| rows[i].take()).collect();
    // In flight until sent: the express rule asks.
    let mut held = engine.express.hold(&claimed);
    // Keyed by org and whether the mail is an alert mail, which goes
    // through the instance's providers only (issue 18).
    let mut routes: HashMap<(OrgId, bool), Result<Vec<Route>, String>> = HashMap::new();
    for c in &claimed {
        let key = (c.org.clone(), c.kind == crate::domain::alerts::MAIL_KIND);
        if let std::collections::hash_map::Entry::Vacant(slot) = routes.entry(key) {
            let found = providers::routes(&engine.store, &engine.cipher, &c.org).await.map_err(|e| {
                tracing::error!(org = %c.org, error = %e, "could not load the org's providers");
                "the delivery settings could not be loaded".to_owned()
            });
            let found = match (c.kind == crate::domain::alerts::MAIL_KIND, found) {
                (true, Ok(all)) => {
                    Ok(all.into_iter().filter(|r| matches!(r.scope, crate::domain::audit::Scope::Instance)).collect())
                }
                (_, found) => found,
            };
            slot.insert(found);
        }
    }
    let (claimed_ref, routes_ref) = (&claimed, &routes);
    let concurrency = engine.config.concurrency.max(1);
    // The sends and the writing of their results run side by side, each
    // polled while the other waits. A send waiting for the database (a
    // retry's last provider, a rate or concurrency slot) holds a pool
    // connection; were the sends left unpolled while a chunk's results
    // wait for a connection, enough of them would hold every connection
    // and the write would wait until its acquire timed out ("futurelock":
    // after a restart, the retried mails of a crashed node stalled a node
    // for a minute and more).
    let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
    let sends = async move {
        let mut sends = std::pin::pin!(
            futures_util::stream::iter(0..claimed_ref.len())
                .map(|i| async move {
                    let c = &claimed_ref[i];
                    let key = (c.org.clone(), c.kind == crate::domain::alerts::MAIL_KIND);
                    (i, send_one(engine, mailer, &routes_ref[&key], c).await)
                })
                .buffer_unordered(concurrency)
        );
        while let Some(sent) = sends.next().await {
            if done.send(sent).is_err() {
                break;
            }
        }
        Ok(())
    };
    // Results are written as they come in, in chunks of whatever finished
    // meanwhile: one transaction for many mails under load, and after a
    // crash only the sends in flight (or in the chunk being written) repeat.
    let records = async {
        let mut chunk = Vec::with_capacity(concurrency);
        while finished.recv_many(&mut chunk, concurrency).await > 0 {
            let mut results: Vec<(&Claimed, Outcome, Option<Via>)> = Vec::new();
            let mut postponed: Vec<(String, Millis)> = Vec::new();
            for (i, sent) in chunk.drain(..) {
                held.release(&claimed_ref[i].org);
                match sent {
                    Sendout::Done(outcome, via) => results.push((&claimed_ref[i], outcome, via)),
                    Sendout::Postpone(at) => postponed.push((claimed_ref[i].id.clone(), at)),
                }
            }
            if !results.is_empty() {
                record(engine, lease_id, &results).await?;
            }
            if !postponed.is_empty() {
                metrics::counter!("herald_provider_postponed_total").increment(postponed.len() as u64);
                engine.store.postpone_sends(lease_id, &postponed).await?;
            }
        }
        Ok::<(), anyhow::Error>(())
    };
    // A write that fails for good ends the batch: the sends still in
    // flight are dropped, and their rows come back when the lease ends.
    futures_util::future::try_join(sends, records).await?;
    Ok(claimed.len())
}

/// What became of one claimed mail.
enum Sendout {
    /// Sent, failed or dead: recorded as an attempt (through this provider).
    Done(Outcome, Option<Via>),
    /// Held back by its provider's rate limit or open circuits: back to the
    /// outbox until then, the attempt not counted.
    Postpone(Millis),
}

/// Writes send results. The sends happened: if their results are not
/// written, the rows come back at the lease's end and are sent again, so
/// this tries a few times before giving up.
async fn record(engine: &Engine, lease_id: &str, results: &[(&Claimed, Outcome, Option<Via>)]) -> anyhow::Result<()> {
    let mut tries = 0;
    let now = loop {
        let now = engine.clock.now();
        match engine.store.finish_sends(lease_id, results, now).await {
            Ok(()) => break now,
            Err(e) if tries < 5 => {
                tries += 1;
                tracing::warn!(error = format!("{e:#}"), "recording send results failed; retrying");
                tokio::time::sleep(Duration::from_millis(200 * tries)).await;
            }
            Err(e) => return Err(e),
        }
    };
    for (claimed, outcome, _) in results {
        let status = match outcome {
            Outcome::Sent { .. } => "sent",
            Outcome::Retry { .. } => "retrying",
            Outcome::Dead { .. } => "dead",
        };
        metrics::counter!("herald_notifications_total", "status" => status).increment(1);
        if claimed.attempt == 1 {
            // From acceptance to the first attempt's result: what a tenant
            // waits (bench/fairness measures the same).
            let waited = (now.0 - claimed.queued_at.0).max(0) as f64 / 1000.0;
            metrics::histogram!("herald_delivery_seconds", "outcome" => status).record(waited);
        }
    }
    Ok(())
}

/// Picks the route this attempt uses: from `start` on, the first whose
/// circuit is closed, or whose cool-down is over and whose probe this node
/// takes. `Err`: every circuit is open until then.
async fn choose(engine: &Engine, routes: &[Route], start: usize) -> Result<usize, Millis> {
    let now = engine.clock.now();
    let mut open: Vec<Option<Millis>> = routes.iter().map(|r| r.health.open_until).collect();
    loop {
        match providers::pick(&open, start, now) {
            Pick::Use { index, probe: false } => return Ok(index),
            Pick::Use { index, probe: true } => {
                let until = Millis(now.0 + millis(engine.config.circuit_cooldown));
                match engine.store.claim_probe(&routes[index].id, now, until).await {
                    // Ours to probe, or closed again meanwhile.
                    Ok(None | Some(None)) => return Ok(index),
                    // Another node probes it: open for us.
                    Ok(Some(Some(t))) => open[index] = Some(Millis(t.max(now.0 + 1))),
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "could not claim a provider probe");
                        open[index] = Some(until);
                    }
                }
            }
            Pick::Wait(at) => return Err(at),
        }
    }
}

async fn send_one(engine: &Engine, mailer: &Mailer, routes: &Result<Vec<Route>, String>, c: &Claimed) -> Sendout {
    let now = || engine.clock.now();
    let routes = match routes {
        Ok(r) => r,
        Err(error) => {
            metrics::counter!("herald_smtp_errors_total", "class" => "config").increment(1);
            return Sendout::Done(engine.config.retry.after_transient(c, now(), error.clone(), None), None);
        }
    };
    let attachments = match c.attachments.as_deref().map(documents::decode).transpose() {
        Ok(files) => files.unwrap_or_default(),
        Err(error) => return Sendout::Done(Outcome::Dead { error, response: None }, None),
    };
    // The approval flow's mails get their link's token signed only now, so
    // the stored body never holds a usable link.
    let sign = |body| identities::sign_link(&c.kind, &c.id, body, &engine.cipher);
    let text = sign(&c.body_text);
    let html = c.body_html.as_deref().map(sign);
    let mut parts = MailParts {
        id: &c.id,
        to_addr: &c.to_addr,
        to_name: c.to_name.as_deref(),
        subject: &c.subject,
        text: &text,
        html: html.as_deref(),
        attachments: &attachments,
        envelope_from: None,
    };
    if routes.is_empty() {
        // No provider at all: the file transport, as before providers.
        let d = mailer.deliver(None, &parts).await;
        return Sendout::Done(outcome_of(engine, c, d, false), None);
    }
    // A retry starts after the provider that failed last (failover).
    let start = if c.attempt > 1 {
        match engine.store.last_attempt_provider(&c.id).await {
            Ok(previous) => providers::start_after(routes, previous.as_deref()),
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "could not read the last attempt's provider");
                0
            }
        }
    } else {
        0
    };
    let index = match choose(engine, routes, start).await {
        Ok(i) => i,
        Err(until) => {
            metrics::counter!("herald_provider_skipped_total", "reason" => "circuit_open").increment(1);
            return Sendout::Postpone(until);
        }
    };
    let route = &routes[index];
    // maxConcurrent before maxPerMinute: a mail that must wait for a slot
    // does not take a rate slot meanwhile. Given back when this returns.
    let _slot = match super::concurrency::acquire(&engine.store, &engine.clock, route, engine.config.lease).await {
        Ok(slot) => slot,
        Err(until) => return Sendout::Postpone(until),
    };
    // VERP: with a bounce domain, the envelope sender names (and signs)
    // this notification, so a bounce finds its way back to it.
    let verp = route.bounce_domain.as_deref().map(|d| bounces::verp_address(&engine.cipher, &c.id, d));
    parts.envelope_from = verp.as_deref();
    if let Some(max) = route.max_per_minute {
        let window = millis(engine.config.rate_window);
        let interval = providers::rate_interval_ms(max, window);
        // A mail back later than a twentieth of the window after its slot
        // takes a new one (late mails bunch into at most 5 % over the
        // limit); a mail comes back a little before its slot and waits for
        // it here, so the claim's latency does not make it late.
        let lead = (window / 20).min(1000);
        let rate = RateParams { interval, tolerance: (window / 20).max(interval), lead };
        let at = now();
        match engine.store.rate_slot(&route.id, &c.id, at, rate).await {
            Ok(slot) if slot.0 > at.0 + lead => return Sendout::Postpone(Millis(slot.0 - lead)),
            Ok(slot) if slot.0 > at.0 => {
                tokio::time::sleep(Duration::from_millis(u64::try_from(slot.0 - at.0).unwrap_or(0))).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "could not take a rate-limit slot; waiting");
                return Sendout::Postpone(Millis(at.0 + interval));
            }
        }
    }
    let via = Some(Via { id: route.id.clone(), name: route.name.clone() });
    let transports = Transports { mailer, http: &engine.http, tokens: &engine.oauth_tokens };
    let d = send_via(&transports, route, &parts).await;
    let failed_over = match &d {
        Delivery::Accepted { .. } => {
            if (route.health.failures > 0 || route.health.open_until.is_some())
                && let Err(e) = engine.store.provider_recovered(&route.id).await
            {
                tracing::warn!(error = format!("{e:#}"), "could not close a provider's circuit");
            }
            false
        }
        other if failure_kind(other) == FailureKind::Provider => {
            let at = now();
            let until = Millis(at.0 + millis(engine.config.circuit_cooldown));
            let error = other.clone().error_text();
            let failed = engine.store.provider_failed(&route.id, at, &error, engine.config.circuit_failures, until);
            if let Err(e) = failed.await {
                tracing::warn!(error = format!("{e:#}"), "could not record a provider failure");
            }
            metrics::counter!("herald_provider_failures_total", "provider" => route.id.clone()).increment(1);
            routes.len() > 1
        }
        _ => false,
    };
    let mut outcome = outcome_of(engine, c, d, failed_over);
    // While the list has not been walked round, the next provider gets the
    // next attempt at once; after the last one, the back-off applies.
    if failed_over
        && providers::failover_now(routes, index)
        && let Outcome::Retry { at, .. } = &mut outcome
    {
        *at = now();
    }
    Sendout::Done(outcome, via)
}

/// The outcome of a hand-over. `failover`: a provider failure with another
/// provider to go to is retried even where its reply was permanent.
fn outcome_of(engine: &Engine, c: &Claimed, d: Delivery, failover: bool) -> Outcome {
    let now = engine.clock.now();
    match d {
        Delivery::Accepted { response } => Outcome::Sent { response },
        Delivery::Transient { class, error, response } => {
            metrics::counter!("herald_smtp_errors_total", "class" => class).increment(1);
            tracing::info!(notification = %c.id, attempt = c.attempt, class, error = %error, "send failed; will retry");
            engine.config.retry.after_transient(c, now, error, response)
        }
        Delivery::Permanent { class, error, response } if failover => {
            metrics::counter!("herald_smtp_errors_total", "class" => class).increment(1);
            tracing::info!(notification = %c.id, attempt = c.attempt, class, error = %error, "provider failed; failing over");
            engine.config.retry.after_transient(c, now, error, response)
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
            // Rate-limit slots reserved by mails that went elsewhere.
            if let Err(e) = engine.store.purge_reservations(Millis(now.0 - 3_600_000)).await {
                tracing::warn!(error = format!("{e:#}"), "could not purge rate-limit reservations");
            }
        }
    }
}
