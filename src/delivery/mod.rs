//! Delivery's machinery: what opens sockets (TCP, TLS, DNS), runs loops of
//! its own, or batches writes. What delivery decides (event bodies, who is
//! notified, statuses, the retry arithmetic) is [`crate::domain::delivery`],
//! plain Rust that parses, decides and returns; this module calls into it.
//!
//! - [`committer`]: the group commit of accepted events.
//! - [`mailer`]: building messages, SMTP and file transports (TCP, TLS,
//!   DNS), and the step-by-step test send.
//! - [`outbound`]: the outbound host policy every connection obeys.
//! - [`http`]: the HTTP client for requests on a tenant's behalf.
//! - [`oauth2`], [`ses`], [`http_provider`], [`signing`]: the transports
//!   beyond SMTP: XOAUTH2 access tokens, Amazon SES, a signed JSON POST.
//! - [`worker`]: the claim loops: claiming, sending, retrying and recording
//!   results.
//! - Here: a test send now, through a draft or the effective server.

pub mod bounce_intake;
pub mod committer;
pub mod concurrency;
pub mod express;
pub mod http;
pub mod http_provider;
pub mod inbound;
pub mod mailer;
pub mod oauth2;
pub mod outbound;
pub mod providers;
pub mod retention;
pub mod ses;
pub mod webhooks;
pub mod worker;

use crate::crypto::Cipher;
use crate::domain::OrgId;
use crate::domain::audit::Scope;
use crate::domain::smtp::{self, SecretUse, Security, SmtpServer};
use crate::error::Error;
use crate::secret::Secret;
use crate::store::Store;
use mailer::{Delivery, MailParts, Mailer, TestReport};

/// An unsaved server for a test send (`POST /v1/smtp/test` `config`).
#[derive(Debug, Clone)]
pub struct TestServer {
    pub host: String,
    pub port: Option<u16>,
    pub security: Security,
    pub accept_invalid_certs: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from_email: Option<String>,
    pub from_name: Option<String>,
}

/// The outcome of a test send.
#[derive(Debug, Clone)]
pub enum TestOutcome {
    /// No server is configured: the mail went to the outbox directory
    /// (`written`), or could not be written there (`detail` says why,
    /// without the server's paths).
    File {
        written: bool,
        detail: String,
    },
    Smtp(TestReport),
}

/// Sends one test mail to `to` now, through `draft` or the org's effective
/// server. An unsaved config borrows the stored password only where
/// [`smtp::may_lend`] allows it (exactly the stored server, account and
/// transport), and only the org's own: the instance's secret belongs to its
/// administrators, so an unsaved config never gets it.
pub async fn test_send(
    store: &Store,
    cipher: &Cipher,
    mailer: &Mailer,
    org: &OrgId,
    to: &str,
    draft: Option<TestServer>,
) -> Result<TestOutcome, Error> {
    let stored = smtp::effective_server(store, cipher, org).await?;
    let server = match draft {
        None => stored,
        Some(d) => {
            let port = d.port.unwrap_or(d.security.default_port());
            let target = SecretUse {
                host: &d.host,
                port,
                security: d.security,
                accept_invalid_certs: d.accept_invalid_certs,
                username: d.username.as_deref(),
            };
            let borrowed = match (&d.password, &stored) {
                (None, Some(s)) if s.scope == Scope::Org(org.clone()) && smtp::may_lend(&s.secret_use(), &target) => {
                    s.password.clone()
                }
                _ => None,
            };
            Some(SmtpServer {
                scope: Scope::Org(org.clone()),
                config_id: format!("test-{}", uuid::Uuid::now_v7()),
                version: 0,
                host: d.host,
                port,
                security: d.security,
                accept_invalid_certs: d.accept_invalid_certs,
                username: d.username,
                password: d.password.or(borrowed),
                oauth_token: None,
                from_email: d.from_email,
                from_name: d.from_name,
                reply_to: None,
            })
        }
    };
    let org_name = store.org_name(org).await?.unwrap_or_default();
    let id = uuid::Uuid::now_v7().to_string();
    let text = format!(
        "This is a test message from Herald for the organisation {org_name}.\n\nIf you can read it, these SMTP settings work."
    );
    let parts = MailParts {
        id: &id,
        to_addr: to,
        to_name: None,
        subject: "Herald test message",
        text: &text,
        html: None,
        attachments: &[],
        envelope_from: None,
    };
    match server {
        Some(server) => Ok(TestOutcome::Smtp(mailer.test_send(&server, &parts).await)),
        // A failed write is a failed test send, not an HTTP error.
        None => Ok(match mailer.deliver(None, &parts).await {
            Delivery::Accepted { response } => TestOutcome::File { written: true, detail: response },
            Delivery::Transient { error, .. } | Delivery::Permanent { error, .. } => {
                TestOutcome::File { written: false, detail: error }
            }
        }),
    }
}
