//! Sender identities' values (contract §7): the identity, its status, the
//! twelve notification flags and their defaults, and the parsing of every
//! field a request sends (lengths, locales, redirect URLs, the MetaData
//! merge). No storage, no mail: [`super`] does the operations.

use std::collections::BTreeMap;

use crate::clock::Millis;
use crate::domain::smtp::parse_address;
use crate::domain::users::LOCALES;
use crate::error::{Error, FieldError, FieldErrors};

// Lengths as in BoldSign's published OpenAPI (the `boldsign` SDKs 3.2.0:
// `Name` 0–80, `Email` 0–250; `BrandId`, `RedirectUrl` and `MetaData` have
// none, so only the body limit bounds them).
pub const NAME_MAX: usize = 80;
pub const EMAIL_MAX: usize = 250;
/// Herald's own bound: MetaData merges across updates, so without one an
/// identity's metadata could grow without end.
pub const META_KEYS_MAX: usize = 50;
pub const PAGE_SIZE_MAX: u32 = 100;
pub const PAGE_SIZE_DEFAULT: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "Pending",
            Status::Approved => "Approved",
            Status::Denied => "Denied",
            Status::Revoked => "Revoked",
        }
    }

    pub fn parse(raw: &str) -> Option<Status> {
        [Status::Pending, Status::Approved, Status::Denied, Status::Revoked].into_iter().find(|s| s.as_str() == raw)
    }
}

/// The twelve notification settings of contract §7, in BoldSign's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    Viewed,
    Sent,
    DeliveryFailed,
    Declined,
    Revoked,
    Reassigned,
    Completed,
    Signed,
    Expired,
    AuthenticationFailed,
    Reminders,
    AttachSignedDocument,
}

impl Flag {
    pub const ALL: [Flag; 12] = [
        Flag::Viewed,
        Flag::Sent,
        Flag::DeliveryFailed,
        Flag::Declined,
        Flag::Revoked,
        Flag::Reassigned,
        Flag::Completed,
        Flag::Signed,
        Flag::Expired,
        Flag::AuthenticationFailed,
        Flag::Reminders,
        Flag::AttachSignedDocument,
    ];

    /// The name BoldSign's documents use (`DeliveryFailed`).
    pub fn name(self) -> &'static str {
        match self {
            Flag::Viewed => "Viewed",
            Flag::Sent => "Sent",
            Flag::DeliveryFailed => "DeliveryFailed",
            Flag::Declined => "Declined",
            Flag::Revoked => "Revoked",
            Flag::Reassigned => "Reassigned",
            Flag::Completed => "Completed",
            Flag::Signed => "Signed",
            Flag::Expired => "Expired",
            Flag::AuthenticationFailed => "AuthenticationFailed",
            Flag::Reminders => "Reminders",
            Flag::AttachSignedDocument => "AttachSignedDocument",
        }
    }

    /// Contract §7: everything on but Sent and AttachSignedDocument.
    pub fn default_value(self) -> bool {
        !matches!(self, Flag::Sent | Flag::AttachSignedDocument)
    }

    fn index(self) -> usize {
        Flag::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }

    /// The flag a request names, ignoring case. `DeliveryFailedFor` is the
    /// spelling of some of BoldSign's own examples.
    pub fn parse(raw: &str) -> Option<Flag> {
        if raw.eq_ignore_ascii_case("DeliveryFailedFor") {
            return Some(Flag::DeliveryFailed);
        }
        Flag::ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(raw))
    }
}

/// The document events of contract §8 (`document.<name>`) and the flag that
/// lets each through.
pub const DOCUMENT_EVENTS: [(&str, Flag); 11] = [
    ("viewed", Flag::Viewed),
    ("sent", Flag::Sent),
    ("delivery_failed", Flag::DeliveryFailed),
    ("declined", Flag::Declined),
    ("revoked", Flag::Revoked),
    ("reassigned", Flag::Reassigned),
    ("completed", Flag::Completed),
    ("signed", Flag::Signed),
    ("expired", Flag::Expired),
    ("authentication_failed", Flag::AuthenticationFailed),
    ("reminder", Flag::Reminders),
];

/// The flag of document event `name` (`viewed`, `delivery_failed`, …).
pub fn flag_of_event(name: &str) -> Option<Flag> {
    DOCUMENT_EVENTS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// An identity's twelve flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotificationSettings([bool; 12]);

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings(Flag::ALL.map(Flag::default_value))
    }
}

/// Flags a request sets; `None` keeps the current value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettingsPatch(pub [Option<bool>; 12]);

impl SettingsPatch {
    pub fn set(&mut self, flag: Flag, on: bool) {
        self.0[flag.index()] = Some(on);
    }
}

impl NotificationSettings {
    pub fn get(&self, flag: Flag) -> bool {
        self.0[flag.index()]
    }

    pub fn apply(&mut self, patch: &SettingsPatch) {
        for (value, change) in self.0.iter_mut().zip(patch.0) {
            if let Some(on) = change {
                *value = on;
            }
        }
    }

    /// Stored form: a JSON object of the flags by name.
    pub fn to_json(&self) -> String {
        let map: BTreeMap<&str, bool> = Flag::ALL.iter().map(|f| (f.name(), self.get(*f))).collect();
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads the stored form; a flag missing from it has its default.
    pub fn from_json(raw: &str) -> anyhow::Result<NotificationSettings> {
        let map: BTreeMap<String, bool> = serde_json::from_str(raw)?;
        let mut settings = NotificationSettings::default();
        for flag in Flag::ALL {
            if let Some(on) = map.get(flag.name()) {
                settings.0[flag.index()] = *on;
            }
        }
        Ok(settings)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderIdentity {
    pub id: String,
    pub name: String,
    pub email: String,
    pub status: Status,
    /// The actor that created it (`token:<id>`, `cli`, …).
    pub created_by: String,
    /// When the current approval was given; `None` unless Approved.
    pub approved_at: Option<Millis>,
    pub settings: NotificationSettings,
    pub brand_id: Option<String>,
    pub redirect_url: Option<String>,
    pub meta_data: BTreeMap<String, String>,
    pub locale: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// MetaData as a request sends it: `None` (null or `""`) removes the key.
pub type MetaPatch = Vec<(String, Option<String>)>;

/// What a create or update request holds, type-checked by the wire layer
/// and not yet validated. `Some("")` is a value like any other here.
#[derive(Debug, Clone, Default)]
pub struct IdentityInput {
    pub name: Option<String>,
    pub email: Option<String>,
    pub brand_id: Option<String>,
    pub redirect_url: Option<String>,
    pub settings: Option<SettingsPatch>,
    pub meta_data: Option<MetaPatch>,
    pub locale: Option<String>,
}

/// A validated create request.
#[derive(Debug, Clone)]
pub struct NewIdentity {
    pub name: Option<String>,
    pub email: String,
    pub brand_id: Option<String>,
    pub redirect_url: Option<String>,
    pub settings: SettingsPatch,
    pub meta_data: MetaPatch,
    pub locale: Option<String>,
}

/// A validated update: `None` keeps the stored value; `redirect_url:
/// Some(None)` (sent as `""`) removes it.
#[derive(Debug, Clone, Default)]
pub struct IdentityChange {
    pub name: Option<String>,
    pub redirect_url: Option<Option<String>>,
    pub settings: Option<SettingsPatch>,
    pub meta_data: Option<MetaPatch>,
    pub locale: Option<String>,
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn max_length(field: &str, max: usize) -> FieldError {
    FieldError::new(field, format!("The field {field} must be a string with a maximum length of {max}."))
}

fn no_control(field: &str) -> FieldError {
    FieldError::new(field, format!("The {field} field must not contain line breaks or control characters."))
}

/// An identity's name: trimmed, at most 80 characters, one line (it goes
/// into mails). Empty means
/// "not given".
pub fn parse_name(raw: &str) -> Result<Option<String>, FieldError> {
    let name = raw.trim();
    if name.chars().count() > NAME_MAX {
        return Err(max_length("Name", NAME_MAX));
    }
    if has_control(name) {
        return Err(no_control("Name"));
    }
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

/// An identity's email address: required, at most 250 characters.
pub fn parse_email(field: &str, raw: Option<&str>) -> Result<String, FieldError> {
    let email = raw.map(str::trim).unwrap_or_default();
    if email.is_empty() {
        return Err(FieldError::new(field, format!("The {field} field is required.")));
    }
    if email.chars().count() > EMAIL_MAX {
        return Err(max_length(field, EMAIL_MAX));
    }
    parse_address(field, field, email)
        .map_err(|_| FieldError::new(field, format!("The {field} field is not a valid e-mail address.")))
}

/// A redirect target: an absolute `http`/`https` URL with a host. Herald
/// sends browsers there, so nothing else (`javascript:`, relative paths) is
/// taken, nor forms that browsers and parsers read differently: userinfo
/// (`https://example.com@evil.test/` goes to evil.test), a scheme without
/// `//` (`http:evil.test`) and backslashes (`https:/\evil.test`). The URL is
/// stored as the `url` crate writes it, so what is echoed and put in
/// `Location` is what was checked. `""` means none.
pub fn parse_redirect_url(raw: &str) -> Result<Option<String>, FieldError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let invalid = || FieldError::new("RedirectUrl", "The RedirectUrl field must be an absolute http or https URL.");
    if raw.chars().any(|c| c.is_control() || c.is_whitespace() || c == '\\') {
        return Err(invalid());
    }
    // Only `http://` or `https://` (any case), written with the two slashes.
    let scheme = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    let after_scheme = if scheme.starts_with("https://") {
        8
    } else if scheme.starts_with("http://") {
        7
    } else {
        return Err(invalid());
    };
    let authority = raw[after_scheme..].split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(FieldError::new("RedirectUrl", "The RedirectUrl field must not contain a user name or password."));
    }
    match url::Url::parse(raw) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            Ok(Some(String::from(u)))
        }
        _ => Err(invalid()),
    }
}

/// A brand id, stored as given (contract §7); BoldSign's OpenAPI gives it
/// no length or format.
pub fn parse_brand_id(raw: &str) -> Result<Option<String>, FieldError> {
    let id = raw.trim();
    Ok((!id.is_empty()).then(|| id.to_owned()))
}

/// One of the locales of contract §7, in its canonical spelling.
pub fn parse_locale(raw: &str) -> Result<String, FieldError> {
    LOCALES
        .iter()
        .find(|l| l.eq_ignore_ascii_case(raw.trim()))
        .map(|l| (*l).to_owned())
        .ok_or_else(|| FieldError::new("Locale", format!("The Locale field must be one of {}.", LOCALES.join(", "))))
}

/// Reads MetaData entries: `""` and null mean "remove". BoldSign's OpenAPI
/// limits neither keys nor values; an empty key names nothing, so it is
/// refused.
fn parse_meta(patch: MetaPatch, errors: &mut FieldErrors) -> MetaPatch {
    let mut out = Vec::with_capacity(patch.len());
    for (key, value) in patch {
        if key.trim().is_empty() {
            errors.add("MetaData", "MetaData keys must not be empty.");
            continue;
        }
        out.push((key, value.filter(|v| !v.is_empty())));
    }
    out
}

/// Merges `patch` into `meta` (contract §7): new keys are added, existing
/// ones replaced, and a key without a value removed.
pub fn merge_meta(meta: &mut BTreeMap<String, String>, patch: &MetaPatch) -> Result<(), FieldError> {
    for (key, value) in patch {
        match value {
            Some(v) => meta.insert(key.clone(), v.clone()),
            None => meta.remove(key),
        };
    }
    if meta.len() > META_KEYS_MAX {
        return Err(FieldError::new("MetaData", format!("MetaData can hold at most {META_KEYS_MAX} keys.")));
    }
    Ok(())
}

/// Validates a create request, every bad field at once.
pub fn parse_new(input: IdentityInput) -> Result<NewIdentity, Error> {
    let IdentityInput { name, email, brand_id, redirect_url, settings, meta_data, locale } = input;
    let mut errors = FieldErrors::new();
    let name = name.and_then(|n| errors.take(parse_name(&n))).flatten();
    let email = errors.take(parse_email("Email", email.as_deref()));
    let brand_id = brand_id.and_then(|b| errors.take(parse_brand_id(&b))).flatten();
    let redirect_url = redirect_url.and_then(|u| errors.take(parse_redirect_url(&u))).flatten();
    let locale = locale.and_then(|l| errors.take(parse_locale(&l)));
    let meta_data = parse_meta(meta_data.unwrap_or_default(), &mut errors);
    errors.finish()?;
    Ok(NewIdentity {
        name,
        email: email.unwrap_or_default(),
        brand_id,
        redirect_url,
        settings: settings.unwrap_or_default(),
        meta_data,
        locale,
    })
}

/// Validates an update request: at least one of name, redirectUrl,
/// metaData, notificationSettings and locale (seed 004).
pub fn parse_change(input: IdentityInput) -> Result<IdentityChange, Error> {
    // Email and BrandId are not part of an update; the original ignores them.
    let IdentityInput { name, email: _, brand_id: _, redirect_url, settings, meta_data, locale } = input;
    if name.is_none() && redirect_url.is_none() && settings.is_none() && meta_data.is_none() && locale.is_none() {
        return Err(Error::field(
            "Request",
            "At least one of Name, RedirectUrl, MetaData, NotificationSettings or Locale is required.",
        ));
    }
    let mut errors = FieldErrors::new();
    // An empty name would leave the identity nameless: refuse it.
    let name = match name {
        None => None,
        Some(n) => match errors.take(parse_name(&n)) {
            Some(Some(n)) => Some(n),
            Some(None) => {
                errors.add("Name", "The Name field must not be empty.");
                None
            }
            None => None,
        },
    };
    let redirect_url = redirect_url.and_then(|u| errors.take(parse_redirect_url(&u)));
    let locale = locale.and_then(|l| errors.take(parse_locale(&l)));
    let meta_data = meta_data.map(|m| parse_meta(m, &mut errors));
    errors.finish()?;
    Ok(IdentityChange { name, redirect_url, settings, meta_data, locale })
}

/// The lower-cased address identities are found by.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_default_and_parse_in_any_case() {
        let d = NotificationSettings::default();
        for flag in Flag::ALL {
            assert_eq!(d.get(flag), !matches!(flag, Flag::Sent | Flag::AttachSignedDocument), "{flag:?}");
            assert_eq!(Flag::parse(&flag.name().to_lowercase()), Some(flag));
            assert_eq!(Flag::parse(&flag.name().to_uppercase()), Some(flag));
        }
        assert_eq!(Flag::parse("deliveryFailedFor"), Some(Flag::DeliveryFailed));
        assert_eq!(Flag::parse("nope"), None);
        assert_eq!(DOCUMENT_EVENTS.len(), 11, "every flag but AttachSignedDocument has its event");
        assert_eq!(flag_of_event("reminder"), Some(Flag::Reminders));
    }
    #[test]
    fn settings_round_trip_and_patches_keep_unsent_flags() {
        let mut s = NotificationSettings::default();
        let mut patch = SettingsPatch::default();
        patch.set(Flag::Viewed, false);
        patch.set(Flag::Sent, true);
        s.apply(&patch);
        assert!(!s.get(Flag::Viewed) && s.get(Flag::Sent) && s.get(Flag::Completed));
        assert_eq!(NotificationSettings::from_json(&s.to_json()).unwrap(), s);
        let partial = NotificationSettings::from_json(r#"{"Viewed": false}"#).unwrap();
        assert!(!partial.get(Flag::Viewed) && partial.get(Flag::Signed));
    }
    #[test]
    fn metadata_merges_replaces_and_deletes() {
        let mut meta =
            BTreeMap::from([("AccountPlan".to_owned(), "Free".to_owned()), ("Tenant".to_owned(), "t".to_owned())]);
        let patch = vec![
            ("AccountPlan".to_owned(), Some("Paid".to_owned())),
            ("Tenant".to_owned(), None),
            ("New".to_owned(), Some("n".to_owned())),
        ];
        merge_meta(&mut meta, &patch).unwrap();
        assert_eq!(
            meta,
            BTreeMap::from([("AccountPlan".to_owned(), "Paid".to_owned()), ("New".to_owned(), "n".to_owned())])
        );
        let many: MetaPatch = (0..51).map(|i| (format!("k{i}"), Some("v".to_owned()))).collect();
        assert!(merge_meta(&mut BTreeMap::new(), &many).is_err());
    }
    #[test]
    fn fields_follow_the_contract() {
        assert_eq!(parse_name(&"n".repeat(80)).unwrap().map(|n| n.len()), Some(80));
        assert!(parse_name(&"n".repeat(81)).unwrap_err().message.contains("80"));
        assert_eq!(parse_name(&"ü".repeat(80)).unwrap().map(|n| n.chars().count()), Some(80), "characters, not bytes");
        let long = format!("https://example.com/{}", "p".repeat(4000));
        assert_eq!(parse_redirect_url(&long).unwrap().as_deref(), Some(long.as_str()), "no length limit");
        assert_eq!(parse_brand_id(&"b".repeat(1000)).unwrap().map(|b| b.len()), Some(1000));
        assert!(parse_name("Luther\r\nBcc: x@y.z").is_err());
        assert_eq!(parse_name("  ").unwrap(), None);
        let long = format!("{}@example.com", "a".repeat(240));
        assert!(parse_email("Email", Some(&long)).unwrap_err().message.contains("250"));
        assert!(parse_email("Email", None).unwrap_err().message.contains("required"));
        assert!(parse_email("Email", Some("not-an-address")).unwrap_err().message.contains("valid"));
        assert_eq!(parse_locale("zh_cn").unwrap(), "ZH_CN");
        assert!(parse_locale("XX").is_err());
        assert_eq!(
            parse_redirect_url("https://boldsign.com/x?y=1").unwrap().as_deref(),
            Some("https://boldsign.com/x?y=1")
        );
        // Stored as the url crate writes it: what was checked is what is sent.
        for (raw, stored) in [
            ("HTTPS://BoldSign.COM", "https://boldsign.com/"),
            ("https://boldsign.com:443/a/../b", "https://boldsign.com/b"),
            ("http://example.com/ä?q=ü", "http://example.com/%C3%A4?q=%C3%BC"),
        ] {
            assert_eq!(parse_redirect_url(raw).unwrap().as_deref(), Some(stored), "{raw}");
        }
        for bad in [
            "javascript:alert(1)",
            "/relative",
            "ftp://x.example",
            "https://",
            "https://a b.example",
            "https://example.com@evil.test/",
            "https://user:pw@example.com/",
            "https://@evil.test/",
            "http:evil.test",
            "https:evil.test/x",
            "https:/evil.test",
            "https:/\\evil.test",
            "https://\\evil.test",
            "https://example.com\\@evil.test/",
            "//evil.test/",
        ] {
            assert!(parse_redirect_url(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_redirect_url("").unwrap(), None);
    }
    #[test]
    fn updates_need_something_to_update() {
        assert!(parse_change(IdentityInput { email: Some("x@y.z".into()), ..Default::default() }).is_err());
        assert!(parse_change(IdentityInput { name: Some("Luther".into()), ..Default::default() }).is_ok());
        assert!(parse_change(IdentityInput { name: Some(" ".into()), ..Default::default() }).is_err());
    }
}
