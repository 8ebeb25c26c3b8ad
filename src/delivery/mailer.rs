//! Turning a notification into a mail and handing it to the effective
//! server: SMTP through lettre (plain, STARTTLS-required or implicit TLS,
//! over rustls), or, with no server configured, an `.eml` file in the outbox
//! directory, and the step-by-step test send. Every connect goes through
//! the outbound host policy ([`super::outbound`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lettre::Address;
use lettre::address::Envelope;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::net::TcpStream;

use crate::delivery::outbound::HostPolicy;
use crate::domain::delivery::documents::MailAttachment;
use crate::domain::smtp::{Security, SmtpServer};

/// The default of `HERALD_SMTP_TIMEOUT_SECONDS`: how long one SMTP step
/// (connecting, the greeting and EHLO, STARTTLS, AUTH, MAIL, each RCPT,
/// DATA and the message) may take.
pub const DEFAULT_SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The sender used when the effective server names none.
pub const FALLBACK_FROM: &str = "herald@localhost";

/// Settings of the mailer (contract §10).
#[derive(Debug, Clone)]
pub struct MailerConfig {
    /// `HERALD_SMTP_ALLOW_HOSTS`: hosts (names or addresses, lower-case)
    /// allowed even though they resolve to loopback, private or link-local
    /// addresses.
    pub allow_hosts: Vec<String>,
    /// `HERALD_OUTBOX_DIR`: where the file transport writes `.eml` files.
    pub outbox_dir: PathBuf,
    /// The right-hand side of Message-IDs and the EHLO name.
    pub domain: String,
    /// Connections per pooled SMTP server.
    pub pool_size: u32,
    /// `HERALD_SMTP_TIMEOUT_SECONDS`: how long each SMTP step may take.
    pub smtp_timeout: Duration,
}

/// A mail ready to hand over.
pub struct Outgoing {
    pub envelope: Envelope,
    pub bytes: Vec<u8>,
}

/// How a hand-over ended, classified for the retry policy and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Accepted {
        response: String,
    },
    /// 4xx, network and TLS failures: try again later.
    Transient {
        class: &'static str,
        error: String,
        response: Option<String>,
    },
    /// 5xx, refused by policy, unusable settings: do not try again.
    Permanent {
        class: &'static str,
        error: String,
        response: Option<String>,
    },
}

impl Delivery {
    /// The error, or the server's answer for an accepted mail.
    pub fn error_text(self) -> String {
        match self {
            Delivery::Accepted { response } => response,
            Delivery::Transient { error, .. } | Delivery::Permanent { error, .. } => error,
        }
    }
}

/// What a notification is sent as.
pub struct MailParts<'a> {
    pub id: &'a str,
    pub to_addr: &'a str,
    pub to_name: Option<&'a str>,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: Option<&'a str>,
    pub attachments: &'a [MailAttachment],
    /// The SMTP envelope sender (MAIL FROM) when it is not the From
    /// address: the notification's VERP bounce address
    /// (`domain::bounces::verp_address`) when the org has a bounce domain.
    pub envelope_from: Option<&'a str>,
}

pub struct Mailer {
    config: MailerConfig,
    /// Idle connections by SMTP settings id, with the version they were
    /// opened for: a changed config replaces (and so closes) its pool.
    pools: Mutex<HashMap<String, Arc<Pool>>>,
}

/// The sender mailbox for `server` (its from address and name).
pub fn sender(server: Option<&SmtpServer>) -> Mailbox {
    let fallback = || FALLBACK_FROM.parse::<Address>().ok();
    let address = server
        .and_then(|s| s.from_email.as_deref().and_then(|a| a.parse::<Address>().ok()))
        .or_else(|| server.and_then(|s| s.username.as_deref()).and_then(|u| u.parse::<Address>().ok()))
        .or_else(fallback);
    let name = server.and_then(|s| s.from_name.as_deref()).map(header_text);
    // `FALLBACK_FROM` is a valid address, so the last arm is never empty.
    Mailbox::new(
        name,
        address.unwrap_or_else(|| Address::new("herald", "localhost").unwrap_or_else(|_| unreachable!())),
    )
}

/// Header text without control characters. Inputs are validated when
/// accepted; this is the last line of defence, because lettre panics on a
/// line break in a display name.
fn header_text(raw: &str) -> String {
    raw.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Builds the MIME message through lettre's typed headers. Message-ID is
/// derived from the notification id, so every attempt sends the same id.
pub fn build(parts: &MailParts<'_>, server: Option<&SmtpServer>, domain: &str) -> Result<Outgoing, String> {
    let to_addr: Address = parts.to_addr.parse().map_err(|_| "the recipient address is not valid".to_owned())?;
    let mut builder = Message::builder()
        .from(sender(server))
        .to(Mailbox::new(parts.to_name.map(header_text), to_addr))
        .subject(header_text(parts.subject))
        .message_id(Some(format!("<{}@{}>", parts.id, domain)));
    if let Some(reply_to) = server.and_then(|s| s.reply_to.as_deref()).and_then(|r| r.parse::<Address>().ok()) {
        builder = builder.reply_to(Mailbox::new(None, reply_to));
    }
    let text = || SinglePart::builder().header(ContentType::TEXT_PLAIN).body(parts.text.to_owned());
    let message = match (parts.html, parts.attachments) {
        (Some(html), []) => {
            builder.multipart(MultiPart::alternative_plain_html(parts.text.to_owned(), html.to_owned()))
        }
        (None, []) => builder.singlepart(text()),
        (html, files) => {
            let mut mixed = match html {
                Some(html) => MultiPart::mixed()
                    .multipart(MultiPart::alternative_plain_html(parts.text.to_owned(), html.to_owned())),
                None => MultiPart::mixed().singlepart(text()),
            };
            for file in files {
                let content_type = ContentType::parse(&file.content_type)
                    .map_err(|_| "an attachment's content type is not valid".to_owned())?;
                mixed = mixed
                    .singlepart(Attachment::new(header_text(&file.file_name)).body(file.bytes.clone(), content_type));
            }
            builder.multipart(mixed)
        }
    }
    .map_err(|e| format!("the message could not be built: {e}"))?;
    let mut envelope = message.envelope().clone();
    if let Some(from) = parts.envelope_from {
        let from: Address = from.parse().map_err(|_| "the envelope sender is not a valid address".to_owned())?;
        envelope = Envelope::new(Some(from), envelope.to().to_vec())
            .map_err(|e| format!("the envelope could not be built: {e}"))?;
    }
    Ok(Outgoing { envelope, bytes: message.formatted() })
}

/// Why a reply or error is what it is, in one line for the log.
fn smtp_reply(e: &smtp::Error) -> Option<String> {
    let code = e.status()?;
    let text = std::error::Error::source(e).map(ToString::to_string).unwrap_or_default();
    Some(format!("{code} {text}").trim().to_owned())
}

fn response_text(r: &Response) -> String {
    format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" ")).trim().to_owned()
}

/// Classifies a lettre error: 5xx permanent, everything else transient.
fn classify(e: &smtp::Error) -> Delivery {
    let response = smtp_reply(e);
    let error = e.to_string();
    if e.is_permanent() {
        Delivery::Permanent { class: "permanent", error, response }
    } else if e.is_transient() {
        Delivery::Transient { class: "transient", error, response }
    } else if e.is_tls() {
        Delivery::Transient { class: "tls", error, response }
    } else if e.is_timeout() {
        Delivery::Transient { class: "timeout", error, response }
    } else {
        Delivery::Transient { class: "network", error, response }
    }
}

fn tls_parameters(server: &SmtpServer) -> Result<TlsParameters, smtp::Error> {
    TlsParameters::builder(server.host.clone())
        .dangerous_accept_invalid_certs(server.accept_invalid_certs)
        .build_rustls()
}

fn credentials(server: &SmtpServer) -> Option<Credentials> {
    let secret = server.oauth_token.as_ref().or(server.password.as_ref());
    server
        .username
        .as_ref()
        .map(|user| Credentials::new(user.clone(), secret.map(|p| p.expose().to_owned()).unwrap_or_default()))
}

/// XOAUTH2 (username and access token) when the server has a token, else
/// PLAIN or LOGIN with the password.
fn mechanisms(server: &SmtpServer) -> &'static [Mechanism] {
    if server.oauth_token.is_some() { &[Mechanism::Xoauth2] } else { &[Mechanism::Plain, Mechanism::Login] }
}

impl Mailer {
    pub fn new(config: MailerConfig) -> Mailer {
        Mailer { config, pools: Mutex::new(HashMap::new()) }
    }

    pub fn config(&self) -> &MailerConfig {
        &self.config
    }

    fn hello(&self) -> ClientId {
        ClientId::Domain(self.config.domain.clone())
    }

    /// The outbound host policy (contract §8): a host that resolves to a
    /// loopback, private, link-local or otherwise non-public address is
    /// refused unless listed. The refusal does not say which address a name
    /// resolved to (it would tell any org about internal DNS); the log does.
    pub async fn check_host(&self, host: &str, port: u16) -> Result<(), Delivery> {
        self.resolve_allowed(host, port).await.map(drop)
    }

    /// Resolves `host` once and applies the outbound host policy to every
    /// address it resolves to; the caller connects to exactly these
    /// addresses, so a DNS answer that changes between the check and the
    /// connect (DNS rebinding) cannot slip an internal address in.
    async fn resolve_allowed(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, Delivery> {
        HostPolicy::new(&self.config.allow_hosts).resolve("SMTP host", host, port).await.map_err(|refusal| {
            let permanent = refusal.is_permanent();
            let class = refusal.class();
            let error = refusal.to_string();
            if permanent {
                Delivery::Permanent { class, error, response: None }
            } else {
                Delivery::Transient { class, error, response: None }
            }
        })
    }

    /// Start-up check of the file transport's directory: created if
    /// missing, and a file can be written in it. The error names the path
    /// (it is for the operator, not for tenants).
    pub fn check_outbox_dir(&self) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let dir = &self.config.outbox_dir;
        let probe = dir.join(format!(".herald-write-check-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&probe, b""))
            .and_then(|()| std::fs::remove_file(&probe))
            .with_context(|| format!("the outbox directory {} (HERALD_OUTBOX_DIR) is not writable", dir.display()))
    }

    /// Runs one SMTP step under the per-step timeout.
    async fn step<T>(
        &self,
        step: Step,
        what: &str,
        work: impl Future<Output = Result<T, smtp::Error>>,
    ) -> Result<T, Failure> {
        match tokio::time::timeout(self.config.smtp_timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Failure::smtp(step, e)),
            Err(_) => Err(Failure::timeout(step, what, self.config.smtp_timeout)),
        }
    }

    /// The connection pool of `server`: made when first needed or when its
    /// settings changed. (The host policy is applied by [`Mailer::open`], on
    /// every connect.)
    async fn pool(&self, server: &SmtpServer) -> Result<Arc<Pool>, Delivery> {
        {
            let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(pool) = pools.get(&server.config_id)
                && pool.version == server.version
            {
                return Ok(pool.clone());
            }
        }
        let pool = Arc::new(Pool { version: server.version, idle: Mutex::new(Vec::new()) });
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        // The replaced pool's connections close when their last user drops it.
        pools.insert(server.config_id.clone(), pool.clone());
        Ok(pool)
    }

    /// Opens a connection to `server`: resolves its host once and applies the
    /// outbound host policy to the answer, then connects to those addresses
    /// only (TLS still checks the certificate against the host name): TCP
    /// (with `TCP_NODELAY`: lettre writes
    /// the end of DATA separately, which Nagle's algorithm would hold back
    /// for a delayed ACK) or implicit TLS, then STARTTLS if required (never
    /// falling back to clear text), then AUTH. A failure names its step;
    /// each step has [`MailerConfig::smtp_timeout`].
    async fn open(&self, server: &SmtpServer, passed: &mut Vec<Passed>) -> Result<AsyncSmtpConnection, Failure> {
        let hello = self.hello();
        let timeout = self.config.smtp_timeout;
        let params = match server.security {
            Security::Plain => None,
            Security::Unrecognised => {
                return Err(Failure::config(
                    "the stored SMTP settings have a security mode Herald does not recognise; save them again",
                ));
            }
            Security::StartTls | Security::Tls => {
                Some(tls_parameters(server).map_err(|e| Failure::config(format!("TLS settings unusable: {e}")))?)
            }
        };
        let addrs = match tokio::time::timeout(timeout, self.resolve_allowed(&server.host, server.port)).await {
            Err(_) => return Err(Failure::timeout(Step::Connect, "resolving the host", timeout)),
            Ok(Err(refused)) => return Err(Failure::refused(refused)),
            Ok(Ok(addrs)) => addrs,
        };
        // The policy is checked here, on the addresses connected to, once
        // per connection (a test send reports it as its first step).
        passed.push((Step::Policy, None));
        let mut conn = if server.security == Security::Tls {
            let connecting =
                AsyncSmtpConnection::connect_tokio1(addrs.as_slice(), Some(timeout), &hello, params.clone(), None);
            match tokio::time::timeout(timeout, connecting).await {
                Err(_) => return Err(Failure::timeout(Step::Connect, "the TLS handshake, greeting and EHLO", timeout)),
                Ok(Err(e)) => return Err(Failure::smtp(if e.is_tls() { Step::Tls } else { Step::Connect }, e)),
                Ok(Ok(c)) => c,
            }
        } else {
            let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addrs.as_slice())).await {
                Err(_) => return Err(Failure::timeout(Step::Connect, "connecting", timeout)),
                Ok(Err(e)) => return Err(Failure::network(Step::Connect, format!("could not connect: {e}"))),
                Ok(Ok(tcp)) => tcp,
            };
            let _ = tcp.set_nodelay(true);
            self.step(
                Step::Connect,
                "the greeting and EHLO",
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello),
            )
            .await?
        };
        // lettre keeps the greeting to itself; the EHLO reply names the server.
        passed.push((Step::Connect, Some(format!("250 {}", conn.server_info().name()))));
        if server.security == Security::StartTls {
            if !conn.can_starttls() {
                close(&mut conn, timeout).await;
                return Err(Failure::tls("the server does not offer STARTTLS, which these settings require"));
            }
            let Some(params) = params else { unreachable!("STARTTLS settings have TLS parameters") };
            // A timed-out step leaves the connection mid-command: it is
            // dropped (closed), never asked to QUIT.
            self.step(Step::Tls, "STARTTLS", conn.starttls(params, &hello)).await?;
        }
        if server.security != Security::Plain {
            passed.push((Step::Tls, None));
        }
        if let Some(creds) = credentials(server) {
            match self.step(Step::Auth, "AUTH", conn.auth(mechanisms(server), &creds)).await {
                Ok(reply) => passed.push((Step::Auth, Some(response_text(&reply)))),
                Err(f) => {
                    if !f.timed_out() {
                        close(&mut conn, timeout).await;
                    }
                    return Err(if server.oauth_token.is_some() { f.token_refused() } else { f });
                }
            }
        }
        Ok(conn)
    }

    /// MAIL, RCPT for each recipient, DATA and the message, each under the
    /// per-step timeout (lettre's `send`, step by step). The connection is
    /// left open on success; on failure it is closed.
    async fn transact(
        &self,
        conn: &mut AsyncSmtpConnection,
        outgoing: &Outgoing,
        passed: &mut Vec<Passed>,
    ) -> Result<Response, Failure> {
        let result = async {
            let envelope = &outgoing.envelope;
            let mut options = Vec::new();
            let non_ascii =
                envelope.from().into_iter().chain(envelope.to()).any(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii());
            if non_ascii {
                if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                    return Err(Failure::network(
                        Step::Sender,
                        "the envelope has non-ASCII addresses but the server does not support SMTPUTF8",
                    ));
                }
                options.push(MailParameter::SmtpUtfEight);
            }
            if !outgoing.bytes.is_ascii() {
                if !conn.server_info().supports_feature(Extension::EightBitMime) {
                    return Err(Failure::network(
                        Step::Sender,
                        "the message has non-ASCII content but the server does not support 8BITMIME",
                    ));
                }
                options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
            }
            let reply = self
                .step(Step::Sender, "MAIL FROM", conn.command(Mail::new(envelope.from().cloned(), options)))
                .await?;
            passed.push((Step::Sender, Some(response_text(&reply))));
            let mut last = None;
            for to in envelope.to() {
                last = Some(self.step(Step::Recipient, "RCPT TO", conn.command(Rcpt::new(to.clone(), vec![]))).await?);
            }
            passed.push((Step::Recipient, last.as_ref().map(response_text)));
            self.step(Step::Data, "DATA", conn.command(Data)).await?;
            let response = self.step(Step::Data, "the end of the message", conn.message(&outgoing.bytes)).await?;
            passed.push((Step::Data, Some(response_text(&response))));
            Ok(response)
        }
        .await;
        if let Err(f) = &result
            && !f.timed_out()
        {
            close(conn, self.config.smtp_timeout).await;
        }
        result
    }

    /// Hands one mail to `server`, or writes it to the outbox directory.
    pub async fn deliver(&self, server: Option<&SmtpServer>, parts: &MailParts<'_>) -> Delivery {
        let outgoing = match build(parts, server, &self.config.domain) {
            Ok(o) => o,
            Err(error) => return Delivery::Permanent { class: "message", error, response: None },
        };
        let Some(server) = server else {
            return self.write_file(parts.id, &outgoing.bytes).await;
        };
        let pool = match self.pool(server).await {
            Ok(p) => p,
            Err(refused) => return refused,
        };
        let started = Instant::now();
        let mut conn = match pool.take(self.config.smtp_timeout).await {
            Some(conn) => conn,
            None => match self.open(server, &mut Vec::new()).await {
                Ok(conn) => conn,
                Err(failure) => return failure.into_delivery(),
            },
        };
        let result = self.transact(&mut conn, &outgoing, &mut Vec::new()).await;
        metrics::histogram!("herald_smtp_send_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(response) => {
                pool.put(conn, self.config.pool_size as usize);
                Delivery::Accepted { response: response_text(&response) }
            }
            Err(failure) => failure.into_delivery(),
        }
    }

    /// The file transport: `<outbox>/<notification id>.eml`, written to a
    /// temporary name and renamed, so a reader never sees half a file and a
    /// repeated attempt replaces rather than duplicates.
    async fn write_file(&self, id: &str, bytes: &[u8]) -> Delivery {
        let dir = &self.config.outbox_dir;
        let target = dir.join(format!("{id}.eml"));
        let partial = dir.join(format!(".{id}.eml.partial"));
        let written = async {
            tokio::fs::create_dir_all(dir).await?;
            tokio::fs::write(&partial, bytes).await?;
            tokio::fs::rename(&partial, &target).await
        }
        .await;
        // Tenants see the file's name only; where the outbox is on the
        // server is the operator's business (and the log's).
        let name = format!("{id}.eml");
        match written {
            Ok(()) => Delivery::Accepted { response: format!("written to {name} in the outbox directory") },
            Err(e) => {
                tracing::error!(path = %target.display(), error = %e, "could not write to the outbox directory");
                Delivery::Transient {
                    class: "file",
                    error: format!("could not write {name} to the outbox directory: {}", e.kind()),
                    response: None,
                }
            }
        }
    }
}

/// The steps of a test send, in order (contract §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Policy,
    Connect,
    Tls,
    Auth,
    Sender,
    Recipient,
    Data,
    /// The file transport (no SMTP server configured).
    File,
}

/// The result of a test send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    /// `None` when the mail was accepted.
    pub failed_step: Option<Step>,
    pub message: String,
    /// The server's last reply, when there was one.
    pub reply: Option<String>,
    /// The steps that succeeded, in order, each with the server's reply
    /// where the SMTP library shows it (not for STARTTLS).
    pub passed: Vec<Passed>,
}

/// A step that succeeded, and the server's reply to it.
pub type Passed = (Step, Option<String>);

impl Mailer {
    /// Sends one mail now, command by command, so a failure names its step.
    /// Uses a connection of its own, never a pooled one.
    pub async fn test_send(&self, server: &SmtpServer, parts: &MailParts<'_>) -> TestReport {
        let mut passed = Vec::new();
        let fail = |step: Step, passed: Vec<Passed>, message: String, reply: Option<String>| TestReport {
            failed_step: Some(step),
            message,
            reply,
            passed,
        };
        let outgoing = match build(parts, Some(server), &self.config.domain) {
            Ok(o) => o,
            Err(e) => return fail(Step::Data, passed, e, None),
        };
        let mut conn = match self.open(server, &mut passed).await {
            Ok(conn) => conn,
            Err(f) => return fail(f.step, passed, f.message, f.reply),
        };
        match self.transact(&mut conn, &outgoing, &mut passed).await {
            Ok(response) => {
                let _ = tokio::time::timeout(self.config.smtp_timeout, conn.quit()).await;
                TestReport {
                    failed_step: None,
                    message: "the server accepted the message".into(),
                    reply: Some(response_text(&response)),
                    passed,
                }
            }
            Err(f) => fail(f.step, passed, f.message, f.reply),
        }
    }
}

/// Ends a connection after a failure: QUIT if the server still answers
/// within `timeout`, then close.
async fn close(conn: &mut AsyncSmtpConnection, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, conn.abort()).await;
}

/// Idle connections to one SMTP server (one settings version).
struct Pool {
    version: i64,
    idle: Mutex<Vec<(Instant, AsyncSmtpConnection)>>,
}

/// Connections idle longer than this are closed rather than reused.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// Connections idle longer than this are checked with NOOP before reuse.
const CHECK_AFTER: Duration = Duration::from_secs(5);

impl Pool {
    /// An idle connection that still works, if there is one.
    async fn take(&self, timeout: Duration) -> Option<AsyncSmtpConnection> {
        loop {
            let (since, mut conn) = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop()?;
            let idle = since.elapsed();
            if idle > IDLE_LIMIT || conn.has_broken() {
                close(&mut conn, timeout).await;
                continue;
            }
            if idle > CHECK_AFTER && !matches!(tokio::time::timeout(timeout, conn.test_connected()).await, Ok(true)) {
                // Dropped, not asked to QUIT: it did not answer NOOP.
                continue;
            }
            return Some(conn);
        }
    }

    fn put(&self, conn: AsyncSmtpConnection, max: usize) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < max {
            idle.push((Instant::now(), conn));
        }
    }
}

/// A failed SMTP step.
struct Failure {
    step: Step,
    message: String,
    reply: Option<String>,
    kind: FailureKind,
}

enum FailureKind {
    Smtp(smtp::Error),
    Network,
    Tls,
    Timeout,
    /// Settings Herald cannot send with: retrying will not help.
    Config,
    /// Refused by the outbound host policy.
    Policy,
    /// The server refused an OAuth2 access token (XOAUTH2): retryable, the
    /// token may be stale (the caller drops it from its cache) and another
    /// provider may work.
    Auth,
}

impl Failure {
    fn smtp(step: Step, e: smtp::Error) -> Failure {
        Failure { step, message: e.to_string(), reply: smtp_reply(&e), kind: FailureKind::Smtp(e) }
    }
    fn network(step: Step, message: impl Into<String>) -> Failure {
        Failure { step, message: message.into(), reply: None, kind: FailureKind::Network }
    }
    fn tls(message: impl Into<String>) -> Failure {
        Failure { step: Step::Tls, message: message.into(), reply: None, kind: FailureKind::Tls }
    }
    fn timeout(step: Step, what: &str, after: Duration) -> Failure {
        let message = format!("timed out after {} s waiting for {what}", after.as_secs_f64());
        Failure { step, message, reply: None, kind: FailureKind::Timeout }
    }
    fn config(message: impl Into<String>) -> Failure {
        Failure { step: Step::Tls, message: message.into(), reply: None, kind: FailureKind::Config }
    }
    /// A host that does not resolve, or that the outbound host policy refuses.
    fn refused(refused: Delivery) -> Failure {
        match refused {
            Delivery::Permanent { class: "policy", error, .. } => {
                Failure { step: Step::Policy, message: error, reply: None, kind: FailureKind::Policy }
            }
            other => Failure::network(Step::Connect, other.error_text()),
        }
    }

    /// A failed XOAUTH2 exchange: a 535, or a SASL error challenge (334,
    /// which lettre refuses as unexpected), or no XOAUTH2 offered.
    fn token_refused(self) -> Failure {
        match self.kind {
            FailureKind::Smtp(e) if e.is_permanent() || e.is_client() => {
                let message = match &self.reply {
                    Some(reply) => format!("the server refused the OAuth2 access token: {reply}"),
                    None => format!("the server refused the OAuth2 access token: {e}"),
                };
                Failure { step: Step::Auth, message, reply: self.reply, kind: FailureKind::Auth }
            }
            kind => Failure { kind, ..self },
        }
    }

    fn timed_out(&self) -> bool {
        matches!(self.kind, FailureKind::Timeout)
    }

    fn into_delivery(self) -> Delivery {
        let (error, response) = (self.message, self.reply);
        match self.kind {
            FailureKind::Smtp(e) => classify(&e),
            FailureKind::Config => Delivery::Permanent { class: "config", error, response },
            FailureKind::Policy => Delivery::Permanent { class: "policy", error, response },
            FailureKind::Auth => Delivery::Transient { class: "auth", error, response },
            FailureKind::Network => Delivery::Transient { class: "network", error, response },
            FailureKind::Tls => Delivery::Transient { class: "tls", error, response },
            FailureKind::Timeout => Delivery::Transient { class: "timeout", error, response },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer(outbox_dir: PathBuf) -> Mailer {
        Mailer::new(MailerConfig {
            allow_hosts: vec!["localhost".into()],
            outbox_dir,
            domain: "herald.test".into(),
            pool_size: 1,
            smtp_timeout: DEFAULT_SMTP_TIMEOUT,
        })
    }

    #[tokio::test]
    async fn a_refusal_does_not_say_where_a_name_resolves() {
        // `localhost` resolves to loopback; listed, it passes, so test a name
        // that resolves the same way but is not listed.
        let mailer = Mailer::new(MailerConfig { allow_hosts: Vec::new(), ..mailer(PathBuf::from("unused")).config });
        match mailer.check_host("localhost", 25).await {
            Err(Delivery::Permanent { class: "policy", error, .. }) => {
                assert!(error.contains("localhost resolves to an internal address"), "{error}");
                assert!(!error.contains("127.0.0.1") && !error.contains("::1"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn every_connect_applies_the_host_policy_even_when_a_pool_exists() {
        // An SMTP port on loopback, reached by the name `localhost`, which is
        // not listed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mailer = Mailer::new(MailerConfig {
            allow_hosts: Vec::new(),
            smtp_timeout: Duration::from_secs(2),
            ..mailer(PathBuf::from("unused")).config
        });
        let server = SmtpServer {
            scope: crate::domain::audit::Scope::Instance,
            config_id: "settings".into(),
            version: 1,
            host: "localhost".into(),
            port,
            security: Security::Plain,
            accept_invalid_certs: false,
            username: None,
            password: None,
            oauth_token: None,
            from_email: None,
            from_name: None,
            reply_to: None,
        };
        // The pool was made while the name still resolved to a public
        // address; the name now resolves to loopback (DNS rebinding).
        mailer
            .pools
            .lock()
            .unwrap()
            .insert(server.config_id.clone(), Arc::new(Pool { version: server.version, idle: Mutex::new(Vec::new()) }));
        let parts = MailParts {
            id: "0193-rebind",
            to_addr: "ada@example.com",
            to_name: None,
            subject: "Hi",
            text: "hello",
            html: None,
            attachments: &[],
            envelope_from: None,
        };
        match mailer.deliver(Some(&server), &parts).await {
            Delivery::Permanent { class: "policy", error, .. } => {
                assert!(error.contains("localhost resolves to an internal address"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        let mut passed = Vec::new();
        match mailer.open(&server, &mut passed).await {
            Err(f) => assert!(f.step == Step::Policy && matches!(f.kind, FailureKind::Policy), "{}", f.message),
            Ok(_) => panic!("connected to a loopback address"),
        }
        assert!(passed.is_empty());
        let accepted = listener.accept().map(|(_, peer)| peer);
        assert!(
            matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "nothing connected: {accepted:?}"
        );
    }

    #[test]
    fn the_outbox_directory_is_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("a/b/outbox");
        mailer(fresh.clone()).check_outbox_dir().unwrap();
        assert!(fresh.is_dir(), "created");
        assert_eq!(std::fs::read_dir(&fresh).unwrap().count(), 0, "the probe is removed");
        // A file where the directory should be: refused, naming the path.
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let err = format!("{:#}", mailer(file.clone()).check_outbox_dir().unwrap_err());
        assert!(err.contains(&file.display().to_string()) && err.contains("not writable"), "{err}");
    }

    #[tokio::test]
    async fn policy_refuses_internal_hosts_unless_listed() {
        let mailer = mailer(PathBuf::from("unused"));
        assert!(mailer.check_host("localhost", 25).await.is_ok());
        match mailer.check_host("127.0.0.2", 25).await {
            Err(Delivery::Permanent { class: "policy", error, .. }) => assert!(error.contains("127.0.0.2"), "{error}"),
            other => panic!("{other:?}"),
        }
        assert!(mailer.check_host("[::1]", 25).await.is_err());
        for embedded in
            ["::ffff:127.0.0.1", "[::127.0.0.1]", "64:ff9b::7f00:1", "2002:7f00:1::1", "224.0.0.1", "ff02::1"]
        {
            assert!(mailer.check_host(embedded, 25).await.is_err(), "{embedded}");
        }
    }

    #[test]
    fn headers_are_typed_and_message_id_derives_from_the_id() {
        let parts = MailParts {
            id: "0193-abc",
            to_addr: "ada@example.com",
            to_name: Some("Ada\r\nBcc: evil@example.com"),
            subject: "Hi\r\nBcc: evil@example.com",
            text: "hello",
            html: Some("<p>hello</p>"),
            attachments: &[],
            envelope_from: None,
        };
        let out = build(&parts, None, "herald.test").unwrap();
        let text = String::from_utf8(out.bytes).unwrap();
        assert!(text.contains("Message-ID: <0193-abc@herald.test>"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("Bcc:")), "{text}");
        assert_eq!(out.envelope.to().len(), 1);
        assert_eq!(out.envelope.from().map(ToString::to_string).as_deref(), Some(FALLBACK_FROM));
    }

    #[test]
    fn a_verp_envelope_sender_changes_mail_from_but_not_the_from_header() {
        let cipher = crate::crypto::Cipher::from_key(&[7u8; 32]).unwrap();
        let id = "01938a5e-7c2b-7d4e-9f00-123456789abc";
        let verp = crate::domain::bounces::verp_address(&cipher, id, "bounces.example.com");
        let parts = MailParts {
            id,
            to_addr: "ada@example.com",
            to_name: None,
            subject: "Hi",
            text: "hello",
            html: None,
            attachments: &[],
            envelope_from: Some(&verp),
        };
        let out = build(&parts, None, "herald.test").unwrap();
        assert_eq!(out.envelope.from().map(ToString::to_string), Some(verp.clone()));
        assert_eq!(crate::domain::bounces::verp_notification(&cipher, &verp).as_deref(), Some(id));
        let text = String::from_utf8(out.bytes).unwrap();
        assert!(text.contains(&format!("From: {FALLBACK_FROM}")), "{text}");
        assert!(!text.contains(&verp), "the VERP address is only in the envelope: {text}");
        let bad = MailParts { envelope_from: Some("not an address"), ..parts };
        assert!(build(&bad, None, "herald.test").is_err());
    }

    #[test]
    fn attachments_make_a_mixed_message_with_a_named_part() {
        let files = [MailAttachment {
            file_name: "Signed NDA (final).pdf".into(),
            content_type: "application/pdf".into(),
            bytes: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3 signed".to_vec(),
        }];
        let parts = MailParts {
            id: "0193-def",
            to_addr: "ada@example.com",
            to_name: None,
            subject: "Completed",
            text: "done",
            html: Some("<p>done</p>"),
            attachments: &files,
            envelope_from: None,
        };
        let text = String::from_utf8(build(&parts, None, "herald.test").unwrap().bytes).unwrap();
        assert!(text.contains("multipart/mixed") && text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("Content-Type: application/pdf"), "{text}");
        assert!(text.contains("Signed NDA (final).pdf"), "{text}");
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3 signed");
        assert!(text.contains(&encoded), "the file travels base64-encoded: {text}");
    }
}
