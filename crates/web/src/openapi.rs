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

/// An operation with a JSON request body of `properties` (`required`
/// named).
fn with_body(mut operation: Value, required: &[&str], properties: Value) -> Value {
    operation["requestBody"] = json!({
        "required": true,
        "content": {"application/json": {"schema": {
            "type": "object", "required": required, "properties": properties
        }}}
    });
    operation
}

/// An operation whose request body is raw bytes of `media`.
fn with_raw_body(mut operation: Value, media: &str) -> Value {
    operation["requestBody"] = json!({
        "required": true,
        "content": {media: {"schema": {"type": "string"}}}
    });
    operation
}

/// The one open operation: a session for an admin's name and password.
fn login_op() -> Value {
    let mut o = with_body(
        op(
            "Sign in: a session cookie (HttpOnly, Secure, SameSite=Strict) and its CSRF token, which every change through the session sends as X-CSRF-Token",
            json!([]),
            ok(json!({"type": "object", "required": ["admin", "csrf"]}), "the session"),
            &["400", "429"],
        ),
        &["name", "password"],
        json!({"name": {"type": "string"}, "password": {"type": "string"}}),
    );
    o["security"] = json!([]);
    o
}

fn log_params() -> Value {
    json!([
        {"name": "address", "in": "query", "required": false, "schema": {"type": "string", "maxLength": 320}},
        {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
    ])
}

/// The CA's operations.
fn ca_paths() -> serde_json::Map<String, Value> {
    let array = json!({"type": "array", "items": {"type": "object"}});
    let object = json!({"type": "object"});
    let s = json!({"type": "string"});
    let mut m = serde_json::Map::new();
    let create = with_body(
        op(
            "Create a CA: a root and an intermediate (1024-bit keys and SHA-1 are refused)",
            json!([]),
            ok(object.clone(), "the CA"),
            &["400", "409"],
        ),
        &["root_cn", "intermediate_cn"],
        json!({"root_cn": s, "intermediate_cn": s, "email": s,
               "days": {"type": "integer", "minimum": 1, "maximum": 36500},
               "key": {"type": "string", "enum": ["rsa2048", "rsa3072", "rsa4096", "p256", "p384"]},
               "signature": {"type": "string", "enum": ["sha256", "sha384", "sha512"]},
               "default": {"type": "boolean"}}),
    );
    m.insert(
        "/api/v1/ca".into(),
        json!({
            "get": op("The built-in CAs", json!([]), ok(array.clone(), "CAs"), &["400"]),
            "post": create
        }),
    );
    m.insert("/api/v1/ca/config".into(), json!({
        "get": op("The CA configuration", json!([]), ok(object.clone(), "every CA setting"), &["400"])
    }));
    m.insert("/api/v1/ca/config/{name}".into(), json!({
        "put": with_body(
            op("Set a CA setting (checked)", json!([path_param("name", "a CA setting")]), ok(object.clone(), "the configuration"), &["400", "409"]),
            &["value"], json!({"value": {}}))
    }));
    m.insert("/api/v1/ca/default/{thumbprint}".into(), json!({
        "put": op("Select the default CA", json!([path_param("thumbprint", "the intermediate's SHA-256 (at least 8 hex digits)")]), ok(object.clone(), "the CA"), &["400", "404"])
    }));
    m.insert("/api/v1/ca/requests".into(), json!({
        "post": with_body(
            op("Request a certificate (built-in: issued at once; csr: pending)", json!([]), ok(object.clone(), "issued or pending"), &["400", "404", "409"]),
            &["email"],
            json!({"email": s, "cn": s, "organisation": s, "first_name": s, "last_name": s,
                   "days": {"type": "integer", "minimum": 1, "maximum": 36500},
                   "key": s, "signature": s, "crl_distribution_point": {"type": "boolean"},
                   "ca": s, "handler": {"type": "string", "enum": ["builtin", "csr"]}}))
    }));
    m.insert("/api/v1/ca/bulk".into(), json!({
        "post": with_raw_body(
            op("Bulk requests from a CSV file (preview=true: what would be requested)",
               json!([{"name": "preview", "in": "query", "required": false, "schema": {"type": "boolean"}},
                      {"name": "handler", "in": "query", "required": false, "schema": {"type": "string", "enum": ["builtin", "csr"]}}]),
               ok(object.clone(), "the plan, or the results"), &["400", "404", "409"]),
            "text/csv")
    }));
    m.insert("/api/v1/ca/pending".into(), json!({
        "get": op("Pending certificate requests", json!([]), ok(array.clone(), "requests"), &["400"])
    }));
    m.insert("/api/v1/ca/pending/upload".into(), json!({
        "post": with_raw_body(
            op("Upload certificates issued for pending requests (matched by public key)", json!([]), ok(array.clone(), "completed requests"), &["400", "404", "409"]),
            "text/plain")
    }));
    m.insert("/api/v1/ca/pending/{id}".into(), json!({
        "delete": op("Drop a pending request and its key", json!([path_param("id", "the request id")]), ok(object.clone(), "the request"), &["400", "404"])
    }));
    let mut csr = op(
        "The PKCS#10 request of a pending request",
        json!([path_param("id", "the request id")]),
        json!({}),
        &["400", "404"],
    );
    csr["responses"]["200"] = json!({"description": "PEM", "content": {"application/pkcs10": {"schema": {"type": "string"}}}});
    m.insert("/api/v1/ca/pending/{id}/csr".into(), json!({"get": csr}));
    m.insert("/api/v1/ca/pending/{id}/reschedule".into(), json!({
        "post": op("Look at a pending request again now", json!([path_param("id", "the request id")]), ok(object.clone(), "the request"), &["400", "404"])
    }));
    m.insert("/api/v1/ca/crl".into(), json!({
        "post": with_body(
            op("Create a CRL (update existing unless replace)", json!([]), ok(object.clone(), "the CRL's number and serials"), &["400", "404", "409"]),
            &[],
            json!({"ca": s, "serials": {"type": "array", "items": s},
                   "next_update_days": {"type": "integer", "minimum": 1, "maximum": 3650},
                   "replace": {"type": "boolean"}, "signature": s}))
    }));
    m.insert("/api/v1/ca/send".into(), json!({
        "post": with_body(
            op("Mail an address the PKCS#12 of its certificates (the password comes back here only)", json!([]), ok(object, "the queue id and the password"), &["400", "404", "409"]),
            &["address"],
            json!({"address": s, "certificates": {"type": "array", "items": s},
                   "allow_mismatch": {"type": "boolean"}, "legacy": {"type": "boolean"}}))
    }));
    m
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
    let mut doc = json!({
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
                    "code": {"type": "string", "enum": ["unauthenticated", "forbidden", "invalid", "not_found", "conflict", "rate_limited", "unavailable", "internal"]},
                    "message": {"type": "string"}
                }
            }}
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/openapi.json": {"get": op("This document", json!([]), ok(object.clone(), "OpenAPI 3"), &[])},
            "/api/v1/login": {"post": login_op()},
            "/api/v1/logout": {"post": op("End the session of the cookie", json!([]), ok(object.clone(), "signed out"), &[])},
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
            "/api/v1/ctl": {"get": op("The certificate trust list", json!([]), ok(array.clone(), "entries"), &[])},
            "/api/v1/verify/{address}": {"get": op(
                "Verify: every key source's answer for an address, which key would be used and why others would not, and the decision",
                json!([path_param("address", "user@domain")]),
                ok(json!({"type": "object", "required": ["address", "sources", "decision"]}), "the report"),
                &["400"],
            )},
            "/api/v1/crls": {"get": op("The CRL store, each CRL with whether it may be believed", json!([]), ok(array.clone(), "CRLs"), &["400"])},
            "/api/v1/keys": {"get": op(
                "Key bindings (address, key, level, source, active) and the keys they name",
                json!([{"name": "address", "in": "query", "required": false, "schema": {"type": "string", "maxLength": 320}}]),
                ok(json!({"type": "object", "required": ["bindings", "keys"]}), "bindings and keys"),
                &["400"],
            )},
            "/api/v1/certs/import": {"post": with_raw_body(
                op("Import certificates (PEM, DER, PKCS#7) into the certificate store", json!([]), ok(array.clone(), "what was imported"), &["400"]),
                "text/plain",
            )},
            "/api/v1/roots/import": {"post": with_raw_body(
                op("Import trust anchors into the root store", json!([]), ok(array.clone(), "what was imported"), &["400"]),
                "text/plain",
            )},
            "/api/v1/audit": {"get": op(
                "The audit log, newest first: one row per message (never content)",
                log_params(),
                ok(array.clone(), "rows"),
                &["400"],
            )},
            "/api/v1/harvest": {"get": op(
                "The harvest log, newest first: what was learned from incoming mail, or refused and why",
                log_params(),
                ok(array, "rows"),
                &["400"],
            )}
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        paths.extend(ca_paths());
    }
    doc
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
