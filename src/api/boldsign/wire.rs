//! BoldSign's shapes (seed 004, contract §7) and nothing else.
//!
//! ASP.NET matches request property names ignoring case: the docs send
//! `Name`, the SDKs send `name`, and both must work. So bodies are read as
//! JSON objects and looked up case-insensitively here, then checked by the
//! domain. Properties BoldSign does not know are ignored, as ASP.NET does.
//! Query parameters are matched the same way (`Page` and `page`).
//! Responses are camelCase, shaped like BoldSign's SenderIdentityViewModel.

use std::collections::{BTreeMap, HashMap};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::domain::identities::{Flag, IdentityInput, NotificationSettings, SenderIdentity, SettingsPatch};
use crate::error::{Error, FieldErrors};

/// A JSON object whose keys are matched ignoring case. If a key comes twice
/// in different cases, the last one wins (as System.Text.Json does).
struct Fields(HashMap<String, Value>);

impl Fields {
    fn new(object: Map<String, Value>) -> Fields {
        Fields(object.into_iter().map(|(k, v)| (k.to_lowercase(), v)).collect())
    }

    /// A property, or `None` if absent or null.
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(&name.to_lowercase()).filter(|v| !v.is_null())
    }

    /// A string property, named in errors as BoldSign spells it.
    fn string(&self, name: &str, errors: &mut FieldErrors) -> Option<String> {
        match self.get(name)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                errors.add(name, format!("The {name} field must be a string."));
                None
            }
        }
    }
}

fn settings_patch(value: &Value, errors: &mut FieldErrors) -> Option<SettingsPatch> {
    let Value::Object(flags) = value else {
        errors.add("NotificationSettings", "The NotificationSettings field must be an object of booleans.");
        return None;
    };
    let mut patch = SettingsPatch::default();
    for (key, value) in flags {
        // Unknown flags are ignored, like any unknown property.
        let Some(flag) = Flag::parse(key) else { continue };
        match value {
            Value::Bool(on) => patch.set(flag, *on),
            Value::Null => {}
            _ => errors.add(
                format!("NotificationSettings.{}", flag.name()),
                format!("The {} field must be a boolean.", flag.name()),
            ),
        }
    }
    Some(patch)
}

fn meta_patch(value: &Value, errors: &mut FieldErrors) -> Option<Vec<(String, Option<String>)>> {
    let Value::Object(entries) = value else {
        errors.add("MetaData", "The MetaData field must be an object of strings.");
        return None;
    };
    let mut patch = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        match value {
            Value::String(v) => patch.push((key.clone(), Some(v.clone()))),
            Value::Null => patch.push((key.clone(), None)),
            _ => {
                errors.add("MetaData", "MetaData values must be strings.");
                return None;
            }
        }
    }
    Some(patch)
}

/// The properties of a create or update request, type-checked.
pub fn identity_input(body: Map<String, Value>) -> Result<IdentityInput, Error> {
    let fields = Fields::new(body);
    let mut errors = FieldErrors::new();
    let input = IdentityInput {
        name: fields.string("Name", &mut errors),
        email: fields.string("Email", &mut errors),
        brand_id: fields.string("BrandId", &mut errors),
        redirect_url: fields.string("RedirectUrl", &mut errors),
        settings: fields.get("NotificationSettings").and_then(|v| settings_patch(v, &mut errors)),
        meta_data: fields.get("MetaData").and_then(|v| meta_patch(v, &mut errors)),
        locale: fields.string("Locale", &mut errors),
    };
    errors.finish()?;
    Ok(input)
}

/// Query parameters by lower-cased name, every value of each (`BrandIds`
/// may repeat).
pub struct BsQuery(HashMap<String, Vec<String>>);

impl<S: Send + Sync> FromRequestParts<S> for BsQuery {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let mut params: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
            params.entry(k.to_lowercase()).or_default().push(v.into_owned());
        }
        Ok(BsQuery(params))
    }
}

impl BsQuery {
    /// The last value of `name`, if given and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_lowercase()).and_then(|v| v.last()).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .get(&name.to_lowercase())
            .map(|v| v.iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    }

    /// An integer parameter within `range`, or its default.
    pub fn int(&self, name: &str, default: u32, range: std::ops::RangeInclusive<u32>, errors: &mut FieldErrors) -> u32 {
        match self.get(name) {
            None => default,
            Some(raw) => match raw.trim().parse::<u32>() {
                Ok(n) if range.contains(&n) => n,
                _ => {
                    errors
                        .add(name, format!("The field {name} must be between {} and {}.", range.start(), range.end()));
                    default
                }
            },
        }
    }
}

/// `201` of create.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SenderIdentityCreated {
    pub sender_identity_id: String,
}

/// BoldSign's NotificationSettings.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSettingsView {
    viewed: bool,
    sent: bool,
    delivery_failed: bool,
    declined: bool,
    revoked: bool,
    reassigned: bool,
    completed: bool,
    signed: bool,
    expired: bool,
    authentication_failed: bool,
    reminders: bool,
    attach_signed_document: bool,
}

impl From<&NotificationSettings> for NotificationSettingsView {
    fn from(s: &NotificationSettings) -> Self {
        NotificationSettingsView {
            viewed: s.get(Flag::Viewed),
            sent: s.get(Flag::Sent),
            delivery_failed: s.get(Flag::DeliveryFailed),
            declined: s.get(Flag::Declined),
            revoked: s.get(Flag::Revoked),
            reassigned: s.get(Flag::Reassigned),
            completed: s.get(Flag::Completed),
            signed: s.get(Flag::Signed),
            expired: s.get(Flag::Expired),
            authentication_failed: s.get(Flag::AuthenticationFailed),
            reminders: s.get(Flag::Reminders),
            attach_signed_document: s.get(Flag::AttachSignedDocument),
        }
    }
}

/// BoldSign's SenderIdentityViewModel.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SenderIdentityViewModel {
    id: String,
    name: String,
    email: String,
    /// Pending, Approved, Denied or Revoked.
    status: String,
    /// Who created it: the id of the API token, or `cli` /
    /// `env:HERALD_ADMIN_TOKEN`.
    created_by: String,
    /// When the current approval was given (RFC 3339); `""` unless Approved,
    /// as BoldSign answers for pending identities.
    approved_date: String,
    notification_settings: NotificationSettingsView,
    brand_id: Option<String>,
    redirect_url: Option<String>,
    meta_data: BTreeMap<String, String>,
    locale: String,
}

impl From<SenderIdentity> for SenderIdentityViewModel {
    fn from(i: SenderIdentity) -> Self {
        let SenderIdentity {
            id,
            name,
            email,
            status,
            created_by,
            approved_at,
            settings,
            brand_id,
            redirect_url,
            meta_data,
            locale,
            created_at: _,
            updated_at: _,
        } = i;
        SenderIdentityViewModel {
            id,
            name,
            email,
            status: status.as_str().to_owned(),
            created_by: created_by.strip_prefix("token:").map(str::to_owned).unwrap_or(created_by),
            approved_date: approved_at.map(|t| t.rfc3339()).unwrap_or_default(),
            notification_settings: NotificationSettingsView::from(&settings),
            brand_id,
            redirect_url,
            meta_data,
            locale,
        }
    }
}

/// BoldSign's PageDetails.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageDetails {
    pub page_size: u32,
    pub page: u32,
    pub total_records_count: i64,
    pub total_pages: i64,
    /// Always `createdDate`: the list is newest first.
    pub sorted_column: &'static str,
    /// Always `DESC`.
    pub sort_direction: &'static str,
}

/// BoldSign's SenderIdentityList.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SenderIdentityList {
    pub result: Vec<SenderIdentityViewModel>,
    pub page_details: PageDetails,
}

/// The request body of create and update, as the docs spell it (any casing
/// of these names is accepted).
#[derive(ToSchema)]
#[allow(non_snake_case, dead_code)]
pub struct SenderIdentityRequest {
    /// At most 80 characters, one line (create default: the address's local part).
    #[schema(max_length = 80)]
    Name: Option<String>,
    /// Create only: required, at most 250 characters, unique in the org.
    #[schema(max_length = 250, format = Email)]
    Email: Option<String>,
    /// Create only; stored as given.
    BrandId: Option<String>,
    /// An absolute http(s) URL; `""` removes it.
    #[schema(format = "uri")]
    RedirectUrl: Option<String>,
    /// The twelve flags; flags not sent keep their value.
    #[schema(value_type = Object)]
    NotificationSettings: Option<Value>,
    /// Merged: keys added or replaced; `""` or null removes a key.
    #[schema(value_type = Object)]
    MetaData: Option<Value>,
    /// EN NO FR DE ES BG CS DA IT NL PL PT RO RU SV Default JA TH ZH_CN ZH_TW KO.
    Locale: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn property_names_match_in_any_case() {
        let docs = identity_input(object(json!({
            "Name": "Luther", "RedirectUrl": "https://boldsign.com",
            "NotificationSettings": {"Viewed": true, "Sent": false, "DeliveryFailedFor": false},
            "MetaData": {"AccountPlan": "Paid"}, "Locale": "EN"
        })))
        .unwrap();
        let sdk = identity_input(object(json!({
            "name": "Luther", "redirectUrl": "https://boldsign.com",
            "notificationSettings": {"viewed": true, "sent": false, "deliveryFailed": false},
            "metaData": {"AccountPlan": "Paid"}, "locale": "EN"
        })))
        .unwrap();
        assert_eq!(format!("{docs:?}"), format!("{sdk:?}"));
        assert_eq!(docs.meta_data.unwrap(), vec![("AccountPlan".to_owned(), Some("Paid".to_owned()))]);
    }

    #[test]
    fn wrong_types_are_named_and_values_never_echoed() {
        let err = identity_input(object(json!({
            "Name": 5, "NotificationSettings": {"Viewed": "yes"}, "MetaData": {"k": 1}, "Locale": ["EN"]
        })))
        .unwrap_err();
        let Error::Invalid(fields) = err else { panic!() };
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["Name", "NotificationSettings.Viewed", "MetaData", "Locale"]);
        assert!(fields.iter().all(|f| !f.message.contains("yes")));
    }
}
