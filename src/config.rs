//! Settings: flags, else environment, else defaults (contract §10), turned
//! once at start into a validated [`Config`]. Nothing reads the environment
//! after that.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;
use crate::telemetry::LogFormat;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://herald.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_OUTBOX_DIR: &str = "./outbox";

/// A database URL; its `Debug` hides any password it holds.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseUrl(url.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // scheme://user:password@host/db → scheme://***@host/db
        match (self.0.split_once("://"), self.0.rfind('@')) {
            (Some((scheme, _)), Some(at)) => write!(f, "\"{scheme}://***{}\"", &self.0[at..]),
            _ => write!(f, "{:?}", self.0),
        }
    }
}

/// Everything a running server needs to know, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: DatabaseUrl,
    /// `HERALD_ADMIN_TOKEN`: accepted as an instance admin token.
    pub admin_token: Option<Secret>,
    /// `HERALD_SECRET_KEY` (base64, 32 bytes); default: `herald.key` beside
    /// the SQLite database. Required for PostgreSQL.
    pub secret_key: Option<Secret>,
    pub http: HttpConfig,
    pub delivery: DeliveryConfig,
    pub console: ConsoleConfig,
    pub retention: RetentionConfig,
    /// `--inbound-listen` / `HERALD_INBOUND_LISTEN`: the inbound SMTP
    /// listener for bounces (issue 18); off when `None`.
    pub inbound_listen: Option<SocketAddr>,
}

/// Retention and pruning (issue 20; README "Retention, erasure and backups").
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// The instance defaults; instance admins override them per org.
    pub defaults: crate::domain::retention::Retention,
    /// Time between pruning passes of this node; `None`: no background
    /// pruning (`POST /admin/v1/retention/runs` still runs a pass).
    pub interval: Option<Duration>,
    /// Rows per pruning transaction.
    pub batch: i64,
    /// The length of a retention "day" in milliseconds: a day, except in
    /// benchmarks (`HERALD_RETENTION_DAY_SECONDS`, hidden).
    pub day_ms: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            defaults: Default::default(),
            interval: Some(Duration::from_secs(60)),
            batch: 500,
            day_ms: crate::domain::retention::DAY_MS,
        }
    }
}

/// The operator console's limits (no flags: the defaults fit; tests change
/// them).
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// argon2 hashes computed at once (sign-in, setup, account creation).
    pub hash_permits: usize,
    /// How long a sign-in waits for its turn to hash before it is turned away.
    pub hash_wait: Duration,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        ConsoleConfig { hash_permits: 2 * cores, hash_wait: crate::domain::console::HASH_WAIT }
    }
}

/// The HTTP server's limits on slow, idle and too many connections
/// (`crate::serve`).
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// From the accept, or from the first byte of a later request, until its
    /// head is complete.
    pub header_timeout: Duration,
    /// How long a connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a request's whole body may take to arrive (then 408).
    pub body_timeout: Duration,
    /// How long writing a response may go without progress (a client that
    /// stops reading) before the connection is closed.
    pub write_timeout: Duration,
    /// Connections open at once; lowered to what the open-file limit allows.
    pub max_connections: usize,
    /// API requests per minute per token unless the org has its own rate;
    /// 0: unlimited (issue 19).
    pub api_rate_per_minute: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            api_rate_per_minute: 0,
        }
    }
}

/// Delivery settings (contract §8, §10).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Run delivery workers in this process (`serve`; off with `--no-workers`).
    pub workers: bool,
    /// `HERALD_SMTP_ALLOW_HOSTS`, lower-cased.
    pub allow_hosts: Vec<String>,
    /// `HERALD_OUTBOX_DIR`: the file transport's directory.
    pub outbox_dir: PathBuf,
    /// `HERALD_PUBLIC_URL`: the base of links in mails; default `http://<listen>`.
    pub public_url: Option<String>,
    /// How long a worker's lease on an outbox row lasts.
    pub lease: Duration,
    /// How often idle workers look for due rows.
    pub poll: Duration,
    /// Sends in flight per process.
    pub concurrency: usize,
    /// `HERALD_SMTP_TIMEOUT_SECONDS`: how long each SMTP step may take.
    pub smtp_timeout: Duration,
    /// `HERALD_PROVIDER_FAILURES`: consecutive failures that open a provider's circuit.
    pub circuit_failures: i64,
    /// `HERALD_PROVIDER_COOLDOWN_SECONDS`: how long an open circuit skips its provider.
    pub circuit_cooldown: Duration,
    /// `HERALD_PROVIDER_RATE_WINDOW_MS`: the window `maxPerMinute` counts in
    /// (60000; shorter only for tests).
    pub rate_window: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            workers: true,
            allow_hosts: Vec::new(),
            outbox_dir: PathBuf::from(DEFAULT_OUTBOX_DIR),
            public_url: None,
            lease: Duration::from_secs(60),
            poll: Duration::from_millis(500),
            concurrency: 32,
            smtp_timeout: crate::delivery::mailer::DEFAULT_SMTP_TIMEOUT,
            circuit_failures: 5,
            circuit_cooldown: Duration::from_secs(60),
            rate_window: Duration::from_secs(60),
        }
    }
}

impl DeliveryConfig {
    /// Parses `HERALD_SMTP_ALLOW_HOSTS`: names or addresses, comma- or
    /// space-separated, compared case-insensitively.
    pub fn parse_allow_hosts(raw: &str) -> Vec<String> {
        raw.split([',', ' '])
            .map(|h| h.trim().trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect()
    }
}

impl Config {
    /// The base URL of links in mails, without a trailing slash.
    pub fn public_url(&self) -> String {
        let url = self.delivery.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen));
        url.trim_end_matches('/').to_owned()
    }

    /// The host part of the public URL: Message-IDs' right-hand side and
    /// the EHLO name.
    pub fn mail_domain(&self) -> String {
        let url = self.public_url();
        let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or_default();
        let host =
            if authority.starts_with('[') { "" } else { authority.rsplit_once(':').map_or(authority, |(h, _)| h) };
        if host.is_empty() { "herald.localdomain".to_owned() } else { host.to_ascii_lowercase() }
    }

    /// A config with the defaults of contract §10 for everything but the
    /// database (used by tests and embedders).
    pub fn new(database_url: impl Into<String>) -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            database_url: DatabaseUrl::new(database_url),
            admin_token: None,
            secret_key: None,
            http: HttpConfig::default(),
            delivery: DeliveryConfig::default(),
            console: ConsoleConfig::default(),
            retention: RetentionConfig::default(),
            inbound_listen: None,
        }
    }
}

/// Logging settings (read before anything else so start-up is logged).
#[derive(Debug, Clone, clap::Args)]
pub struct LogSettings {
    /// Log filter, e.g. `info` or `herald=debug,sqlx=warn`.
    #[arg(long = "log", env = "HERALD_LOG", default_value = "info", global = true)]
    pub filter: String,
    #[arg(long = "log-format", env = "HERALD_LOG_FORMAT", value_enum, default_value = "pretty", global = true)]
    pub format: LogFormat,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_debug_hides_password() {
        let url = DatabaseUrl::new("postgres://herald:s3cret@db.internal:5432/herald");
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db.internal"));
        assert_eq!(format!("{:?}", DatabaseUrl::new("sqlite://herald.db")), "\"sqlite://herald.db\"");
    }

    #[test]
    fn public_url_and_mail_domain() {
        let mut config = Config::new("sqlite://x.db");
        assert_eq!(config.public_url(), "http://127.0.0.1:8080");
        assert_eq!(config.mail_domain(), "127.0.0.1");
        config.delivery.public_url = Some("https://Herald.Example.com/base/".into());
        assert_eq!(config.public_url(), "https://Herald.Example.com/base");
        assert_eq!(config.mail_domain(), "herald.example.com");
        config.delivery.public_url = Some("http://[::1]:8080".into());
        assert_eq!(config.mail_domain(), "herald.localdomain");
        assert_eq!(DeliveryConfig::parse_allow_hosts(" Localhost,127.0.0.1 [::1]"), ["localhost", "127.0.0.1", "::1"]);
    }
}
