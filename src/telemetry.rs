//! Logs and metrics. Logs are `tracing` events on stderr (`HERALD_LOG`,
//! `HERALD_LOG_FORMAT`); metrics are kept by a process-wide Prometheus
//! recorder and served as text at `/metrics`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Installs the global log subscriber. `filter` is an `EnvFilter` directive
/// such as `info` or `herald=debug,sqlx=warn`.
pub fn init_logging(filter: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)?;
    // Colour codes only for a person at a terminal, never in files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let installed = match format {
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("install the log subscriber: {e}"))
}

/// An error and its causes on one line, `outer: inner: …`, each said once:
/// a driver error often ends with the text of its own source
/// ("error returned from database: X", then "X"), which `{:#}` repeats.
pub fn error_chain(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|last| last.ends_with(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

/// Says once why the process stops: a plain `herald: …` line for people, or
/// one JSON log line when logs are JSON.
pub fn report_failure(err: &anyhow::Error, format: LogFormat) {
    let message = error_chain(err);
    match format {
        LogFormat::Json => tracing::error!(error = message, "herald failed"),
        LogFormat::Pretty => eprintln!("herald: {message}"),
    }
}

const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process-wide Prometheus recorder, installed on first use. One per
/// process: servers started side by side (tests) share it.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Fails only if another recorder is installed; then ours stays
        // private and `/metrics` shows only what it records.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// The method as a metrics label: the standard ones by name, any other
/// `"other"` (a client may send any token as a method, and each would make
/// new series).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts requests and times them by route template (never the raw path,
/// which would grow the label set without bound) and status.
pub async fn track_requests(req: Request, next: Next) -> Response {
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method()).to_owned();
    let started = Instant::now();
    let res = next.run(req).await;
    let labels = [("method", method), ("route", route), ("status", res.status().as_u16().to_string())];
    metrics::counter!("herald_http_requests_total", &labels).increment(1);
    metrics::histogram!("herald_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_says_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("error returned from database: {0}")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("database \"x\" does not exist")]
        struct Inner;
        let err = anyhow::Error::new(Outer(Inner)).context("connect to PostgreSQL at postgres://h:5432/x");
        assert_eq!(format!("{err:#}").matches("does not exist").count(), 2, "the repetition this removes");
        assert_eq!(
            error_chain(&err),
            "connect to PostgreSQL at postgres://h:5432/x: error returned from database: database \"x\" does not exist"
        );
    }
}
