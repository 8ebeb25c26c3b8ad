//! Settings: flags, else environment, else defaults (contract §10), turned
//! once at start into a validated [`Config`]. Nothing reads the environment
//! after that.

use std::fmt;
use std::net::SocketAddr;

use crate::secret::Secret;
use crate::telemetry::LogFormat;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://herald.db";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

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
}

impl Config {
    /// A config with the defaults of contract §10 for everything but the
    /// database (used by tests and embedders).
    pub fn new(database_url: impl Into<String>) -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            database_url: DatabaseUrl::new(database_url),
            admin_token: None,
            secret_key: None,
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
}
