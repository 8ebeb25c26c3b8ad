//! Turning a notification into a mail and handing it to the effective
//! server: SMTP through lettre (plain, STARTTLS-required or implicit TLS,
//! over rustls), or, with no server configured, an `.eml` file in the outbox
//! directory. Also the outbound host policy and the step-by-step test send.

use std::collections::HashMap;
use std::net::IpAddr;
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
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;

use crate::domain::smtp::{Security, SmtpServer};

/// How long one SMTP command may take before the send counts as failed.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

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
}

/// A file sent with a mail (checked when its event was accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAttachment {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
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
    Ok(Outgoing { envelope: message.envelope().clone(), bytes: message.formatted() })
}

/// True for addresses an SMTP host may not resolve to unless allow-listed.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()
                // 100.64.0.0/10, carrier-grade NAT: internal too.
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback() || v6.is_unspecified()
                    || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
                    || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
            }
        },
    }
}

/// Why a reply or error is what it is, in one line for the log.
fn smtp_reply(e: &smtp::Error) -> Option<String> {
    let code = e.status()?;
    let text = std::error::Error::source(e).map(ToString::to_string).unwrap_or_default();
    Some(format!("{code} {text}").trim().to_owned())
}

fn response_text(r: &smtp::response::Response) -> String {
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
    server.username.as_ref().map(|user| {
        Credentials::new(user.clone(), server.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default())
    })
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
    /// loopback, private or link-local address is refused unless listed.
    pub async fn check_host(&self, host: &str, port: u16) -> Result<(), Delivery> {
        let bare = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        if self.config.allow_hosts.contains(&bare) {
            return Ok(());
        }
        let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match tokio::net::lookup_host((bare.as_str(), port)).await {
                Ok(found) => found.map(|a| a.ip()).collect(),
                Err(e) => {
                    return Err(Delivery::Transient {
                        class: "network",
                        error: format!("could not resolve SMTP host {bare}: {e}"),
                        response: None,
                    });
                }
            },
        };
        if let Some(ip) = addrs.iter().find(|ip| is_internal(**ip)) {
            tracing::warn!(host = %bare, %ip, "SMTP host refused by the outbound host policy");
            return Err(Delivery::Permanent {
                class: "policy",
                error: format!(
                    "refused by the outbound host policy: {bare} resolves to the internal address {ip} \
                     (allow it with HERALD_SMTP_ALLOW_HOSTS)"
                ),
                response: None,
            });
        }
        Ok(())
    }

    /// The connection pool of `server`: made (after the host policy check)
    /// when first needed or when its settings changed.
    async fn pool(&self, server: &SmtpServer) -> Result<Arc<Pool>, Delivery> {
        {
            let pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(pool) = pools.get(&server.config_id)
                && pool.version == server.version
            {
                return Ok(pool.clone());
            }
        }
        self.check_host(&server.host, server.port).await?;
        let pool = Arc::new(Pool { version: server.version, idle: Mutex::new(Vec::new()) });
        let mut pools = self.pools.lock().unwrap_or_else(PoisonError::into_inner);
        // The replaced pool's connections close when their last user drops it.
        pools.insert(server.config_id.clone(), pool.clone());
        Ok(pool)
    }

    /// Opens a connection to `server`: TCP (with `TCP_NODELAY`: lettre writes
    /// the end of DATA separately, which Nagle's algorithm would hold back
    /// for a delayed ACK) or implicit TLS, then STARTTLS if required (never
    /// falling back to clear text), then AUTH. A failure names its step.
    async fn open(&self, server: &SmtpServer, passed: &mut Vec<Step>) -> Result<AsyncSmtpConnection, Failure> {
        let hello = self.hello();
        let params = match server.security {
            Security::Plain => None,
            _ => Some(tls_parameters(server).map_err(|e| Failure::config(format!("TLS settings unusable: {e}")))?),
        };
        let mut conn = if server.security == Security::Tls {
            let connecting = AsyncSmtpConnection::connect_tokio1(
                (server.host.as_str(), server.port),
                Some(SMTP_TIMEOUT),
                &hello,
                params.clone(),
                None,
            );
            match tokio::time::timeout(SMTP_TIMEOUT, connecting).await {
                Err(_) => return Err(Failure::plain(Step::Connect, "timed out connecting")),
                Ok(Err(e)) => return Err(Failure::smtp(if e.is_tls() { Step::Tls } else { Step::Connect }, e)),
                Ok(Ok(c)) => c,
            }
        } else {
            let tcp = match tokio::time::timeout(SMTP_TIMEOUT, TcpStream::connect((server.host.as_str(), server.port)))
                .await
            {
                Err(_) => return Err(Failure::plain(Step::Connect, "timed out connecting")),
                Ok(Err(e)) => return Err(Failure::plain(Step::Connect, format!("could not connect: {e}"))),
                Ok(Ok(tcp)) => tcp,
            };
            let _ = tcp.set_nodelay(true);
            let greeting =
                tokio::time::timeout(SMTP_TIMEOUT, AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello));
            match greeting.await {
                Err(_) => return Err(Failure::plain(Step::Connect, "timed out waiting for the greeting")),
                Ok(Err(e)) => return Err(Failure::smtp(Step::Connect, e)),
                Ok(Ok(c)) => c,
            }
        };
        passed.push(Step::Connect);
        if server.security == Security::StartTls {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(Failure::plain(
                    Step::Tls,
                    "the server does not offer STARTTLS, which these settings require",
                ));
            }
            let Some(params) = params else { unreachable!("STARTTLS settings have TLS parameters") };
            if let Err(e) = conn.starttls(params, &hello).await {
                return Err(Failure::smtp(Step::Tls, e));
            }
        }
        if server.security != Security::Plain {
            passed.push(Step::Tls);
        }
        if let Some(creds) = credentials(server) {
            if let Err(e) = conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds).await {
                conn.abort().await;
                return Err(Failure::smtp(Step::Auth, e));
            }
            passed.push(Step::Auth);
        }
        Ok(conn)
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
        let mut conn = match pool.take().await {
            Some(conn) => conn,
            None => match self.open(server, &mut Vec::new()).await {
                Ok(conn) => conn,
                Err(failure) => return failure.into_delivery(),
            },
        };
        let result = tokio::time::timeout(SMTP_TIMEOUT, conn.send(&outgoing.envelope, &outgoing.bytes)).await;
        metrics::histogram!("herald_smtp_send_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(Ok(response)) => {
                pool.put(conn, self.config.pool_size as usize);
                Delivery::Accepted { response: response_text(&response) }
            }
            Ok(Err(e)) => {
                conn.abort().await;
                classify(&e)
            }
            Err(_) => {
                conn.abort().await;
                Delivery::Transient {
                    class: "timeout",
                    error: "the SMTP server did not answer in time".into(),
                    response: None,
                }
            }
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
        match written {
            Ok(()) => Delivery::Accepted { response: format!("written to {}", target.display()) },
            Err(e) => Delivery::Transient {
                class: "file",
                error: format!("could not write {}: {e}", target.display()),
                response: None,
            },
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
}

/// The result of a test send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    /// `None` when the mail was accepted.
    pub failed_step: Option<Step>,
    pub message: String,
    /// The server's last reply, when there was one.
    pub reply: Option<String>,
    /// The steps that succeeded, in order.
    pub passed: Vec<Step>,
}

impl Mailer {
    /// Sends one mail now, command by command, so a failure names its step.
    /// Uses a connection of its own, never a pooled one.
    pub async fn test_send(&self, server: &SmtpServer, parts: &MailParts<'_>) -> TestReport {
        let mut passed = Vec::new();
        let fail = |step: Step, passed: Vec<Step>, message: String, reply: Option<String>| TestReport {
            failed_step: Some(step),
            message,
            reply,
            passed,
        };
        if let Err(refused) = self.check_host(&server.host, server.port).await {
            return fail(Step::Policy, passed, refused.error_text(), None);
        }
        passed.push(Step::Policy);
        let outgoing = match build(parts, Some(server), &self.config.domain) {
            Ok(o) => o,
            Err(e) => return fail(Step::Data, passed, e, None),
        };
        let mut conn = match self.open(server, &mut passed).await {
            Ok(conn) => conn,
            Err(f) => return fail(f.step, passed, f.message, f.reply),
        };
        let mail = Mail::new(outgoing.envelope.from().cloned(), vec![]);
        if let Err(e) = conn.command(mail).await {
            conn.abort().await;
            return fail(Step::Sender, passed, e.to_string(), smtp_reply(&e));
        }
        passed.push(Step::Sender);
        for to in outgoing.envelope.to() {
            if let Err(e) = conn.command(Rcpt::new(to.clone(), vec![])).await {
                conn.abort().await;
                return fail(Step::Recipient, passed, e.to_string(), smtp_reply(&e));
            }
        }
        passed.push(Step::Recipient);
        let sent = match conn.command(Data).await {
            Ok(_) => conn.message(&outgoing.bytes).await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(response) => {
                let _ = conn.quit().await;
                passed.push(Step::Data);
                TestReport {
                    failed_step: None,
                    message: "the server accepted the message".into(),
                    reply: Some(response_text(&response)),
                    passed,
                }
            }
            Err(e) => {
                conn.abort().await;
                fail(Step::Data, passed, e.to_string(), smtp_reply(&e))
            }
        }
    }
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
    async fn take(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let (since, mut conn) = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop()?;
            let idle = since.elapsed();
            if idle > IDLE_LIMIT || conn.has_broken() {
                conn.abort().await;
                continue;
            }
            if idle > CHECK_AFTER && !conn.test_connected().await {
                conn.abort().await;
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

/// A failed connection step.
struct Failure {
    step: Step,
    message: String,
    reply: Option<String>,
    error: Option<smtp::Error>,
}

impl Failure {
    fn smtp(step: Step, e: smtp::Error) -> Failure {
        Failure { step, message: e.to_string(), reply: smtp_reply(&e), error: Some(e) }
    }
    fn plain(step: Step, message: impl Into<String>) -> Failure {
        Failure { step, message: message.into(), reply: None, error: None }
    }
    fn config(message: String) -> Failure {
        Failure { step: Step::Tls, message, reply: None, error: None }
    }

    fn into_delivery(self) -> Delivery {
        match self.error {
            Some(e) => classify(&e),
            None if self.step == Step::Tls && self.message.starts_with("TLS settings") => {
                Delivery::Permanent { class: "config", error: self.message, response: None }
            }
            None => {
                let class = if self.step == Step::Tls { "tls" } else { "network" };
                Delivery::Transient { class, error: self.message, response: None }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "100.128.0.1"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn policy_refuses_internal_hosts_unless_listed() {
        let mailer = Mailer::new(MailerConfig {
            allow_hosts: vec!["localhost".into()],
            outbox_dir: PathBuf::from("unused"),
            domain: "herald.test".into(),
            pool_size: 1,
        });
        assert!(mailer.check_host("localhost", 25).await.is_ok());
        match mailer.check_host("127.0.0.2", 25).await {
            Err(Delivery::Permanent { class: "policy", error, .. }) => assert!(error.contains("127.0.0.2"), "{error}"),
            other => panic!("{other:?}"),
        }
        assert!(mailer.check_host("[::1]", 25).await.is_err());
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
        };
        let out = build(&parts, None, "herald.test").unwrap();
        let text = String::from_utf8(out.bytes).unwrap();
        assert!(text.contains("Message-ID: <0193-abc@herald.test>"), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("Bcc:")), "{text}");
        assert_eq!(out.envelope.to().len(), 1);
        assert_eq!(out.envelope.from().map(ToString::to_string).as_deref(), Some(FALLBACK_FROM));
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
