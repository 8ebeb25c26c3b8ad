//! Sending through a provider ([`crate::domain::providers::Route`]): SMTP
//! with a password or XOAUTH2 (the access token from the process's
//! [`TokenCache`]), the Amazon SES v2 API, or a signed HTTP POST. Real
//! delivery and the test send of `/v1/providers/{id}/test` both go through
//! [`send_via`], so a test that works means mail works.
//!
//! Also here: how a failed hand-over counts for failover
//! ([`failure_kind`]).

use super::http::OutboundHttp;
use super::mailer::{self, Delivery, MailParts, Mailer, Passed, TestReport};
use super::oauth2::{Grant, OAuth2Client, TokenCache};
use super::{http_provider, ses};
use crate::domain::providers::{FailureKind, OAuthGrant, Route, Settings, SmtpAuth};

/// What sending needs besides the route.
pub struct Transports<'a> {
    pub mailer: &'a Mailer,
    pub http: &'a OutboundHttp,
    pub tokens: &'a TokenCache,
}

fn oauth_client(route: &Route) -> Option<OAuth2Client> {
    let Settings::Smtp(s) = &route.settings else { return None };
    if s.auth != SmtpAuth::Xoauth2 {
        return None;
    }
    let secret = route.secret.clone().unwrap_or_else(|| crate::secret::Secret::new(""));
    let grant = match s.grant {
        OAuthGrant::ClientCredentials => {
            Grant::ClientCredentials { client_id: s.client_id.clone().unwrap_or_default(), client_secret: secret }
        }
        OAuthGrant::JwtBearer => Grant::JwtBearer {
            issuer: s.client_email.clone().unwrap_or_default(),
            subject: s.subject.clone().or_else(|| s.username.clone()).unwrap_or_default(),
            private_key: secret,
        },
    };
    Some(OAuth2Client { token_url: s.token_url.clone().unwrap_or_default(), scope: s.scope.clone(), grant })
}

/// True for an SMTP reply that refuses the credentials (530, 534, 535, 538).
fn auth_refused(d: &Delivery) -> bool {
    let response = match d {
        Delivery::Transient { response, .. } | Delivery::Permanent { response, .. } => response.as_deref(),
        Delivery::Accepted { .. } => None,
    };
    response.is_some_and(|r| ["530", "534", "535", "538"].iter().any(|c| r.starts_with(c)))
}

/// How a failed hand-over counts: the provider's fault (move on to the
/// next provider) or the recipient's (dead). Transient failures, unusable
/// settings, the host policy and refused credentials are the provider's;
/// any other permanent (5xx) reply is about the recipient or the message.
pub fn failure_kind(d: &Delivery) -> FailureKind {
    match d {
        Delivery::Transient { .. } => FailureKind::Provider,
        Delivery::Permanent { class: "config" | "policy", .. } => FailureKind::Provider,
        d if auth_refused(d) => FailureKind::Provider,
        _ => FailureKind::Recipient,
    }
}

/// The JSON an HTTP provider receives: [`http_provider::message`] (the
/// shape docs/transports.md documents), from the provider's sender.
fn http_message(route: &Route, parts: &MailParts<'_>, domain: &str) -> serde_json::Value {
    let sender = mailer::sender(Some(&route.settings.sender(route.scope.clone(), &route.id)));
    http_provider::message(parts, sender.email.as_ref(), sender.name.as_deref(), domain)
}

/// Hands one mail to `route`.
pub async fn send_via(t: &Transports<'_>, route: &Route, parts: &MailParts<'_>) -> Delivery {
    match &route.settings {
        Settings::Smtp(_) => {
            let Some(mut server) = route.smtp_server() else {
                return Delivery::Permanent { class: "config", error: "not an SMTP provider".into(), response: None };
            };
            let Some(client) = oauth_client(route) else { return t.mailer.deliver(Some(&server), parts).await };
            match t.tokens.token(t.http, &client).await {
                Ok(token) => server.oauth_token = Some(token),
                Err(f) => {
                    return Delivery::Transient {
                        class: f.class,
                        error: format!("could not get an OAuth2 access token: {}", f.message),
                        response: None,
                    };
                }
            }
            let d = t.mailer.deliver(Some(&server), parts).await;
            if auth_refused(&d) {
                // The server refused the token: fetch a new one next time.
                t.tokens.forget(&client);
            }
            d
        }
        Settings::Ses(s) => {
            let sender = route.settings.sender(route.scope.clone(), &route.id);
            let out = match mailer::build(parts, Some(&sender), &t.mailer.config().domain) {
                Ok(o) => o,
                Err(error) => return Delivery::Permanent { class: "message", error, response: None },
            };
            let settings = ses::SesSettings {
                region: s.region.clone(),
                access_key_id: s.access_key_id.clone(),
                secret_access_key: route.secret.clone().unwrap_or_else(|| crate::secret::Secret::new("")),
                endpoint: s.endpoint.clone(),
            };
            // SES chooses the MAIL FROM itself: the From address is the
            // sender, and the VERP address goes where SES sends feedback.
            let from = mailer::sender(Some(&sender)).email.to_string();
            let to: Vec<String> = out.envelope.to().iter().map(ToString::to_string).collect();
            ses::send_with_feedback(t.http, &settings, &from, parts.envelope_from, &to, &out.bytes).await
        }
        Settings::Http(h) => {
            let provider = http_provider::HttpProvider {
                url: h.url.clone(),
                secret: route.secret.clone().unwrap_or_else(|| crate::secret::Secret::new("")),
            };
            let message = http_message(route, parts, &t.mailer.config().domain);
            http_provider::send(t.http, &provider, &message).await
        }
    }
}

/// One step of a provider test send and the reply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderStep {
    /// `token`, `policy`, `connect`, `tls`, `auth`, `sender`, `recipient`,
    /// `data`, or `api` (SES and HTTP providers).
    pub step: String,
    pub ok: bool,
    pub reply: Option<String>,
}

/// The outcome of a provider test send: every step, the last one failed
/// when `success` is false.
#[derive(Debug, Clone)]
pub struct ProviderTest {
    pub success: bool,
    pub message: String,
    pub steps: Vec<ProviderStep>,
}

fn step_name(s: mailer::Step) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn smtp_report(mut steps: Vec<ProviderStep>, report: TestReport) -> ProviderTest {
    let passed: Vec<Passed> = report.passed;
    steps.extend(passed.into_iter().map(|(s, reply)| ProviderStep { step: step_name(s), ok: true, reply }));
    match report.failed_step {
        // The data step (with the final reply) is among the passed ones.
        None => ProviderTest { success: true, message: report.message, steps },
        Some(s) => {
            steps.push(ProviderStep { step: step_name(s), ok: false, reply: report.reply });
            ProviderTest { success: false, message: report.message, steps }
        }
    }
}

/// Sends one test mail through `route` now, step by step. SMTP runs the
/// mailer's step-by-step send (the connection code real delivery uses,
/// after the same token fetch); SES and HTTP run [`send_via`] itself.
pub async fn test_via(t: &Transports<'_>, route: &Route, parts: &MailParts<'_>) -> ProviderTest {
    let mut steps = Vec::new();
    match &route.settings {
        Settings::Smtp(_) => {
            let Some(mut server) = route.smtp_server() else {
                return ProviderTest { success: false, message: "not an SMTP provider".into(), steps };
            };
            if let Some(client) = oauth_client(route) {
                match t.tokens.token(t.http, &client).await {
                    Ok(token) => {
                        server.oauth_token = Some(token);
                        steps.push(ProviderStep { step: "token".into(), ok: true, reply: None });
                    }
                    Err(f) => {
                        steps.push(ProviderStep { step: "token".into(), ok: false, reply: None });
                        return ProviderTest {
                            success: false,
                            message: format!("could not get an OAuth2 access token: {}", f.message),
                            steps,
                        };
                    }
                }
            }
            smtp_report(steps, t.mailer.test_send(&server, parts).await)
        }
        Settings::Ses(_) | Settings::Http(_) => match send_via(t, route, parts).await {
            Delivery::Accepted { response } => {
                steps.push(ProviderStep { step: "api".into(), ok: true, reply: Some(response) });
                ProviderTest { success: true, message: "the provider accepted the message".into(), steps }
            }
            Delivery::Transient { error, response, .. } | Delivery::Permanent { error, response, .. } => {
                steps.push(ProviderStep { step: "api".into(), ok: false, reply: response });
                ProviderTest { success: false, message: error, steps }
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient(response: Option<&str>) -> Delivery {
        Delivery::Transient { class: "transient", error: "x".into(), response: response.map(str::to_owned) }
    }
    fn permanent(class: &'static str, response: Option<&str>) -> Delivery {
        Delivery::Permanent { class, error: "x".into(), response: response.map(str::to_owned) }
    }

    #[test]
    fn provider_faults_fail_over_and_recipient_refusals_do_not() {
        assert_eq!(failure_kind(&transient(Some("421 4.3.2 shutting down"))), FailureKind::Provider);
        assert_eq!(failure_kind(&transient(None)), FailureKind::Provider, "network");
        assert_eq!(failure_kind(&permanent("permanent", Some("535 5.7.8 bad credentials"))), FailureKind::Provider);
        assert_eq!(failure_kind(&permanent("policy", None)), FailureKind::Provider);
        assert_eq!(failure_kind(&permanent("config", None)), FailureKind::Provider);
        assert_eq!(failure_kind(&permanent("permanent", Some("550 5.1.1 no such user"))), FailureKind::Recipient);
        assert_eq!(failure_kind(&permanent("permanent", Some("554 5.6.0 bad message"))), FailureKind::Recipient);
    }
}
