//! Amazon SES: the v2 `SendEmail` API with `Content.Raw`, so the message
//! Herald built (Message-ID, attachments, every header) is sent unchanged.
//! Requests are signed with SigV4 by `aws-sigv4` (the AWS SDK's signer,
//! without the SDK) for service `ses`, and go through [`OutboundHttp`]
//! (host policy, no redirects). An endpoint override serves SES-compatible
//! services and emulators; without one the endpoint is
//! `https://email.<region>.amazonaws.com`.
//!
//! Outcome (see [`classify`]):
//! - 2xx: accepted, the response is SES's `MessageId`;
//! - throttling (429, `TooManyRequestsException`, `LimitExceededException`,
//!   `Throttling`) and 5xx: transient (`throttled` / `transient`);
//! - the account or its credentials (401/403, `AccessDenied…`,
//!   `InvalidSignature…`, `UnrecognizedClient…`, `SignatureDoesNotMatch`,
//!   `ExpiredToken`, …) and the sending setup (`AccountSuspendedException`,
//!   `SendingPausedException`, `MailFromDomainNotVerifiedException`,
//!   `NotFoundException`): transient (`auth` / `provider`): the message is
//!   fine, this provider is not, so another provider (or later) may work;
//! - anything else, chiefly `MessageRejected` and `BadRequestException`
//!   (a malformed or refused message): permanent.
//!
//! Errors never contain the secret access key (it only enters the signer).

use std::time::SystemTime;

use base64::Engine as _;

use super::http::OutboundHttp;
use super::mailer::Delivery;
use crate::secret::Secret;

/// The path of SES v2 `SendEmail`.
pub const SEND_EMAIL_PATH: &str = "/v2/email/outbound-emails";
/// How much of SES's answer is read.
const MAX_READ: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct SesSettings {
    /// `eu-west-1`.
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// `https://email.example.com` for an SES-compatible service; `None`
    /// for AWS.
    pub endpoint: Option<String>,
}

impl SesSettings {
    /// The URL `SendEmail` is POSTed to, or why there is none.
    pub fn send_url(&self) -> Result<String, String> {
        let region_ok = !self.region.is_empty()
            && self.region.len() <= 32
            && self.region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !region_ok {
            return Err("the SES region must look like eu-west-1".into());
        }
        let base = match &self.endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_owned(),
            None => format!("https://email.{}.amazonaws.com", self.region),
        };
        Ok(format!("{base}{SEND_EMAIL_PATH}"))
    }
}

/// Sends `raw` (the complete MIME message) with SES v2 SendEmail
/// (Content.Raw) from `from` to `to`.
pub async fn send(http: &OutboundHttp, settings: &SesSettings, from: &str, to: &[String], raw: &[u8]) -> Delivery {
    send_with_feedback(http, settings, from, None, to, raw).await
}

/// [`send`] with `FeedbackForwardingEmailAddress`: where SES mails the
/// bounces and complaints of this message (Herald's VERP address; SES
/// keeps its own MAIL FROM, so VERP reaches SES mail this way only).
pub async fn send_with_feedback(
    http: &OutboundHttp,
    settings: &SesSettings,
    from: &str,
    feedback: Option<&str>,
    to: &[String],
    raw: &[u8],
) -> Delivery {
    let url = match settings.send_url() {
        Ok(url) => url,
        Err(error) => return Delivery::Permanent { class: "config", error, response: None },
    };
    let mut body = serde_json::json!({
        "FromEmailAddress": from,
        "Destination": { "ToAddresses": to },
        "Content": { "Raw": { "Data": base64::engine::general_purpose::STANDARD.encode(raw) } },
    });
    if let Some(feedback) = feedback {
        body["FeedbackForwardingEmailAddress"] = serde_json::Value::String(feedback.to_owned());
    }
    let body = body.to_string().into_bytes();
    let signed = match sign(settings, &url, &body) {
        Ok(headers) => headers,
        Err(error) => return Delivery::Permanent { class: "config", error, response: None },
    };
    let mut request = match http.request(reqwest::Method::POST, &url) {
        Ok(r) => r,
        Err(f) => return Delivery::Permanent { class: f.class, error: f.message, response: None },
    };
    request = request.header("content-type", "application/json");
    for (name, value) in signed {
        request = request.header(name, value);
    }
    let mut response = match http.send(request.body(body)).await {
        Ok(r) => r,
        Err(f) if f.permanent => return Delivery::Permanent { class: f.class, error: f.message, response: None },
        Err(f) => return Delivery::Transient { class: f.class, error: f.message, response: None },
    };
    let status = response.status().as_u16();
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or_default().to_owned());
    let mut bytes = Vec::new();
    while bytes.len() < MAX_READ {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => {
                return Delivery::Transient {
                    class: "network",
                    error: "the connection to SES failed while reading its answer".into(),
                    response: None,
                };
            }
        }
    }
    classify(status, error_type.as_deref(), &bytes, settings)
}

/// The SigV4 headers (`authorization`, `x-amz-date`) for a POST of `body`
/// to `url` with content type JSON.
fn sign(settings: &SesSettings, url: &str, body: &[u8]) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;

    let identity = aws_credential_types::Credentials::new(
        settings.access_key_id.clone(),
        settings.secret_access_key.expose().to_owned(),
        None,
        None,
        "herald",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&settings.region)
        .name("ses")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| "the SES settings cannot sign a request".to_owned())?
        .into();
    let headers = [("content-type", "application/json")];
    let signable = SignableRequest::new("POST", url, headers.into_iter(), SignableBody::Bytes(body))
        .map_err(|_| "the SES endpoint is not a valid URL".to_owned())?;
    let (instructions, _) =
        sign(signable, &params).map_err(|_| "the SES request could not be signed".to_owned())?.into_parts();
    Ok(instructions.headers().map(|(n, v)| (n.to_owned(), v.to_owned())).collect())
}

/// The text of the first `<name>` element of an XML error body (AWS's
/// front end answers some authentication errors in the older XML shape).
fn xml_element<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].trim())
}

/// Sorts SES's answer (see the module comment). `error_type` is the
/// `x-amzn-ErrorType` header without its `:`-suffix; the body's `__type`,
/// `code` or `Code` (JSON, or XML `<Code>`) is used when the header is
/// missing.
pub fn classify(status: u16, error_type: Option<&str>, body: &[u8], settings: &SesSettings) -> Delivery {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = String::from_utf8_lossy(body);
    if (200..300).contains(&status) {
        return match json.get("MessageId").and_then(serde_json::Value::as_str) {
            Some(id) => Delivery::Accepted { response: clean(id, settings) },
            None => Delivery::Accepted { response: format!("HTTP {status}") },
        };
    }
    let kind = error_type
        .map(str::to_owned)
        .or_else(|| {
            ["__type", "code", "Code"]
                .iter()
                .find_map(|k| json.get(k).and_then(serde_json::Value::as_str))
                .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
        })
        .or_else(|| xml_element(&text, "Code").map(str::to_owned))
        .unwrap_or_default();
    let message = ["message", "Message"]
        .iter()
        .find_map(|k| json.get(k).and_then(serde_json::Value::as_str))
        .or_else(|| xml_element(&text, "Message"));
    let shown = clean(
        &match (kind.is_empty(), message) {
            (false, Some(m)) => format!("HTTP {status} {kind}: {m}"),
            (false, None) => format!("HTTP {status} {kind}"),
            (true, Some(m)) => format!("HTTP {status}: {m}"),
            (true, None) => format!("HTTP {status}"),
        },
        settings,
    );
    let throttled =
        status == 429 || matches!(kind.as_str(), "TooManyRequestsException" | "LimitExceededException" | "Throttling");
    let auth = matches!(status, 401 | 403)
        || kind.contains("AccessDenied")
        || kind.contains("InvalidSignature")
        || kind.contains("UnrecognizedClient")
        || kind.contains("InvalidClientTokenId")
        || kind.contains("SignatureDoesNotMatch")
        || kind.contains("ExpiredToken")
        || kind.contains("MissingAuthenticationToken")
        || kind.contains("IncompleteSignature");
    let provider = matches!(
        kind.as_str(),
        "AccountSuspendedException"
            | "SendingPausedException"
            | "MailFromDomainNotVerifiedException"
            | "NotFoundException"
    );
    let transient = |class: &'static str, what: &str| Delivery::Transient {
        class,
        error: format!("{what}: {shown}"),
        response: Some(shown.clone()),
    };
    if throttled {
        transient("throttled", "SES is throttling this account")
    } else if status >= 500 {
        transient("transient", "SES failed")
    } else if auth {
        transient("auth", "SES refused the credentials")
    } else if provider {
        transient("provider", "SES cannot send for this account now")
    } else {
        Delivery::Permanent {
            class: "permanent",
            error: format!("SES refused the message: {shown}"),
            response: Some(shown),
        }
    }
}

/// One line of at most 300 characters, never the secret key.
fn clean(text: &str, settings: &SesSettings) -> String {
    let secret = settings.secret_access_key.expose();
    let text = if secret.is_empty() { text.to_owned() } else { text.replace(secret, "***") };
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SesSettings {
        SesSettings {
            region: "eu-west-1".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("canary-ses-secret"),
            endpoint: None,
        }
    }

    #[test]
    fn the_default_endpoint_is_regional_and_regions_are_checked() {
        assert_eq!(settings().send_url().unwrap(), "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails");
        for bad in ["", "eu-west-1.evil.com/x", "EU", "a b"] {
            assert!(SesSettings { region: bad.into(), ..settings() }.send_url().is_err(), "{bad}");
        }
        let custom = SesSettings { endpoint: Some("http://127.0.0.1:4566/".into()), ..settings() };
        assert_eq!(custom.send_url().unwrap(), "http://127.0.0.1:4566/v2/email/outbound-emails");
    }

    #[test]
    fn answers_are_classified() {
        let s = settings();
        let ok = classify(200, None, br#"{"MessageId":"0100-abc"}"#, &s);
        assert_eq!(ok, Delivery::Accepted { response: "0100-abc".into() });
        let cases: [(u16, Option<&str>, &str, &str); 8] = [
            (429, Some("TooManyRequestsException"), r#"{"message":"slow down"}"#, "throttled"),
            (400, None, r#"{"__type":"com.amazon#LimitExceededException"}"#, "throttled"),
            (503, None, "", "transient"),
            (403, Some("UnrecognizedClientException"), r#"{"message":"bad key"}"#, "auth"),
            (400, Some("SignatureDoesNotMatch"), "", "auth"),
            (400, Some("MailFromDomainNotVerifiedException"), "", "provider"),
            (400, Some("MessageRejected"), r#"{"message":"Email address is not verified."}"#, "permanent"),
            (400, Some("BadRequestException:http://internal.amazon.com/"), "", "permanent"),
        ];
        for (status, kind, body, class) in cases {
            let kind = kind.map(|k| k.split(':').next().unwrap());
            match classify(status, kind, body.as_bytes(), &s) {
                Delivery::Transient { class: c, .. } | Delivery::Permanent { class: c, .. } => {
                    assert_eq!(c, class, "{status} {kind:?}")
                }
                other => panic!("{other:?}"),
            }
        }
        let xml =
            b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error></ErrorResponse>";
        let Delivery::Transient { class: "auth", error, .. } = classify(403, None, xml, &s) else { panic!() };
        assert!(error.ends_with("HTTP 403 SignatureDoesNotMatch: no"), "{error}");
        let echoed = classify(403, None, br#"{"message":"key canary-ses-secret"}"#, &s).error_text();
        assert!(!echoed.contains("canary"), "{echoed}");
    }

    #[test]
    fn signing_adds_sigv4_headers_without_the_secret() {
        let url = settings().send_url().unwrap();
        let headers = sign(&settings(), &url, b"{}").unwrap();
        let auth = headers.iter().find(|(n, _)| n == "authorization").map(|(_, v)| v.as_str()).unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "{auth}");
        assert!(auth.contains("/eu-west-1/ses/aws4_request"), "{auth}");
        assert!(headers.iter().any(|(n, _)| n == "x-amz-date"));
        assert!(!format!("{headers:?}").contains("canary"));
    }
}
