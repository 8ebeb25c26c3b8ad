//! The group commit of accepted events: one [`Committer`] per process
//! writes the events that arrived while the previous commit ran in a single
//! transaction, so acceptance is not bound to one commit per request. Each
//! caller still gets its 202 only after its own event is on disk. What an
//! event holds is decided in [`crate::domain::delivery::events`].

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{Notify, mpsc, oneshot};

use super::express::Express;
use crate::domain::OrgId;
use crate::domain::delivery::NewEvent;
use crate::store::{EventWrite, Store};

const MAX_BATCH: usize = 512;

struct Job {
    event: NewEvent,
    idempotency: Option<(String, String)>,
    done: oneshot::Sender<anyhow::Result<()>>,
}

/// Writes accepted events, many per transaction when they arrive together,
/// and wakes this process's workers after each commit (and asks for an
/// express claim for orgs with nothing in flight: `express.rs`).
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl Committer {
    /// Starts the commit loop on the current runtime.
    pub fn start(store: Store, wake: Arc<Notify>, express: Arc<Express>) -> Committer {
        let (jobs, mut rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                // Orgs with mail due now (not held for a later window).
                let due: Vec<OrgId> = batch
                    .iter()
                    .filter(|j| !j.event.notifications.is_empty() && j.event.not_before.is_none())
                    .map(|j| j.event.org.clone())
                    .collect();
                commit_batch(&store, &mut batch).await;
                wake.notify_waiters();
                express.committed(&due);
            }
        });
        Committer { jobs }
    }

    /// Commits one event (with its idempotent response); resolves once it
    /// is durable.
    pub async fn commit(&self, event: NewEvent, idempotency: Option<(String, String)>) -> anyhow::Result<()> {
        let (done, result) = oneshot::channel();
        self.jobs.send(Job { event, idempotency, done }).await.map_err(|_| anyhow::anyhow!("the committer stopped"))?;
        result.await.context("the committer stopped")?
    }
}

async fn commit_batch(store: &Store, batch: &mut Vec<Job>) {
    let writes: Vec<EventWrite<'_>> = batch
        .iter()
        .map(|j| EventWrite {
            event: &j.event,
            idempotency: j.idempotency.as_ref().map(|(k, r)| (k.as_str(), r.as_str())),
        })
        .collect();
    let together = store.insert_events(&writes).await;
    drop(writes);
    match together {
        Ok(()) => {
            for job in batch.drain(..) {
                let _ = job.done.send(Ok(()));
            }
        }
        Err(_) if batch.len() > 1 => {
            // One bad event must not fail the others: write each alone.
            for job in batch.drain(..) {
                let write = EventWrite {
                    event: &job.event,
                    idempotency: job.idempotency.as_ref().map(|(k, r)| (k.as_str(), r.as_str())),
                };
                let result = store.insert_events(std::slice::from_ref(&write)).await;
                let _ = job.done.send(result);
            }
        }
        Err(e) => {
            for job in batch.drain(..) {
                let _ = job.done.send(Err(anyhow::anyhow!("{e:#}")));
            }
        }
    }
}
