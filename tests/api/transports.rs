//! The transports beyond password SMTP, each against a real server we did
//! not write:
//! - XOAUTH2: tokens from `oauth2-mock-server` (npm, wrapped by
//!   `tests/clients/oauth2-server.mjs` to refuse a wrong client secret),
//!   the `AUTH XOAUTH2` exchange checked by the test SMTP server;
//! - SES: `moto` in server mode (`.venv-ci`, `.ci/requirements-transports.txt`)
//!   with IAM authentication on, so it checks the SigV4 signature with
//!   botocore's signer;
//! - the HTTP provider: a receiver verifying with the `standardwebhooks`
//!   npm package (`tests/clients/webhook-receiver.mjs`).
//!
//! These test the delivery modules directly (no database involved). Without
//! node, `tests/clients/node_modules` or `.venv-ci/bin/moto_server` they say
//! loudly that they were skipped, and fail under `CI`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use herald::clock::Clock;
use herald::delivery::http::{OutboundHttp, OutboundHttpConfig};
use herald::delivery::http_provider::{self, HttpProvider};
use herald::delivery::mailer::{self, Delivery, MailParts, Mailer, MailerConfig, Step};
use herald::delivery::oauth2::{Grant, OAuth2Client, TokenCache};
use herald::delivery::ses::{self, SesSettings};
use herald::domain::audit::Scope;
use herald::domain::delivery::documents::MailAttachment;
use herald::domain::signing;
use herald::domain::smtp::{Security, SmtpServer};
use herald::secret::Secret;
use mail_parser::MimeHeaders as _;
use serde_json::{Value, json};

use crate::support::smtp::{Mode, TestSmtp};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn skip(what: &str, how: &str) {
    assert!(std::env::var_os("CI").is_none(), "CI must install {what} ({how})");
    let _ = writeln!(std::io::stderr(), "\n*** SKIPPED: a transport test, because {what} is missing ({how}) ***\n");
}

/// A server process the test started: its JSON output lines, and killed
/// (by its own pid) when dropped.
pub(crate) struct Tool {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    port: u16,
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tool {
    /// Starts `command` and waits (up to 30 s) for its port: the
    /// `{"event":"listening","port":N}` line, or `port` when given.
    async fn start(mut command: Command, port: Option<u16>) -> Tool {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(value);
                }
            }
        });
        let mut tool = Tool { child, lines, port: port.unwrap_or(0) };
        for _ in 0..600 {
            if port.is_none()
                && let Some(p) = tool.events("listening").first().and_then(|l| l["port"].as_u64())
            {
                tool.port = u16::try_from(p).unwrap();
                return tool;
            }
            if let Some(p) = port
                && std::net::TcpStream::connect(("127.0.0.1", p)).is_ok()
            {
                return tool;
            }
            assert!(tool.child.try_wait().unwrap().is_none(), "the server process exited early");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server process did not start listening");
    }

    pub(crate) fn events(&self, event: &str) -> Vec<Value> {
        self.lines.lock().unwrap().iter().filter(|l| l["event"] == event).cloned().collect()
    }

    /// The `event` lines once there are `n` (the process prints a line
    /// before it answers, but the line may reach us after the answer).
    pub(crate) async fn wait_events(&self, event: &str, n: usize) -> Vec<Value> {
        for _ in 0..400 {
            let events = self.events(event);
            if events.len() >= n {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("expected {n} {event} lines, got {:?}", self.events(event));
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// `node <script>` in `tests/clients`, or `None` (skipped) without node or
/// the installed packages.
pub(crate) async fn node(script: &str, env: &[(&str, &str)]) -> Option<Tool> {
    let dir = root().join("tests/clients");
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let installed =
        ["oauth2-mock-server", "jose", "standardwebhooks"].iter().all(|p| dir.join("node_modules").join(p).is_dir());
    if !node_ok || !installed {
        skip("node and tests/clients/node_modules", "cd tests/clients && npm ci");
        return None;
    }
    let mut command = Command::new("node");
    command.arg(script).current_dir(dir).envs(env.iter().copied());
    Some(Tool::start(command, None).await)
}

/// The outbound HTTP client, with loopback allowed (the servers run there).
fn http() -> OutboundHttp {
    OutboundHttp::new(&OutboundHttpConfig { allow_hosts: vec!["127.0.0.1".into()], ..OutboundHttpConfig::default() })
        .unwrap()
}

fn strict_http() -> OutboundHttp {
    OutboundHttp::new(&OutboundHttpConfig::default()).unwrap()
}

fn test_mailer(dir: &Path) -> Mailer {
    Mailer::new(MailerConfig {
        allow_hosts: vec!["127.0.0.1".into()],
        outbox_dir: dir.to_path_buf(),
        domain: "herald.test".into(),
        pool_size: 1,
        smtp_timeout: Duration::from_secs(10),
    })
}

fn smtp_server(config_id: &str, port: u16, username: &str, token: Option<Secret>) -> SmtpServer {
    SmtpServer {
        scope: Scope::Instance,
        config_id: config_id.into(),
        version: 1,
        host: "127.0.0.1".into(),
        port,
        security: Security::Plain,
        accept_invalid_certs: false,
        username: Some(username.into()),
        password: None,
        oauth_token: token,
        from_email: Some("noreply@herald.test".into()),
        from_name: Some("Herald".into()),
        reply_to: None,
    }
}

fn parts<'a>(id: &'a str, attachments: &'a [MailAttachment]) -> MailParts<'a> {
    MailParts {
        id,
        to_addr: "ada@example.com",
        to_name: Some("Ada"),
        subject: "Your report",
        text: "Hello Ada, the report is attached.",
        html: None,
        attachments,
        envelope_from: None,
    }
}

pub(crate) fn assert_absent(canary: &str, texts: &[&str]) {
    for text in texts {
        assert!(!text.contains(canary), "a secret leaked: {text}");
    }
    assert!(!crate::support::logs().contains(canary), "a secret leaked into the logs");
}

// ---- XOAUTH2 ------------------------------------------------------------

const CLIENT_ID: &str = "herald-mailer";
const SCOPE: &str = "https://outlook.office365.com/.default";

fn oauth_client(tool: &Tool, secret: &str) -> OAuth2Client {
    OAuth2Client {
        token_url: tool.url("/token"),
        scope: Some(SCOPE.into()),
        grant: Grant::ClientCredentials { client_id: CLIENT_ID.into(), client_secret: Secret::new(secret) },
    }
}

#[tokio::test]
async fn xoauth2_sends_with_a_cached_token_from_a_real_oauth2_server_and_refreshes_it() {
    crate::support::capture_logs();
    let secret = format!("canary-client-secret-{}", uuid::Uuid::now_v7().simple());
    let Some(oauth) = node("oauth2-server.mjs", &[("CLIENT_ID", CLIENT_ID), ("CLIENT_SECRET", &secret)]).await else {
        return;
    };
    let smtp = TestSmtp::start(Mode::Plain).await;
    let clock = Clock::default();
    let cache = TokenCache::with_clock(clock.clone());
    let http = http();
    let dir = tempfile::tempdir().unwrap();
    let mailer = test_mailer(dir.path());
    let client = oauth_client(&oauth, &secret);

    // Three sends, one token request.
    for n in 0..3 {
        let token = cache.token(&http, &client).await.unwrap();
        let server = smtp_server("xoauth2", smtp.port(), "mailbox@contoso.example", Some(token));
        let id = format!("0193-xoauth2-{n}");
        let outcome = mailer.deliver(Some(&server), &parts(&id, &[])).await;
        assert!(matches!(outcome, Delivery::Accepted { .. }), "{outcome:?}");
    }
    smtp.wait_for(3).await;
    let requests = oauth.wait_events("token", 1).await;
    assert_eq!(requests.len(), 1, "one token for several sends: {requests:?}");
    assert_eq!(requests[0]["grant_type"], "client_credentials");
    assert_eq!(requests[0]["client_id"], CLIENT_ID);
    assert_eq!(requests[0]["scope"], SCOPE);
    let issued = requests[0]["access_token"].as_str().unwrap().to_owned();
    // The exchange: user and the issued token, framed as XOAUTH2 requires.
    let attempts = smtp.xoauth2_attempts();
    assert!(!attempts.is_empty());
    for (user, token, well_formed) in &attempts {
        assert_eq!((user.as_str(), token.as_str(), *well_formed), ("mailbox@contoso.example", issued.as_str(), true));
    }
    assert!(smtp.auth_attempts().iter().all(|(_, t)| *t == issued), "no PLAIN/LOGIN with anything else");

    // The test send takes the same path and reports the AUTH reply.
    let server = smtp_server("xoauth2", smtp.port(), "mailbox@contoso.example", Some(Secret::new(issued.clone())));
    let report = mailer.test_send(&server, &parts("0193-xoauth2-test", &[])).await;
    assert_eq!(report.failed_step, None, "{report:?}");
    assert!(
        report
            .passed
            .iter()
            .any(|(step, reply)| *step == Step::Auth && reply.as_deref() == Some("235 2.7.0 authenticated"))
    );

    // Two minutes before expiry (the server says 3600 s): cached. (The
    // margins leave room for the real time this test takes.)
    clock.advance(Duration::from_secs(3600 - 120));
    cache.token(&http, &client).await.unwrap();
    assert_eq!(oauth.events("token").len(), 1);
    // 20 s before expiry, within the 60 s margin: refreshed.
    clock.advance(Duration::from_secs(100));
    cache.token(&http, &client).await.unwrap();
    assert_eq!(oauth.wait_events("token", 2).await.len(), 2);
    // A refused token is forgotten: the next call fetches another.
    cache.forget(&client);
    cache.token(&http, &client).await.unwrap();
    assert_eq!(oauth.wait_events("token", 3).await.len(), 3);

    // Callers that ask at once share one request.
    let fresh = TokenCache::with_clock(clock.clone());
    let together = futures::future::join_all((0..5).map(|_| fresh.token(&http, &client))).await;
    let together: Vec<String> = together.into_iter().map(|t| t.unwrap().expose().to_owned()).collect();
    assert!(together.iter().all(|t| *t == together[0]));
    assert_eq!(oauth.wait_events("token", 4).await.len(), 4);

    let tokens: Vec<String> =
        oauth.events("token").iter().filter_map(|t| t["access_token"].as_str().map(str::to_owned)).collect();
    for token in &tokens {
        assert_absent(token, &[]);
    }
    assert_absent(&secret, &[]);
}

#[tokio::test]
async fn a_refused_access_token_is_a_retryable_auth_failure_without_the_token() {
    crate::support::capture_logs();
    let smtp = TestSmtp::start(Mode::Plain).await;
    smtp.require_auth("mailbox@contoso.example", "the-token-the-server-wants");
    let dir = tempfile::tempdir().unwrap();
    let mailer = test_mailer(dir.path());
    let stale = format!("canary-stale-token-{}", uuid::Uuid::now_v7().simple());
    let server = smtp_server("refusing", smtp.port(), "mailbox@contoso.example", Some(Secret::new(stale.clone())));
    // Gmail's way: a 334 error challenge, then 535.
    let outcome = mailer.deliver(Some(&server), &parts("0193-refused", &[])).await;
    let Delivery::Transient { class: "auth", error, .. } = &outcome else { panic!("{outcome:?}") };
    assert!(error.contains("refused the OAuth2 access token"), "{error}");
    let report = mailer.test_send(&server, &parts("0193-refused-test", &[])).await;
    assert_eq!(report.failed_step, Some(Step::Auth), "{report:?}");
    assert!(report.message.contains("refused the OAuth2 access token"), "{report:?}");
    assert_eq!(smtp.xoauth2_attempts().len(), 2);
    assert!(smtp.messages().is_empty());
    assert_absent(&stale, &[error, &report.message, &format!("{report:?}")]);

    // Microsoft's way: a plain 535, shown as the server's reply.
    smtp.refuse_xoauth2_with_535();
    let server = smtp_server("refusing-535", smtp.port(), "mailbox@contoso.example", Some(Secret::new(stale.clone())));
    let outcome = mailer.deliver(Some(&server), &parts("0193-refused-535", &[])).await;
    let Delivery::Transient { class: "auth", error, response } = &outcome else { panic!("{outcome:?}") };
    assert!(error.contains("refused the OAuth2 access token: 535 5.7.3"), "{error}");
    assert!(response.as_deref().is_some_and(|r| r.starts_with("535")), "{outcome:?}");
    assert_absent(&stale, &[error]);
}

#[tokio::test]
async fn a_wrong_client_secret_is_a_clear_failure_without_the_secret() {
    crate::support::capture_logs();
    let Some(oauth) =
        node("oauth2-server.mjs", &[("CLIENT_ID", CLIENT_ID), ("CLIENT_SECRET", "the-right-secret")]).await
    else {
        return;
    };
    let wrong = format!("canary-wrong-secret-{}", uuid::Uuid::now_v7().simple());
    let cache = TokenCache::default();
    let failure = cache.token(&http(), &oauth_client(&oauth, &wrong)).await.unwrap_err();
    assert_eq!(failure.class, "auth", "{failure:?}");
    assert!(failure.permanent, "a refused client is not retried against the same endpoint");
    assert!(failure.message.contains("refused the client: invalid_client"), "{}", failure.message);
    let requests = oauth.wait_events("token", 1).await;
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["ok"], false);
    // Nothing was cached: the right secret then works.
    let token = cache.token(&http(), &oauth_client(&oauth, "the-right-secret")).await.unwrap();
    assert!(!token.expose().is_empty());
    assert_absent(&wrong, &[&failure.message, &format!("{failure:?}")]);

    // The token endpoint obeys the outbound host policy: loopback is not
    // listed here, and the server sees no request.
    let refused = TokenCache::default().token(&strict_http(), &oauth_client(&oauth, &wrong)).await.unwrap_err();
    assert_eq!((refused.class, refused.permanent), ("policy", true), "{refused:?}");
    assert_eq!(oauth.wait_events("token", 2).await.len(), 2);
}

// ---- SES ------------------------------------------------------------------

/// moto in server mode, with IAM authentication on after the four setup
/// calls (INITIAL_NO_AUTH_ACTION_COUNT): from then on it checks SigV4
/// signatures against the access key it issued.
pub(crate) struct Moto {
    pub(crate) tool: Tool,
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
}

/// An unsigned request for moto's setup calls: moto routes by the
/// credential scope's service and does not check signatures yet.
fn setup_auth(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDSETUP/20260101/eu-west-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )
}

fn xml_field(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("{name} in {xml}")) + open.len();
    let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
    xml[start..end].to_owned()
}

pub(crate) async fn moto() -> Option<Moto> {
    let bin = root().join(".venv-ci/bin/moto_server");
    if !bin.is_file() {
        skip(
            ".venv-ci/bin/moto_server",
            "python3 -m venv .venv-ci && .venv-ci/bin/pip install -r .ci/requirements-transports.txt",
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::new(bin);
    // moto logs every request on stderr.
    command
        .stderr(Stdio::null())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "4");
    let tool = Tool::start(command, Some(port)).await;
    // reqwest is built without a crypto provider; Herald's OutboundHttp
    // installs ring's, which this plain client needs too when it comes first.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = crate::support::client_builder().build().unwrap();
    let iam = |form: &[(&str, &str)]| {
        client
            .post(tool.url("/"))
            .header("authorization", setup_auth("iam"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string([form, &[("Version", "2010-05-08")]].concat()).unwrap())
            .send()
    };
    let created = iam(&[("Action", "CreateUser"), ("UserName", "herald")]).await.unwrap();
    assert!(created.status().is_success(), "{}", created.text().await.unwrap());
    let key = iam(&[("Action", "CreateAccessKey"), ("UserName", "herald")]).await.unwrap().text().await.unwrap();
    let policy =
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ses:*", "Resource": "*"}]});
    let put = iam(&[
        ("Action", "PutUserPolicy"),
        ("UserName", "herald"),
        ("PolicyName", "send"),
        ("PolicyDocument", &policy.to_string()),
    ])
    .await
    .unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    let identity = client
        .post(tool.url("/v2/email/identities"))
        .header("authorization", setup_auth("ses"))
        .json(&json!({ "EmailIdentity": "herald.test" }))
        .send()
        .await
        .unwrap();
    assert!(identity.status().is_success(), "{}", identity.text().await.unwrap());
    Some(Moto {
        access_key_id: xml_field(&key, "AccessKeyId"),
        secret_access_key: xml_field(&key, "SecretAccessKey"),
        tool,
    })
}

impl Moto {
    fn settings(&self) -> SesSettings {
        SesSettings {
            region: "eu-west-1".into(),
            access_key_id: self.access_key_id.clone(),
            secret_access_key: Secret::new(self.secret_access_key.clone()),
            endpoint: Some(self.tool.url("")),
        }
    }

    /// What moto recorded as sent (its `/moto-api/data.json`).
    pub(crate) async fn sent(&self) -> Vec<Value> {
        let data: Value = reqwest::get(self.tool.url("/moto-api/data.json")).await.unwrap().json().await.unwrap();
        data["ses"]["RawMessage"].as_array().cloned().unwrap_or_default()
    }
}

#[tokio::test]
async fn ses_sends_the_raw_message_with_its_message_id_and_attachments() {
    crate::support::capture_logs();
    let Some(moto) = moto().await else { return };
    let pdf: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let files =
        [MailAttachment { file_name: "report.pdf".into(), content_type: "application/pdf".into(), bytes: pdf.clone() }];
    let sender = smtp_server("ses", 0, "unused", None);
    let outgoing = mailer::build(&parts("0193-ses-1", &files), Some(&sender), "herald.test").unwrap();
    let to = vec!["ada@example.com".to_owned()];
    let http = http();

    let outcome = ses::send(&http, &moto.settings(), "noreply@herald.test", &to, &outgoing.bytes).await;
    let Delivery::Accepted { response: message_id } = &outcome else { panic!("{outcome:?}") };
    let sent = moto.sent().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["id"], message_id.as_str());
    assert_eq!(sent[0]["source"], "noreply@herald.test");
    assert!(
        sent[0]["destinations"].as_array().unwrap().iter().any(|d| d.as_str().unwrap().contains("ada@example.com"))
    );
    let raw = sent[0]["raw_data"].as_str().unwrap();
    assert_eq!(raw.as_bytes(), outgoing.bytes.as_slice(), "the message arrives byte for byte");
    let parsed = mail_parser::MessageParser::default().parse(raw.as_bytes()).unwrap();
    assert_eq!(parsed.message_id(), Some("0193-ses-1@herald.test"));
    let attachment = parsed.attachments().next().expect("an attachment");
    assert_eq!(attachment.attachment_name(), Some("report.pdf"));
    assert_eq!(attachment.contents(), pdf.as_slice());

    // A wrong secret key: moto recomputes the signature and refuses it.
    let wrong_secret = format!("canary-ses-secret-{}", uuid::Uuid::now_v7().simple());
    let wrong = SesSettings { secret_access_key: Secret::new(wrong_secret.clone()), ..moto.settings() };
    let outcome = ses::send(&http, &wrong, "noreply@herald.test", &to, &outgoing.bytes).await;
    let Delivery::Transient { class: "auth", error, .. } = &outcome else { panic!("{outcome:?}") };
    assert!(error.contains("SignatureDoesNotMatch") || error.contains("signature"), "{error}");
    assert_absent(&wrong_secret, &[error, &format!("{outcome:?}")]);
    assert_absent(&moto.secret_access_key, &[error]);
    // An access key moto never issued.
    let unknown = SesSettings { access_key_id: "AKIAUNKNOWNKEY000000".into(), ..moto.settings() };
    let outcome = ses::send(&http, &unknown, "noreply@herald.test", &to, &outgoing.bytes).await;
    assert!(matches!(outcome, Delivery::Transient { class: "auth", .. }), "{outcome:?}");
    // A sender SES has not verified: the message is refused, for good.
    let outcome = ses::send(&http, &moto.settings(), "someone@unverified.example", &to, &outgoing.bytes).await;
    let Delivery::Permanent { class: "permanent", error, .. } = &outcome else { panic!("{outcome:?}") };
    assert!(error.contains("MessageRejected"), "{error}");
    assert_eq!(moto.sent().await.len(), 1);

    // The endpoint obeys the outbound host policy.
    let outcome = ses::send(&strict_http(), &moto.settings(), "noreply@herald.test", &to, &outgoing.bytes).await;
    assert!(matches!(outcome, Delivery::Permanent { class: "policy", .. }), "{outcome:?}");
    assert_absent(&moto.secret_access_key, &[]);
}

// ---- HTTP provider --------------------------------------------------------

#[tokio::test]
async fn the_http_provider_posts_json_the_standardwebhooks_library_verifies() {
    crate::support::capture_logs();
    let secret = signing::generate_secret();
    let Some(receiver) =
        node("webhook-receiver.mjs", &[("WEBHOOK_SECRET", secret.expose()), ("STATUSES", "503,429,422")]).await
    else {
        return;
    };
    let provider = HttpProvider { url: receiver.url("/hooks/mail"), secret: secret.clone() };
    let files = [MailAttachment {
        file_name: "report.pdf".into(),
        content_type: "application/pdf".into(),
        bytes: vec![0, 1, 2, 255],
    }];
    let mut mail = parts("0193-http-1", &files);
    mail.subject = "Grüße, Ada";
    mail.text = "Hello \"Ada\"\nline two";
    mail.html = Some("<p>Hello</p>");
    let message = http_provider::message(&mail, "noreply@herald.test", Some("Herald"), "herald.test");
    let http = http();
    let outcomes = [
        http_provider::send(&http, &provider, &message).await,
        http_provider::send(&http, &provider, &message).await,
        http_provider::send(&http, &provider, &message).await,
        http_provider::send(&http, &provider, &message).await,
    ];
    assert!(matches!(&outcomes[0], Delivery::Transient { class: "transient", .. }), "{:?}", outcomes[0]);
    assert!(matches!(&outcomes[1], Delivery::Transient { class: "throttled", .. }), "{:?}", outcomes[1]);
    assert!(matches!(&outcomes[2], Delivery::Permanent { class: "permanent", .. }), "{:?}", outcomes[2]);
    assert_eq!(outcomes[3], Delivery::Accepted { response: "HTTP 204".into() });
    let requests = receiver.wait_events("request", 4).await;
    assert_eq!(requests.len(), 4);
    for request in &requests {
        assert_eq!(request["verified"], true, "{request}");
        assert_eq!(request["method"], "POST");
        assert_eq!(request["path"], "/hooks/mail");
        assert_eq!(request["contentType"], "application/json");
        assert_eq!(request["payload"], message, "the body is the message");
        // Every attempt of one message has one id, so receivers can drop repeats.
        assert_eq!(request["id"], "msg_0193-http-1");
    }

    // Signed with another secret: the library refuses it, the receiver
    // answers 401, which is permanent.
    let other = HttpProvider { url: provider.url.clone(), secret: signing::generate_secret() };
    let outcome = http_provider::send(&http, &other, &json!({ "id": "0193-http-2" })).await;
    assert!(matches!(&outcome, Delivery::Permanent { .. }), "{outcome:?}");
    let last = receiver.wait_events("request", 5).await.pop().unwrap();
    assert_eq!(
        (last["verified"].as_bool(), last["error"].as_str()),
        (Some(false), Some("No matching signature found"))
    );

    // A malformed secret is a config error that does not echo it.
    let broken = HttpProvider { url: provider.url.clone(), secret: Secret::new("canary-not-a-whsec-secret") };
    let outcome = http_provider::send(&http, &broken, &message).await;
    assert!(matches!(&outcome, Delivery::Permanent { class: "config", .. }), "{outcome:?}");
    // The URL obeys the outbound host policy.
    let outcome = http_provider::send(&strict_http(), &provider, &message).await;
    assert!(matches!(&outcome, Delivery::Permanent { class: "policy", .. }), "{outcome:?}");
    assert_eq!(receiver.events("request").len(), 5);

    let key = base64::engine::general_purpose::STANDARD.encode(signing::secret_key(&secret).unwrap());
    let texts: Vec<String> = outcomes.iter().map(|o| format!("{o:?}")).chain([format!("{outcome:?}")]).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert_absent(&key, &texts);
    assert_absent("canary-not-a-whsec-secret", &texts);
}

/// VERP with SES (issue 18): the VERP address goes in
/// `FeedbackForwardingEmailAddress`; the sender stays the From address and
/// the message is sent unchanged.
#[tokio::test]
async fn ses_takes_the_verp_address_as_feedback_forwarding_address() {
    crate::support::capture_logs();
    let Some(moto) = moto().await else { return };
    let sender = smtp_server("ses", 0, "unused", None);
    let outgoing = mailer::build(&parts("0193-ses-verp", &[]), Some(&sender), "herald.test").unwrap();
    let to = vec!["ada@example.com".to_owned()];
    let verp = "bounces+0193.00@herald.test";
    let outcome =
        ses::send_with_feedback(&http(), &moto.settings(), "noreply@herald.test", Some(verp), &to, &outgoing.bytes)
            .await;
    assert!(matches!(outcome, Delivery::Accepted { .. }), "{outcome:?}");
    let sent = moto.sent().await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["source"], "noreply@herald.test");
    assert_eq!(sent[0]["raw_data"].as_str().unwrap().as_bytes(), outgoing.bytes.as_slice());
}

// ---- XOAUTH2 with the JWT-bearer grant (Google Workspace) ----------------

pub(crate) const SERVICE_ACCOUNT: &str = "herald-mailer@herald-test.iam.gserviceaccount.com";
pub(crate) const GOOGLE_SCOPE: &str = "https://mail.google.com/";

/// The JWT-bearer token endpoint (`tests/clients/jwt-bearer-server.mjs`),
/// verifying assertions with `jose`, for `subject`; with the private key it
/// trusts and one it does not.
pub(crate) async fn google_token_endpoint(subject: &str) -> Option<(Tool, String, String)> {
    let env = [("CLIENT_EMAIL", SERVICE_ACCOUNT), ("SUBJECT", subject), ("SCOPE", GOOGLE_SCOPE)];
    let tool = node("jwt-bearer-server.mjs", &env).await?;
    let listening = tool.events("listening");
    let key = listening[0]["privateKey"].as_str().unwrap().to_owned();
    let untrusted = listening[0]["untrustedPrivateKey"].as_str().unwrap().to_owned();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8, as in a service-account key file");
    Some((tool, key, untrusted))
}

/// A line from the middle of a PEM key: a canary that must appear nowhere.
pub(crate) fn key_canary(pem: &str) -> String {
    pem.lines().nth(3).unwrap().to_owned()
}

fn jwt_client(tool: &Tool, key: &str, subject: &str) -> OAuth2Client {
    OAuth2Client {
        token_url: tool.url("/token"),
        scope: Some(GOOGLE_SCOPE.into()),
        grant: Grant::JwtBearer {
            issuer: SERVICE_ACCOUNT.into(),
            subject: subject.into(),
            private_key: Secret::new(key),
        },
    }
}

#[tokio::test]
async fn jwt_bearer_sends_with_a_cached_token_for_a_verified_assertion_and_refreshes_it() {
    crate::support::capture_logs();
    let mailbox = "mailbox@workspace.example";
    let Some((google, key, untrusted)) = google_token_endpoint(mailbox).await else { return };
    let smtp = TestSmtp::start(Mode::Plain).await;
    let clock = Clock::default();
    let cache = TokenCache::with_clock(clock.clone());
    let http = http();
    let dir = tempfile::tempdir().unwrap();
    let mailer = test_mailer(dir.path());
    let client = jwt_client(&google, &key, mailbox);

    // Three sends, one token request, its assertion verified by jose.
    for n in 0..3 {
        let token = cache.token(&http, &client).await.unwrap();
        let server = smtp_server("google", smtp.port(), mailbox, Some(token));
        let outcome = mailer.deliver(Some(&server), &parts(&format!("0193-jwt-{n}"), &[])).await;
        assert!(matches!(outcome, Delivery::Accepted { .. }), "{outcome:?}");
    }
    smtp.wait_for(3).await;
    let requests = google.wait_events("token", 1).await;
    assert_eq!(requests.len(), 1, "one token for several sends: {requests:?}");
    let r = &requests[0];
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["grant_type"], "urn:ietf:params:oauth:grant-type:jwt-bearer");
    assert_eq!(
        (r["alg"].as_str(), r["iss"].as_str(), r["sub"].as_str()),
        (Some("RS256"), Some(SERVICE_ACCOUNT), Some(mailbox))
    );
    assert_eq!((r["aud"].as_str(), r["scope"].as_str()), (Some(google.url("/token").as_str()), Some(GOOGLE_SCOPE)));
    assert_eq!(r["lifetime"], 3600, "the assertion lives one hour: {r}");
    let issued = r["access_token"].as_str().unwrap().to_owned();
    let attempts = smtp.xoauth2_attempts();
    assert!(!attempts.is_empty());
    for (user, token, well_formed) in &attempts {
        assert_eq!((user.as_str(), token.as_str(), *well_formed), (mailbox, issued.as_str(), true));
    }

    // Cached until the refresh margin, then a new assertion and token.
    clock.advance(Duration::from_secs(3600 - 120));
    cache.token(&http, &client).await.unwrap();
    assert_eq!(google.events("token").len(), 1);
    clock.advance(Duration::from_secs(100));
    let refreshed = cache.token(&http, &client).await.unwrap();
    let requests = google.wait_events("token", 2).await;
    assert_eq!((requests.len(), &requests[1]["ok"]), (2, &json!(true)), "{requests:?}");
    assert_ne!(refreshed.expose(), issued, "a new token");

    // Another mailbox is another token (and this endpoint refuses it).
    let other = cache.token(&http, &jwt_client(&google, &key, "someone@else.example")).await.unwrap_err();
    assert!(other.message.contains("invalid_grant"), "{other:?}");
    assert_eq!(google.wait_events("token", 3).await.len(), 3);

    // A key the service account does not have: Google's invalid_grant, clearly,
    // without the key or the assertion; nothing cached.
    let wrong = TokenCache::with_clock(clock.clone());
    let failure = wrong.token(&http, &jwt_client(&google, &untrusted, mailbox)).await.unwrap_err();
    assert_eq!((failure.class, failure.permanent), ("auth", true), "{failure:?}");
    assert!(failure.message.contains("refused the client: invalid_grant"), "{}", failure.message);
    let requests = google.wait_events("token", 4).await;
    assert_eq!(requests[3]["ok"], false);
    // A key that cannot sign never reaches the endpoint.
    let garbage = wrong.token(&http, &jwt_client(&google, "not a key", mailbox)).await.unwrap_err();
    assert_eq!((garbage.class, garbage.permanent), ("config", true), "{garbage:?}");
    assert!(garbage.message.contains("not an RSA private key"), "{}", garbage.message);
    // The host policy applies to the token URL.
    let refused = TokenCache::default().token(&strict_http(), &client).await.unwrap_err();
    assert_eq!((refused.class, refused.permanent), ("policy", true), "{refused:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(google.events("token").len(), 4, "no request past the policy");

    let texts = [failure.message.as_str(), &format!("{failure:?}"), &garbage.message, &refused.message];
    assert_absent(&key_canary(&key), &texts);
    assert_absent(&key_canary(&untrusted), &texts);
    for token in google.events("token").iter().filter_map(|t| t["access_token"].as_str()) {
        assert_absent(token, &[]);
    }
}
