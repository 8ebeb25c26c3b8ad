//! Load generator of `bench/delivery`: posts exactly N events with C
//! concurrent clients and prints one JSON line: how many were accepted, in
//! how many seconds, and the accept latency percentiles.
//!
//! `cargo run --release --example post_events -- URL TOKEN N C`
//!
//! With `BENCH_IDEMPOTENCY_KEYS=1` every event carries its own
//! `Idempotency-Key`, as a careful client's do.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, token, n, c] = args.as_slice() else {
        eprintln!("usage: post_events URL TOKEN N CONCURRENCY");
        std::process::exit(2);
    };
    let n: usize = n.parse().unwrap_or(20_000);
    let c: usize = c.parse().unwrap_or(64);
    let body = r#"{"type":"message.send","data":{"to":"someone@example.com","subject":"Benchmark","text":"Hello from bench/delivery.","html":"<p>Hello from <b>bench/delivery</b>.</p>"}}"#;
    // reqwest is built without a TLS provider of its own (as Herald is).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().pool_max_idle_per_host(c).build().unwrap_or_default();
    let keys = std::env::var("BENCH_IDEMPOTENCY_KEYS").is_ok_and(|v| v == "1");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..c {
        let (client, next, url, token) = (client.clone(), next.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let t = Instant::now();
                let mut req =
                    client.post(&url).bearer_auth(&token).header("content-type", "application/json").body(body);
                if keys {
                    req = req.header("idempotency-key", format!("bench-{}", uuid::Uuid::now_v7().simple()));
                }
                let res = req.send().await;
                match res {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let _ = r.bytes().await;
                        latencies.push(t.elapsed());
                    }
                    _ => failed += 1,
                }
            }
            (latencies, failed)
        }));
    }
    let mut all: Vec<Duration> = Vec::with_capacity(n);
    let mut failed = 0;
    for t in tasks {
        if let Ok((l, f)) = t.await {
            all.extend(l);
            failed += f;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p).ceil() as usize).saturating_sub(1).min(all.len().saturating_sub(1));
        all.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{{\"accepted\":{},\"failed\":{},\"seconds\":{:.3},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
        all.len(),
        failed,
        seconds,
        pct(0.50),
        pct(0.99)
    );
}
