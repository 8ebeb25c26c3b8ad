//! The webhook worker: claims due messages (the oldest pending one of each
//! endpoint, so an endpoint gets its messages in order), signs and POSTs
//! them through [`OutboundHttp`] (the host policy; no redirects), and
//! records each attempt with its status and latency. A failure puts the
//! message back with a back-off; the endpoint's later messages wait behind
//! it. An endpoint failing for 24 hours is disabled (its pending messages
//! stay, and go out in order once it is enabled again).
//!
//! A process that dies holding a lease loses nothing: the message is due
//! again when the lease ends. One that was delivered just before the crash
//! is delivered again, with the same `webhook-id` (receivers deduplicate
//! on it, as the Standard Webhooks specification asks).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::watch;

use super::http::OutboundHttp;
use super::worker::Engine;
use crate::clock::Millis;
use crate::domain::signing;
use crate::domain::webhooks::{self, ClaimedMessage, DISABLE_AFTER_MS, MessageResult};

const BATCH: i64 = 64;
const CONCURRENCY: usize = 16;

/// How often this process evaluates the alert conditions.
const ALERTS_EVERY: Duration = Duration::from_secs(10);

/// Runs until `stop` turns true; also evaluates the alert conditions every
/// [`ALERTS_EVERY`] (they watch the same queues).
pub async fn run(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    let mut evaluated = Instant::now();
    loop {
        if *stop.borrow() {
            return;
        }
        if evaluated.elapsed() >= ALERTS_EVERY {
            evaluated = Instant::now();
            if let Err(e) = crate::domain::alerts::evaluate(&engine.store, engine.clock.now()).await {
                tracing::error!(error = format!("{e:#}"), "could not evaluate alerts");
            }
        }
        let worked = match run_batch(&engine).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "webhook batch failed");
                false
            }
        };
        if !worked {
            tokio::select! {
                () = tokio::time::sleep(engine.config.poll) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Claims, sends and records one batch; returns how many messages it held.
pub async fn run_batch(engine: &Engine) -> anyhow::Result<usize> {
    let lease_id = uuid::Uuid::now_v7().to_string();
    let now = engine.clock.now();
    // The mail workers' lease (`HERALD_LEASE_SECONDS`): a crashed process's
    // message is due again after it.
    let lease_ms = i64::try_from(engine.config.lease.as_millis()).unwrap_or(60_000);
    let claimed = engine.store.claim_webhooks(&lease_id, now, Millis(now.0 + lease_ms), BATCH).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let claimed_ref = &claimed;
    let results: Vec<MessageResult> = futures_util::stream::iter(0..claimed.len())
        .map(|i| async move { deliver(engine, &claimed_ref[i]).await })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let now = engine.clock.now();
    let disabled = engine.store.finish_webhooks(&lease_id, &results, now, Millis(now.0 - DISABLE_AFTER_MS)).await?;
    for r in &results {
        let outcome = if r.delivered() { "delivered" } else { "failed" };
        metrics::counter!("herald_webhook_attempts_total", "outcome" => outcome).increment(1);
    }
    for endpoint in disabled {
        // The `webhook_disabled` alert opens at the next evaluation.
        tracing::warn!(endpoint = %endpoint, "webhook endpoint disabled after failing for 24 hours");
        metrics::counter!("herald_webhook_endpoints_disabled_total").increment(1);
    }
    Ok(claimed.len())
}

async fn deliver(engine: &Engine, m: &ClaimedMessage) -> MessageResult {
    let started = Instant::now();
    let (status_code, error) = match post(engine, m).await {
        Ok(code) if (200..300).contains(&code) => (Some(code), None),
        Ok(code) => (Some(code), Some(format!("the endpoint answered HTTP {code}"))),
        Err(e) => (None, Some(e)),
    };
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let retry_at = error.as_ref().map(|_| webhooks::retry_at(m.attempt, engine.clock.now()));
    if let Some(e) = &error {
        tracing::info!(message = %m.id, endpoint = %m.endpoint_id, attempt = m.attempt, error = %e, "webhook delivery failed; will retry");
    }
    MessageResult {
        seq: m.seq,
        endpoint_id: m.endpoint_id.clone(),
        attempt: m.attempt,
        status_code,
        latency_ms,
        error,
        retry_at,
    }
}

/// Signs and sends one message; the response status, or why none came.
async fn post(engine: &Engine, m: &ClaimedMessage) -> Result<i64, String> {
    let sealed = engine
        .store
        .webhook_secrets(&m.endpoint_id)
        .await
        .map_err(|e| {
            tracing::error!(error = format!("{e:#}"), "could not read a webhook secret");
            "the endpoint's secret could not be read".to_owned()
        })?
        .ok_or_else(|| "the endpoint was deleted".to_owned())?;
    let now = engine.clock.now();
    let keys = webhooks::signing_keys(&engine.cipher, &m.org, &m.endpoint_id, &sealed, now).map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "could not open a webhook secret");
        "the endpoint's secret could not be opened".to_owned()
    })?;
    send_signed(&engine.http, &m.url, &m.id, now.0 / 1000, m.payload.as_bytes(), &keys).await
}

/// POSTs `body` with the Standard Webhooks headers, one signature per key.
pub async fn send_signed(
    http: &OutboundHttp,
    url: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
    keys: &[Vec<u8>],
) -> Result<i64, String> {
    let signature: Vec<String> = keys.iter().map(|k| signing::sign_with_key(k, id, timestamp, body)).collect();
    let request = http
        .request(reqwest::Method::POST, url)
        .map_err(|e| e.message)?
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature.join(" "))
        .timeout(Duration::from_secs(15))
        .body(body.to_vec());
    let response = http.send(request).await.map_err(|e| e.message)?;
    Ok(i64::from(response.status().as_u16()))
}
