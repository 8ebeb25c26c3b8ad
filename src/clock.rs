//! Time as Herald sees it: Unix milliseconds, read from one place so tests
//! can move it (idempotency windows, link expiry) without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, UTC. Stored as `BIGINT` everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(pub i64);

impl Millis {
    /// RFC 3339 in UTC with millisecond precision, as every API prints it.
    pub fn rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp_millis(self.0)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    /// UTC to the second, without zone or fraction (`2025-10-10T15:42:45`):
    /// the form Leegality's notification-config seed documents.
    pub fn local_seconds_utc(self) -> String {
        DateTime::<Utc>::from_timestamp_millis(self.0)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    }

    /// To the minute, for people: `2026-11-24 09:30 UTC` (mails and pages).
    pub fn display_utc(self) -> String {
        DateTime::<Utc>::from_timestamp_millis(self.0)
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
            .format("%Y-%m-%d %H:%M UTC")
            .to_string()
    }
}

/// The system clock plus an offset that only tests change.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> Millis {
        Millis(Utc::now().timestamp_millis() + self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_with_millis() {
        assert_eq!(Millis(0).rfc3339(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Millis(1_760_110_965_123).rfc3339(), "2025-10-10T15:42:45.123Z");
        assert_eq!(Millis(1_760_110_965_123).display_utc(), "2025-10-10 15:42 UTC");
        assert_eq!(Millis(1_760_110_965_123).local_seconds_utc(), "2025-10-10T15:42:45");
    }

    #[test]
    fn advance_moves_every_clone() {
        let a = Clock::default();
        let b = a.clone();
        let before = b.now();
        a.advance(std::time::Duration::from_secs(3600));
        assert!(b.now().0 - before.0 >= 3_600_000);
    }
}
