//! The OpenAPI 3 document of `/api/v1`, served at `/api/v1/openapi.json`
//! and kept true by a test that runs schemathesis against the daemon.

use serde_json::{json, Value};

fn error_responses(extra: &[&str]) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    let err = json!({
        "description": "an error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    for code in ["401", "503"].iter().chain(extra) {
        m.insert(code.to_string(), err.clone());
    }
    m
}

fn ok(schema: Value, description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": schema}}
    })
}

fn op(summary: &str, params: Value, response: Value, errors: &[&str]) -> Value {
    let mut responses = error_responses(errors);
    responses.insert("200".into(), response);
    json!({
        "summary": summary,
        "parameters": params,
        "responses": responses,
        "security": [{"bearer": []}]
    })
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string", "minLength": 1, "maxLength": 320}})
}

/// The whole document.
pub fn document() -> Value {
    let array = json!({"type": "array", "items": {"type": "object"}});
    let object = json!({"type": "object"});
    let scope = path_param("scope", "global, @domain (or *.domain) or an address");
    let name = path_param(
        "name",
        "a policy setting (GET /api/v1/policy/{address} lists them)",
    );
    let mut set = op(
        "Set a policy setting at a level (checked; the error names the valid choices)",
        json!([scope, name]),
        ok(
            json!({"type": "object", "required": ["scope", "name", "value"]}),
            "the value stored",
        ),
        &["400"],
    );
    set["requestBody"] = json!({
        "required": true,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["value"],
            "properties": {"value": {"description": "as the file's TOML would hold it: \"mandatory\", [\"pgp\"], true"}}
        }}}
    });
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "sealgate admin API",
            "version": "1",
            "description": "The admin HTTP API of sealgate, the SMTP encryption gateway: the same library calls as the CLI. Every call needs an API token (sealgate admin token create) as Authorization: Bearer sgt_...; errors are JSON {code, message}."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {
                "type": "object", "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": ["unauthenticated", "invalid", "not_found", "conflict", "unavailable", "internal"]},
                    "message": {"type": "string"}
                }
            }}
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/openapi.json": {"get": op("This document", json!([]), ok(object.clone(), "OpenAPI 3"), &[])},
            "/api/v1/policy": {"get": op("Every policy setting kept in the store", json!([]), ok(array.clone(), "rows: scope, name, value, updated_at"), &[])},
            "/api/v1/policy/{address}": {"get": op(
                "Every effective setting for an address and the level it came from",
                json!([path_param("address", "user@domain")]),
                ok(array.clone(), "settings: name, value, from"),
                &["400"],
            )},
            "/api/v1/policy/{scope}/{name}": {
                "put": set,
                "delete": op(
                    "Remove a stored policy setting (the level inherits again)",
                    json!([path_param("scope", "global, @domain or an address"), path_param("name", "a policy setting")]),
                    ok(object.clone(), "what was removed"),
                    &["400", "404"],
                )
            },
            "/api/v1/queue": {"get": op(
                "The queued messages",
                json!([{"name": "filter", "in": "query", "required": false,
                        "schema": {"type": "string", "enum": ["all", "deferred", "held"]}}]),
                ok(array.clone(), "one entry per message"),
                &["400"],
            )},
            "/api/v1/queue/{id}": {"get": op(
                "One queued message: envelope, copies, recipients and their states (never content)",
                json!([path_param("id", "the queue id")]),
                ok(object.clone(), "the message"),
                &["404"],
            )},
            "/api/v1/queue/{id}/{action}": {"post": op(
                "Act on a queued message",
                json!([path_param("id", "the queue id"),
                       {"name": "action", "in": "path", "required": true,
                        "schema": {"type": "string", "enum": ["flush", "hold", "release", "delete", "bounce"]}}]),
                ok(object.clone(), "how many recipients it touched"),
                &["400", "404"],
            )},
            "/api/v1/certs": {"get": op(
                "The certificate store, each certificate with its status",
                json!([{"name": "email", "in": "query", "required": false, "schema": {"type": "string", "maxLength": 320}}]),
                ok(array.clone(), "certificates"),
                &["400"],
            )},
            "/api/v1/roots": {"get": op("The root store", json!([]), ok(array.clone(), "roots"), &[])},
            "/api/v1/ca": {"get": op("The built-in CAs", json!([]), ok(array.clone(), "CAs"), &[])},
            "/api/v1/ca/config": {"get": op("The CA configuration", json!([]), ok(object, "every CA setting"), &["400"])},
            "/api/v1/ca/pending": {"get": op("Pending certificate requests", json!([]), ok(array, "requests"), &[])}
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_operation_documents_401() {
        let d = super::document();
        for (path, item) in d["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                assert!(op["responses"]["401"].is_object(), "{method} {path}");
                assert!(op["responses"]["200"].is_object(), "{method} {path}");
            }
        }
    }
}
