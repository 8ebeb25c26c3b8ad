//! The HTTP provider: the rendered message POSTed as JSON to a URL the org
//! chose, signed as a Standard Webhook ([`crate::domain::signing`]) so the receiver
//! can check it came from Herald and was not replayed.
//!
//! Headers: `webhook-id` (the message's `id` when it has one, so every
//! attempt of one notification carries the same id and the receiver can
//! drop duplicates), `webhook-timestamp` (seconds) and `webhook-signature`.
//! The request goes through [`OutboundHttp`] (host policy, no redirects).
//!
//! Outcome: 2xx accepted; 408, 429, 5xx and network failures transient;
//! other statuses (4xx, and 3xx, since redirects are not followed)
//! permanent.

use base64::Engine as _;
use serde_json::json;

use super::http::OutboundHttp;
use super::mailer::{Delivery, MailParts};
use crate::domain::signing;
use crate::secret::Secret;

/// How much of the receiver's answer is kept for the delivery log.
const MAX_SHOWN: usize = 200;
/// How much of the receiver's answer is read at all.
const MAX_READ: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct HttpProvider {
    pub url: String,
    /// `whsec_<base64>`.
    pub secret: Secret,
}

/// The JSON Herald POSTs for a notification (its shape is documented in
/// `docs/transports.md`): the same parts as the mail, the Message-ID the
/// mail would have, attachments in base64.
pub fn message(parts: &MailParts<'_>, from_email: &str, from_name: Option<&str>, domain: &str) -> serde_json::Value {
    let attachments: Vec<serde_json::Value> = parts
        .attachments
        .iter()
        .map(|a| {
            json!({
                "fileName": a.file_name,
                "contentType": a.content_type,
                "contentBase64": base64::engine::general_purpose::STANDARD.encode(&a.bytes),
            })
        })
        .collect();
    json!({
        "type": "email",
        "id": parts.id,
        "messageId": format!("<{}@{}>", parts.id, domain),
        "from": { "address": from_email, "name": from_name },
        "to": [{ "address": parts.to_addr, "name": parts.to_name }],
        "envelopeFrom": parts.envelope_from,
        "subject": parts.subject,
        "text": parts.text,
        "html": parts.html,
        "attachments": attachments,
    })
}

/// POSTs `message` as signed JSON (Standard Webhooks headers `webhook-id`,
/// `webhook-timestamp`, `webhook-signature: v1,<base64(HMAC-SHA256(key,
/// "id.timestamp.body"))>`).
pub async fn send(http: &OutboundHttp, provider: &HttpProvider, message: &serde_json::Value) -> Delivery {
    let id = match message.get("id").and_then(serde_json::Value::as_str) {
        Some(id) if !id.is_empty() && id.len() <= 200 && id.chars().all(|c| c.is_ascii_graphic()) => {
            format!("msg_{id}")
        }
        _ => format!("msg_{}", uuid::Uuid::now_v7()),
    };
    let timestamp = chrono::Utc::now().timestamp();
    let body = match serde_json::to_vec(message) {
        Ok(body) => body,
        Err(e) => return permanent("message", format!("the message could not be encoded as JSON: {e}"), None),
    };
    let signature = match signing::sign(&provider.secret, &id, timestamp, &body) {
        Ok(s) => s,
        Err(e) => return permanent("config", e.to_string(), None),
    };
    let request = match http.request(reqwest::Method::POST, &provider.url) {
        Ok(r) => r,
        Err(f) => return permanent(f.class, f.message, None),
    };
    let request = request
        .header("content-type", "application/json")
        .header("webhook-id", &id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body);
    let response = match http.send(request).await {
        Ok(r) => r,
        Err(f) if f.permanent => return permanent(f.class, f.message, None),
        Err(f) => return Delivery::Transient { class: f.class, error: f.message, response: None },
    };
    let status = response.status();
    let shown = format!("HTTP {}{}", status.as_u16(), answer(response).await);
    classify(status.as_u16(), shown)
}

/// Sorts an answer by its status (see the module comment).
pub fn classify(status: u16, shown: String) -> Delivery {
    match status {
        200..=299 => Delivery::Accepted { response: shown },
        408 | 429 | 500..=599 => Delivery::Transient {
            class: if status == 429 { "throttled" } else { "transient" },
            error: format!("the HTTP provider answered {shown}"),
            response: Some(shown),
        },
        300..=399 => permanent(
            "permanent",
            format!("the HTTP provider answered with a redirect ({shown}), which Herald does not follow"),
            Some(shown),
        ),
        _ => permanent("permanent", format!("the HTTP provider refused the message: {shown}"), Some(shown)),
    }
}

fn permanent(class: &'static str, error: String, response: Option<String>) -> Delivery {
    Delivery::Permanent { class, error, response }
}

/// `": <the start of the body>"`, one line, or nothing for an empty body.
async fn answer(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_READ {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text: String =
        String::from_utf8_lossy(&bytes).chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_SHOWN).collect();
    let text = text.trim();
    if text.is_empty() { String::new() } else { format!(": {text}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_has_the_documented_shape() {
        let files = [crate::domain::delivery::documents::MailAttachment {
            file_name: "a.txt".into(),
            content_type: "text/plain".into(),
            bytes: b"hi".to_vec(),
        }];
        let parts = MailParts {
            id: "0193-x",
            to_addr: "ada@example.com",
            to_name: None,
            subject: "S",
            text: "T",
            html: None,
            attachments: &files,
            envelope_from: None,
        };
        let m = message(&parts, "noreply@example.com", Some("Herald"), "herald.test");
        assert_eq!(m["messageId"], "<0193-x@herald.test>");
        assert_eq!(m["to"][0], json!({ "address": "ada@example.com", "name": null }));
        assert_eq!(m["from"]["name"], "Herald");
        assert_eq!(m["html"], serde_json::Value::Null);
        assert_eq!(m["attachments"][0]["contentBase64"], "aGk=");
    }

    #[test]
    fn statuses_are_classified() {
        assert!(matches!(classify(204, "HTTP 204".into()), Delivery::Accepted { .. }));
        for transient in [408, 429, 500, 503] {
            assert!(matches!(classify(transient, String::new()), Delivery::Transient { .. }), "{transient}");
        }
        for permanent in [301, 400, 401, 404, 413, 422] {
            assert!(matches!(classify(permanent, String::new()), Delivery::Permanent { .. }), "{permanent}");
        }
    }
}
