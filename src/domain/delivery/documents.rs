//! Document events (contract §8): `document.<event>` with a `senderIdentity`
//! becomes a mail to that identity only if it is Approved and the flag of
//! the event is on (contract §7); otherwise the event is kept, suppressed,
//! with the reason. `document.completed` carries the signed files in
//! `data.attachments` when the identity has AttachSignedDocument on.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::NewNotification;
use super::templates;
use crate::domain::OrgId;
use crate::domain::identities::{self, Flag, Status};
use crate::domain::smtp::{parse_address, parse_text};
use crate::error::{Error, FieldErrors};
use crate::store::Store;

/// The `data` fields of a document event.
pub const DATA_FIELDS: &[&str] =
    &["documentId", "documentTitle", "signerName", "signerEmail", "reason", "documentUrl", "attachments"];
pub const MAX_ATTACHMENTS: usize = 10;
/// Decoded bytes of all attachments of one event together. The event body is
/// limited to 256 KiB, which base64 fills at about 190 KiB; a clear error
/// below that beats a bare 413. Larger documents go by `documentUrl`.
pub const MAX_ATTACHMENT_BYTES: usize = 160 * 1024;
const MAX_TEXT: usize = 255;
const MAX_REASON: usize = 1000;
const MAX_URL: usize = 2048;

/// An attachment as stored with its notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAttachment {
    pub file_name: String,
    pub content_type: String,
    /// Base64 (standard alphabet, padded), checked when accepted.
    pub content: String,
}

/// What a document event says about its document, all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    pub document_id: Option<String>,
    pub title: Option<String>,
    pub signer_name: Option<String>,
    pub signer_email: Option<String>,
    pub reason: Option<String>,
    pub url: Option<String>,
}

/// A checked document event.
#[derive(Debug, Clone)]
pub struct DocumentEvent {
    /// `viewed`, `delivery_failed`, …
    pub name: &'static str,
    pub flag: Flag,
    pub identity_email: String,
    pub details: Details,
    pub attachments: Vec<StoredAttachment>,
}

fn text(data: &Map<String, Value>, name: &str, max: usize, errors: &mut FieldErrors) -> Option<String> {
    let field = format!("data.{name}");
    match data.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => errors.take(parse_text(&field, &field, s.trim(), max)),
        Some(_) => {
            errors.add(field, "must be a string");
            None
        }
    }
}

fn attachments(data: &Map<String, Value>, completed: bool, errors: &mut FieldErrors) -> Vec<StoredAttachment> {
    let items = match data.get("attachments") {
        None | Some(Value::Null) => return Vec::new(),
        Some(_) if !completed => {
            errors.add("data.attachments", "only document.completed carries attachments");
            return Vec::new();
        }
        Some(Value::Array(items)) => items,
        Some(_) => {
            errors.add("data.attachments", "must be an array");
            return Vec::new();
        }
    };
    if items.len() > MAX_ATTACHMENTS {
        errors.add("data.attachments", format!("must hold at most {MAX_ATTACHMENTS} files"));
        return Vec::new();
    }
    let mut out = Vec::with_capacity(items.len());
    let mut total = 0usize;
    for (i, item) in items.iter().enumerate() {
        let at = |name: &str| format!("data.attachments[{i}].{name}");
        let Some(item) = item.as_object() else {
            errors.add(format!("data.attachments[{i}]"), "must be an object {fileName, contentType?, content}");
            continue;
        };
        if item.keys().any(|k| !["fileName", "contentType", "content"].contains(&k.as_str())) {
            errors.add(
                format!("data.attachments[{i}]"),
                "has an unknown field (expected fileName, contentType, content)",
            );
            continue;
        }
        let file_name = match item.get("fileName") {
            Some(Value::String(n)) if !n.trim().is_empty() => {
                let n = n.trim();
                if n.chars().count() > MAX_TEXT || n.chars().any(|c| c.is_control() || matches!(c, '/' | '\\' | '"')) {
                    errors.add(
                        at("fileName"),
                        format!("must be at most {MAX_TEXT} characters, without control characters, quotes or slashes"),
                    );
                    None
                } else {
                    Some(n.to_owned())
                }
            }
            _ => {
                errors.add(at("fileName"), "is required");
                None
            }
        };
        let content_type = match item.get("contentType") {
            None | Some(Value::Null) => Some("application/octet-stream".to_owned()),
            Some(Value::String(t)) if t.len() <= 255 && t.parse::<lettre::message::header::ContentType>().is_ok() => {
                Some(t.trim().to_owned())
            }
            Some(_) => {
                errors.add(at("contentType"), "must be a MIME type such as application/pdf");
                None
            }
        };
        let content = match item.get("content") {
            Some(Value::String(c)) => match STANDARD.decode(c) {
                Ok(bytes) => {
                    total += bytes.len();
                    Some(c.clone())
                }
                Err(_) => {
                    errors.add(at("content"), "must be base64");
                    None
                }
            },
            _ => {
                errors.add(at("content"), "is required (base64)");
                None
            }
        };
        if let (Some(file_name), Some(content_type), Some(content)) = (file_name, content_type, content) {
            out.push(StoredAttachment { file_name, content_type, content });
        }
    }
    if total > MAX_ATTACHMENT_BYTES {
        errors.add("data.attachments", format!("must hold at most {} KiB in all", MAX_ATTACHMENT_BYTES / 1024));
    }
    out
}

/// Checks a `document.<name>` event: `senderIdentity` (an address) and the
/// `data` fields of [`DATA_FIELDS`]. Errors go to `errors`; `None` if any.
pub fn parse(
    name: &str,
    sender_identity: Option<&str>,
    data: &Map<String, Value>,
    errors: &mut FieldErrors,
) -> Option<DocumentEvent> {
    let (name, flag) = identities::DOCUMENT_EVENTS.iter().find(|(n, _)| *n == name).copied()?;
    let identity_email = match sender_identity {
        Some(e) => errors.take(parse_address("senderIdentity", "senderIdentity", e)),
        None => {
            errors.add("senderIdentity", "is required for document events (the sender identity's email address)");
            None
        }
    };
    for key in data.keys() {
        if !DATA_FIELDS.contains(&key.as_str()) {
            errors.add(format!("data.{key}"), format!("is not a known field (expected {})", DATA_FIELDS.join(", ")));
        }
    }
    let signer_email = text(data, "signerEmail", MAX_TEXT, errors)
        .and_then(|e| errors.take(parse_address("data.signerEmail", "data.signerEmail", &e)));
    let url = text(data, "documentUrl", MAX_URL, errors).and_then(|u| match url::Url::parse(&u) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Some(u),
        _ => {
            errors.add("data.documentUrl", "must be an absolute http or https URL");
            None
        }
    });
    let details = Details {
        document_id: text(data, "documentId", MAX_TEXT, errors),
        title: text(data, "documentTitle", MAX_TEXT, errors),
        signer_name: text(data, "signerName", MAX_TEXT, errors),
        signer_email,
        reason: text(data, "reason", MAX_REASON, errors),
        url,
    };
    let attachments = attachments(data, flag == Flag::Completed, errors);
    Some(DocumentEvent { name, flag, identity_email: identity_email?, details, attachments })
}

/// Whom a document event notifies: the identity's mail, or why nobody.
pub enum Routed {
    Mail(NewNotification),
    Suppressed(String),
}

/// Decides and renders a document event for `org` (contract §8).
pub async fn route(
    store: &Store,
    org: &OrgId,
    event: DocumentEvent,
    now: crate::clock::Millis,
) -> Result<Routed, Error> {
    let DocumentEvent { name, flag, identity_email, details, attachments } = event;
    let Some(identity) = store.identity_by_email(org, &identities::email_key(&identity_email)).await? else {
        return Ok(Routed::Suppressed("no sender identity of the organisation has this email address".into()));
    };
    if identity.status != Status::Approved {
        return Ok(Routed::Suppressed(format!("the sender identity is {}, not Approved", identity.status.as_str())));
    }
    if !identity.settings.get(flag) {
        return Ok(Routed::Suppressed(format!("the sender identity's notification setting {} is off", flag.name())));
    }
    let attach =
        flag == Flag::Completed && identity.settings.get(Flag::AttachSignedDocument) && !attachments.is_empty();
    let org_name = store.org_name(org).await?.unwrap_or_default();
    let Details { document_id, title, signer_name, signer_email, reason, url } = details;
    let ctx = minijinja::context! {
        event => name,
        org => org_name,
        name => &identity.name,
        title => title,
        document_id => document_id,
        signer_name => signer_name,
        signer_email => signer_email,
        reason => reason,
        url => url,
        attached => attach.then_some(attachments.len()),
        at => now.display_utc(),
    };
    let rendered = templates::render("document", &identity.locale, ctx)?;
    let stored =
        if attach { Some(serde_json::to_string(&attachments).map_err(|e| Error::Internal(e.into()))?) } else { None };
    Ok(Routed::Mail(NewNotification {
        id: uuid::Uuid::now_v7().to_string(),
        to_addr: identity.email,
        to_name: Some(identity.name),
        subject: rendered.subject,
        body_text: rendered.text,
        body_html: Some(rendered.html),
        locale: identity.locale,
        attachments: stored,
    }))
}

/// A file sent with a mail (checked when its event was accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAttachment {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The files of a claimed notification, ready for the mailer.
pub fn decode(stored: &str) -> Result<Vec<MailAttachment>, String> {
    let items: Vec<StoredAttachment> =
        serde_json::from_str(stored).map_err(|_| "the stored attachments could not be read".to_owned())?;
    items
        .into_iter()
        .map(|a| {
            let bytes = STANDARD.decode(&a.content).map_err(|_| "a stored attachment is not base64".to_owned())?;
            Ok(MailAttachment { file_name: a.file_name, content_type: a.content_type, bytes })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn document_events_check_their_fields() {
        let mut errors = FieldErrors::new();
        let d = data(
            json!({"documentTitle": "NDA", "signerEmail": "ada@example.com", "documentUrl": "https://x.example/d/1"}),
        );
        let ev = parse("signed", Some("luther@example.com"), &d, &mut errors).unwrap();
        assert!(errors.finish().is_ok());
        assert_eq!((ev.name, ev.flag), ("signed", Flag::Signed));
        assert_eq!(ev.details.title.as_deref(), Some("NDA"));

        let mut errors = FieldErrors::new();
        let d = data(json!({"documentTitle": "a\r\nBcc: x@y.z", "documentUrl": "javascript:alert(1)", "bogus": 1,
            "attachments": [{"fileName": "a.pdf", "content": "AAAA"}]}));
        assert!(parse("viewed", None, &d, &mut errors).is_none());
        let Err(Error::Invalid(fields)) = errors.finish() else { panic!() };
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        for expected in ["senderIdentity", "data.bogus", "data.documentTitle", "data.documentUrl", "data.attachments"] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
    }

    #[test]
    fn attachments_are_checked_and_round_trip() {
        let mut errors = FieldErrors::new();
        let d = data(
            json!({"attachments": [{"fileName": "signed.pdf", "contentType": "application/pdf", "content": STANDARD.encode(b"%PDF-1.7")}]}),
        );
        let ev = parse("completed", Some("l@example.com"), &d, &mut errors).unwrap();
        assert!(errors.finish().is_ok());
        let stored = serde_json::to_string(&ev.attachments).unwrap();
        let decoded = decode(&stored).unwrap();
        assert_eq!(decoded[0].bytes, b"%PDF-1.7");
        assert_eq!(decoded[0].content_type, "application/pdf");

        for bad in [
            json!({"attachments": [{"fileName": "../x", "content": "AAAA"}]}),
            json!({"attachments": [{"fileName": "x.pdf", "content": "not base64!"}]}),
            json!({"attachments": [{"fileName": "x.pdf", "contentType": "nope", "content": "AAAA"}]}),
            json!({"attachments": [{"content": "AAAA"}]}),
            json!({"attachments": "x"}),
            json!({"attachments": [{"fileName": "x.pdf", "content": STANDARD.encode(vec![0u8; MAX_ATTACHMENT_BYTES + 1])}]}),
        ] {
            let mut errors = FieldErrors::new();
            let _ = parse("completed", Some("l@example.com"), &data(bad.clone()), &mut errors);
            assert!(errors.finish().is_err(), "{bad}");
        }
    }
}
