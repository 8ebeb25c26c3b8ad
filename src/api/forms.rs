//! What HTML forms served by Herald share (the approval page and the
//! console): random CSRF values, cookies, and the cross-site check.
//!
//! CSRF protection is a double-submit cookie (`SameSite=Strict`, `HttpOnly`)
//! whose value the form repeats, plus the browser's own word on where the
//! request came from (`Sec-Fetch-Site`, else `Origin` against `Host`).

use axum::http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

pub use crate::crypto::{is_token_value, random_token};

/// The value of cookie `name`, if the request has one.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// True when the browser says the request came from another site: the
/// Fetch Metadata header where the browser sends it, else `Origin` against
/// the `Host` the request was sent to.
pub fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (text("origin"), text("host")) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, authority)| authority) != Some(host),
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Whether the body is an urlencoded form.
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// Whether a form's CSRF value matches its cookie (constant time), and the
/// request is not cross-site.
pub fn csrf_ok(headers: &HeaderMap, cookie_name: &str, form_value: Option<&str>) -> bool {
    let cookie = cookie(headers, cookie_name);
    let matches = match (form_value, cookie.as_deref()) {
        (Some(form), Some(cookie)) => !cookie.is_empty() && bool::from(form.as_bytes().ct_eq(cookie.as_bytes())),
        _ => false,
    };
    matches && !cross_site(headers)
}

/// A `Set-Cookie` value: `HttpOnly; SameSite=Strict`, `Secure` when the
/// public URL is https.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, secure: bool) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_site_requests_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!cross_site(&h), "no header: a client without fetch metadata");
        h.insert("host", "herald.example:8080".parse().unwrap());
        h.insert("origin", "http://herald.example:8080".parse().unwrap());
        assert!(!cross_site(&h));
        h.insert("origin", "https://evil.example".parse().unwrap());
        assert!(cross_site(&h));
        h.insert("origin", "null".parse().unwrap());
        assert!(cross_site(&h));
        h.insert("sec-fetch-site", "same-origin".parse().unwrap());
        assert!(!cross_site(&h), "fetch metadata decides where the browser sends it");
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(cross_site(&h));
        h.insert("sec-fetch-site", "same-site".parse().unwrap());
        assert!(cross_site(&h), "a sibling subdomain is another origin");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; herald_csrf=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&h, "herald_csrf").as_deref(), Some("xyz"));
        assert_eq!(cookie(&HeaderMap::new(), "herald_csrf"), None);
        assert!(is_token_value(&random_token()) && !is_token_value("xyz"));
    }

    #[test]
    fn csrf_needs_the_cookie_and_the_same_value() {
        let mut h = HeaderMap::new();
        assert!(!csrf_ok(&h, "c", Some("v")));
        h.insert(header::COOKIE, "c=v".parse().unwrap());
        assert!(csrf_ok(&h, "c", Some("v")));
        assert!(!csrf_ok(&h, "c", Some("w")));
        assert!(!csrf_ok(&h, "c", None));
        h.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!csrf_ok(&h, "c", Some("v")));
    }
}
