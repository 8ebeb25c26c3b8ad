//! The group commit of accepted events: one [`Committer`] per process
//! writes the events that arrived while the previous commit ran in a single
//! transaction, so acceptance is not bound to one commit per request. Each
//! caller still gets its 202 only after its own event is on disk. What an
//! event holds is decided in [`crate::domain::delivery::events`].
//!
//! Events of an org with few events being committed at the moment (a
//! small org, not a burst) go through a second, urgent lane: their own
//! commit loop and, on SQLite, writes ahead of the queue (issue 19: a small
//! org's event waited behind a burst's batches, 18-24 ms of its 32 ms
//! median on bench/fairness). When such an org gets an express claim
//! (`domain::fairness::express_orgs`), the urgent lane makes it in the
//! transaction that commits the event and hands the leased rows straight to
//! the express lane (`express.rs`): one transaction and one wake-up fewer
//! between the 202 and the send.
//!
//! The claims of new idempotency keys are grouped the same way, in a loop
//! of their own (a request claims its key before it builds its event): the
//! keys of the requests that arrived while the previous claim ran are
//! claimed in one statement, and only a key that exists already takes the
//! one-key path that decides between replay, conflict and take-over.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use tokio::sync::{mpsc, oneshot};

use super::express::Express;
use super::worker::{Engine, millis};
use crate::clock::{Clock, Millis};
use crate::domain::OrgId;
use crate::domain::delivery::{Claimed, IdempotencyClaim, NewEvent};
use crate::store::{EventWrite, LeaseOnCommit, LeaseTerms, NewKeyClaim, Store};

const MAX_BATCH: usize = 512;

/// An org with at most this many events being committed (the new one
/// included) takes the urgent lane.
const URGENT_AT_MOST: usize = 4;

struct Job {
    event: NewEvent,
    idempotency: Option<(String, String)>,
    done: oneshot::Sender<anyhow::Result<()>>,
}

struct KeyJob {
    claim: NewKeyClaim,
    /// `true`: claimed; `false`: the key exists (or the batch failed), take
    /// the one-key path.
    done: oneshot::Sender<bool>,
}

/// Writes accepted events, many per transaction when they arrive together,
/// and wakes this process's workers after each commit (and makes or asks for
/// express claims: `express.rs`).
#[derive(Clone)]
pub struct Committer {
    jobs: mpsc::Sender<Job>,
    urgent: mpsc::Sender<Job>,
    keys: mpsc::Sender<KeyJob>,
    store: Store,
    /// Events being committed per org.
    committing: Arc<Mutex<HashMap<OrgId, usize>>>,
}

impl Committer {
    /// Starts the commit loops on the current runtime.
    pub fn start(engine: &Engine) -> Committer {
        let store = engine.store.clone();
        let (jobs, rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        let (urgent, urgent_rx) = mpsc::channel::<Job>(4 * MAX_BATCH);
        let (keys, mut keys_rx) = mpsc::channel::<KeyJob>(4 * MAX_BATCH);
        let key_store = store.clone();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while keys_rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                claim_batch(&key_store, &mut batch).await;
            }
        });
        for (mut rx, lane_is_urgent) in [(rx, false), (urgent_rx, true)] {
            let (store, wake, express) = (store.clone(), engine.wake.clone(), engine.express.clone());
            let lease = lane_is_urgent.then(|| Lease {
                clock: engine.clock.clone(),
                lease_ms: millis(engine.config.lease),
                limit: engine.config.express_batch,
            });
            tokio::spawn(async move {
                let mut batch = Vec::with_capacity(MAX_BATCH);
                while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                    // Orgs with mail due now (not held for a later window).
                    let due: Vec<OrgId> = batch
                        .iter()
                        .filter(|j| !j.event.notifications.is_empty() && j.event.not_before.is_none())
                        .map(|j| j.event.org.clone())
                        .collect();
                    let on_commit = lease.as_ref().and_then(|l| l.plan(&express, &due));
                    let started = std::time::Instant::now();
                    let leased = commit_batch(&store, &mut batch, lane_is_urgent, on_commit.as_ref()).await;
                    let lane = if lane_is_urgent { "urgent" } else { "queued" };
                    metrics::histogram!("herald_commit_seconds", "lane" => lane)
                        .record(started.elapsed().as_secs_f64());
                    wake.notify_waiters();
                    let mut handed = Vec::new();
                    if let (Some(plan), Some(leased)) = (on_commit, leased) {
                        for ((org, lease_id), rows) in plan.orgs.into_iter().zip(leased) {
                            express.leased(lease_id, rows);
                            handed.push(org);
                        }
                    }
                    express.committed(due.iter().filter(|org| !handed.contains(org)));
                }
            });
        }
        Committer { jobs, urgent, keys, store, committing: Arc::default() }
    }

    /// Claims `key` for a request with body digest `hash`, or says why not
    /// (as [`Store::claim_idempotency_key`], with new keys claimed together).
    pub async fn claim_idempotency_key(
        &self,
        org: &OrgId,
        key: &str,
        hash: &str,
        now: Millis,
        claim_until: Millis,
    ) -> anyhow::Result<IdempotencyClaim> {
        let claim = NewKeyClaim { org: org.clone(), key: key.to_owned(), hash: hash.to_owned(), now, claim_until };
        let (done, claimed) = oneshot::channel();
        if self.keys.send(KeyJob { claim, done }).await.is_ok() && claimed.await == Ok(true) {
            return Ok(IdempotencyClaim::Claimed);
        }
        self.store.claim_idempotency_key(org, key, hash, now, claim_until).await
    }

    /// Commits one event (with its idempotent response); resolves once it
    /// is durable.
    pub async fn commit(&self, event: NewEvent, idempotency: Option<(String, String)>) -> anyhow::Result<()> {
        // Counted until this returns or the request goes away.
        let org = event.org.clone();
        let committing = Committing::start(&self.committing, &org);
        let lane = if committing.count <= URGENT_AT_MOST { &self.urgent } else { &self.jobs };
        let (done, result) = oneshot::channel();
        lane.send(Job { event, idempotency, done }).await.map_err(|_| anyhow::anyhow!("the committer stopped"))?;
        result.await.context("the committer stopped")?
    }
}

/// How the urgent lane leases an express org's rows in its commit.
struct Lease {
    clock: Clock,
    lease_ms: i64,
    limit: i64,
}

impl Lease {
    /// The express claims to make with the commit of mail of the `due`
    /// orgs, if any qualify.
    fn plan(&self, express: &Express, due: &[OrgId]) -> Option<LeaseOnCommit> {
        let orgs = express.express_now(due);
        if orgs.is_empty() {
            return None;
        }
        let now = self.clock.now();
        Some(LeaseOnCommit {
            orgs: orgs.into_iter().map(|org| (org, uuid::Uuid::now_v7().to_string())).collect(),
            terms: LeaseTerms { now, until: Millis(now.0 + self.lease_ms), limit: self.limit },
        })
    }
}

/// One event of an org being committed: counted from [`Committing::start`]
/// until dropped.
struct Committing<'a> {
    counts: &'a Mutex<HashMap<OrgId, usize>>,
    org: &'a OrgId,
    /// The org's events being committed, this one included.
    count: usize,
}

impl<'a> Committing<'a> {
    fn start(counts: &'a Mutex<HashMap<OrgId, usize>>, org: &'a OrgId) -> Committing<'a> {
        let mut all = counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = all.entry(org.clone()).or_default();
        *n += 1;
        Committing { count: *n, counts, org }
    }
}

impl Drop for Committing<'_> {
    fn drop(&mut self) {
        let mut all = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = all.get_mut(self.org) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                all.remove(self.org);
            }
        }
    }
}

async fn claim_batch(store: &Store, batch: &mut Vec<KeyJob>) {
    // A key twice in one batch: the first is claimed here, the second takes
    // the one-key path after it (and finds it in flight, or replays it).
    let mut seen = HashSet::new();
    let (firsts, repeats): (Vec<KeyJob>, Vec<KeyJob>) =
        batch.drain(..).partition(|j| seen.insert((j.claim.org.clone(), j.claim.key.clone())));
    let claims: Vec<NewKeyClaim> = firsts.iter().map(|j| j.claim.clone()).collect();
    let claimed = match store.claim_new_idempotency_keys(&claims).await {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "could not claim idempotency keys together; one by one instead");
            vec![false; claims.len()]
        }
    };
    for (job, claimed) in firsts.into_iter().zip(claimed) {
        let _ = job.done.send(claimed);
    }
    for job in repeats {
        let _ = job.done.send(false);
    }
}

/// Commits the batch (each event alone if together fails). The leased
/// rows of `lease`, one list per org, when the batch committed together
/// with it; `None` when it did not (the express lane then claims as usual).
async fn commit_batch(
    store: &Store,
    batch: &mut Vec<Job>,
    urgent: bool,
    lease: Option<&LeaseOnCommit>,
) -> Option<Vec<Vec<Claimed>>> {
    let writes: Vec<EventWrite<'_>> = batch
        .iter()
        .map(|j| EventWrite {
            event: &j.event,
            idempotency: j.idempotency.as_ref().map(|(k, r)| (k.as_str(), r.as_str())),
        })
        .collect();
    let together = store.insert_events(&writes, urgent, lease).await;
    drop(writes);
    match together {
        Ok(leased) => {
            for job in batch.drain(..) {
                let _ = job.done.send(Ok(()));
            }
            return Some(leased);
        }
        Err(e) if batch.len() > 1 || lease.is_some() => {
            // One bad event must not fail the others, nor a failed express
            // claim the events: write each alone, without the claim.
            tracing::warn!(
                error = format!("{e:#}"),
                events = batch.len(),
                express = lease.is_some(),
                "committing events together failed; committing each alone"
            );
            for job in batch.drain(..) {
                let write = EventWrite {
                    event: &job.event,
                    idempotency: job.idempotency.as_ref().map(|(k, r)| (k.as_str(), r.as_str())),
                };
                let result = store.insert_events(std::slice::from_ref(&write), urgent, None).await;
                let _ = job.done.send(result.map(drop));
            }
        }
        Err(e) => {
            for job in batch.drain(..) {
                let _ = job.done.send(Err(anyhow::anyhow!("{e:#}")));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_orgs_events_being_committed_are_counted_until_dropped() {
        let counts = Mutex::new(HashMap::new());
        let (a, b) = (OrgId::from_db("a".to_owned()), OrgId::from_db("b".to_owned()));
        let a1 = Committing::start(&counts, &a);
        let a2 = Committing::start(&counts, &a);
        let b1 = Committing::start(&counts, &b);
        assert_eq!((a1.count, a2.count, b1.count), (1, 2, 1));
        drop(a1);
        assert_eq!(Committing::start(&counts, &a).count, 2, "a2 and the new one");
        drop((a2, b1));
        assert!(counts.lock().unwrap().is_empty(), "nothing left behind");
    }
}
