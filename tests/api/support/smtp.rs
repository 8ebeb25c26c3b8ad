//! A small SMTP server for tests, over real TCP: plain, STARTTLS or
//! implicit TLS (a certificate generated with rcgen for `localhost`), AUTH
//! PLAIN/LOGIN/XOAUTH2, and scripted failures (a 4xx/5xx reply to DATA, or a
//! connection dropped in the middle of DATA). It records every message and
//! every byte a client sent before TLS.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// No TLS at all (STARTTLS not offered).
    Plain,
    /// STARTTLS offered.
    StartTls,
    /// TLS from the first byte (SMTPS).
    ImplicitTls,
}

/// What the server does at the end of the next message's DATA.
#[derive(Debug, Clone)]
pub enum Action {
    /// Reply with this line (e.g. `451 4.3.0 try again later`).
    Reply(String),
    /// Close the connection after the first line of DATA.
    Drop,
}

#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
    pub tls: bool,
    pub auth: Option<(String, String)>,
    /// When the message was accepted (rate-limit tests count arrivals).
    pub at: std::time::Instant,
}

impl Received {
    /// The value of header `name` (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let prefix = format!("{}:", name.to_ascii_lowercase());
        let mut lines = head.split("\r\n").peekable();
        while let Some(line) = lines.next() {
            if line.to_ascii_lowercase().starts_with(&prefix) {
                let mut value = line[prefix.len()..].trim().to_owned();
                while let Some(next) = lines.peek().filter(|l| l.starts_with(' ') || l.starts_with('\t')) {
                    value.push(' ');
                    value.push_str(next.trim());
                    lines.next();
                }
                return Some(value);
            }
        }
        None
    }
}

#[derive(Default)]
struct State {
    messages: Vec<Received>,
    script: VecDeque<Action>,
    plaintext: Vec<u8>,
    credentials: Option<(String, String)>,
    delay: Duration,
    connections: usize,
    /// Every credential presented in AUTH, accepted or not.
    auth_attempts: Vec<(String, String)>,
    /// Every AUTH XOAUTH2: user, token, and whether the initial response
    /// ended in `\x01\x01` as the mechanism requires.
    xoauth2: Vec<(String, String, bool)>,
    /// Refuse XOAUTH2 with a plain 535, as Microsoft 365 does, instead of
    /// Gmail's error challenge.
    xoauth2_plain_refusal: bool,
    /// Messages between their final `.` and the server's reply, now and
    /// at most (with a delay: the sends in flight at once).
    in_flight: usize,
    max_in_flight: usize,
}

pub struct TestSmtp {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_acceptor() -> TlsAcceptor {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// The next connection. An error (out of file descriptors, an error
/// pending on the new connection) ends only that connection, not the
/// server: a server that stopped at its first `accept` error refused all
/// later mail, and the mail of a test that killed a sending process
/// could then never arrive after the restart.
async fn accept(listener: &TcpListener) -> Option<TcpStream> {
    match listener.accept().await {
        Ok((tcp, _)) => Some(tcp),
        Err(_) => {
            tokio::time::sleep(Duration::from_millis(10)).await;
            None
        }
    }
}

impl TestSmtp {
    pub async fn start(mode: Mode) -> TestSmtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let acceptor = tls_acceptor();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Some(tcp) = accept(&listener).await else { continue };
                shared.lock().unwrap().connections += 1;
                tokio::spawn(connection(tcp, mode, acceptor.clone(), shared.clone()));
            }
        });
        TestSmtp { addr, state, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Require AUTH with these credentials (AUTH is always offered).
    pub fn require_auth(&self, user: &str, password: &str) {
        self.state.lock().unwrap().credentials = Some((user.to_owned(), password.to_owned()));
    }

    /// Queue actions for the next messages (then accept as usual).
    pub fn script(&self, actions: impl IntoIterator<Item = Action>) {
        self.state.lock().unwrap().script.extend(actions);
    }

    /// Drops the actions not used yet: the next messages are accepted.
    pub fn clear_script(&self) {
        self.state.lock().unwrap().script.clear();
    }

    /// Wait this long before answering each DATA.
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().unwrap().delay = delay;
    }

    /// The most messages that were being answered at once (see
    /// [`TestSmtp::set_delay`]): how many sends a client had in flight.
    pub fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    pub fn messages(&self) -> Vec<Received> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn connections(&self) -> usize {
        self.state.lock().unwrap().connections
    }

    /// Every (username, password) presented in AUTH, over TLS or not.
    pub fn auth_attempts(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().auth_attempts.clone()
    }

    /// Refuse XOAUTH2 with a plain 535 (Microsoft's way) rather than a 334
    /// error challenge (Gmail's).
    pub fn refuse_xoauth2_with_535(&self) {
        self.state.lock().unwrap().xoauth2_plain_refusal = true;
    }

    /// Every AUTH XOAUTH2 exchange: (user, token, well formed).
    pub fn xoauth2_attempts(&self) -> Vec<(String, String, bool)> {
        self.state.lock().unwrap().xoauth2.clone()
    }

    /// Every byte clients sent outside TLS.
    pub fn plaintext(&self) -> String {
        String::from_utf8_lossy(&self.state.lock().unwrap().plaintext).into_owned()
    }

    /// Waits (up to 20 s) until at least `n` messages arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..400 {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = self.messages();
        panic!("expected {n} messages at the test SMTP server, got {}", got.len());
    }
}

enum End<S> {
    Closed,
    Upgrade(S),
}

async fn connection(tcp: TcpStream, mode: Mode, acceptor: TlsAcceptor, state: Arc<Mutex<State>>) {
    if mode == Mode::ImplicitTls {
        if let Ok(tls) = acceptor.accept(tcp).await {
            let _ = session(tls, true, true, mode, &state).await;
        }
        return;
    }
    if let End::Upgrade(tcp) = session(tcp, false, true, mode, &state).await
        && let Ok(tls) = acceptor.accept(tcp).await
    {
        let _ = session(tls, true, false, mode, &state).await;
    }
}

/// 235 when the presented credentials are the required ones (or none are).
fn auth_reply(state: &Arc<Mutex<State>>, presented: &Option<(String, String)>) -> &'static str {
    let mut state = state.lock().unwrap();
    state.auth_attempts.extend(presented.clone());
    let ok = state.credentials.as_ref().is_none_or(|c| Some(c) == presented.as_ref());
    if ok { "235 2.7.0 authenticated\r\n" } else { "535 5.7.8 authentication failed\r\n" }
}

fn decode(b64: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    tls: bool,
    greet: bool,
    mode: Mode,
    state: &Arc<Mutex<State>>,
) -> End<S> {
    let mut io = BufReader::new(stream);
    macro_rules! reply {
        ($($t:tt)*) => {
            if io.get_mut().write_all(format!($($t)*).as_bytes()).await.is_err() {
                return End::Closed;
            }
        };
    }
    let mut line = String::new();
    macro_rules! read_line {
        () => {{
            line.clear();
            match io.read_line(&mut line).await {
                Ok(0) | Err(_) => return End::Closed,
                Ok(_) => {
                    if !tls {
                        state.lock().unwrap().plaintext.extend_from_slice(line.as_bytes());
                    }
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            }
        }};
    }
    if greet {
        reply!("220 localhost ESMTP herald-test\r\n");
    }
    let mut from = String::new();
    let mut to = Vec::new();
    let mut auth: Option<(String, String)> = None;
    loop {
        let cmd = read_line!();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let starttls = if mode == Mode::StartTls && !tls { "250-STARTTLS\r\n" } else { "" };
            reply!("250-localhost\r\n{starttls}250-AUTH PLAIN LOGIN XOAUTH2\r\n250 8BITMIME\r\n");
        } else if upper == "STARTTLS" && mode == Mode::StartTls && !tls {
            reply!("220 2.0.0 ready to start TLS\r\n");
            return End::Upgrade(io.into_inner());
        } else if upper.starts_with("AUTH PLAIN") {
            let arg = cmd.get(10..).unwrap_or_default().trim().to_owned();
            let arg = if arg.is_empty() {
                reply!("334 \r\n");
                read_line!()
            } else {
                arg
            };
            let decoded = decode(&arg);
            let mut parts = decoded.split('\0').skip(1);
            let user = parts.next().unwrap_or_default().to_owned();
            let pass = parts.next().unwrap_or_default().to_owned();
            auth = Some((user, pass));
            reply!("{}", auth_reply(state, &auth));
        } else if upper.starts_with("AUTH XOAUTH2") {
            // `user=<user>\x01auth=Bearer <token>\x01\x01`; a refusal as
            // Gmail does it: a 334 error challenge, the client's empty
            // line, then 535.
            let decoded = decode(cmd.get(12..).unwrap_or_default());
            let mut user = String::new();
            let mut token = String::new();
            for field in decoded.split('\x01') {
                if let Some(u) = field.strip_prefix("user=") {
                    user = u.to_owned();
                } else if let Some(t) = field.strip_prefix("auth=Bearer ") {
                    token = t.to_owned();
                }
            }
            let well_formed = decoded.ends_with("\x01\x01");
            state.lock().unwrap().xoauth2.push((user.clone(), token.clone(), well_formed));
            auth = Some((user, token));
            let answer = auth_reply(state, &auth);
            if answer.starts_with("235") && well_formed {
                reply!("{answer}");
            } else if state.lock().unwrap().xoauth2_plain_refusal {
                auth = None;
                reply!("535 5.7.3 Authentication unsuccessful\r\n");
            } else {
                auth = None;
                reply!("334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n");
                let _ = read_line!();
                reply!("535 5.7.8 Username and Password not accepted\r\n");
            }
        } else if upper.starts_with("AUTH LOGIN") {
            reply!("334 VXNlcm5hbWU6\r\n");
            let user = decode(&read_line!());
            reply!("334 UGFzc3dvcmQ6\r\n");
            let pass = decode(&read_line!());
            auth = Some((user, pass));
            reply!("{}", auth_reply(state, &auth));
        } else if upper.starts_with("MAIL FROM:") {
            let needs_auth = state.lock().unwrap().credentials.is_some();
            if needs_auth && auth.is_none() {
                reply!("530 5.7.0 authentication required\r\n");
                continue;
            }
            from = cmd[10..].split_whitespace().next().unwrap_or_default().trim_matches(['<', '>']).to_owned();
            to.clear();
            reply!("250 2.1.0 ok\r\n");
        } else if upper.starts_with("RCPT TO:") {
            to.push(cmd[8..].split_whitespace().next().unwrap_or_default().trim_matches(['<', '>']).to_owned());
            reply!("250 2.1.5 ok\r\n");
        } else if upper == "DATA" {
            reply!("354 end data with <CR><LF>.<CR><LF>\r\n");
            let action = state.lock().unwrap().script.pop_front();
            let mut data = String::new();
            let mut first = true;
            loop {
                let l = read_line!();
                if first && matches!(action, Some(Action::Drop)) {
                    return End::Closed;
                }
                first = false;
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                data.push_str("\r\n");
            }
            let delay = {
                let mut s = state.lock().unwrap();
                s.in_flight += 1;
                s.max_in_flight = s.max_in_flight.max(s.in_flight);
                s.delay
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            state.lock().unwrap().in_flight -= 1;
            match action {
                Some(Action::Reply(text)) => reply!("{text}\r\n"),
                _ => {
                    let n = {
                        let mut s = state.lock().unwrap();
                        s.messages.push(Received {
                            from: from.clone(),
                            to: to.clone(),
                            data,
                            tls,
                            auth: auth.clone(),
                            at: std::time::Instant::now(),
                        });
                        s.messages.len()
                    };
                    reply!("250 2.0.0 ok: queued as {n}\r\n");
                }
            }
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            reply!("250 2.0.0 ok\r\n");
        } else if upper == "NOOP" {
            reply!("250 2.0.0 ok\r\n");
        } else if upper == "QUIT" {
            reply!("221 2.0.0 bye\r\n");
            return End::Closed;
        } else {
            reply!("502 5.5.2 command not recognised\r\n");
        }
    }
}

/// The command a [`stalling`] server stops answering at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallAt {
    /// Accepts the connection and never sends the greeting.
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
    /// Takes the whole message and never answers its end.
    EndOfData,
}

/// An SMTP server over plain TCP that answers like a normal one (offering
/// STARTTLS and AUTH) until `at`, then keeps the connection open and says
/// nothing more.
pub async fn stalling(at: StallAt) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Some(tcp) = accept(&listener).await else { continue };
            tokio::spawn(stall_session(tcp, at));
        }
    });
    (addr, task)
}

async fn stall_session(tcp: TcpStream, at: StallAt) {
    let mut io = BufReader::new(tcp);
    let hold = || tokio::time::sleep(Duration::from_secs(3600));
    if at == StallAt::Greeting {
        return hold().await;
    }
    if io.get_mut().write_all(b"220 localhost ESMTP stalling\r\n").await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if matches!(io.read_line(&mut line).await, Ok(0) | Err(_)) {
            return;
        }
        let upper = line.trim_end().to_ascii_uppercase();
        let (stall, reply): (bool, &[u8]) = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            (at == StallAt::Ehlo, b"250-localhost\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n")
        } else if upper == "STARTTLS" {
            (at == StallAt::StartTls, b"454 4.7.0 not now\r\n")
        } else if upper.starts_with("AUTH") {
            (at == StallAt::Auth, b"235 2.7.0 ok\r\n")
        } else if upper.starts_with("MAIL FROM:") {
            (at == StallAt::Mail, b"250 2.1.0 ok\r\n")
        } else if upper.starts_with("RCPT TO:") {
            (at == StallAt::Rcpt, b"250 2.1.5 ok\r\n")
        } else if upper == "DATA" {
            if at == StallAt::Data {
                return hold().await;
            }
            if io.get_mut().write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            loop {
                line.clear();
                if matches!(io.read_line(&mut line).await, Ok(0) | Err(_)) {
                    return;
                }
                if line.trim_end() == "." {
                    break;
                }
            }
            (at == StallAt::EndOfData, b"250 2.0.0 ok\r\n")
        } else {
            (false, b"250 2.0.0 ok\r\n")
        };
        if stall {
            return hold().await;
        }
        if io.get_mut().write_all(reply).await.is_err() {
            return;
        }
    }
}
