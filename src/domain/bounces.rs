//! Bounces and complaints (issue 18): VERP envelope senders and the parser
//! that turns a bounce or complaint into [`Feedback`].
//!
//! **VERP.** When an org has a bounce domain, each notification's SMTP
//! envelope sender (MAIL FROM, not the From header) is
//! `bounces+<notification id>.<tag>@<bounce domain>`: the id is the UUID
//! without hyphens (so the local part stays within the 64 octets of RFC
//! 5321) and the tag is an HMAC under a key derived from
//! `HERALD_SECRET_KEY` ([`Cipher::verp_tag`]). Only Herald can make a valid
//! address, so a bounce naming one is for that notification and nobody
//! can make Herald suppress an address by mailing a guessed one.
//!
//! **Parsing.** One function for every adapter (HTTP intake, the inbound
//! SMTP listener): [`parse_message`] for RFC 3464 delivery status
//! notifications and RFC 5965 abuse reports (MIME parsed by `mail-parser`),
//! [`parse_ses`] for Amazon SES bounce/complaint notifications (the SNS
//! envelope or the bare notification). The notification is found from a
//! signed VERP address anywhere in the report (the report's `To`,
//! `X-Original-To`, `Delivered-To`, Postfix's `X-Postfix-Sender`, ARF's
//! `Original-Mail-From`, the returned message's `Return-Path`, SES's
//! `mail.source`), else from the returned message's `Message-ID`
//! (`<notification id@HERALD domain>`, see `delivery::mailer::build`), which
//! is not signed and therefore only trusted inside the reporting org.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde_json::Value;

use crate::crypto::Cipher;

/// The local part before the `+` of a VERP address.
pub const VERP_PREFIX: &str = "bounces+";

/// The largest report accepted (HTTP body or SMTP DATA): DSNs return at
/// most the original's headers or a truncated copy; 1000 KiB is ample. A
/// little under the HTTP layer's 1 MiB drain limit, so an oversized HTTP
/// body is still read whole and answered 413 (not reset mid-upload).
pub const MAX_REPORT_BYTES: usize = 1000 * 1024;

/// The VERP envelope sender for notification `id` under `domain`.
pub fn verp_address(cipher: &Cipher, id: &str, domain: &str) -> String {
    let compact = uuid::Uuid::parse_str(id).map(|u| u.simple().to_string()).unwrap_or_else(|_| id.to_owned());
    format!("{VERP_PREFIX}{compact}.{}@{domain}", cipher.verp_tag(id))
}

/// The notification id of a validly signed VERP address (`<…>` and any
/// case accepted; the domain is not checked, the signature is what counts),
/// or `None` for anything else: forged, altered or not a VERP address.
pub fn verp_notification(cipher: &Cipher, address: &str) -> Option<String> {
    let address = address.trim().trim_start_matches('<').trim_end_matches('>');
    let (local, _domain) = address.rsplit_once('@')?;
    // `get`, not indexing: a hostile local part may put a multi-byte
    // character across the prefix's end.
    if !local.get(..VERP_PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(VERP_PREFIX)) {
        return None;
    }
    let (compact, tag) = local.get(VERP_PREFIX.len()..)?.rsplit_once('.')?;
    let id = uuid::Uuid::try_parse(compact).ok()?.hyphenated().to_string();
    cipher.verify_verp_tag(&id, tag).then_some(id)
}

/// What a report says happened to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Permanent failure (status 5.x.x, SES `Permanent`): suppress.
    HardBounce,
    /// Temporary failure or delay (4.x.x, SES `Transient`/`Undetermined`):
    /// recorded only.
    SoftBounce,
    /// The recipient reported the mail as abuse (ARF, SES complaint).
    Complaint,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::HardBounce => "hard_bounce",
            Kind::SoftBounce => "soft_bounce",
            Kind::Complaint => "complaint",
        }
    }
}

/// How the report names the notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationRef {
    /// A validly signed VERP address: proven to be Herald's.
    Verp(String),
    /// The returned message's Message-ID: not signed; only to be looked up
    /// within the org that sent the report.
    MessageId(String),
}

impl NotificationRef {
    pub fn id(&self) -> &str {
        match self {
            NotificationRef::Verp(id) | NotificationRef::MessageId(id) => id,
        }
    }
}

/// One recipient's outcome from a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback {
    pub kind: Kind,
    /// The failed or complaining address, when the report names one.
    pub recipient: Option<String>,
    /// The RFC 3463 status (`5.1.1`), the ARF feedback type, or SES's
    /// bounce type/subtype.
    pub status: Option<String>,
    /// The remote server's diagnostic text, at most 1000 characters.
    pub diagnostic: Option<String>,
    pub notification: Option<NotificationRef>,
}

/// Why a report was refused (a 4xx for the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the report is empty")]
    Empty,
    #[error("the report is larger than {MAX_REPORT_BYTES} bytes")]
    TooLarge,
    #[error("not a bounce or complaint: {0}")]
    NotAReport(&'static str),
}

const MAX_DIAGNOSTIC: usize = 1000;

/// Parses a raw mail: an RFC 3464 DSN (`multipart/report;
/// report-type=delivery-status`) or an RFC 5965 feedback report
/// (`report-type=feedback-report`), or a bare `message/delivery-status` /
/// `message/feedback-report` body. `domain` is Herald's Message-ID domain.
pub fn parse_message(cipher: &Cipher, domain: &str, raw: &[u8]) -> Result<Vec<Feedback>, ParseError> {
    check_size(raw)?;
    let notification = find_verp(cipher, raw).map(NotificationRef::Verp);
    let message = MessageParser::default().parse(raw);
    let mut status_fields: Vec<Vec<(String, String)>> = Vec::new();
    let mut feedback_fields: Option<Vec<(String, String)>> = None;
    let mut message_id: Option<String> = None;
    let mut original_to: Option<String> = None;
    if let Some(message) = &message {
        for part in &message.parts {
            let (ctype, subtype) = match part.content_type() {
                Some(ct) => (ct.ctype().to_ascii_lowercase(), ct.subtype().unwrap_or("").to_ascii_lowercase()),
                None => continue,
            };
            match (ctype.as_str(), subtype.as_str()) {
                ("message", "delivery-status" | "global-delivery-status") => {
                    status_fields = field_groups(part.contents());
                }
                ("message", "feedback-report") => {
                    feedback_fields = field_groups(part.contents()).into_iter().next();
                }
                ("text", "rfc822-headers") | ("message", "rfc822-headers") => {
                    if let Some(original) = MessageParser::default().parse_headers(part.contents()) {
                        message_id = message_id.or_else(|| original.message_id().map(str::to_owned));
                        original_to = original_to.or_else(|| first_address(original.to()));
                    }
                }
                _ => {
                    if let PartType::Message(original) = &part.body {
                        message_id = message_id.or_else(|| original.message_id().map(str::to_owned));
                        original_to = original_to.or_else(|| first_address(original.to()));
                    }
                }
            }
        }
    }
    // A bare report body posted on its own (no MIME wrapper).
    if status_fields.is_empty() && feedback_fields.is_none() {
        let groups = field_groups(raw);
        if groups.iter().any(|g| has(g, "feedback-type")) {
            feedback_fields = groups.into_iter().next();
        } else if groups.iter().any(|g| has(g, "action") && has(g, "status")) {
            status_fields = groups;
        }
    }
    let notification = notification
        .or_else(|| message_id.as_deref().and_then(|m| herald_message_id(m, domain)).map(NotificationRef::MessageId));

    if let Some(fields) = feedback_fields {
        let feedback_type = get(&fields, "feedback-type").unwrap_or("other").to_ascii_lowercase();
        if feedback_type == "not-spam" {
            return Ok(Vec::new());
        }
        let recipient = get(&fields, "original-rcpt-to")
            .or_else(|| get(&fields, "removal-recipient"))
            .map(strip_address)
            .or(original_to);
        return Ok(vec![Feedback {
            kind: Kind::Complaint,
            recipient,
            status: Some(feedback_type),
            diagnostic: None,
            notification,
        }]);
    }
    if status_fields.is_empty() {
        return Err(ParseError::NotAReport("neither a delivery status notification nor a feedback report"));
    }
    let mut out = Vec::new();
    for group in &status_fields {
        let (Some(action), status) = (get(group, "action"), get(group, "status")) else {
            continue; // the per-message group, or a malformed one
        };
        let action = action.to_ascii_lowercase();
        let status = status.map(|s| s.split_whitespace().next().unwrap_or("").to_owned());
        let kind = match (action.as_str(), status.as_deref().and_then(|s| s.chars().next())) {
            ("failed", Some('5')) => Kind::HardBounce,
            ("failed", _) | ("delayed", _) => Kind::SoftBounce,
            _ => continue, // delivered, relayed, expanded: not a failure
        };
        let recipient = get(group, "final-recipient").or_else(|| get(group, "original-recipient")).map(strip_address);
        let diagnostic = get(group, "diagnostic-code").map(|d| {
            let text = d.split_once(';').map_or(d, |(_, t)| t).trim();
            text.chars().take(MAX_DIAGNOSTIC).collect()
        });
        out.push(Feedback { kind, recipient, status, diagnostic, notification: notification.clone() });
    }
    Ok(out)
}

/// Parses an Amazon SES notification: the SNS envelope (`Type:
/// "Notification"` with the notification JSON in `Message`) or the bare
/// notification (`notificationType` or `eventType` of `Bounce`/`Complaint`).
pub fn parse_ses(cipher: &Cipher, domain: &str, raw: &[u8]) -> Result<Vec<Feedback>, ParseError> {
    check_size(raw)?;
    let outer: Value = serde_json::from_slice(raw).map_err(|_| ParseError::NotAReport("the body is not JSON"))?;
    let notification: Value = match outer.get("Type").and_then(Value::as_str) {
        Some("Notification") => {
            let inner = outer.get("Message").and_then(Value::as_str).ok_or(ParseError::NotAReport("no Message"))?;
            serde_json::from_str(inner).map_err(|_| ParseError::NotAReport("Message is not JSON"))?
        }
        Some(_) => return Err(ParseError::NotAReport("only SNS Notification messages are accepted")),
        None => outer,
    };
    let kind = notification.get("notificationType").or_else(|| notification.get("eventType")).and_then(Value::as_str);
    let mail = notification.get("mail");
    let source = mail.and_then(|m| m.get("source")).and_then(Value::as_str);
    let mut reference = source.and_then(|s| verp_notification(cipher, s)).map(NotificationRef::Verp);
    if reference.is_none() {
        let headers = mail.and_then(|m| m.get("headers")).and_then(Value::as_array);
        for header in headers.into_iter().flatten() {
            let name = header.get("name").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
            let value = header.get("value").and_then(Value::as_str).unwrap_or("");
            if name == "return-path" {
                reference = reference.or_else(|| verp_notification(cipher, value).map(NotificationRef::Verp));
            } else if name == "message-id" && reference.is_none() {
                let id = value.trim().trim_start_matches('<').trim_end_matches('>');
                reference = herald_message_id(id, domain).map(NotificationRef::MessageId);
            }
        }
    }
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let mut out = Vec::new();
    match kind {
        Some("Bounce") => {
            let bounce = notification.get("bounce").ok_or(ParseError::NotAReport("no bounce object"))?;
            let hard = bounce.get("bounceType").and_then(Value::as_str) == Some("Permanent");
            let kind = if hard { Kind::HardBounce } else { Kind::SoftBounce };
            for r in bounce.get("bouncedRecipients").and_then(Value::as_array).into_iter().flatten() {
                out.push(Feedback {
                    kind,
                    recipient: text(r.get("emailAddress")).map(|a| strip_address(&a)),
                    status: text(r.get("status")).or_else(|| text(bounce.get("bounceSubType"))),
                    diagnostic: text(r.get("diagnosticCode")).map(|d| d.chars().take(MAX_DIAGNOSTIC).collect()),
                    notification: reference.clone(),
                });
            }
        }
        Some("Complaint") => {
            let complaint = notification.get("complaint").ok_or(ParseError::NotAReport("no complaint object"))?;
            if complaint.get("complaintFeedbackType").and_then(Value::as_str) == Some("not-spam") {
                return Ok(Vec::new());
            }
            for r in complaint.get("complainedRecipients").and_then(Value::as_array).into_iter().flatten() {
                out.push(Feedback {
                    kind: Kind::Complaint,
                    recipient: text(r.get("emailAddress")).map(|a| strip_address(&a)),
                    status: text(complaint.get("complaintFeedbackType")),
                    diagnostic: None,
                    notification: reference.clone(),
                });
            }
        }
        _ => return Err(ParseError::NotAReport("notificationType is not Bounce or Complaint")),
    }
    Ok(out)
}

fn check_size(raw: &[u8]) -> Result<(), ParseError> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    if raw.len() > MAX_REPORT_BYTES {
        return Err(ParseError::TooLarge);
    }
    Ok(())
}

/// The first validly signed VERP address anywhere in `raw`: the report's
/// headers, the DSN fields, the returned message. Forged ones are skipped.
fn find_verp(cipher: &Cipher, raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(pos) = lower[from..].find(VERP_PREFIX) {
        let start = from + pos;
        let end = lower[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '>' | '<' | ';' | '"' | ',' | ')' | '('))
            .map_or(lower.len(), |e| start + e);
        if let Some(id) = verp_notification(cipher, &lower[start..end]) {
            return Some(id);
        }
        from = start + VERP_PREFIX.len();
    }
    None
}

/// The notification id in a Message-ID Herald made (`<uuid@domain>`).
fn herald_message_id(message_id: &str, domain: &str) -> Option<String> {
    let (id, host) = message_id.trim().trim_start_matches('<').trim_end_matches('>').split_once('@')?;
    if !host.eq_ignore_ascii_case(domain) {
        return None;
    }
    uuid::Uuid::try_parse(id).ok().map(|u| u.hyphenated().to_string())
}

fn first_address(address: Option<&mail_parser::Address<'_>>) -> Option<String> {
    address?.first()?.address().map(|a| a.to_ascii_lowercase())
}

/// `rfc822; <Ada@Example.com>` → `ada@example.com`.
fn strip_address(value: &str) -> String {
    let value = value.split_once(';').map_or(value, |(_, a)| a);
    value.trim().trim_start_matches('<').trim_end_matches('>').trim().to_ascii_lowercase()
}

/// RFC 3464 / 5965 report fields: groups of `Name: value` lines separated
/// by blank lines, continuation lines folded in. Names are lower-cased.
fn field_groups(body: &[u8]) -> Vec<Vec<(String, String)>> {
    let text = String::from_utf8_lossy(body);
    let mut groups = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                groups.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

fn get<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn has(fields: &[(String, String)], name: &str) -> bool {
    get(fields, name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::from_key(&[7u8; 32]).unwrap()
    }

    const ID: &str = "01938a5e-7c2b-7d4e-9f00-123456789abc";

    #[test]
    fn verp_round_trip_fits_a_local_part_and_survives_case_folding() {
        let c = cipher();
        let address = verp_address(&c, ID, "bounces.example.com");
        let local = address.split('@').next().unwrap();
        assert!(local.len() <= 64, "{local}");
        assert_eq!(verp_notification(&c, &address).as_deref(), Some(ID));
        assert_eq!(verp_notification(&c, &address.to_ascii_uppercase()).as_deref(), Some(ID));
        assert_eq!(verp_notification(&c, &format!("<{address}>")).as_deref(), Some(ID));
    }

    #[test]
    fn forged_or_altered_verp_addresses_are_refused() {
        let c = cipher();
        let address = verp_address(&c, ID, "b.example");
        // another key
        assert_eq!(verp_notification(&Cipher::from_key(&[8u8; 32]).unwrap(), &address), None);
        // another id with the same tag
        let other = address.replacen("01938a5e", "01938a5f", 1);
        assert_eq!(verp_notification(&c, &other), None);
        // a changed tag, a short tag, no tag, junk
        let mut tampered = address.clone().into_bytes();
        let at = address.find('@').unwrap();
        tampered[at - 1] = if tampered[at - 1] == b'0' { b'1' } else { b'0' };
        assert_eq!(verp_notification(&c, std::str::from_utf8(&tampered).unwrap()), None);
        assert_eq!(verp_notification(&c, &address.replacen('.', ".00", 1)), None);
        assert_eq!(verp_notification(&c, "bounces+01938a5e7c2b7d4e9f00123456789abc@b.example"), None);
        assert_eq!(verp_notification(&c, "bounces+@b.example"), None);
        assert_eq!(verp_notification(&c, "ada@example.com"), None);
        assert_eq!(verp_notification(&c, "bounces+é.é@x"), None);
        assert_eq!(verp_notification(&c, "bouncesé+0.0@x"), None);
        assert_eq!(verp_notification(&c, "bounceé@x"), None);
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/fixtures/bounces/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn rfc5965_example_is_a_complaint_for_the_reported_recipient() {
        let out = parse_message(&cipher(), "herald.test", &fixture("rfc5965-example.eml")).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::Complaint);
        assert_eq!(out[0].status.as_deref(), Some("abuse"));
        assert_eq!(out[0].recipient.as_deref(), Some("user@example.com"));
        // The RFC's mail is not Herald's: no notification is named.
        assert_eq!(out[0].notification, None);
    }

    #[test]
    fn an_arf_report_of_herald_mail_names_the_notification_by_its_verp_sender() {
        let c = cipher();
        let raw = String::from_utf8(fixture("rfc5965-example.eml")).unwrap().replace(
            "Original-Mail-From: <somespammer@example.net>",
            &format!("Original-Mail-From: <{}>", verp_address(&c, ID, "b.example")),
        );
        let out = parse_message(&c, "herald.test", raw.as_bytes()).unwrap();
        assert_eq!(out[0].notification, Some(NotificationRef::Verp(ID.to_owned())));
    }

    #[test]
    fn a_real_postfix_bounce_is_a_hard_bounce_of_the_signed_notification() {
        let out = parse_message(&cipher(), "herald.test", &fixture("postfix-unknown-user.eml")).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::HardBounce);
        assert_eq!(out[0].recipient.as_deref(), Some("nosuchuser@localhost"));
        assert_eq!(out[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(out[0].diagnostic.as_deref(), Some("unknown user: \"nosuchuser\""));
        assert_eq!(out[0].notification, Some(NotificationRef::Verp(ID.to_owned())));
        // Under another key the VERP address is not ours; only the (unsigned)
        // Message-ID still names the notification.
        let other = Cipher::from_key(&[9u8; 32]).unwrap();
        let out = parse_message(&other, "herald.test", &fixture("postfix-unknown-user.eml")).unwrap();
        assert_eq!(out[0].notification, Some(NotificationRef::MessageId(ID.to_owned())));
    }

    #[test]
    fn dsn_status_classes_and_message_id_fallback() {
        let c = cipher();
        let dsn = |action: &str, status: &str| {
            format!(
                "From: MAILER-DAEMON@mx.example\r\nTo: someone@example.org\r\nSubject: failure\r\nMIME-Version: 1.0\r\n\
                 Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n\
                 --b1\r\nContent-Type: text/plain\r\n\r\nIt failed.\r\n\
                 --b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n\
                 Final-Recipient: rfc822; Ada@Example.com\r\nAction: {action}\r\nStatus: {status}\r\n\
                 Diagnostic-Code: smtp; 550 5.1.1 <ada@example.com>: Recipient address rejected\r\n\r\n\
                 --b1\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{ID}@herald.test>\r\nTo: ada@example.com\r\n\r\n\
                 --b1--\r\n"
            )
        };
        let hard = parse_message(&c, "herald.test", dsn("failed", "5.1.1").as_bytes()).unwrap();
        assert_eq!(hard.len(), 1);
        assert_eq!(hard[0].kind, Kind::HardBounce);
        assert_eq!(hard[0].recipient.as_deref(), Some("ada@example.com"));
        assert_eq!(hard[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(hard[0].notification, Some(NotificationRef::MessageId(ID.to_owned())));
        assert!(hard[0].diagnostic.as_deref().unwrap().starts_with("550 5.1.1"));
        let soft = parse_message(&c, "herald.test", dsn("delayed", "4.4.1").as_bytes()).unwrap();
        assert_eq!(soft[0].kind, Kind::SoftBounce);
        let failed_4xx = parse_message(&c, "herald.test", dsn("failed", "4.2.2").as_bytes()).unwrap();
        assert_eq!(failed_4xx[0].kind, Kind::SoftBounce);
        assert!(parse_message(&c, "herald.test", dsn("delivered", "2.0.0").as_bytes()).unwrap().is_empty());
        // Another domain's Message-ID is not Herald's.
        let other = parse_message(&c, "other.test", dsn("failed", "5.1.1").as_bytes()).unwrap();
        assert_eq!(other[0].notification, None);
    }

    #[test]
    fn malformed_and_oversized_input_is_refused() {
        let c = cipher();
        assert_eq!(parse_message(&c, "d", b""), Err(ParseError::Empty));
        assert_eq!(parse_message(&c, "d", b"  \r\n"), Err(ParseError::Empty));
        assert!(matches!(parse_message(&c, "d", b"Subject: hi\r\n\r\nhello"), Err(ParseError::NotAReport(_))));
        assert!(matches!(parse_message(&c, "d", &[0xff; 300]), Err(ParseError::NotAReport(_))));
        assert_eq!(parse_message(&c, "d", &vec![b'a'; MAX_REPORT_BYTES + 1]), Err(ParseError::TooLarge));
        assert!(matches!(parse_ses(&c, "d", b"{"), Err(ParseError::NotAReport(_))));
        assert!(matches!(parse_ses(&c, "d", b"[1,2]"), Err(ParseError::NotAReport(_))));
        assert!(matches!(
            parse_ses(&c, "d", br#"{"Type":"SubscriptionConfirmation"}"#),
            Err(ParseError::NotAReport(_))
        ));
    }

    #[test]
    fn ses_bounce_in_an_sns_envelope_and_a_bare_complaint() {
        let c = cipher();
        let source = verp_address(&c, ID, "b.example");
        let bounce = serde_json::json!({
            "notificationType": "Bounce",
            "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": "Ada@Example.com", "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
            "mail": {"source": source, "messageId": "0100018c-ses-id"}
        });
        let envelope = serde_json::json!({"Type": "Notification", "Message": bounce.to_string()});
        let out = parse_ses(&c, "herald.test", envelope.to_string().as_bytes()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].kind, Kind::HardBounce);
        assert_eq!(out[0].recipient.as_deref(), Some("ada@example.com"));
        assert_eq!(out[0].notification, Some(NotificationRef::Verp(ID.to_owned())));

        let complaint = serde_json::json!({
            "notificationType": "Complaint",
            "complaint": {"complainedRecipients": [{"emailAddress": "bob@example.com"}], "complaintFeedbackType": "abuse"},
            "mail": {"source": "herald@example.com", "headers": [{"name": "Message-ID", "value": format!("<{ID}@herald.test>")}]}
        });
        let out = parse_ses(&c, "herald.test", complaint.to_string().as_bytes()).unwrap();
        assert_eq!(out[0].kind, Kind::Complaint);
        assert_eq!(out[0].notification, Some(NotificationRef::MessageId(ID.to_owned())));

        let transient = serde_json::json!({"eventType": "Bounce", "bounce": {"bounceType": "Transient",
            "bouncedRecipients": [{"emailAddress": "c@example.com"}]}, "mail": {"source": "x@y"}});
        let out = parse_ses(&c, "herald.test", transient.to_string().as_bytes()).unwrap();
        assert_eq!(out[0].kind, Kind::SoftBounce);
        assert_eq!(out[0].notification, None);
    }
}
