//! The express lane of the workers (issue 19's tail latency): what this
//! process has in flight per org, which claim loops are idle, and the orgs
//! waiting for an express claim. The rule is
//! [`crate::domain::fairness::express_orgs`]; the claims and sends are in
//! `worker.rs`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::domain::OrgId;
use crate::domain::delivery::Claimed;
use crate::domain::fairness::express_orgs;

#[derive(Default)]
struct State {
    /// Leased rows of each org not yet recorded, in this process.
    in_flight: HashMap<OrgId, usize>,
    /// Orgs waiting for their express claim, in commit order.
    pending: Vec<OrgId>,
}

/// Shared by the committer (which reports commits) and the workers.
#[derive(Default)]
pub struct Express {
    state: Mutex<State>,
    idle_loops: AtomicUsize,
    /// Woken when an org joins `pending`.
    pub wake: Notify,
}

impl Express {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// New due mail of these orgs was committed in this process.
    pub fn committed<'a>(&self, orgs: impl IntoIterator<Item = &'a OrgId>) {
        let idle = self.idle_loops.load(Ordering::SeqCst);
        let mut state = self.state();
        let mut added = false;
        for org in express_orgs(orgs, &state.in_flight, idle) {
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

    /// The orgs waiting for an express claim; they leave the list.
    pub fn take_pending(&self) -> Vec<OrgId> {
        std::mem::take(&mut self.state().pending)
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
