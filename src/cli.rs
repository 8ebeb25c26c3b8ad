//! The `herald` command line (contract §1, §10): `serve`, `migrate`,
//! `org create|list`, `token create`, `console-user create`. Every command opens the database and
//! applies pending migrations first.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::app::{Server, shutdown_signal};
use crate::clock::Clock;
use crate::config::{
    Config, DEFAULT_DATABASE_URL, DEFAULT_LISTEN, DEFAULT_OUTBOX_DIR, DatabaseUrl, DeliveryConfig, HttpConfig,
    LogSettings,
};
use crate::domain::console::{self, Role};
use crate::domain::{Actor, OrgId, orgs, tokens};
use crate::secret::Secret;
use crate::store::Store;

/// Shown under `--help`: the settings that have no flag.
const ENVIRONMENT_ONLY: &str = "\
Environment only (a flag would show in the process list):
  HERALD_ADMIN_TOKEN  accepted as an instance admin token; when unset and no admin token
                      exists, `serve` creates one and prints it once
  HERALD_SECRET_KEY   32 bytes, base64 (`openssl rand -base64 32`): encrypts stored SMTP
                      passwords; default herald.key beside the SQLite file; required with
                      PostgreSQL";

#[derive(Debug, Parser)]
#[command(name = "herald", version, about = "Self-hosted notification settings and delivery", after_help = ENVIRONMENT_ONLY)]
pub struct Cli {
    /// `sqlite://FILE` (created if missing) or `postgres://…`.
    #[arg(long, env = "HERALD_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true, hide_env_values = true)]
    pub database_url: String,
    #[command(flatten)]
    pub log: LogSettings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API and the delivery workers.
    #[command(after_help = ENVIRONMENT_ONLY)]
    Serve(ServeArgs),
    /// Run only the delivery workers (no HTTP), e.g. on extra nodes sharing
    /// one PostgreSQL database.
    Worker(DeliveryArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage organisations.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage operator console accounts.
    #[command(subcommand)]
    ConsoleUser(ConsoleUserCommand),
    /// Copy the SQLite database to FILE while Herald runs (a consistent
    /// snapshot). PostgreSQL: use pg_dump.
    Backup {
        /// The new file (must not exist).
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Replace the SQLite database with a backup (stop Herald first); the
    /// current file is kept beside it as `<name>.before-restore-<millis>`.
    Restore {
        /// A file written by `herald backup`.
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// Rewrite the SQLite file compactly and switch it to incremental vacuum
    /// (once, for databases made before retention; stop Herald first).
    Vacuum,
}

#[derive(Debug, Subcommand)]
pub enum ConsoleUserCommand {
    /// Create a console account. The password is read from
    /// `HERALD_CONSOLE_PASSWORD`, else from the first line of stdin (never a
    /// flag: it would show in the process list).
    Create {
        /// Sign-in email of the account.
        #[arg(long)]
        email: String,
        /// An instance admin (sees and changes every org).
        #[arg(long, required_unless_present = "org", conflicts_with = "org")]
        admin: bool,
        /// An admin of this org only.
        #[arg(long)]
        org: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on: `IP:PORT` or `HOST:PORT` (`localhost:8080`).
    #[arg(long, env = "HERALD_LISTEN", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Serve the API only; leave delivery to other processes.
    #[arg(long)]
    pub no_workers: bool,
    /// Also listen for bounces and complaints by SMTP on this address
    /// (`IP:PORT`; off by default): mail to Herald's VERP addresses only.
    #[arg(long, env = "HERALD_INBOUND_LISTEN", value_parser = parse_listen)]
    pub inbound_listen: Option<SocketAddr>,
    #[command(flatten)]
    pub http: HttpArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
}

/// Limits on slow, idle and too many HTTP connections (issue 13).
#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Seconds a client has to send a request's head (request line and
    /// headers), from connecting or from its first byte.
    #[arg(long, env = "HERALD_HTTP_HEADER_TIMEOUT_SECONDS", default_value_t = 10)]
    pub http_header_timeout_seconds: u64,
    /// Seconds a kept-alive connection may wait for its next request.
    #[arg(long, env = "HERALD_HTTP_IDLE_TIMEOUT_SECONDS", default_value_t = 60)]
    pub http_idle_timeout_seconds: u64,
    /// Seconds a request's whole body may take to arrive (then 408).
    #[arg(long, env = "HERALD_HTTP_BODY_TIMEOUT_SECONDS", default_value_t = 30)]
    pub http_body_timeout_seconds: u64,
    /// Seconds writing a response may go without progress (a client that
    /// stops reading) before its connection is closed.
    #[arg(long, env = "HERALD_HTTP_WRITE_TIMEOUT_SECONDS", default_value_t = 30)]
    pub http_write_timeout_seconds: u64,
    /// Connections open at once (lowered to what the open-file limit
    /// allows); more wait in the kernel's listen backlog.
    #[arg(long, env = "HERALD_HTTP_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub http_max_connections: usize,
    /// API requests per minute per token (0: unlimited), unless the org has
    /// a rate of its own (`/admin/v1/orgs/{id}/limits`).
    #[arg(long, env = "HERALD_API_RATE_PER_MINUTE", default_value_t = 0)]
    pub api_rate_per_minute: u32,
}

impl HttpArgs {
    fn config(&self) -> HttpConfig {
        let seconds = |s: u64| std::time::Duration::from_secs(s.max(1));
        HttpConfig {
            header_timeout: seconds(self.http_header_timeout_seconds),
            idle_timeout: seconds(self.http_idle_timeout_seconds),
            body_timeout: seconds(self.http_body_timeout_seconds),
            write_timeout: seconds(self.http_write_timeout_seconds),
            max_connections: self.http_max_connections.max(1),
            api_rate_per_minute: self.api_rate_per_minute,
        }
    }
}

/// Delivery settings (contract §8, §10).
#[derive(Debug, clap::Args)]
pub struct DeliveryArgs {
    /// SMTP hosts allowed although they resolve to loopback, private or
    /// link-local addresses (comma-separated names or addresses).
    #[arg(long, env = "HERALD_SMTP_ALLOW_HOSTS", default_value = "")]
    pub smtp_allow_hosts: String,
    /// Where mail goes as `.eml` files when no SMTP server is configured.
    #[arg(long, env = "HERALD_OUTBOX_DIR", default_value = DEFAULT_OUTBOX_DIR)]
    pub outbox_dir: std::path::PathBuf,
    /// The base of links in mails (default `http://<listen address>`).
    #[arg(long, env = "HERALD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Sends in flight per process.
    #[arg(long, env = "HERALD_WORKER_CONCURRENCY", default_value_t = 32)]
    pub worker_concurrency: usize,
    /// Seconds a worker's lease on a mail lasts; a crashed worker's mail is
    /// retried after it.
    #[arg(long, env = "HERALD_LEASE_SECONDS", default_value_t = 60)]
    pub lease_seconds: u64,
    /// Milliseconds between an idle worker's looks for due mail.
    #[arg(long, env = "HERALD_WORKER_POLL_MS", default_value_t = 500)]
    pub worker_poll_ms: u64,
    /// Seconds each SMTP step (connect, greeting, EHLO, STARTTLS, AUTH, MAIL,
    /// RCPT, DATA) may take before the attempt fails as a timeout.
    #[arg(long, env = "HERALD_SMTP_TIMEOUT_SECONDS", default_value_t = 30)]
    pub smtp_timeout_seconds: u64,
    /// Consecutive failures after which a provider is skipped (its circuit opens).
    #[arg(long, env = "HERALD_PROVIDER_FAILURES", default_value_t = 5)]
    pub provider_failures: i64,
    /// Seconds an open circuit skips its provider before one attempt probes it.
    #[arg(long, env = "HERALD_PROVIDER_COOLDOWN_SECONDS", default_value_t = 60)]
    pub provider_cooldown_seconds: u64,
    /// The window of `maxPerMinute` in milliseconds: 60000. Shorter only to
    /// test rate limits quickly (the limit then holds per this window).
    #[arg(long, env = "HERALD_PROVIDER_RATE_WINDOW_MS", default_value_t = 60_000)]
    pub provider_rate_window_ms: u64,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

/// Retention (issue 20): instance defaults and this node's pruning.
#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    /// Days the body and attachments of a delivered mail are kept.
    #[arg(long, env = "HERALD_RETENTION_BODY_DAYS", default_value_t = 7)]
    pub retention_body_days: i64,
    /// Days the delivery record of a finished mail is kept (at least the body days).
    #[arg(long, env = "HERALD_RETENTION_RECORD_DAYS", default_value_t = 90)]
    pub retention_record_days: i64,
    /// Days a dead mail keeps its body (and can be retried).
    #[arg(long, env = "HERALD_RETENTION_DEAD_DAYS", default_value_t = 30)]
    pub retention_dead_days: i64,
    /// Days the audit log is kept; unset: kept.
    #[arg(long, env = "HERALD_RETENTION_AUDIT_DAYS")]
    pub retention_audit_days: Option<i64>,
    /// Seconds between this node's pruning passes; 0: no background pruning.
    #[arg(long, env = "HERALD_RETENTION_INTERVAL_SECONDS", default_value_t = 60)]
    pub retention_interval_seconds: u64,
    /// Rows per pruning transaction.
    #[arg(long, env = "HERALD_RETENTION_BATCH", default_value_t = 500)]
    pub retention_batch: i64,
    /// Seconds in a retention day: for benchmarks that simulate days of
    /// traffic in minutes (bench/retention). Not for production.
    #[arg(long, env = "HERALD_RETENTION_DAY_SECONDS", default_value_t = 86_400, hide = true)]
    pub retention_day_seconds: i64,
}

impl RetentionArgs {
    fn config(&self) -> anyhow::Result<crate::config::RetentionConfig> {
        let defaults = crate::domain::retention::Retention {
            body_days: self.retention_body_days,
            record_days: self.retention_record_days,
            dead_days: self.retention_dead_days,
            audit_days: self.retention_audit_days,
        };
        if let Err(errors) = defaults.validate() {
            let why: Vec<String> = errors.into_iter().map(|e| e.message).collect();
            anyhow::bail!("retention settings: {}", why.join("; "));
        }
        Ok(crate::config::RetentionConfig {
            defaults,
            interval: (self.retention_interval_seconds > 0)
                .then(|| std::time::Duration::from_secs(self.retention_interval_seconds)),
            batch: self.retention_batch.clamp(1, 10_000),
            day_ms: self.retention_day_seconds.clamp(1, crate::domain::retention::DAY_MS / 1000) * 1000,
        })
    }
}

impl DeliveryArgs {
    fn config(&self, workers: bool) -> DeliveryConfig {
        DeliveryConfig {
            workers,
            allow_hosts: DeliveryConfig::parse_allow_hosts(&self.smtp_allow_hosts),
            outbox_dir: self.outbox_dir.clone(),
            public_url: self.public_url.clone().filter(|u| !u.trim().is_empty()),
            lease: std::time::Duration::from_secs(self.lease_seconds.max(1)),
            poll: std::time::Duration::from_millis(self.worker_poll_ms.clamp(10, 60_000)),
            concurrency: self.worker_concurrency.clamp(1, 1024),
            smtp_timeout: std::time::Duration::from_secs(self.smtp_timeout_seconds.clamp(1, 3600)),
            circuit_failures: self.provider_failures.clamp(1, 1000),
            circuit_cooldown: std::time::Duration::from_secs(self.provider_cooldown_seconds.clamp(1, 86_400)),
            rate_window: std::time::Duration::from_millis(self.provider_rate_window_ms.clamp(100, 3_600_000)),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation; prints it as JSON.
    Create { name: String },
    /// List organisations as JSON.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints it (with the secret, shown this once) as JSON.
    Create {
        /// The org the token acts for.
        #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
        org: Option<String>,
        /// Create an instance admin token instead.
        #[arg(long)]
        admin: bool,
        /// A label saying where the token is used.
        #[arg(long, default_value = "cli")]
        name: String,
    },
}

/// The bootstrap admin token from `HERALD_ADMIN_TOKEN` (environment only: a
/// flag would show in the process list).
fn admin_token_from_env() -> Option<Secret> {
    secret_from_env("HERALD_ADMIN_TOKEN")
}

fn secret_from_env(name: &str) -> Option<Secret> {
    std::env::var(name).ok().filter(|t| !t.trim().is_empty()).map(Secret::new)
}

/// `IP:PORT`, or `HOST:PORT` resolved once at start. A name with several
/// addresses (`localhost`: 127.0.0.1 and ::1) listens on the first IPv4 one,
/// which is what clients that say `localhost` try first on most systems.
fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = raw.parse() {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> =
        raw.to_socket_addrs().map_err(|e| format!("expected IP:PORT or HOST:PORT ({e})"))?.collect();
    addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().ok_or_else(|| format!("{raw} resolves to no address"))
}

async fn open_store(url: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    Ok(store)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let clock = Clock::default();
    match cli.command {
        Command::Serve(args) => {
            let config = Config {
                listen: args.listen,
                database_url: DatabaseUrl::new(cli.database_url),
                admin_token: admin_token_from_env(),
                secret_key: secret_from_env("HERALD_SECRET_KEY"),
                http: args.http.config(),
                delivery: args.delivery.config(!args.no_workers),
                console: Default::default(),
                retention: args.delivery.retention.config()?,
                inbound_listen: args.inbound_listen,
            };
            serve(config, clock).await
        }
        Command::Worker(args) => {
            let mut config = Config::new(cli.database_url);
            config.secret_key = secret_from_env("HERALD_SECRET_KEY");
            config.delivery = args.config(true);
            config.retention = args.retention.config()?;
            crate::app::run_workers(&config, clock, shutdown_signal()).await?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Migrate => {
            let store = open_store(&cli.database_url).await?;
            store.ensure_instance(clock.now()).await?;
            tracing::info!(backend = ?store.backend(), "migrations applied");
            Ok(())
        }
        Command::Org(OrgCommand::Create { name }) => {
            let store = open_store(&cli.database_url).await?;
            let org = orgs::create(&store, &Actor::cli(), &name, clock.now()).await?;
            println!("{}", json!({ "id": org.id.as_str(), "name": org.name, "createdAt": org.created_at.rfc3339() }));
            Ok(())
        }
        Command::Org(OrgCommand::List) => {
            let store = open_store(&cli.database_url).await?;
            for org in orgs::list(&store).await? {
                println!(
                    "{}",
                    json!({ "id": org.id.as_str(), "name": org.name, "createdAt": org.created_at.rfc3339() })
                );
            }
            Ok(())
        }
        Command::Backup { to } => {
            let url = cli.database_url;
            let bytes = tokio::task::spawn_blocking({
                let to = to.clone();
                move || crate::store::backup_sqlite(&url, &to)
            })
            .await??;
            println!("{}", json!({ "backup": absolute(&to), "bytes": bytes }));
            Ok(())
        }
        Command::Restore { from } => {
            let kept = crate::store::restore_sqlite(&cli.database_url, &from, clock.now())?;
            println!("{}", json!({ "restored": absolute(&from), "previous": kept.as_deref().map(absolute) }));
            Ok(())
        }
        Command::Vacuum => {
            let (before, after) = crate::store::vacuum_sqlite(&cli.database_url)?;
            println!("{}", json!({ "bytesBefore": before, "bytesAfter": after }));
            Ok(())
        }
        Command::ConsoleUser(ConsoleUserCommand::Create { email, admin: _, org }) => {
            create_console_user(&cli.database_url, &clock, email, org).await
        }
        Command::Token(TokenCommand::Create { org, admin, name }) => {
            let store = open_store(&cli.database_url).await?;
            store.ensure_instance(clock.now()).await?;
            let issued = if admin {
                tokens::create_admin(&store, &Actor::cli(), &name, clock.now()).await?
            } else {
                let raw = org.unwrap_or_default();
                let org = OrgId::parse(&raw).ok_or_else(|| anyhow::anyhow!("no organisation with id {raw:?}"))?;
                tokens::create_for_org(&store, &Actor::cli(), &org, &name, clock.now()).await?
            };
            println!(
                "{}",
                json!({
                    "id": issued.record.id,
                    "name": issued.record.name,
                    "org": issued.record.org_id.as_ref().map(OrgId::as_str),
                    "token": issued.secret.expose(),
                })
            );
            Ok(())
        }
    }
}

/// A path as an absolute one, for start-up messages.
fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
}

/// The new account's password: `HERALD_CONSOLE_PASSWORD`, else stdin's first
/// line (asked for without echo when stdin is a terminal).
fn console_password() -> anyhow::Result<Secret> {
    if let Some(p) = std::env::var("HERALD_CONSOLE_PASSWORD").ok().filter(|p| !p.is_empty()) {
        return Ok(Secret::new(p));
    }
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        // Typed at a terminal: not echoed.
        let typed = rpassword::prompt_password("Password of the new console account: ")
            .context("read the password from the terminal")?;
        anyhow::ensure!(!typed.is_empty(), "no password given");
        return Ok(Secret::new(typed));
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("read the password from stdin")?;
    let line = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!line.is_empty(), "no password: set HERALD_CONSOLE_PASSWORD or write it to stdin");
    Ok(Secret::new(line))
}

async fn create_console_user(url: &str, clock: &Clock, email: String, org: Option<String>) -> anyhow::Result<()> {
    let password = console_password()?;
    let store = open_store(url).await?;
    store.ensure_instance(clock.now()).await?;
    let role = match org {
        None => Role::InstanceAdmin,
        Some(raw) => {
            Role::OrgAdmin(OrgId::parse(&raw).ok_or_else(|| anyhow::anyhow!("no organisation with id {raw:?}"))?)
        }
    };
    let gate = console::HashGate::default();
    let user = console::create_user(&store, &gate, &Actor::cli(), &email, password.expose(), role, clock.now())
        .await
        .map_err(|e| anyhow::anyhow!("{}", crate::api::public_message(&e)))?;
    println!(
        "{}",
        json!({ "id": user.id, "email": user.email, "org": user.org.as_ref().map(OrgId::as_str),
                "instanceAdmin": user.is_instance_admin() })
    );
    Ok(())
}

async fn serve(config: Config, clock: Clock) -> anyhow::Result<()> {
    let server = Server::build(&config, clock.clone()).await?;
    if config.admin_token.is_none() && !server.state().store().admin_token_exists().await? {
        let issued = tokens::create_admin(server.state().store(), &Actor::cli(), "bootstrap", clock.now()).await?;
        // Printed once, to stderr, outside the log stream: it is not a log line.
        eprintln!(
            "\nNo admin token existed, so Herald created one. It is shown only now; keep it safe:\n\n    {}\n",
            issued.secret.expose()
        );
    }
    let store = server.state().store();
    let cipher_key = match (&config.secret_key, store.sqlite_file()) {
        (Some(_), _) => "HERALD_SECRET_KEY".to_owned(),
        (None, Some(db)) => absolute(&crate::crypto::key_file_beside(db)),
        (None, None) => "none".to_owned(),
    };
    tracing::info!(
        addr = %server.local_addr()?,
        database = store.location(),
        key = cipher_key,
        outbox = absolute(&config.delivery.outbox_dir),
        "herald listening"
    );
    server.run(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_takes_addresses_and_names() {
        assert_eq!(parse_listen("127.0.0.1:8080"), Ok(SocketAddr::from(([127, 0, 0, 1], 8080))));
        assert_eq!(parse_listen("[::1]:0"), Ok("[::1]:0".parse().unwrap()));
        let local = parse_listen("localhost:8080").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 8080, "{local}");
        assert!(parse_listen("localhost").is_err(), "a port is required");
    }
}
