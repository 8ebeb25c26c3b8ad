//! The in-process cache of the reads every request makes: token lookups
//! (every authenticated request), SMTP settings rows (the Leegality
//! notification-config endpoints and every send) and org limits rows
//! (whether an accepted event's count is a quota decision, on PostgreSQL).
//!
//! Bounds, as Herald promises them (README, Storage):
//! - **On the node that made a change, at once.** The `Store` method that
//!   revokes a token or changes an SMTP row clears its shelf after the write
//!   committed and before the change is answered. A read that started before
//!   the commit cannot put its (old) answer back afterwards: every clear
//!   moves the shelf to a new epoch, and an answer read in an earlier epoch
//!   is dropped instead of stored.
//! - **On every other node (another process, another `Store` on the same
//!   database), within [`TTL`] (500 ms), below the promised second.** An
//!   entry is served only until `TTL` after its read *began*, so however
//!   long the read took, nothing it saw outlives a later commit anywhere by
//!   more than `TTL`. This needs no listener connection or poller that could
//!   fail quietly (a dropped `LISTEN` connection or a stalled poll would
//!   stretch the bound; a clock that only ever expires entries cannot).
//!
//! Only what exists is cached: a token that is not found (or revoked) is
//! never stored, so guessed tokens cannot fill memory, and each shelf holds
//! at most [`CAPACITY`] entries (when full, expired entries are dropped;
//! if none had expired, the shelf starts over empty).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::smtp::SmtpRow;
use super::tokens::TokenAuth;
use crate::domain::fairness::OrgLimits;

/// How long an entry may be served after its read began.
pub const TTL: Duration = Duration::from_millis(500);

/// Entries per shelf, at most.
pub const CAPACITY: usize = 10_000;

/// The caches of one [`Store`](super::Store), shared by its clones.
#[derive(Default)]
pub struct ReadCache {
    /// Live tokens by digest.
    pub tokens: Shelf<String, TokenAuth>,
    /// SMTP rows (or their absence) by scope id.
    pub smtp: Shelf<String, Option<SmtpRow>>,
    /// Org limits rows (or their absence) by org id: whether an accepted
    /// event's count is a quota decision (PostgreSQL's accept path).
    pub limits: Shelf<String, Option<OrgLimits>>,
}

impl super::Store {
    /// Forgets every cached read of this node: for a program (or a test)
    /// that changed tokens or SMTP rows behind Herald's back and will not
    /// wait out [`TTL`].
    pub fn forget_cached_reads(&self) {
        self.cache.tokens.clear();
        self.cache.smtp.clear();
        self.cache.limits.clear();
    }
}

/// One map of cached answers.
pub struct Shelf<K, V> {
    inner: Mutex<Inner<K, V>>,
}

struct Inner<K, V> {
    epoch: u64,
    entries: HashMap<K, (Instant, V)>,
}

impl<K, V> Default for Shelf<K, V> {
    fn default() -> Self {
        Shelf { inner: Mutex::new(Inner { epoch: 0, entries: HashMap::new() }) }
    }
}

/// Taken before a read: when it began, and in which epoch.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    began: Instant,
}

impl<K: Eq + Hash, V: Clone> Shelf<K, V> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        // The map stays consistent whatever panicked while holding it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached answer for `key`, if it is still fresh.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let inner = self.lock();
        let (began, value) = inner.entries.get(key)?;
        (began.elapsed() < TTL).then(|| value.clone())
    }

    /// Take this before reading the database for an answer to store.
    pub fn ticket(&self) -> Ticket {
        let epoch = self.lock().epoch;
        Ticket { epoch, began: Instant::now() }
    }

    /// Stores the answer of a read that began at `ticket`, unless the shelf
    /// was cleared since (the answer may predate that change) or is full.
    pub fn put(&self, ticket: Ticket, key: K, value: V) {
        let mut inner = self.lock();
        if inner.epoch != ticket.epoch {
            return;
        }
        if inner.entries.len() >= CAPACITY && !inner.entries.contains_key(&key) {
            inner.entries.retain(|_, (began, _)| began.elapsed() < TTL);
            if inner.entries.len() >= CAPACITY {
                // Nothing expired: start over (a cache may forget anything;
                // this keeps the scan above to once per CAPACITY inserts).
                inner.entries.clear();
            }
        }
        inner.entries.insert(key, (ticket.began, value));
    }

    /// Forgets everything, and every answer of a read already under way.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.entries.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Clears a shelf when dropped: after a write returned, or when its caller
/// went away while waiting for it (the write may still have committed).
pub struct ClearOnDrop<'a, K: Eq + Hash, V: Clone>(pub &'a Shelf<K, V>);

impl<K: Eq + Hash, V: Clone> Drop for ClearOnDrop<'_, K, V> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_read_before_a_clear_is_not_stored() {
        let shelf: Shelf<String, u32> = Shelf::default();
        let ticket = shelf.ticket();
        shelf.clear(); // a change committed while the read ran
        shelf.put(ticket, "k".into(), 1);
        assert_eq!(shelf.get("k"), None);
        let ticket = shelf.ticket();
        shelf.put(ticket, "k".into(), 2);
        assert_eq!(shelf.get("k"), Some(2));
        shelf.clear();
        assert_eq!(shelf.get("k"), None);
    }

    #[test]
    fn entries_expire_ttl_after_their_read_began() {
        let shelf: Shelf<String, u32> = Shelf::default();
        let old = Ticket { epoch: 0, began: Instant::now() - TTL };
        shelf.put(old, "k".into(), 1);
        assert_eq!(shelf.get("k"), None, "a read that began TTL ago is stale however late it finished");
    }

    #[test]
    fn a_full_shelf_drops_expired_entries_first_and_never_grows_past_capacity() {
        let shelf: Shelf<u32, u32> = Shelf::default();
        let stale = Ticket { epoch: 0, began: Instant::now() - TTL };
        // Fresh however slowly this test runs.
        let fresh = Ticket { epoch: 0, began: Instant::now() + Duration::from_secs(3600) };
        let half = CAPACITY as u32 / 2;
        for k in 0..half {
            shelf.put(stale, k, k);
        }
        for k in half..2 * half {
            shelf.put(fresh, k, k);
        }
        assert_eq!(shelf.len(), CAPACITY);
        shelf.put(fresh, u32::MAX, 0);
        assert_eq!(shelf.len(), CAPACITY / 2 + 1, "the expired half made room");
        assert_eq!(shelf.get(&half), Some(half), "fresh entries stay");
        for k in 0..CAPACITY as u32 {
            shelf.put(fresh, k + 2 * half, 0);
            assert!(shelf.len() <= CAPACITY);
        }
    }
}
