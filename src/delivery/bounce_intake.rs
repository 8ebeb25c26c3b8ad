//! The inbound SMTP listener's [`Intake`]: which recipients it takes and
//! what becomes of a received report (`--inbound-listen`, issue 18).
//!
//! RCPT is accepted only for a validly signed VERP address (checked by the
//! listener) whose domain is some provider's bounce domain and whose
//! notification exists; anything else is `550`. A received message is
//! parsed (`domain::bounces::parse_message`) and applied
//! (`domain::feedback::apply`) before the reply to its final dot: `250`
//! when applied (or a report of success), `554` when it is not a report,
//! `451` when the database is unreachable (the sending MTA retries).

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::inbound::{InboundReport, Intake, Refusal};
use super::worker::Engine;
use crate::domain::Actor;
use crate::domain::bounces;
use crate::domain::feedback::{self, Reporter, Source};
use crate::error::Error;

/// The engine's cipher, shareable with the listener's sessions.
#[derive(Clone)]
pub struct EngineCipher(pub Arc<Engine>);

impl std::ops::Deref for EngineCipher {
    type Target = crate::crypto::Cipher;
    fn deref(&self) -> &Self::Target {
        &self.0.cipher
    }
}

/// The text of a `451`: nothing of the cause.
const TRY_LATER: &str = "Temporary failure, try again later";

pub struct BounceIntake {
    pub engine: Arc<Engine>,
}

impl Intake for BounceIntake {
    fn accept_rcpt<'a>(&'a self, id: &'a str, domain: &'a str) -> BoxFuture<'a, Result<bool, Refusal>> {
        Box::pin(async move {
            let store = &self.engine.store;
            let later = |e: anyhow::Error, what: &str| {
                tracing::warn!(error = format!("{e:#}"), "inbound SMTP: could not {what}");
                Refusal::Later(TRY_LATER.into())
            };
            if !store.is_bounce_domain(domain).await.map_err(|e| later(e, "check a bounce domain"))? {
                return Ok(false);
            }
            let found = store.feedback_target(id, None).await.map_err(|e| later(e, "look up a notification"))?;
            Ok(found.is_some())
        })
    }
    fn deliver(&self, report: InboundReport) -> BoxFuture<'_, Result<(), Refusal>> {
        Box::pin(async move {
            let e = &self.engine;
            let domain = &e.mailer.config().domain;
            let parsed = bounces::parse_message(&e.cipher, domain, &report.data)
                .map_err(|err| Refusal::Never(format!("Not accepted: {err}")))?;
            let reporter = Reporter::Verified(&report.notification_ids);
            match feedback::apply(&e.store, reporter, &Actor::inbound_smtp(), Source::Smtp, &parsed, e.clock.now())
                .await
            {
                Ok(applied) => {
                    metrics::counter!("herald_inbound_reports_total", "outcome" => "applied").increment(1);
                    tracing::info!(reports = applied.len(), "inbound SMTP: report applied");
                    Ok(())
                }
                Err(Error::Unavailable(err) | Error::Internal(err)) => {
                    tracing::warn!(error = format!("{err:#}"), "inbound SMTP: could not apply a report");
                    Err(Refusal::Later(TRY_LATER.into()))
                }
                Err(other) => {
                    metrics::counter!("herald_inbound_reports_total", "outcome" => "refused").increment(1);
                    Err(Refusal::Never(format!("Not accepted: {}", crate::api::public_message(&other))))
                }
            }
        })
    }
}
