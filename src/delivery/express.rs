//! The express lane of the workers (issue 19's tail latency): what this
//! process has in flight per org, which claim loops are idle, the orgs
//! waiting for an express claim, and the express claims the commit made
//! itself (`committer.rs`), waiting to be sent. The rule is
//! [`crate::domain::fairness::express_orgs`]; the claims and sends are in
//! `worker.rs`.
//!
//! The lane's claims are sent on a runtime of their own ([`Lane`]): one
//! thread with its own I/O driver, and a mailer of its own whose
//! connections belong to that driver. On the shared runtime, under a burst,
//! each SMTP reply to a small org's mail woke a task that was queued
//! behind every runnable task of the burst (and the shared driver is
//! polled only between them): the SMTP exchange, four round trips, was
//! most of the small org's tail (bench/RESULTS.md, sixth stop).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio::sync::{Notify, oneshot};

use crate::domain::OrgId;
use crate::domain::delivery::Claimed;
use crate::domain::fairness::express_orgs;

#[derive(Default)]
struct State {
    /// Leased rows of each org not yet recorded, in this process.
    in_flight: HashMap<OrgId, usize>,
    /// Orgs waiting for their express claim, in commit order.
    pending: Vec<OrgId>,
    /// Express claims made by the commit itself, waiting to be sent:
    /// (lease id, rows).
    leased: Vec<(String, Vec<Claimed>)>,
}

/// Shared by the committer (which reports commits) and the workers.
#[derive(Default)]
pub struct Express {
    state: Mutex<State>,
    idle_loops: AtomicUsize,
    /// Whether this process's express loop runs (not with `--no-workers`,
    /// nor once the workers stop): only then is anything claimed for it.
    open: AtomicBool,
    /// Woken when an org joins `pending`.
    pub wake: Notify,
}

impl Express {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Which of these orgs, with new due mail about to be committed, get
    /// an express claim now (the rule: [`express_orgs`]).
    pub fn express_now<'a>(&self, orgs: impl IntoIterator<Item = &'a OrgId>) -> Vec<OrgId> {
        if !self.open.load(Ordering::SeqCst) {
            return Vec::new();
        }
        let idle = self.idle_loops.load(Ordering::SeqCst);
        express_orgs(orgs, &self.state().in_flight, idle)
    }

    /// New due mail of these orgs was committed in this process.
    pub fn committed<'a>(&self, orgs: impl IntoIterator<Item = &'a OrgId>) {
        let express = self.express_now(orgs);
        let mut state = self.state();
        let mut added = false;
        for org in express {
            if !state.pending.contains(&org) {
                state.pending.push(org);
                added = true;
            }
        }
        drop(state);
        if added {
            self.wake.notify_one();
        }
    }

    /// Rows the commit leased for an express claim (`lease_id`): to send.
    pub fn leased(&self, lease_id: String, rows: Vec<Claimed>) {
        if rows.is_empty() {
            return;
        }
        self.state().leased.push((lease_id, rows));
        self.wake.notify_one();
    }

    /// The claims the commit made, to send; they leave the list.
    pub fn take_leased(&self) -> Vec<(String, Vec<Claimed>)> {
        std::mem::take(&mut self.state().leased)
    }

    /// The orgs waiting for an express claim; they leave the list.
    pub fn take_pending(&self) -> Vec<OrgId> {
        std::mem::take(&mut self.state().pending)
    }

    /// The express loop starts (`true`) or stops (`false`) taking work.
    pub fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }

    /// A claim loop waits for work (`true`) or goes back to it (`false`).
    pub fn set_idle(&self, idle: bool) {
        if idle {
            self.idle_loops.fetch_add(1, Ordering::SeqCst);
        } else {
            self.idle_loops.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Counts claimed rows as in flight until [`Held::release`] or the
    /// guard's drop.
    pub fn hold(&self, claimed: &[Claimed]) -> Held<'_> {
        let mut left: HashMap<OrgId, usize> = HashMap::new();
        for c in claimed {
            *left.entry(c.org.clone()).or_default() += 1;
        }
        let mut state = self.state();
        for (org, n) in &left {
            *state.in_flight.entry(org.clone()).or_default() += n;
        }
        Held { express: self, left }
    }

    fn release(&self, org: &OrgId, n: usize) {
        let mut state = self.state();
        if let Some(count) = state.in_flight.get_mut(org) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                state.in_flight.remove(org);
            }
        }
    }

    /// Claim loops waiting for work now.
    pub fn idle_loops(&self) -> usize {
        self.idle_loops.load(Ordering::SeqCst)
    }

    /// Rows of `org` in flight in this process.
    pub fn in_flight(&self, org: &OrgId) -> usize {
        self.state().in_flight.get(org).copied().unwrap_or(0)
    }
}

/// Rows of one claim still in flight.
pub struct Held<'a> {
    express: &'a Express,
    left: HashMap<OrgId, usize>,
}

impl Held<'_> {
    /// One row of `org` was recorded (or postponed).
    pub fn release(&mut self, org: &OrgId) {
        if let Some(n) = self.left.get_mut(org)
            && *n > 0
        {
            *n -= 1;
            self.express.release(org, 1);
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        for (org, n) in self.left.drain() {
            if n > 0 {
                self.express.release(&org, n);
            }
        }
    }
}

/// The express lane's runtime: a current-thread runtime on a thread of its
/// own, until this is dropped (with the engine).
pub struct Lane {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl Lane {
    /// Starts the lane's thread.
    pub fn start() -> std::io::Result<Lane> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("herald-express".into()).spawn(move || {
            // Sends still running when the engine goes are dropped: their
            // rows come back when their leases end, as after a crash.
            runtime.block_on(async {
                let _ = stopped.await;
            });
        })?;
        Ok(Lane { handle, _stop: stop })
    }

    /// Where the lane's sends run.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_open_lane_with_busy_loops_takes_express_claims() {
        let express = Express::default();
        let org = OrgId::from_db("b".to_owned());
        // No express loop (`--no-workers`): nothing would send the rows.
        assert!(express.express_now([&org]).is_empty());
        express.committed([&org]);
        assert!(express.take_pending().is_empty());
        express.set_open(true);
        assert_eq!(express.express_now([&org]), vec![org.clone()]);
        // An idle claim loop takes the mail itself.
        express.set_idle(true);
        assert!(express.express_now([&org]).is_empty());
        express.set_idle(false);
        express.committed([&org]);
        assert_eq!(express.take_pending(), vec![org]);
    }

    #[tokio::test]
    async fn the_lane_runs_its_sends_on_its_own_thread_until_dropped() {
        let lane = Lane::start().unwrap();
        let on = lane.handle().spawn(async { std::thread::current().name().map(str::to_owned) }).await.unwrap();
        assert_eq!(on.as_deref(), Some("herald-express"));
        let handle = lane.handle().clone();
        drop(lane);
        // The thread ends and its runtime with it: a task spawned there
        // now is cancelled rather than run.
        for _ in 0..500 {
            if handle.spawn(async {}).await.is_err() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the lane's runtime still runs after the lane was dropped");
    }
}
