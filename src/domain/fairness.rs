//! Many tenants on one Herald (issue 19): what an org may take of the
//! instance, decided here and enforced by the store, the workers and the
//! API alike.
//!
//! - **Fair delivery.** Workers claim due mail round-robin between the orgs
//!   that have some, each org's turn weighted by its [`OrgLimits::weight`]
//!   ([`fair_order`]; PostgreSQL runs the same rule in SQL).
//! - **Quotas.** Optional hourly and daily counts of accepted notifications
//!   per org, in fixed UTC windows (the clock hour, the UTC day). Over quota
//!   an org's new mail is either *held* (queued, due when a window has room:
//!   no attempt is counted) or *rejected* (429). [`decide`] is the rule.
//! - **API rate limits.** Requests per minute per token ([`RateLimiter`]),
//!   the instance default or the org's own.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::clock::Millis;
use crate::domain::audit::{AuditEntry, Scope};
use crate::domain::{Actor, OrgId};
use crate::error::{Error, FieldError, FieldErrors};
use crate::store::Store;

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// The largest weight an org may be given.
pub const MAX_WEIGHT: i64 = 100;
/// Quotas and rates above this are refused as input (no real instance
/// sends more than a billion mails an hour).
pub const MAX_COUNT: i64 = 1_000_000_000;
/// Held mail is scheduled at most this far ahead; further is refused (429)
/// even in hold mode.
pub const HOLD_HORIZON_HOURS: i64 = 31 * 24;

/// What an org over its quota gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaMode {
    Hold,
    Reject,
}

impl QuotaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaMode::Hold => "hold",
            QuotaMode::Reject => "reject",
        }
    }
    pub fn parse(s: &str) -> Option<QuotaMode> {
        match s {
            "hold" => Some(QuotaMode::Hold),
            "reject" => Some(QuotaMode::Reject),
            _ => None,
        }
    }
}

/// An org's limits; [`OrgLimits::default`] is an org without a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgLimits {
    pub weight: i64,
    pub hourly_quota: Option<i64>,
    pub daily_quota: Option<i64>,
    pub quota_mode: QuotaMode,
    /// API requests per minute per token; `None`: the instance default.
    pub api_rate_per_minute: Option<i64>,
}

impl Default for OrgLimits {
    fn default() -> Self {
        OrgLimits {
            weight: 1,
            hourly_quota: None,
            daily_quota: None,
            quota_mode: QuotaMode::Hold,
            api_rate_per_minute: None,
        }
    }
}

impl OrgLimits {
    pub fn has_quota(&self) -> bool {
        self.hourly_quota.is_some() || self.daily_quota.is_some()
    }

    /// Parses admin input; every bad field is reported at once.
    pub fn parse(
        weight: Option<i64>,
        hourly_quota: Option<i64>,
        daily_quota: Option<i64>,
        quota_mode: Option<&str>,
        api_rate_per_minute: Option<i64>,
    ) -> Result<OrgLimits, Error> {
        let mut errors = FieldErrors::new();
        let weight = weight.unwrap_or(1);
        if !(1..=MAX_WEIGHT).contains(&weight) {
            errors.add("weight", format!("must be an integer from 1 to {MAX_WEIGHT}"));
        }
        for (field, v) in
            [("hourlyQuota", hourly_quota), ("dailyQuota", daily_quota), ("apiRatePerMinute", api_rate_per_minute)]
        {
            if v.is_some_and(|v| !(1..=MAX_COUNT).contains(&v)) {
                errors.add(field, format!("must be null or an integer from 1 to {MAX_COUNT}"));
            }
        }
        let quota_mode = match quota_mode {
            None => Some(QuotaMode::Hold),
            Some(m) => {
                errors.take(QuotaMode::parse(m).ok_or_else(|| FieldError::new("quotaMode", "must be hold or reject")))
            }
        };
        errors.finish()?;
        Ok(OrgLimits {
            weight,
            hourly_quota,
            daily_quota,
            quota_mode: quota_mode.unwrap_or(QuotaMode::Hold),
            api_rate_per_minute,
        })
    }
}

/// The start of the clock hour and of the UTC day that hold `at`.
pub fn windows(at: Millis) -> (i64, i64) {
    (at.0.div_euclid(HOUR_MS) * HOUR_MS, at.0.div_euclid(DAY_MS) * DAY_MS)
}

/// Usage counted so far, per window start: hours and days.
#[derive(Debug, Default, Clone)]
pub struct Usage {
    pub hours: HashMap<i64, i64>,
    pub days: HashMap<i64, i64>,
}

impl Usage {
    pub fn hour(&self, start: i64) -> i64 {
        self.hours.get(&start).copied().unwrap_or(0)
    }
    pub fn day(&self, start: i64) -> i64 {
        self.days.get(&start).copied().unwrap_or(0)
    }
}

/// Where `n` new notifications of an org go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// Counted in the hour and day starting at these times; due at
    /// `release_at` (`None`: now).
    Counted { hour: i64, day: i64, release_at: Option<Millis> },
    /// Over quota in reject mode (or beyond the hold horizon): 429 with
    /// `Retry-After` of this many seconds (when the full window ends).
    Rejected { retry_after: u32 },
}

/// The quota rule: `n` notifications fit when the current hour and day
/// both have room. If not, reject mode refuses them until the full window
/// ends; hold mode counts them in the first hour (and its day) that has
/// room and makes them due at that hour's start.
pub fn decide(limits: &OrgLimits, usage: &Usage, n: i64, now: Millis) -> Reservation {
    let (hour, day) = windows(now);
    let fits = |h: i64, d: i64| {
        limits.hourly_quota.is_none_or(|q| usage.hour(h) + n <= q)
            && limits.daily_quota.is_none_or(|q| usage.day(d) + n <= q)
    };
    if fits(hour, day) {
        return Reservation::Counted { hour, day, release_at: None };
    }
    let seconds_until = |end: i64| u32::try_from(((end - now.0) + 999) / 1000).unwrap_or(u32::MAX).max(1);
    let hour_full = limits.hourly_quota.is_some_and(|q| usage.hour(hour) + n > q);
    let day_full = limits.daily_quota.is_some_and(|q| usage.day(day) + n > q);
    // The next moment anything could fit: the day's end when the day is
    // full, else the hour's.
    let retry_after = if day_full { seconds_until(day + DAY_MS) } else { seconds_until(hour + HOUR_MS) };
    let too_big = limits.hourly_quota.is_some_and(|q| n > q) || limits.daily_quota.is_some_and(|q| n > q);
    if limits.quota_mode == QuotaMode::Reject || too_big {
        return Reservation::Rejected { retry_after };
    }
    let _ = hour_full;
    for k in 1..=HOLD_HORIZON_HOURS {
        let h = hour + k * HOUR_MS;
        let d = h.div_euclid(DAY_MS) * DAY_MS;
        if fits(h, d) {
            return Reservation::Counted { hour: h, day: d, release_at: Some(Millis(h)) };
        }
    }
    Reservation::Rejected { retry_after }
}

/// The org's limits, or the defaults when it has none of its own (`false`).
pub async fn limits_of(store: &Store, org: &OrgId) -> Result<(OrgLimits, bool), Error> {
    if store.org(org).await?.is_none() {
        return Err(Error::NotFound(crate::error::Resource::Org));
    }
    Ok(match store.org_limits(org).await? {
        Some(l) => (l, true),
        None => (OrgLimits::default(), false),
    })
}

/// Sets an org's limits (instance admins), with an audit row in the org's
/// log. A changed quota applies to mail accepted from then on; mail held
/// already keeps its time.
pub async fn set_limits(
    store: &Store,
    api: &ApiLimits,
    actor: &Actor,
    org: &OrgId,
    limits: &OrgLimits,
    now: Millis,
) -> Result<(), Error> {
    if store.org(org).await?.is_none() {
        return Err(Error::NotFound(crate::error::Resource::Org));
    }
    let audit = AuditEntry {
        scope: Scope::Org(org.clone()),
        actor: actor.clone(),
        at: now,
        action: "org.limits_updated",
        resource_type: "org_limits",
        resource_id: org.as_str().to_owned(),
        detail: serde_json::json!({
            "weight": limits.weight,
            "hourlyQuota": limits.hourly_quota,
            "dailyQuota": limits.daily_quota,
            "quotaMode": limits.quota_mode.as_str(),
            "apiRatePerMinute": limits.api_rate_per_minute,
        }),
    };
    store.set_org_limits(org, limits, now, &audit).await?;
    api.forget_overrides();
    Ok(())
}

/// One quota window as the org sees it.
#[derive(Debug, Clone)]
pub struct WindowUsage {
    pub start: Millis,
    pub end: Millis,
    pub used: i64,
    pub quota: Option<i64>,
}

/// The org's usage now: this hour, today, and mail held for later windows.
#[derive(Debug, Clone)]
pub struct UsageReport {
    pub hour: WindowUsage,
    pub day: WindowUsage,
    pub held: i64,
    pub limits: OrgLimits,
}

pub async fn usage(store: &Store, org: &OrgId, now: Millis) -> Result<UsageReport, Error> {
    let limits = store.org_limits(org).await?.unwrap_or_default();
    let (hour, day) = windows(now);
    let usage = store.org_usage(org, day).await?;
    let held = usage.hours.iter().filter(|(start, _)| **start > hour).map(|(_, n)| *n).sum();
    Ok(UsageReport {
        hour: WindowUsage {
            start: Millis(hour),
            end: Millis(hour + HOUR_MS),
            used: usage.hour(hour),
            quota: limits.hourly_quota,
        },
        day: WindowUsage {
            start: Millis(day),
            end: Millis(day + DAY_MS),
            used: usage.day(day),
            quota: limits.daily_quota,
        },
        held,
        limits,
    })
}

/// Where an event's notifications were counted, to give them back if the
/// event is not written after all.
#[derive(Debug, Clone, Copy)]
pub struct Reserved {
    pub n: i64,
    pub hour: i64,
    pub day: i64,
    /// When the mail becomes due, if held for a later window.
    pub release_at: Option<Millis>,
}

/// Counts `n` new notifications of `org` against its quota: `Ok` with
/// where they were counted (and when they become due, if held), or
/// [`Error::RateLimited`] in reject mode. Every node shares the count.
pub async fn reserve(store: &Store, org: &OrgId, n: i64, now: Millis) -> Result<Reserved, Error> {
    let outcome = store.reserve_usage(org, n, now, decide).await?;
    let org_label = org.as_str().to_owned();
    match outcome {
        Reservation::Counted { hour, day, release_at } => {
            let outcome = if release_at.is_some() { "held" } else { "accepted" };
            metrics::counter!("herald_org_notifications_total", "org" => org_label, "outcome" => outcome)
                .increment(n.unsigned_abs());
            Ok(Reserved { n, hour, day, release_at })
        }
        Reservation::Rejected { retry_after } => {
            metrics::counter!("herald_org_notifications_total", "org" => org_label, "outcome" => "rejected")
                .increment(n.unsigned_abs());
            Err(Error::RateLimited(retry_after))
        }
    }
}

/// Gives a reservation back (its event was not written).
pub async fn unreserve(store: &Store, org: &OrgId, r: &Reserved) {
    if let Err(e) = store.unreserve_usage(org, r.hour, r.day, r.n).await {
        tracing::warn!(error = format!("{e:#}"), "could not give back counted usage; the window counts it");
    }
}

/// Fair order of a claim: each org's due rows (oldest first) take turns,
/// an org of weight `w` taking `w` rows a round; ties go to the older row.
/// Returns the ids of the first `limit`. (SQLite's claim; PostgreSQL's
/// claim statement orders by the same key.)
pub fn fair_order(per_org: Vec<(i64, Vec<(String, i64)>)>, limit: usize) -> Vec<String> {
    let mut all: Vec<(f64, i64, String)> = Vec::new();
    for (weight, rows) in per_org {
        let w = weight.clamp(1, MAX_WEIGHT) as f64;
        for (i, (id, available_at)) in rows.into_iter().enumerate() {
            all.push(((i as f64 + 1.0) / w, available_at, id));
        }
    }
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(limit).map(|(_, _, id)| id).collect()
}

/// How many due rows of an org a claim looks at: twice its weighted share
/// of the batch (so concurrent claims find enough that another skipped),
/// at least one.
pub fn candidates_per_org(batch: i64, weight: i64, total_weight: i64) -> i64 {
    let total = total_weight.max(1);
    ((2 * batch * weight.max(1)) + total - 1) / total
}

/// Rows an express claim leases at most: an org that had nothing in
/// flight gets its first mails sent at once, the rest of a burst takes
/// turns in the regular claims.
pub const EXPRESS_BATCH: i64 = 16;
const EXPRESS_SMALL: usize = EXPRESS_BATCH as usize;

/// The order a claim's rows are sent in: each org's rows (in the claim's
/// order, oldest first) take turns, so a small org's row in a batch of
/// another org's burst is among the first sends started, not behind up to
/// a batch of them (a batch sends `concurrency` rows at a time). `orgs[i]`
/// is row `i`'s org; returns the row indexes in sending order.
pub fn send_order(orgs: &[&OrgId]) -> Vec<usize> {
    let mut seen: HashMap<&OrgId, usize> = HashMap::new();
    let mut turns: Vec<(usize, usize)> = orgs
        .iter()
        .enumerate()
        .map(|(i, org)| {
            let turn = seen.entry(org).or_default();
            *turn += 1;
            (*turn, i)
        })
        .collect();
    turns.sort_unstable();
    turns.into_iter().map(|(_, i)| i).collect()
}

/// The express rule (issue 19's tail latency): a regular claim leases a
/// batch and sends it whole before it claims again, so mail committed just
/// after every claim loop took its batch waits for a whole batch of another
/// org's sends. An org whose mail was just committed gets a claim of its
/// own, at once, when it has fewer than [`EXPRESS_BATCH`] rows in flight in
/// this process and no claim loop is idle (an idle loop is woken by the
/// commit and claims fairly itself). An org with a claim's worth of mail in
/// flight is a burst being served: its new mail takes turns in the regular
/// claims. (Before, only an org with *nothing* in flight qualified; a small
/// org whose previous mail was still being sent, as one sending every
/// 100 ms is under load, then waited for a whole regular batch:
/// bench/RESULTS.md, fifth stop.) Returns each such org once, in order.
pub fn express_orgs<'a>(
    committed: impl IntoIterator<Item = &'a OrgId>,
    in_flight: &HashMap<OrgId, usize>,
    idle_loops: usize,
) -> Vec<OrgId> {
    if idle_loops > 0 {
        return Vec::new();
    }
    let mut picked: Vec<OrgId> = Vec::new();
    for org in committed {
        if in_flight.get(org).copied().unwrap_or(0) < EXPRESS_SMALL && !picked.contains(org) {
            picked.push(org.clone());
        }
    }
    picked
}

/// API request limits per token (GCRA: a token may make `rate` requests a
/// minute, in bursts of up to `rate`). The state is this process's: each
/// node counts its own requests (see docs/fairness.md for why).
///
/// Hand-written rather than `governor`: the rate differs per org and
/// changes at run time, and time comes from Herald's [`crate::clock::Clock`]
/// so tests can move it.
#[derive(Debug, Default)]
pub struct RateLimiter {
    /// Token digest → theoretical arrival time of its next request (ms).
    tat: Mutex<HashMap<String, i64>>,
}

/// Entries above this are swept of the ones that are back to full.
const SWEEP_AT: usize = 10_000;

impl RateLimiter {
    /// Counts one request of the token with digest `key` at `now` against
    /// `per_minute` (0: unlimited). `Err(seconds)` says when to retry.
    pub fn check(&self, key: &str, per_minute: i64, now: Millis) -> Result<(), u32> {
        if per_minute <= 0 {
            return Ok(());
        }
        let interval = (60_000 / per_minute).max(1);
        let burst = 60_000i64.max(interval);
        let mut map = self.tat.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= SWEEP_AT {
            map.retain(|_, tat| *tat > now.0);
        }
        let tat = map.get(key).copied().unwrap_or(now.0).max(now.0);
        let next = tat + interval;
        if next - now.0 > burst {
            let wait = next - burst - now.0;
            return Err(u32::try_from((wait + 999) / 1000).unwrap_or(u32::MAX).max(1));
        }
        map.insert(key.to_owned(), next);
        Ok(())
    }
}

/// How long a process trusts its copy of the per-org API rates.
pub const OVERRIDES_TTL_MS: i64 = 5_000;

/// The API rate limits of this process: the instance default, the per-org
/// rates (a copy refreshed from the store every [`OVERRIDES_TTL_MS`], at
/// once on the node that changes one), and the per-token counts.
#[derive(Debug, Default)]
pub struct ApiLimits {
    /// Requests per minute per token; 0: unlimited.
    pub default_per_minute: i64,
    limiter: RateLimiter,
    /// When the copy was loaded, and the org rates.
    overrides: Mutex<(Option<i64>, HashMap<OrgId, i64>)>,
}

impl ApiLimits {
    pub fn new(default_per_minute: i64) -> Self {
        ApiLimits { default_per_minute, ..ApiLimits::default() }
    }

    /// Forgets the copy of the per-org rates (after a change on this node).
    pub fn forget_overrides(&self) {
        self.overrides.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0 = None;
    }

    /// Counts one request of the token with digest `digest` (of `org`, or an
    /// instance admin's); refused with [`Error::RateLimited`] over its rate.
    /// Runs before the handler, so a refused request changes nothing.
    pub async fn check(&self, store: &Store, org: Option<&OrgId>, digest: &str, now: Millis) -> Result<(), Error> {
        let stale = {
            let o = self.overrides.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            o.0.is_none_or(|at| now.0 - at >= OVERRIDES_TTL_MS || at > now.0)
        };
        if stale {
            match store.api_rate_overrides().await {
                Ok(rows) => {
                    *self.overrides.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                        (Some(now.0), rows.into_iter().collect());
                }
                // The token lookup right after will say so; keep the old copy.
                Err(e) => tracing::warn!(error = format!("{e:#}"), "could not refresh the per-org API rates"),
            }
        }
        let rate = org
            .and_then(|o| self.overrides.lock().unwrap_or_else(std::sync::PoisonError::into_inner).1.get(o).copied())
            .unwrap_or(self.default_per_minute);
        self.limiter.check(digest, rate, now).map_err(|wait| {
            let org = org.map_or_else(|| "instance".to_owned(), |o| o.as_str().to_owned());
            metrics::counter!("herald_api_rate_limited_total", "org" => org).increment(1);
            Error::RateLimited(wait)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(h: Option<i64>, d: Option<i64>, mode: QuotaMode) -> OrgLimits {
        OrgLimits { hourly_quota: h, daily_quota: d, quota_mode: mode, ..OrgLimits::default() }
    }

    #[test]
    fn quota_fits_then_holds_or_rejects() {
        let now = Millis(10 * DAY_MS + 5 * HOUR_MS + 1_000);
        let (hour, day) = windows(now);
        let mut usage = Usage::default();
        let l = limits(Some(2), None, QuotaMode::Hold);
        assert_eq!(decide(&l, &usage, 1, now), Reservation::Counted { hour, day, release_at: None });
        usage.hours.insert(hour, 2);
        assert_eq!(
            decide(&l, &usage, 1, now),
            Reservation::Counted { hour: hour + HOUR_MS, day, release_at: Some(Millis(hour + HOUR_MS)) }
        );
        let r = limits(Some(2), None, QuotaMode::Reject);
        assert_eq!(decide(&r, &usage, 1, now), Reservation::Rejected { retry_after: 3599 });
        // A full day holds until the next day's first hour.
        let mut usage = Usage::default();
        usage.days.insert(day, 5);
        let l = limits(None, Some(5), QuotaMode::Hold);
        assert_eq!(
            decide(&l, &usage, 1, now),
            Reservation::Counted { hour: day + DAY_MS, day: day + DAY_MS, release_at: Some(Millis(day + DAY_MS)) }
        );
        // More at once than the quota can ever take.
        assert!(matches!(decide(&l, &Usage::default(), 6, now), Reservation::Rejected { .. }));
    }

    #[test]
    fn fair_order_takes_turns_by_weight() {
        let a: Vec<(String, i64)> = (0..5).map(|i| (format!("a{i}"), i)).collect();
        let b = vec![("b0".to_owned(), 100)];
        assert_eq!(fair_order(vec![(1, a.clone()), (1, b.clone())], 3), ["a0", "b0", "a1"]);
        let c: Vec<(String, i64)> = (0..5).map(|i| (format!("c{i}"), 50 + i)).collect();
        assert_eq!(fair_order(vec![(1, b), (2, c)], 4), ["c0", "c1", "b0", "c2"]);
        assert_eq!(candidates_per_org(100, 1, 2), 100);
        assert_eq!(candidates_per_org(100, 1, 1000), 1);
    }

    #[test]
    fn a_claims_rows_are_sent_taking_turns_between_orgs() {
        let (a, b, c) =
            (OrgId::from_db("a".to_owned()), OrgId::from_db("b".to_owned()), OrgId::from_db("c".to_owned()));
        // B's one row came last in the claim: it is sent second.
        assert_eq!(send_order(&[&a, &a, &a, &b]), [0, 3, 1, 2]);
        assert_eq!(send_order(&[&a, &a, &b, &c, &b]), [0, 2, 3, 1, 4]);
        // One org: the claim's order.
        assert_eq!(send_order(&[&a, &a, &a]), [0, 1, 2]);
        assert!(send_order(&[]).is_empty());
    }

    #[test]
    fn express_claims_go_to_committed_orgs_with_little_in_flight() {
        let (a, b, c) =
            (OrgId::from_db("a".to_owned()), OrgId::from_db("b".to_owned()), OrgId::from_db("c".to_owned()));
        let mut in_flight = HashMap::new();
        in_flight.insert(a.clone(), 64);
        // A's burst is in flight: B's and C's new mail is claimed at once,
        // each org once however many of its events the commit held.
        assert_eq!(express_orgs([&a, &b, &b, &c, &a], &in_flight, 0), [b.clone(), c.clone()]);
        // A claim loop is idle: the commit wakes it, no express claim.
        assert!(express_orgs([&b], &in_flight, 1).is_empty());
        // B's previous mail is still being sent: B is still small.
        in_flight.insert(b.clone(), 1);
        assert_eq!(express_orgs([&a, &b], &in_flight, 0), std::slice::from_ref(&b));
        // A claim's worth in flight: B's new mail takes turns as usual.
        in_flight.insert(b.clone(), EXPRESS_SMALL);
        assert!(express_orgs([&a, &b], &in_flight, 0).is_empty());
        in_flight.insert(b.clone(), EXPRESS_SMALL - 1);
        assert_eq!(express_orgs([&b], &in_flight, 0), [b]);
    }

    #[test]
    fn rate_limiter_allows_the_rate_and_says_when_to_return() {
        let l = RateLimiter::default();
        let t = Millis(1_000_000);
        assert!(l.check("k", 2, t).is_ok());
        assert!(l.check("k", 2, t).is_ok());
        let wait = l.check("k", 2, t).unwrap_err();
        assert_eq!(wait, 30);
        assert!(l.check("other", 2, t).is_ok());
        assert!(l.check("k", 2, Millis(t.0 + 30_000)).is_ok());
        assert!(l.check("k", 0, t).is_ok());
    }

    #[test]
    fn limits_parse_reports_every_bad_field() {
        let Err(Error::Invalid(errors)) = OrgLimits::parse(Some(0), Some(-1), Some(0), Some("drop"), Some(0)) else {
            panic!("expected invalid");
        };
        assert_eq!(errors.len(), 5);
        assert_eq!(OrgLimits::parse(None, None, None, None, None).unwrap(), OrgLimits::default());
    }
}
