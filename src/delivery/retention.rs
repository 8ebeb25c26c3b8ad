//! The background pruner (issue 20): every node runs a pass of
//! [`retention::prune`] each interval (on PostgreSQL the advisory lock lets
//! one node at a time do the work), and publishes the database's size, its
//! rows by table class and what the last pass removed as metrics.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::RetentionConfig;
use crate::domain::retention::{self, PruneRun};
use crate::store::{StorageStats, Store};

pub struct Pruner {
    store: Store,
    clock: Clock,
    config: RetentionConfig,
    last: Mutex<Option<PruneRun>>,
    /// One pass at a time in this process (the loop and the admin endpoint).
    running: tokio::sync::Mutex<()>,
}

impl Pruner {
    pub fn new(store: Store, clock: Clock, config: RetentionConfig) -> Pruner {
        Pruner { store, clock, config, last: Mutex::new(None), running: tokio::sync::Mutex::new(()) }
    }

    pub fn config(&self) -> &RetentionConfig {
        &self.config
    }

    /// This node's last pass, if it ran one since it started.
    pub fn last(&self) -> Option<PruneRun> {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one pass now and records it.
    pub async fn run_once(&self) -> anyhow::Result<PruneRun> {
        let _turn = self.running.lock().await;
        let (defaults, batch, day_ms) = (&self.config.defaults, self.config.batch, self.config.day_ms);
        let mut run = retention::prune(&self.store, defaults, self.clock.now(), batch, day_ms).await?;
        run.finished_at = self.clock.now();
        if !run.skipped {
            let r = run.removed;
            for (what, n) in [
                ("bodies", r.bodies),
                ("notifications", r.notifications),
                ("events", r.events),
                ("audit_entries", r.audit_entries),
                ("webhook_messages", r.webhook_messages),
                ("alerts", r.alerts),
                ("usage_windows", r.usage_windows),
                ("pages", r.pages_freed),
            ] {
                metrics::gauge!("herald_retention_last_run_removed", "what" => what).set(n as f64);
                metrics::counter!("herald_retention_removed_total", "what" => what).increment(n);
            }
            metrics::gauge!("herald_retention_last_run_timestamp_seconds").set(run.finished_at.0 as f64 / 1000.0);
            metrics::gauge!("herald_retention_last_run_duration_seconds")
                .set((run.finished_at.0 - run.started_at.0).max(0) as f64 / 1000.0);
            if r != Default::default() {
                tracing::info!(
                    bodies = r.bodies,
                    notifications = r.notifications,
                    events = r.events,
                    audit_entries = r.audit_entries,
                    pages_freed = r.pages_freed,
                    "retention pass"
                );
            }
        }
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(run);
        Ok(run)
    }

    /// Reads the database's size and rows, and publishes them as metrics.
    pub async fn storage(&self) -> anyhow::Result<StorageStats> {
        let stats = self.store.storage_stats().await?;
        metrics::gauge!("herald_db_size_bytes").set(stats.size_bytes as f64);
        for (table, n) in &stats.rows {
            metrics::gauge!("herald_db_rows", "table" => *table).set(*n as f64);
        }
        Ok(stats)
    }

    /// Prunes each interval until `stop` turns true (a pass in progress
    /// finishes its current batch's transaction first: every batch is
    /// atomic, so stopping or dying between batches loses nothing).
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if let Err(e) = self.storage().await {
            tracing::warn!(error = format!("{e:#}"), "could not read the database's size");
        }
        let Some(every) = self.config.interval else { return };
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let pass = async {
                self.run_once().await?;
                self.storage().await
            };
            tokio::select! {
                done = pass => if let Err(e) = done {
                    tracing::warn!(error = format!("{e:#}"), "retention pass failed; retried next interval");
                },
                _ = stop.changed() => return,
            }
        }
    }
}
