//! Usage counts of orgs without a quota, written with the next batch of
//! accepted events instead of one statement each (PostgreSQL since issue 15,
//! SQLite since issue 19: on SQLite each count was a writer transaction of
//! its own that a small org's event waited for behind a burst).
//!
//! Every accepted notification is counted in its org's hour and day
//! (`org_usage`), quota or not, because `GET /v1/usage` shows the count and
//! a quota set later starts from it. For an org with a quota the count is a
//! decision and stays one transaction per event, under the org's lock. For
//! an org without one, nothing is decided: counting each event on its own
//! made every accepted event of the org a commit of the same two rows, so
//! those commits queued behind each other's WAL flush. Here the count waits
//! in memory and the [`Committer`](crate::delivery::committer::Committer)'s
//! next transaction writes it, summed, together with the events. A write
//! that fails puts the counts back for the next one.
//!
//! The committer has two lanes (a small org's events go through an urgent
//! one, issue 19), each writing what is waiting when it starts. So an
//! event's count is in its own transaction, or in the other lane's, which
//! may commit just after it: a crash in that moment loses the count (never
//! the event). Only orgs without a quota are counted here, for whom the
//! count decides nothing.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

/// `(org, period, bucket)` → notifications not yet written.
pub type Counts = BTreeMap<(String, &'static str, i64), i64>;

/// The counts of one [`Store`](super::Store), shared by its clones.
#[derive(Default)]
pub struct PendingUsage {
    counts: Mutex<Counts>,
}

impl PendingUsage {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `n` notifications of `org` in the hour and day starting at
    /// `hour` and `day`.
    pub fn add(&self, org: &str, hour: i64, day: i64, n: i64) {
        let mut counts = self.lock();
        *counts.entry((org.to_owned(), "hour", hour)).or_default() += n;
        *counts.entry((org.to_owned(), "day", day)).or_default() += n;
    }

    /// Gives back `n` still waiting here (an event that was not written);
    /// `false` if they were written already (the caller writes `-n`).
    pub fn give_back(&self, org: &str, hour: i64, day: i64, n: i64) -> bool {
        let mut counts = self.lock();
        let waiting = |c: &Counts, period, bucket| c.get(&(org.to_owned(), period, bucket)).is_some_and(|v| *v >= n);
        if !(waiting(&counts, "hour", hour) && waiting(&counts, "day", day)) {
            return false;
        }
        for (period, bucket) in [("hour", hour), ("day", day)] {
            let key = (org.to_owned(), period, bucket);
            if let Some(v) = counts.get_mut(&key) {
                *v -= n;
                if *v == 0 {
                    counts.remove(&key);
                }
            }
        }
        true
    }

    /// Everything waiting, to write now.
    pub fn take(&self) -> Counts {
        std::mem::take(&mut *self.lock())
    }

    /// Puts back what [`take`](Self::take) returned when its write failed.
    pub fn restore(&self, taken: Counts) {
        let mut counts = self.lock();
        for (key, n) in taken {
            *counts.entry(key).or_default() += n;
        }
    }

    /// The usage columns of `PG_COMMIT_EVENTS`, in key order (every writer
    /// takes the rows' locks in the same order).
    pub fn columns(counts: &Counts) -> (Vec<&str>, Vec<&str>, Vec<i64>, Vec<i64>) {
        let mut cols = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((org, period, bucket), n) in counts.iter().filter(|(_, n)| **n != 0) {
            cols.0.push(org.as_str());
            cols.1.push(*period);
            cols.2.push(*bucket);
            cols.3.push(*n);
        }
        cols
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_give_back_and_survive_a_failed_write() {
        let p = PendingUsage::default();
        p.add("o1", 3_600_000, 0, 2);
        p.add("o1", 3_600_000, 0, 1);
        p.add("o2", 7_200_000, 0, 5);
        assert!(p.give_back("o2", 7_200_000, 0, 5));
        assert!(!p.give_back("o2", 7_200_000, 0, 1), "nothing of o2 waits any more");
        let taken = p.take();
        assert_eq!(taken.get(&("o1".into(), "hour", 3_600_000)), Some(&3));
        assert_eq!(taken.get(&("o1".into(), "day", 0)), Some(&3));
        assert!(!taken.contains_key(&("o2".into(), "hour", 7_200_000)));
        assert!(p.take().is_empty());
        p.add("o1", 3_600_000, 0, 1);
        p.restore(taken);
        let left = p.take();
        let (orgs, periods, buckets, n) = PendingUsage::columns(&left);
        assert_eq!(orgs, ["o1", "o1"]);
        assert_eq!(periods, ["day", "hour"]);
        assert_eq!(buckets, [0, 3_600_000]);
        assert_eq!(n, [4, 4]);
    }
}
