//! Console accounts, sign-in and sessions (issue 14).
//!
//! An account is an email and an argon2id password hash, and is either an
//! instance admin (no org) or an admin of one org. Sign-in is limited twice:
//! [`LOCK_AFTER`] wrong passwords in a row lock the account for
//! [`LOCK_FOR_MS`] (stored, so it holds on every node), and a
//! [`SignInLimiter`] bounds the failed attempts per client address (in
//! memory, per process). A [`HashGate`] bounds the argon2 work running at
//! once (each hash takes 19 MiB), so a burst of sign-ins cannot exhaust
//! memory. A session is a random cookie value whose SHA-256 digest is
//! stored with its expiry; nothing else about it is kept in the browser.
//! What a console user may then do is decided by the same domain functions
//! the APIs call, with [`Actor::console`] as the actor.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::audit::{AuditEntry, Scope};
use super::tokens::digest;
use super::{Actor, OrgId};
use crate::clock::Millis;
use crate::error::{Error, FieldError, FieldErrors, Resource};
use crate::secret::Secret;
use crate::store::{Store, UserInsert};

/// Wrong passwords in a row that lock an account's sign-in.
pub const LOCK_AFTER: i64 = 20;
/// How long such a lock lasts: 15 minutes.
pub const LOCK_FOR_MS: i64 = 15 * 60 * 1000;
/// How long a session lasts from sign-in: 12 hours.
pub const SESSION_MS: i64 = 12 * 60 * 60 * 1000;
/// Failed sign-in attempts one client address (an IPv6 /64) may make per
/// window.
pub const ATTEMPTS_PER_ADDRESS: u32 = 50;
/// The window of [`ATTEMPTS_PER_ADDRESS`]: 5 minutes.
pub const ADDRESS_WINDOW_MS: i64 = 5 * 60 * 1000;

/// How long a sign-in waits for its turn to hash before it is turned away.
pub const HASH_WAIT: Duration = Duration::from_secs(5);

const MIN_PASSWORD: usize = 12;
const MAX_PASSWORD: usize = 1024;

/// A console account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleUser {
    pub id: String,
    /// `None`: an instance admin. `Some`: an admin of this org only.
    pub org: Option<OrgId>,
    pub email: String,
    pub created_at: Millis,
}

impl ConsoleUser {
    pub fn is_instance_admin(&self) -> bool {
        self.org.is_none()
    }

    pub fn actor(&self) -> Actor {
        Actor::console(&self.id)
    }

    /// Whether this user may see and change `org`. The console answers 404
    /// when not, as for an org that does not exist.
    pub fn may_manage(&self, org: &OrgId) -> bool {
        self.org.as_ref().is_none_or(|own| own == org)
    }
}

fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

fn parse_password(raw: &str) -> Result<Secret, FieldError> {
    let n = raw.chars().count();
    if n < MIN_PASSWORD {
        return Err(FieldError::new("password", format!("must be at least {MIN_PASSWORD} characters")));
    }
    if raw.len() > MAX_PASSWORD {
        return Err(FieldError::new("password", format!("must be at most {MAX_PASSWORD} bytes")));
    }
    Ok(Secret::new(raw))
}

/// Bounds the argon2 hashes computed at once (by default two per core, so
/// at most that many times 19 MiB). One per server, shared by sign-in,
/// setup and account creation. A caller that gets no turn within the wait
/// is turned away ([`Error::RateLimited`], [`SignIn::Busy`]).
#[derive(Debug)]
pub struct HashGate {
    permits: Arc<Semaphore>,
    wait: Duration,
}

impl HashGate {
    pub fn new(permits: usize, wait: Duration) -> Self {
        HashGate { permits: Arc::new(Semaphore::new(permits.clamp(1, Semaphore::MAX_PERMITS))), wait }
    }

    /// A turn to hash: held until the hashing thread is done (also when the
    /// request that asked for it is gone).
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, Error> {
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(Error::RateLimited(crate::api::RETRY_AFTER_SECONDS)),
        }
    }
}

impl Default for HashGate {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        HashGate::new(2 * cores, HASH_WAIT)
    }
}

/// argon2id with the crate's defaults (OWASP's minimum: 19 MiB, 2 passes),
/// off the async threads, in turn.
async fn hash_password(gate: &HashGate, password: Secret) -> Result<String, Error> {
    let turn = gate.enter().await?;
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hash a console password: {e}"))
    })
    .await
    .map_err(|e| anyhow::anyhow!("the hashing task failed: {e}"))?
    .map_err(Error::Internal)
}

/// A hash of a password nobody knows, so an unknown email costs as much
/// time as a known one.
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default().hash_password(crate::crypto::random_token().as_bytes(), &salt).map_or_else(
        // Unreachable with valid parameters; an unparsable decoy verifies nothing.
        |_| String::new(),
        |h| h.to_string(),
    )
});

/// Whether `password` matches `hash`; `None` when no turn to hash came.
async fn verify_password(gate: &HashGate, password: Secret, hash: String) -> Option<bool> {
    let turn = gate.enter().await.ok()?;
    let verified = tokio::task::spawn_blocking(move || {
        let _turn = turn;
        PasswordHash::new(&hash)
            .is_ok_and(|parsed| Argon2::default().verify_password(password.expose().as_bytes(), &parsed).is_ok())
    })
    .await
    .unwrap_or(false);
    Some(verified)
}

/// Who an account is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    InstanceAdmin,
    OrgAdmin(OrgId),
}

/// Creates an account (`herald console-user create`, or an admin in the console).
pub async fn create_user(
    store: &Store,
    gate: &HashGate,
    actor: &Actor,
    email: &str,
    password: &str,
    role: Role,
    now: Millis,
) -> Result<ConsoleUser, Error> {
    insert_user(store, gate, actor, email, password, role, false, now).await
}

/// Creates the first instance admin, from the bootstrap admin token on the
/// console's first visit. Refused once any account exists.
pub async fn create_first_admin(
    store: &Store,
    gate: &HashGate,
    actor: &Actor,
    email: &str,
    password: &str,
    now: Millis,
) -> Result<ConsoleUser, Error> {
    insert_user(store, gate, actor, email, password, Role::InstanceAdmin, true, now).await
}

#[allow(clippy::too_many_arguments)]
async fn insert_user(
    store: &Store,
    gate: &HashGate,
    actor: &Actor,
    email: &str,
    password: &str,
    role: Role,
    first: bool,
    now: Millis,
) -> Result<ConsoleUser, Error> {
    let mut errors = FieldErrors::new();
    let email = errors.take(super::smtp::parse_address("email", "Email", email));
    let password = errors.take(parse_password(password));
    errors.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(Error::field("email", "is required"));
    };
    let org = match role {
        Role::InstanceAdmin => None,
        Role::OrgAdmin(org) => {
            if store.org(&org).await?.is_none() {
                return Err(Error::NotFound(Resource::Org));
            }
            Some(org)
        }
    };
    let hash = hash_password(gate, password).await?;
    let user = ConsoleUser { id: uuid::Uuid::now_v7().to_string(), org, email, created_at: now };
    let audit = AuditEntry {
        scope: user.org.clone().map_or(Scope::Instance, Scope::Org),
        actor: actor.clone(),
        at: now,
        action: "console_user.created",
        resource_type: "console_user",
        resource_id: user.id.clone(),
        detail: serde_json::json!({ "email": user.email, "instanceAdmin": user.org.is_none() }),
    };
    match store.insert_console_user(&user, &email_key(&user.email), &hash, first, &audit).await? {
        UserInsert::Done => Ok(user),
        UserInsert::Duplicate => Err(Error::field("email", "a console account with this email exists")),
        UserInsert::NotFirst => Err(Error::Precondition("a console account exists already: sign in instead")),
    }
}

/// Every console account (for instance admins), by email.
pub async fn list_users(store: &Store) -> Result<Vec<ConsoleUser>, Error> {
    Ok(store.console_users().await?)
}

/// Whether any console account exists (else the console offers the
/// bootstrap-token form).
pub async fn any_user(store: &Store) -> Result<bool, Error> {
    Ok(store.console_user_exists().await?)
}

/// Counts failed sign-in attempts per client address in fixed windows: an
/// IPv4 address, or an IPv6 /64 (one host usually has a whole /64 to pick
/// addresses from). Per process: behind a load balancer each node counts
/// its own share.
#[derive(Debug, Default)]
pub struct SignInLimiter {
    windows: Mutex<HashMap<IpAddr, (i64, u32)>>,
}

/// The key an address is counted under.
fn address_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

impl SignInLimiter {
    /// Starts an attempt from `addr`, or `None` when the address has used up
    /// its failures for this window. The attempt counts until it ends; only
    /// [`Attempt::failed`] keeps it counted (so concurrent attempts cannot
    /// overshoot the limit, and successes cost nothing).
    pub fn attempt(&self, addr: IpAddr, now: Millis) -> Option<Attempt<'_>> {
        let key = address_key(addr);
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() > 10_000 {
            windows.retain(|_, (start, _)| now.0 - *start < ADDRESS_WINDOW_MS);
        }
        let entry = windows.entry(key).or_insert((now.0, 0));
        if now.0 - entry.0 >= ADDRESS_WINDOW_MS {
            *entry = (now.0, 0);
        }
        if entry.1 >= ATTEMPTS_PER_ADDRESS {
            return None;
        }
        entry.1 += 1;
        Some(Attempt { limiter: self, key, window: entry.0, failed: false })
    }
}

/// A sign-in attempt under way; dropped without [`Attempt::failed`], it no
/// longer counts.
#[derive(Debug)]
pub struct Attempt<'a> {
    limiter: &'a SignInLimiter,
    key: IpAddr,
    window: i64,
    failed: bool,
}

impl Attempt<'_> {
    /// The attempt failed (a wrong password or token): it keeps counting.
    pub fn failed(mut self) {
        self.failed = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.failed {
            return;
        }
        let mut windows = self.limiter.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = windows.get_mut(&self.key)
            && entry.0 == self.window
        {
            entry.1 = entry.1.saturating_sub(1);
        }
    }
}

/// How a sign-in ended.
#[derive(Debug)]
pub enum SignIn {
    /// The session's cookie value (shown to the browser only) and its user.
    Session { token: Secret, user: ConsoleUser },
    /// Wrong email or password (one answer for both).
    Refused,
    /// Too many wrong passwords for this account, or attempts from this address.
    Locked,
    /// Too many sign-ins are being checked at once ([`HashGate`]); nothing
    /// was checked or counted.
    Busy,
}

/// Checks an email and password and starts a session.
#[allow(clippy::too_many_arguments)]
pub async fn sign_in(
    store: &Store,
    limiter: &SignInLimiter,
    gate: &HashGate,
    addr: IpAddr,
    email: &str,
    password: &str,
    now: Millis,
) -> Result<SignIn, Error> {
    let Some(attempt) = limiter.attempt(addr, now) else {
        return Ok(SignIn::Locked);
    };
    let password = Secret::new(password);
    let Some(login) = store.console_login(&email_key(email)).await? else {
        if verify_password(gate, password, DECOY_HASH.clone()).await.is_none() {
            return Ok(SignIn::Busy);
        }
        attempt.failed();
        return Ok(SignIn::Refused);
    };
    // Counted before the slow check, so attempts running at once cannot
    // pass the account's limit together.
    let Some(number) = store.console_login_reserve(&login.user.id, LOCK_AFTER, now).await? else {
        attempt.failed();
        return Ok(SignIn::Locked);
    };
    let Some(verified) = verify_password(gate, password, login.password_hash).await else {
        store.console_login_release(&login.user.id).await?;
        return Ok(SignIn::Busy);
    };
    if !verified {
        attempt.failed();
        if number >= LOCK_AFTER {
            store.console_login_lock(&login.user.id, Millis(now.0 + LOCK_FOR_MS)).await?;
            tracing::warn!(user = %login.user.id, "console sign-in locked after {LOCK_AFTER} wrong passwords");
            return Ok(SignIn::Locked);
        }
        return Ok(SignIn::Refused);
    }
    let token = Secret::new(crate::crypto::random_token());
    store.insert_console_session(&digest(token.expose()), &login.user.id, now, Millis(now.0 + SESSION_MS)).await?;
    Ok(SignIn::Session { token, user: login.user })
}

/// The user of a live session, if the cookie value names one.
pub async fn session(store: &Store, token: &str, now: Millis) -> Result<Option<ConsoleUser>, Error> {
    if !crate::crypto::is_token_value(token) {
        return Ok(None);
    }
    Ok(store.console_session_user(&digest(token), now).await?)
}

/// Ends a session.
pub async fn sign_out(store: &Store, token: &str) -> Result<(), Error> {
    Ok(store.delete_console_session(&digest(token)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(limiter: &SignInLimiter, addr: &str, now: i64) -> bool {
        limiter.attempt(addr.parse().unwrap(), Millis(now)).map(Attempt::failed).is_some()
    }

    #[test]
    fn the_address_limit_resets_with_its_window() {
        let limiter = SignInLimiter::default();
        for _ in 0..ATTEMPTS_PER_ADDRESS {
            assert!(fail(&limiter, "192.0.2.1", 0));
        }
        assert!(!fail(&limiter, "192.0.2.1", 1));
        assert!(fail(&limiter, "192.0.2.2", 1), "another address has its own count");
        assert!(fail(&limiter, "192.0.2.1", ADDRESS_WINDOW_MS));
    }

    #[test]
    fn only_failed_attempts_count() {
        let limiter = SignInLimiter::default();
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..(3 * ATTEMPTS_PER_ADDRESS) {
            // A success: the attempt ends without failing.
            assert!(limiter.attempt(addr, Millis(0)).is_some(), "success {i} was refused");
        }
        // Attempts under way count, so a burst cannot overshoot the limit.
        let under_way: Vec<_> = (0..ATTEMPTS_PER_ADDRESS).map(|_| limiter.attempt(addr, Millis(0)).unwrap()).collect();
        assert!(limiter.attempt(addr, Millis(0)).is_none());
        drop(under_way);
        assert!(limiter.attempt(addr, Millis(0)).is_some());
    }

    #[test]
    fn ipv6_addresses_count_by_their_64() {
        let limiter = SignInLimiter::default();
        for i in 0..ATTEMPTS_PER_ADDRESS {
            // Every failure from another address of one /64.
            assert!(fail(&limiter, &format!("2001:db8:1:2::{:x}", i + 1), 0));
        }
        assert!(!fail(&limiter, "2001:db8:1:2:ffff:ffff:ffff:ffff", 0), "the same /64");
        assert!(fail(&limiter, "2001:db8:1:3::1", 0), "the next /64 has its own count");
        // An IPv4-mapped address counts as its IPv4 address.
        for _ in 0..ATTEMPTS_PER_ADDRESS {
            assert!(fail(&limiter, "192.0.2.9", 0));
        }
        assert!(!fail(&limiter, "::ffff:192.0.2.9", 0));
    }

    #[tokio::test]
    async fn hashing_waits_for_a_turn_and_then_gives_up() {
        let gate = HashGate::new(1, Duration::ZERO);
        let turn = gate.enter().await.unwrap();
        assert!(matches!(hash_password(&gate, Secret::new("correct horse battery")).await, Err(Error::RateLimited(_))));
        assert_eq!(verify_password(&gate, Secret::new("x"), "not a hash".into()).await, None);
        drop(turn);
        assert!(hash_password(&gate, Secret::new("correct horse battery")).await.is_ok());
    }

    #[test]
    fn passwords_have_a_length_and_are_never_quoted() {
        let err = parse_password("short-canary").err();
        assert!(err.is_none(), "12 characters is enough");
        let err = parse_password("tiny-canary").unwrap_err();
        assert!(!err.message.contains("canary"), "{}", err.message);
        assert!(parse_password(&"x".repeat(2000)).is_err());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_and_verify() {
        let gate = HashGate::default();
        let hash = hash_password(&gate, Secret::new("correct horse battery")).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert_eq!(verify_password(&gate, Secret::new("correct horse battery"), hash.clone()).await, Some(true));
        assert_eq!(verify_password(&gate, Secret::new("wrong horse battery"), hash).await, Some(false));
        assert_eq!(verify_password(&gate, Secret::new("x"), "not a hash".into()).await, Some(false));
    }

    #[test]
    fn org_admins_manage_only_their_org() {
        let org = OrgId::generate();
        let admin = ConsoleUser { id: "a".into(), org: None, email: "a@x.io".into(), created_at: Millis(0) };
        let own = ConsoleUser { org: Some(org.clone()), ..admin.clone() };
        assert!(admin.may_manage(&org) && own.may_manage(&org));
        assert!(!own.may_manage(&OrgId::generate()));
        assert_eq!(own.actor().as_str(), "console:a");
    }
}
