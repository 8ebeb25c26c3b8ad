//! `maxConcurrent`: a send through a provider with a limit first leases one
//! of its slots (`store/provider_slots.rs`), shared by every node and
//! process on the database. All taken: the mail goes back to the outbox for
//! a moment (not counted as an attempt, never failed for it). The lease
//! is given back when the send is done (when the [`SlotLease`] is dropped)
//! and ends by itself after the worker lease, so a process killed mid-send
//! does not keep the slot.

use std::time::Duration;

use crate::clock::{Clock, Millis};
use crate::domain::providers::Route;
use crate::store::Store;

/// How long a mail that found every slot taken waits in the outbox.
pub const FULL_WAIT: Duration = Duration::from_millis(100);

/// A leased slot; given back when dropped.
pub struct SlotLease {
    store: Store,
    provider: String,
    holder: String,
    /// The lease's end: giving back is retried until then.
    retry_for: Duration,
}

/// The first pause between tries to give a slot back; doubled each time.
const RELEASE_RETRY: Duration = Duration::from_millis(100);

impl Drop for SlotLease {
    fn drop(&mut self) {
        let (store, provider, holder) =
            (self.store.clone(), std::mem::take(&mut self.provider), std::mem::take(&mut self.holder));
        let retry_for = self.retry_for;
        // Outside a runtime (never in the worker) the lease simply expires.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // A slot not given back is taken from every node until its
                // lease ends: a database that stalled for a moment must not
                // cost the provider a slot for that long.
                let (mut pause, mut waited) = (RELEASE_RETRY, Duration::ZERO);
                while let Err(e) = store.release_provider_slot(&provider, &holder).await {
                    if waited >= retry_for {
                        tracing::warn!(error = format!("{e:#}"), "could not give a provider slot back; it expires");
                        return;
                    }
                    tokio::time::sleep(pause).await;
                    waited += pause;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            });
        }
    }
}

/// A slot of `route` when it has `maxConcurrent` (`Ok(None)` when it has
/// none), or `Err(until)`: every slot is taken, wait in the outbox until
/// then. A store failure also waits: mail is never failed for the limit.
pub async fn acquire(
    store: &Store,
    clock: &Clock,
    route: &Route,
    lease: Duration,
) -> Result<Option<SlotLease>, Millis> {
    let Some(max) = route.max_concurrent else { return Ok(None) };
    let now = clock.now();
    let until = Millis(now.0.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4)));
    let holder = uuid::Uuid::now_v7().to_string();
    let wait = Millis(now.0 + i64::try_from(FULL_WAIT.as_millis()).unwrap_or(100));
    match store.acquire_provider_slot(&route.id, &holder, max, now, until).await {
        Ok(true) => Ok(Some(SlotLease { store: store.clone(), provider: route.id.clone(), holder, retry_for: lease })),
        Ok(false) => {
            metrics::counter!("herald_provider_skipped_total", "reason" => "max_concurrent").increment(1);
            Err(wait)
        }
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "could not lease a provider slot; waiting");
            Err(wait)
        }
    }
}
