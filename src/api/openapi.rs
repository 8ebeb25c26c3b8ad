//! Finishes the OpenAPI document that utoipa generates from the routes, so
//! that it validates as OpenAPI 3.1 and tells clients and fuzzers all that an
//! operation can answer:
//!
//! - every operation gets a unique, meaningful `operationId`
//!   (`leegality_create_department`), from [`OPERATION_IDS`] or `<tag>_<fn>`;
//! - every status an operation can answer is documented with its family's
//!   envelope: 400, 401 and 403 for every authenticated operation (invalid
//!   input, a missing or revoked token, another org or an admin-only route),
//!   429 for every authenticated operation (the token's rate limit) and
//!   the approval pages (guessing links),
//!   404 where the path names a resource, 413 and 415 where there is a body
//!   (approval pages answer in HTML);
//! - every response has a description.
//!
//! The rules live here, once, rather than in fifty annotations; the handlers
//! still declare their own success bodies and their domain errors (409 …).

use serde_json::{Map, Value, json};

/// `operationId`s where the handler's name alone would be ambiguous
/// (`create` in departments and users) or say too little.
const OPERATION_IDS: &[(&str, &str, &str)] = &[
    ("get", "/api/v1/departments", "leegality_list_departments"),
    ("post", "/api/v1/departments", "leegality_create_department"),
    ("get", "/api/v1/departments/{id}", "leegality_get_department"),
    ("put", "/api/v1/departments/{id}", "leegality_replace_department"),
    ("delete", "/api/v1/departments/{id}", "leegality_delete_department"),
    ("get", "/api/v1/notification-config", "leegality_get_notification_config"),
    ("post", "/api/v1/notification-config", "leegality_create_notification_config"),
    ("put", "/api/v1/notification-config", "leegality_replace_notification_config"),
    ("delete", "/api/v1/notification-config", "leegality_delete_notification_config"),
    ("post", "/api/v1/users", "leegality_create_user"),
    ("post", "/api/v1/users/search", "leegality_search_users"),
    ("get", "/api/v1/users/{id}", "leegality_get_user"),
    ("put", "/api/v1/users/{id}", "leegality_replace_user"),
    ("delete", "/api/v1/users/{id}", "leegality_delete_user"),
    ("get", "/email-settings/show", "dbvisit_show_email_settings"),
    ("post", "/email-settings/show", "dbvisit_show_email_settings_by_post"),
    ("post", "/email-settings/edit", "dbvisit_edit_email_settings"),
    ("post", "/email-settings/clear", "dbvisit_clear_email_settings"),
    ("get", "/management/v1/policies/notification", "zitadel_get_notification_policy"),
    ("post", "/management/v1/policies/notification", "zitadel_add_custom_notification_policy"),
    ("put", "/management/v1/policies/notification", "zitadel_update_custom_notification_policy"),
    ("delete", "/management/v1/policies/notification", "zitadel_reset_notification_policy_to_default"),
    ("get", "/management/v1/policies/default/notification", "zitadel_get_default_notification_policy"),
    ("get", "/admin/v1/policies/notification", "zitadel_admin_get_notification_policy"),
    ("post", "/admin/v1/policies/notification", "zitadel_admin_add_notification_policy"),
    ("put", "/admin/v1/policies/notification", "zitadel_admin_update_notification_policy"),
    ("post", "/v1/senderIdentities/create", "boldsign_create_sender_identity"),
    ("post", "/v1/senderIdentities/update", "boldsign_update_sender_identity"),
    ("get", "/v1/senderIdentities/list", "boldsign_list_sender_identities"),
    ("get", "/v1/senderIdentities/properties", "boldsign_get_sender_identity_properties"),
    ("post", "/v1/senderIdentities/resendInvitation", "boldsign_resend_sender_identity_invitation"),
    ("post", "/v1/senderIdentities/rerequest", "boldsign_rerequest_sender_identity"),
    ("delete", "/v1/senderIdentities/delete", "boldsign_delete_sender_identity"),
    ("get", "/sender-identity/{token}", "approval_show_page"),
    ("post", "/sender-identity/{token}", "approval_act"),
];

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// What a status means, for responses that do not say.
fn reason(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted",
        "204" => "Done; no body",
        "303" => "See the `Location` header",
        "400" => "Invalid input (every invalid field), or a refused change",
        "401" => "Missing, invalid or revoked token",
        "403" => "The token may not act here (another org, or an instance-admin route)",
        "404" => "Not found (also another org's resources)",
        "409" => "Conflict with the current state",
        "410" => "Gone: the link was used, replaced, closed or has expired",
        "413" => "Request body too large",
        "415" => "Request body is not JSON",
        "422" => "Unprocessable: the idempotency key was used with another body",
        "429" => "Too many requests",
        "503" => "Unavailable",
        _ => "See the status code",
    }
}

/// The error envelope schema of a family (by the operation's tag), as
/// `(content type, schema)` pairs; BoldSign answers 400 in two shapes.
fn envelopes(tag: &str, status: &str) -> Vec<(&'static str, Value)> {
    let r = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    match tag {
        "leegality" => vec![("application/json", r("LeegalityError"))],
        "dbvisit" => vec![("application/json", r("DbvisitError"))],
        "zitadel" => vec![("application/json", r("ZitadelError"))],
        "boldsign" if status == "400" => {
            vec![("application/problem+json", r("BoldSignValidationProblem")), ("application/json", r("BoldSignError"))]
        }
        "boldsign" => vec![("application/json", r("BoldSignError"))],
        "approval" => vec![("text/html", json!({ "type": "string" }))],
        _ => vec![("application/problem+json", r("Problem"))],
    }
}

/// The error envelopes, one schema each.
fn envelope_schemas() -> Map<String, Value> {
    let string = json!({ "type": "string" });
    let nullable = json!({ "type": ["string", "null"] });
    let schemas = json!({
        "Problem": {
            "description": "RFC 9457 problem details (native API)",
            "type": "object",
            "required": ["type", "title", "status", "detail", "instance"],
            "properties": {
                "type": { "type": "string", "pattern": "^urn:herald:problem:" },
                "title": string, "status": { "type": "integer", "minimum": 400, "maximum": 599 },
                "detail": string, "instance": string,
                "errors": { "type": "array", "items": {
                    "type": "object", "required": ["field", "message"],
                    "properties": { "field": string, "message": string } } }
            }
        },
        "LeegalityError": {
            "description": "Leegality's error envelope: one entry per invalid field",
            "type": "object",
            "required": ["code", "errors"],
            "properties": {
                "code": { "type": "string", "pattern": "^LE_ERR_SS_[0-9]+$" },
                "errors": { "type": "array", "items": {
                    "type": "object", "required": ["message", "path", "code"],
                    "properties": { "message": string, "path": nullable, "code": nullable } } }
            }
        },
        "DbvisitError": {
            "description": "Dbvisit StandbyMP's unsuccessful answer",
            "type": "object",
            "required": ["successful", "error"],
            "properties": {
                "successful": { "const": false },
                "error": { "type": "object", "required": ["message"], "properties": { "message": string } }
            }
        },
        "ZitadelError": {
            "description": "The gRPC gateway's status: gRPC code, message and Zitadel error details",
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": { "type": "integer", "minimum": 1, "maximum": 16 },
                "message": string,
                "details": { "type": "array", "items": {
                    "type": "object", "required": ["@type", "id", "message"],
                    "properties": { "@type": string, "id": string, "message": string } } }
            }
        },
        "BoldSignValidationProblem": {
            "description": "ASP.NET's validation problem: messages by BoldSign property name (`$`: unreadable JSON)",
            "type": "object",
            "required": ["type", "title", "status", "errors"],
            "properties": {
                "type": string, "title": string, "status": { "const": 400 },
                "errors": { "type": "object", "additionalProperties": { "type": "array", "items": string } }
            }
        },
        "BoldSignError": {
            "description": "BoldSign's other errors",
            "type": "object",
            "required": ["error"],
            "properties": { "error": string }
        }
    });
    match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Properties whose values are one of a list the domain keeps (utoipa has
/// no `enum` for a `String` field): `(schema, property, values)`.
fn enumerations() -> [(&'static str, &'static str, Vec<&'static str>); 3] {
    [
        ("UserBody", "locale", crate::domain::users::LOCALES.to_vec()),
        ("SenderIdentityRequest", "Locale", crate::domain::users::LOCALES.to_vec()),
        ("EditParams", "encryption", vec!["Plain", "StartTLS", "TLS"]),
    ]
}

/// Applies the rules above to the generated document.
pub fn finish(doc: &mut Value) {
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        schemas.extend(envelope_schemas());
        for (schema, property, values) in enumerations() {
            if let Some(p) = schemas.get_mut(schema).and_then(|s| s.pointer_mut(&format!("/properties/{property}"))) {
                let mut allowed = json!(values);
                // An optional property may also be null (and its default is).
                let nullable = p["type"].as_array().is_some_and(|t| t.contains(&json!("null")));
                if let (true, Some(list)) = (nullable, allowed.as_array_mut()) {
                    list.push(Value::Null);
                }
                p["enum"] = allowed;
            }
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for method in METHODS {
            if let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) {
                finish_operation(method, path, op);
            }
        }
    }
}

fn finish_operation(method: &str, path: &str, op: &mut Map<String, Value>) {
    let tag = op.get("tags").and_then(|t| t.get(0)).and_then(Value::as_str).unwrap_or("native").to_owned();
    let id = OPERATION_IDS.iter().find(|(m, p, _)| *m == method && *p == path).map(|(_, _, id)| (*id).to_owned());
    let fallback = || {
        let fun = op.get("operationId").and_then(Value::as_str).unwrap_or(method);
        if fun.starts_with(&format!("{tag}_")) { fun.to_owned() } else { format!("{tag}_{fun}") }
    };
    let id = id.unwrap_or_else(fallback);
    op.insert("operationId".into(), Value::String(id));

    let authenticated = op.get("security").and_then(Value::as_array).is_some_and(|s| !s.is_empty());
    let has_body = op.contains_key("requestBody");
    let names_resource = path.contains('{');
    let mut statuses: Vec<&str> = Vec::new();
    if authenticated {
        statuses.extend(["400", "401", "403"]);
        // The token's API rate limit (issue 19).
        statuses.push("429");
    }
    if tag == "approval" {
        // Too many unknown links from one address (issue 19).
        statuses.push("429");
    }
    if names_resource && tag != "approval" {
        statuses.push("404");
    }
    if has_body {
        statuses.extend(["413", "415"]);
        if tag != "approval" {
            statuses.push("400");
        }
    }
    let responses = op.entry("responses").or_insert_with(|| json!({}));
    let Some(responses) = responses.as_object_mut() else { return };
    for status in statuses {
        responses.entry(status).or_insert_with(|| json!({}));
    }
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else { continue };
        if response.contains_key("$ref") {
            continue;
        }
        if response.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
            response.insert("description".into(), Value::String(reason(status).into()));
        }
        let is_error = status.starts_with('4') || status.starts_with('5');
        if is_error && !response.contains_key("content") {
            let content: Map<String, Value> = envelopes(&tag, status)
                .into_iter()
                .map(|(ct, schema)| (ct.to_owned(), json!({ "schema": schema })))
                .collect();
            response.insert("content".into(), Value::Object(content));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_get_ids_statuses_and_descriptions() {
        let mut doc = json!({
            "components": { "schemas": {} },
            "paths": {
                "/api/v1/departments/{id}": { "put": {
                    "operationId": "replace", "tags": ["leegality"], "security": [{ "x-auth-token": [] }],
                    "requestBody": {}, "responses": { "200": {}, "409": { "description": "taken" } } } },
                "/v1/senderIdentities/create": { "post": {
                    "operationId": "create", "tags": ["boldsign"], "security": [{ "x-api-key": [] }],
                    "requestBody": {}, "responses": { "201": {} } } },
                "/healthz": { "get": { "operationId": "healthz", "tags": ["ops"], "responses": { "200": {} } } }
            }
        });
        finish(&mut doc);
        let op = &doc["paths"]["/api/v1/departments/{id}"]["put"];
        assert_eq!(op["operationId"], "leegality_replace_department");
        let statuses: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
        assert_eq!(statuses, ["200", "400", "401", "403", "404", "409", "413", "415", "429"]);
        assert_eq!(op["responses"]["409"]["description"], "taken");
        assert_eq!(op["responses"]["200"]["description"], "OK");
        assert_eq!(
            op["responses"]["404"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/LeegalityError"
        );
        let bs = &doc["paths"]["/v1/senderIdentities/create"]["post"]["responses"]["400"]["content"];
        assert!(bs["application/problem+json"].is_object() && bs["application/json"].is_object());
        let health = &doc["paths"]["/healthz"]["get"];
        assert_eq!(health["operationId"], "ops_healthz");
        assert_eq!(health["responses"].as_object().unwrap().len(), 1, "no token, no body: nothing to add");
        assert!(doc["components"]["schemas"]["ZitadelError"].is_object());
    }
}
