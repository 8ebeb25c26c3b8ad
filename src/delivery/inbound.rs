//! The inbound SMTP listener for bounces (`--inbound-listen`, issue 18):
//! receives the DSNs and abuse reports mailed to Herald's VERP addresses
//! and hands each message to a channel; the consumer feeds it to the one
//! parser in `domain::bounces`.
//!
//! A small state machine rather than a crate: the Rust SMTP server crates
//! (`mailin`, `samotop`, `smtpbis`) are unmaintained or pull in a framework,
//! and this listener needs only the receiving subset of RFC 5321: EHLO/HELO,
//! MAIL, RCPT, DATA, RSET, NOOP, QUIT, no AUTH, no relaying. It is hardened
//! by limits instead: command lines of at most 512 octets and text lines of
//! at most 1000 (RFC 5321 §4.5.3.1), a message of at most
//! [`MAX_REPORT_BYTES`], at most 10 recipients and 100 commands per
//! connection, and a timeout on every read. RCPT is accepted only for a
//! validly signed VERP address (anything else: 550), so the listener
//! cannot be used as a relay or to make Herald act on a guessed address.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::crypto::Cipher;
use crate::domain::bounces::{self, MAX_REPORT_BYTES};

const MAX_COMMAND_LINE: usize = 512;
const MAX_TEXT_LINE: usize = 1000;
const MAX_RECIPIENTS: usize = 10;
const MAX_COMMANDS: usize = 100;

/// A message received for one or more VERP addresses.
#[derive(Debug)]
pub struct InboundReport {
    /// The notification ids of the accepted (validly signed) recipients.
    pub notification_ids: Vec<String>,
    /// The message as received (dot-unstuffed, CRLF line ends).
    pub data: Vec<u8>,
}

#[derive(Clone)]
pub struct InboundConfig {
    /// The name in the greeting and EHLO answer.
    pub hostname: String,
    /// How long one read (a command line, a line of DATA) may take.
    pub read_timeout: Duration,
    /// Sessions at once.
    pub max_connections: usize,
}

/// Why a received message was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Try again later (`451`): a full queue, the database unreachable.
    Later(String),
    /// Never (`550`/`554`): not a report, or about no known notification.
    Never(String),
}

/// What the listener asks of the rest of Herald: whether a (validly
/// signed) recipient is wanted, and to take a received message.
pub trait Intake: Send + Sync + 'static {
    /// Called for a VERP address whose signature checked out: `id` is its
    /// notification, `domain` the address's domain. `Err` when it cannot be
    /// told now (the database unreachable): the sender tries again later.
    fn accept_rcpt<'a>(&'a self, id: &'a str, domain: &'a str) -> BoxFuture<'a, Result<bool, Refusal>>;
    /// Takes a message (before the reply to its final dot).
    fn deliver(&self, report: InboundReport) -> BoxFuture<'_, Result<(), Refusal>>;
}

/// A channel as the intake: every signed recipient, messages queued (`451`
/// when the channel is full).
impl Intake for mpsc::Sender<InboundReport> {
    fn accept_rcpt<'a>(&'a self, _id: &'a str, _domain: &'a str) -> BoxFuture<'a, Result<bool, Refusal>> {
        Box::pin(async { Ok(true) })
    }
    fn deliver(&self, report: InboundReport) -> BoxFuture<'_, Result<(), Refusal>> {
        let sent = self.try_send(report).map_err(|_| Refusal::Later("busy".into()));
        Box::pin(async move { sent })
    }
}

/// Accepts connections until `stop` turns true (or the listener fails):
/// at most `config.max_connections` at once (more are answered `421` and
/// closed). On stop, sessions answer `421` at their next command and are
/// waited for up to `config.read_timeout`.
pub async fn serve<K>(
    listener: TcpListener,
    config: InboundConfig,
    cipher: K,
    intake: Arc<dyn Intake>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    K: std::ops::Deref<Target = Cipher> + Clone + Send + Sync + 'static,
{
    let max = config.max_connections.max(1);
    let permits = Arc::new(Semaphore::new(max));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stopped(&mut stop) => break,
        };
        let (mut stream, _peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "inbound SMTP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                stream.write_all(b"421 4.3.2 Too many connections, try again later\r\n"),
            )
            .await;
            continue;
        };
        let (config, cipher, intake, stop) = (config.clone(), cipher.clone(), intake.clone(), stop.clone());
        tokio::spawn(async move {
            let (read, write) = stream.into_split();
            if let Err(e) = session(read, write, &config, &cipher, intake.as_ref(), stop).await {
                tracing::debug!(error = %e, "inbound SMTP session ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(config.read_timeout, permits.acquire_many(all)).await;
    Ok(())
}

/// Resolves once `stop` is true (or its sender is gone: never, then).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

enum Line {
    Text(Vec<u8>),
    TooLong,
    Eof,
}

/// Reads one line of at most `max` octets (without the line end); a longer
/// line is consumed to its end and reported as [`Line::TooLong`].
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
    timeout: Duration,
) -> std::io::Result<Line> {
    let mut buf = Vec::new();
    let mut too_long = false;
    loop {
        let mut chunk = Vec::new();
        let n = tokio::time::timeout(timeout, (&mut *reader).take(max as u64 + 2).read_until(b'\n', &mut chunk))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out"))??;
        if n == 0 {
            return Ok(Line::Eof);
        }
        let ended = chunk.ends_with(b"\n");
        if !too_long {
            buf.extend_from_slice(&chunk);
            if buf.len() > max + 2 {
                too_long = true;
                buf.clear();
            }
        }
        if ended {
            break;
        }
        if !too_long && buf.len() > max {
            too_long = true;
            buf.clear();
        }
    }
    if too_long {
        return Ok(Line::TooLong);
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Line::Text(buf))
}

async fn reply<W: AsyncWrite + Unpin>(write: &mut W, text: &str) -> std::io::Result<()> {
    write.write_all(text.as_bytes()).await?;
    write.write_all(b"\r\n").await?;
    write.flush().await
}

/// The address in `MAIL FROM:<a>` / `RCPT TO:<a>` (parameters ignored).
fn path_argument<'a>(line: &'a str, verb: &str) -> Option<&'a str> {
    let rest = line.get(verb.len()..)?.trim_start();
    let rest = rest.strip_prefix('<')?;
    rest.split_once('>').map(|(a, _)| a)
}

/// One SMTP session.
pub async fn session<R, W>(
    read: R,
    mut write: W,
    config: &InboundConfig,
    cipher: &Cipher,
    intake: &dyn Intake,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(read);
    reply(&mut write, &format!("220 {} Herald bounce intake ESMTP", config.hostname)).await?;
    let mut greeted = false;
    let mut mail_from = false;
    let mut ids: Vec<String> = Vec::new();
    for _ in 0..MAX_COMMANDS {
        let read = tokio::select! {
            r = read_line(&mut reader, MAX_COMMAND_LINE, config.read_timeout) => r?,
            () = stopped(&mut stop) => {
                return reply(&mut write, "421 4.3.2 Shutting down, try again later").await;
            }
        };
        let line = match read {
            Line::Eof => return Ok(()),
            Line::TooLong => {
                reply(&mut write, "500 5.5.2 Line too long").await?;
                continue;
            }
            Line::Text(t) => String::from_utf8_lossy(&t).into_owned(),
        };
        let verb = line.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                greeted = true;
                mail_from = false;
                ids.clear();
                if verb == "EHLO" {
                    let text = format!("250-{}\r\n250-SIZE {MAX_REPORT_BYTES}\r\n250 8BITMIME", config.hostname);
                    reply(&mut write, &text).await?;
                } else {
                    reply(&mut write, &format!("250 {}", config.hostname)).await?;
                }
            }
            "MAIL" if !greeted => reply(&mut write, "503 5.5.1 EHLO or HELO first").await?,
            "MAIL" => match path_argument(&line, "MAIL FROM:") {
                Some(_) if line.get(..10).is_some_and(|v| v.eq_ignore_ascii_case("MAIL FROM:")) => {
                    mail_from = true;
                    ids.clear();
                    reply(&mut write, "250 2.1.0 OK").await?;
                }
                _ => reply(&mut write, "501 5.5.4 Syntax: MAIL FROM:<address>").await?,
            },
            "RCPT" if !mail_from => reply(&mut write, "503 5.5.1 MAIL first").await?,
            "RCPT" => {
                let address = line
                    .get(..8)
                    .is_some_and(|v| v.eq_ignore_ascii_case("RCPT TO:"))
                    .then(|| path_argument(&line, "RCPT TO:"))
                    .flatten();
                match address {
                    None => reply(&mut write, "501 5.5.4 Syntax: RCPT TO:<address>").await?,
                    Some(_) if ids.len() >= MAX_RECIPIENTS => {
                        reply(&mut write, "452 4.5.3 Too many recipients").await?
                    }
                    Some(a) => {
                        let domain = a.rsplit_once('@').map_or("", |(_, d)| d);
                        let wanted = match bounces::verp_notification(cipher, a) {
                            Some(id) => intake.accept_rcpt(&id, domain).await.map(|yes| yes.then_some(id)),
                            None => Ok(None),
                        };
                        match wanted {
                            Ok(Some(id)) => {
                                ids.push(id);
                                reply(&mut write, "250 2.1.5 OK").await?;
                            }
                            Ok(None) => reply(&mut write, "550 5.1.1 No such bounce address").await?,
                            Err(Refusal::Later(why)) => reply(&mut write, &format!("451 4.3.0 {why}")).await?,
                            Err(Refusal::Never(why)) => reply(&mut write, &format!("550 5.1.1 {why}")).await?,
                        }
                    }
                }
            }
            "DATA" if ids.is_empty() => reply(&mut write, "503 5.5.1 RCPT first").await?,
            "DATA" => {
                reply(&mut write, "354 End data with <CR><LF>.<CR><LF>").await?;
                let mut data = Vec::new();
                let mut too_big = false;
                loop {
                    match read_line(&mut reader, MAX_TEXT_LINE, config.read_timeout).await? {
                        Line::Eof => return Ok(()),
                        Line::TooLong => too_big = true,
                        Line::Text(t) if t == b"." => break,
                        Line::Text(t) => {
                            let t = t.strip_prefix(b".").unwrap_or(&t);
                            if data.len() + t.len() + 2 > MAX_REPORT_BYTES {
                                too_big = true;
                            }
                            if !too_big {
                                data.extend_from_slice(t);
                                data.extend_from_slice(b"\r\n");
                            }
                        }
                    }
                }
                let notification_ids = std::mem::take(&mut ids);
                mail_from = false;
                if too_big {
                    reply(&mut write, "552 5.3.4 Message too big or line too long").await?;
                } else {
                    match intake.deliver(InboundReport { notification_ids, data }).await {
                        Ok(()) => reply(&mut write, "250 2.0.0 OK").await?,
                        Err(Refusal::Later(why)) => reply(&mut write, &format!("451 4.3.0 {why}")).await?,
                        Err(Refusal::Never(why)) => reply(&mut write, &format!("554 5.6.0 {why}")).await?,
                    }
                }
            }
            "RSET" => {
                mail_from = false;
                ids.clear();
                reply(&mut write, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(&mut write, "250 2.0.0 OK").await?,
            "QUIT" => {
                reply(&mut write, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            _ => reply(&mut write, "502 5.5.1 Command not implemented").await?,
        }
    }
    reply(&mut write, "421 4.7.0 Too many commands").await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;
    use tokio::net::TcpStream;

    const ID: &str = "01938a5e-7c2b-7d4e-9f00-123456789abc";

    struct Client {
        reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
        writer: tokio::net::tcp::OwnedWriteHalf,
    }

    impl Client {
        /// The last line of the next reply (multi-line replies read fully).
        async fn reply(&mut self) -> String {
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line).await.unwrap();
                if line.as_bytes().get(3) != Some(&b'-') {
                    return line.trim_end().to_owned();
                }
            }
        }
        async fn send(&mut self, raw: &[u8]) {
            self.writer.write_all(raw).await.unwrap();
        }
        async fn command(&mut self, line: &str) -> String {
            self.send(format!("{line}\r\n").as_bytes()).await;
            self.reply().await
        }
    }

    async fn start() -> (Client, mpsc::Receiver<InboundReport>, Arc<Cipher>) {
        let cipher = Arc::new(Cipher::from_key(&[7u8; 32]).unwrap());
        let cipher_for_server = cipher.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel(4);
        let config = InboundConfig {
            hostname: "mx.herald.test".into(),
            read_timeout: Duration::from_secs(30),
            max_connections: 4,
        };
        let (_stop_tx, stop) = watch::channel(false);
        // The sender lives as long as the server task.
        tokio::spawn(async move {
            let _keep = _stop_tx;
            serve(listener, config, cipher_for_server, Arc::new(tx), stop).await
        });
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut client = Client { reader: BufReader::new(read), writer };
        assert!(client.reply().await.starts_with("220 "));
        (client, rx, cipher)
    }

    #[tokio::test]
    async fn a_real_postfix_bounce_to_a_signed_address_is_received() {
        let (mut c, mut rx, cipher) = start().await;
        let verp = bounces::verp_address(&cipher, ID, "localhost");
        assert!(c.command("EHLO mx.example").await.starts_with("250 "));
        assert!(c.command("MAIL FROM:<>").await.starts_with("250 "));
        assert!(c.command(&format!("RCPT TO:<{verp}>")).await.starts_with("250 "));
        assert!(c.command("DATA").await.starts_with("354 "));
        let raw =
            std::fs::read(format!("{}/tests/fixtures/bounces/postfix-unknown-user.eml", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        let text = String::from_utf8(raw).unwrap();
        let mut wire = String::new();
        for line in text.lines() {
            if line.starts_with('.') {
                wire.push('.');
            }
            wire.push_str(line);
            wire.push_str("\r\n");
        }
        wire.push_str(".\r\n");
        c.send(wire.as_bytes()).await;
        assert!(c.reply().await.starts_with("250 "));
        assert!(c.command("QUIT").await.starts_with("221 "));
        let report = rx.recv().await.unwrap();
        assert_eq!(report.notification_ids, vec![ID.to_owned()]);
        // The same parser as the HTTP intake finds the hard bounce.
        let feedback = bounces::parse_message(&cipher, "herald.test", &report.data).unwrap();
        assert_eq!(feedback[0].kind, bounces::Kind::HardBounce);
        assert_eq!(feedback[0].recipient.as_deref(), Some("nosuchuser@localhost"));
    }

    #[tokio::test]
    async fn connections_over_the_limit_get_421_and_a_stop_ends_open_sessions_with_421() {
        let cipher = Arc::new(Cipher::from_key(&[7u8; 32]).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, _rx) = mpsc::channel(4);
        let config = InboundConfig { hostname: "mx".into(), read_timeout: Duration::from_secs(30), max_connections: 1 };
        let (stop_tx, stop) = watch::channel(false);
        let server = tokio::spawn(serve(listener, config, cipher, Arc::new(tx), stop));
        let connect = || async {
            let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
            Client { reader: BufReader::new(read), writer }
        };
        let mut first = connect().await;
        assert!(first.reply().await.starts_with("220 "));
        let mut second = connect().await;
        assert!(second.reply().await.starts_with("421 "));
        assert!(first.command("NOOP").await.starts_with("250 "));
        stop_tx.send(true).unwrap();
        assert!(first.reply().await.starts_with("421 "));
        tokio::time::timeout(Duration::from_secs(10), server).await.unwrap().unwrap().unwrap();
        assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
    }

    #[tokio::test]
    async fn forged_and_foreign_recipients_are_refused_with_550() {
        let (mut c, mut rx, cipher) = start().await;
        assert!(c.command("HELO mx.example").await.starts_with("250 "));
        assert!(c.command("MAIL FROM:<x@example.org>").await.starts_with("250 "));
        let forged = bounces::verp_address(&Cipher::from_key(&[8u8; 32]).unwrap(), ID, "localhost");
        assert!(c.command(&format!("RCPT TO:<{forged}>")).await.starts_with("550 "));
        assert!(c.command("RCPT TO:<postmaster@localhost>").await.starts_with("550 "));
        assert!(c.command("RCPT TO:<bounces+junk.0000@localhost>").await.starts_with("550 "));
        assert!(c.command("DATA").await.starts_with("503 "));
        // A valid one still works on the same connection.
        let verp = bounces::verp_address(&cipher, ID, "localhost");
        assert!(c.command(&format!("RCPT TO:<{verp}>")).await.starts_with("250 "));
        assert!(c.command("RSET").await.starts_with("250 "));
        assert!(c.command("DATA").await.starts_with("503 "));
        assert!(c.command("QUIT").await.starts_with("221 "));
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn sequence_syntax_and_size_limits() {
        let (mut c, mut rx, cipher) = start().await;
        assert!(c.command("MAIL FROM:<>").await.starts_with("503 "));
        assert!(c.command("EHLO x").await.starts_with("250 "));
        assert!(c.command("RCPT TO:<a@b>").await.starts_with("503 "));
        assert!(c.command("MAIL FROM:nobrackets").await.starts_with("501 "));
        assert!(c.command("MAIL FRé:<>").await.starts_with("501 "));
        assert!(c.command("MAIL FROMé<>").await.starts_with("501 "));
        assert!(c.command("VRFY root").await.starts_with("502 "));
        assert!(c.command("NOOP").await.starts_with("250 "));
        assert!(c.command(&format!("NOOP {}", "x".repeat(5000))).await.starts_with("500 "));
        assert!(c.command("MAIL FROM:<>").await.starts_with("250 "));
        assert!(c.command("RCPT TO:bad").await.starts_with("501 "));
        assert!(c.command("RCPT TOé<x@y>").await.starts_with("501 "));
        assert!(c.command("RCPT TO:<bouncesé+0.0@x>").await.starts_with("550 "));
        let verp = bounces::verp_address(&cipher, ID, "localhost");
        assert!(c.command(&format!("RCPT TO:<{verp}>")).await.starts_with("250 "));
        assert!(c.command("DATA").await.starts_with("354 "));
        // More than the size limit in ordinary lines: refused after the end.
        let line = format!("{}\r\n", "a".repeat(998));
        for _ in 0..(MAX_REPORT_BYTES / 1000 + 2) {
            c.send(line.as_bytes()).await;
        }
        c.send(b".\r\n").await;
        assert!(c.reply().await.starts_with("552 "));
        // A line longer than 1000 octets is refused too.
        assert!(c.command("MAIL FROM:<>").await.starts_with("250 "));
        assert!(c.command(&format!("RCPT TO:<{verp}>")).await.starts_with("250 "));
        assert!(c.command("DATA").await.starts_with("354 "));
        c.send(format!("{}\r\n.\r\n", "b".repeat(3000)).as_bytes()).await;
        assert!(c.reply().await.starts_with("552 "));
        assert!(c.command("QUIT").await.starts_with("221 "));
        assert!(rx.try_recv().is_err());
    }
}
