//! The admin HTTP API (issue 12, first part) through the real binary:
//! - every route in the OpenAPI document, an unknown one and a bad token
//!   get 401 with a JSON error, before any admin or token exists and after
//!   a token is revoked;
//! - with a token made by `sealgate admin token create`: the policy (set,
//!   show with the level it came from, unset, a bad value naming the
//!   choices), the queue, the CA, the certificate and root stores;
//! - schemathesis (from PyPI) runs against the OpenAPI document of the
//!   running daemon and finds no server error and no response that breaks
//!   the schema.

use crate::gateway::{text, Gateway, BIN};
use sealgate_testkit::ports::free_port;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Where `.ci/install-deps.sh` puts schemathesis.
const SCHEMATHESIS: &str = "/usr/local/lib/sealgate-test/schemathesis/bin/schemathesis";

/// One HTTP/1.0 request: (status, body as JSON, or the text as a string).
fn call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.into()));
    (status, json)
}

/// `sealgate ARGS` with `input` on standard input.
fn cli_with_input(gw: &Gateway, args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .current_dir(gw.dir.path())
        .arg("--config")
        .arg(&gw.config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Every (method, concrete path) of the OpenAPI document, path parameters
/// filled with harmless values.
fn operations(doc: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{address}", "bob@partner.test")
            .replace("{scope}", "global")
            .replace("{name}", "mode")
            .replace("{id}", "NOPE")
            .replace("{action}", "flush")
            .replace("{thumbprint}", "ABCDEF12");
        for method in item.as_object().unwrap().keys() {
            out.push((method.to_uppercase(), concrete.clone()));
        }
    }
    out
}

#[test]
fn the_api_needs_a_token_and_answers_in_json() {
    // Every operation of the document has been thought of here.
    assert!(operations(&sealgate_web::openapi::document()).len() >= 33);
    let admin = free_port();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[store]\nurl = \"sqlite://data/s.db\"\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n"
    ));
    sealgate_testkit::process::wait_for_port(admin, Duration::from_secs(20)).unwrap();
    let doc = sealgate_web::openapi::document();
    let ops = operations(&doc);
    assert!(ops.len() >= 12, "{ops:?}");
    let refused = |token: Option<&str>| {
        for (method, path) in ops
            .iter()
            // The login is the one open operation.
            .filter(|(_, p)| p != "/api/v1/login")
            .map(|(m, p)| (m.as_str(), p.clone()))
            .chain([("GET", "/api/v1/nope".to_string())])
        {
            let body = matches!(method, "PUT" | "POST").then_some(r#"{"value":"off"}"#);
            let (status, json) = call(admin, method, &path, token, body);
            assert_eq!(status, 401, "{method} {path}: {json}");
            assert_eq!(json["code"], "unauthenticated", "{method} {path}: {json}");
        }
    };
    refused(None);
    refused(Some("sgt_0000_0000"));
    // The open endpoints stay open.
    assert_eq!(call(admin, "GET", "/livez", None, None).0, 200);

    // An admin and a token.
    let o = cli_with_input(&gw, &["admin", "add", "root"], "short\n");
    assert!(
        !o.status.success() && text(&o).contains("12 characters"),
        "{}",
        text(&o)
    );
    let o = cli_with_input(&gw, &["admin", "add", "root"], "a long admin password\n");
    assert!(o.status.success(), "{}", text(&o));
    let o = gw.cli(&["admin", "token", "create", "nobody", "--name", "x"]);
    assert!(
        !o.status.success() && text(&o).contains("no admin named nobody"),
        "{}",
        text(&o)
    );
    let o = gw.cli(&["admin", "token", "create", "root", "--name", "ci"]);
    assert!(o.status.success(), "{}", text(&o));
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    let token = said
        .split_whitespace()
        .find(|w| w.starts_with("sgt_"))
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    let t = Some(token.as_str());

    // The document itself, and the policy.
    let (status, served) = call(admin, "GET", "/api/v1/openapi.json", t, None);
    assert_eq!(status, 200);
    assert_eq!(served, doc);
    assert_eq!(
        call(admin, "GET", "/api/v1/policy", t, None),
        (200, serde_json::json!([]))
    );
    let (status, json) = call(
        admin,
        "PUT",
        "/api/v1/policy/@partner.test/mode",
        t,
        Some(r#"{"value":"mandatory"}"#),
    );
    assert_eq!(status, 200, "{json}");
    let (status, json) = call(
        admin,
        "PUT",
        "/api/v1/policy/@partner.test/mode",
        t,
        Some(r#"{"value":"sometimes"}"#),
    );
    assert_eq!(status, 400);
    assert_eq!(json["code"], "invalid");
    assert!(
        json["message"].as_str().unwrap().contains("mandatory"),
        "{json}"
    );
    let (_, shown) = call(admin, "GET", "/api/v1/policy/bob@partner.test", t, None);
    let mode = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "mode")
        .unwrap()
        .clone();
    assert_eq!(mode["value"], "mandatory");
    assert_eq!(mode["from"][0], "domain partner.test (store)");
    // The CLI sees the same store.
    assert!(text(&gw.cli(&["policy", "list"])).contains("partner.test"));
    assert_eq!(
        call(
            admin,
            "DELETE",
            "/api/v1/policy/@partner.test/mode",
            t,
            None
        )
        .0,
        200
    );
    let (status, json) = call(
        admin,
        "DELETE",
        "/api/v1/policy/@partner.test/mode",
        t,
        None,
    );
    assert_eq!((status, json["code"].as_str()), (404, Some("not_found")));

    // The queue, the stores, the CA.
    assert_eq!(
        call(admin, "GET", "/api/v1/queue", t, None),
        (200, serde_json::json!([]))
    );
    let (status, json) = call(admin, "GET", "/api/v1/queue/NOPE", t, None);
    assert_eq!((status, json["code"].as_str()), (404, Some("not_found")));
    let (status, json) = call(admin, "GET", "/api/v1/queue?filter=odd", t, None);
    assert_eq!((status, json["code"].as_str()), (400, Some("invalid")));
    for path in [
        "/api/v1/certs",
        "/api/v1/roots",
        "/api/v1/ca",
        "/api/v1/ca/pending",
    ] {
        assert_eq!(
            call(admin, "GET", path, t, None),
            (200, serde_json::json!([])),
            "{path}"
        );
    }
    assert_eq!(
        call(admin, "GET", "/api/v1/ca/config", t, None).1["key"],
        "rsa3072"
    );
    let (status, json) = call(admin, "GET", "/api/v1/nope", t, None);
    assert_eq!((status, json["code"].as_str()), (404, Some("not_found")));

    // schemathesis against the running daemon.
    assert!(
        std::path::Path::new(SCHEMATHESIS).exists(),
        "schemathesis is not installed at {SCHEMATHESIS}: run .ci/install-deps.sh"
    );
    let o = Command::new(SCHEMATHESIS)
        .args([
            "run",
            &format!("http://127.0.0.1:{admin}/api/v1/openapi.json"),
            "--header",
            &format!("Authorization: Bearer {token}"),
            "--url",
            &format!("http://127.0.0.1:{admin}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "30",
            "--seed",
            "1",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap();
    assert!(o.status.success(), "schemathesis:\n{}", text(&o));

    // A revoked token stops at once.
    let id = token.split('_').nth(1).unwrap();
    let o = gw.cli(&["admin", "token", "revoke", id]);
    assert!(o.status.success(), "{}", text(&o));
    refused(t);
}

/// A token for a new admin of `gw`.
fn token_for(gw: &Gateway) -> String {
    let o = cli_with_input(gw, &["admin", "add", "root"], "a long admin password\n");
    assert!(o.status.success(), "{}", text(&o));
    let o = gw.cli(&["admin", "token", "create", "root", "--name", "ci"]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("sgt_"))
        .unwrap()
        .trim_end_matches(':')
        .to_string()
}

#[test]
fn the_ca_through_the_api() {
    let files = tempfile::tempdir().unwrap();
    let kek = files.path().join("kek");
    std::fs::write(&kek, format!("{}\n", "4b".repeat(32))).unwrap();
    let admin = free_port();
    let sink = sealgate_testkit::sink::Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"sqlite://data/s.db\"\nkey_encryption_key_file = \"{}\"\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n",
        sink.port(),
        kek.display()
    ));
    sealgate_testkit::process::wait_for_port(admin, Duration::from_secs(20)).unwrap();
    let token = token_for(&gw);
    let t = Some(token.as_str());
    let (status, json) = call(
        admin,
        "POST",
        "/api/v1/ca",
        t,
        Some(r#"{"root_cn":"R","intermediate_cn":"R","key":"p256"}"#),
    );
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("invalid")),
        "{json}"
    );
    let (status, ca) = call(
        admin,
        "POST",
        "/api/v1/ca",
        t,
        Some(r#"{"root_cn":"API Root","intermediate_cn":"API Mail CA","key":"p256"}"#),
    );
    assert_eq!(status, 200, "{ca}");
    let ca_sha = ca["sha256"].as_str().unwrap().to_string();
    let (status, json) = call(
        admin,
        "PUT",
        "/api/v1/ca/config/key",
        t,
        Some(r#"{"value":"rsa1024"}"#),
    );
    assert_eq!(status, 400, "{json}");
    let (status, _) = call(
        admin,
        "PUT",
        "/api/v1/ca/config/ca_email",
        t,
        Some(r#"{"value":"ca@corp.test"}"#),
    );
    assert_eq!(status, 200);
    let (status, issued) = call(
        admin,
        "POST",
        "/api/v1/ca/requests",
        t,
        Some(r#"{"email":"max@partner.test","cn":"Max"}"#),
    );
    assert_eq!(
        (status, issued["outcome"].as_str()),
        (200, Some("issued")),
        "{issued}"
    );
    let serial = issued["certificate"]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    // The CLI sees it in the certificate store.
    assert!(text(&gw.cli(&["certs", "list", "--email", "max@partner.test"])).contains("Max"));
    let (status, crl) = call(
        admin,
        "POST",
        "/api/v1/ca/crl",
        t,
        Some(&format!(r#"{{"serials":["{serial}"]}}"#)),
    );
    assert_eq!((status, crl["number"].as_i64()), (200, Some(1)), "{crl}");
    let (status, der) = crate::ca::get_bytes(admin, &format!("/crl/{ca_sha}.crl"));
    assert!(status == 200 && !der.is_empty());
    // A bulk preview; a pending request through the csr handler.
    let (status, plan) = call(
        admin,
        "POST",
        "/api/v1/ca/bulk?preview=true",
        t,
        Some("email,cn\nned@partner.test,Ned\n"),
    );
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["requests"][0]["email"], "ned@partner.test");
    let (status, p) = call(
        admin,
        "POST",
        "/api/v1/ca/requests",
        t,
        Some(r#"{"email":"oz@partner.test","handler":"csr"}"#),
    );
    assert_eq!(
        (status, p["outcome"].as_str()),
        (200, Some("pending")),
        "{p}"
    );
    let id = p["pending"]["id"].as_str().unwrap().to_string();
    let (status, csr) = call(
        admin,
        "GET",
        &format!("/api/v1/ca/pending/{id}/csr"),
        t,
        None,
    );
    assert_eq!(status, 200);
    assert!(
        csr.as_str().unwrap().contains("BEGIN CERTIFICATE REQUEST"),
        "{csr}"
    );
    assert_eq!(
        call(
            admin,
            "DELETE",
            &format!("/api/v1/ca/pending/{id}"),
            t,
            None
        )
        .0,
        200
    );
    // Send: the password comes back to the admin; the mail goes to max.
    let (status, sent) = call(
        admin,
        "POST",
        "/api/v1/ca/send",
        t,
        Some(r#"{"address":"max@partner.test"}"#),
    );
    assert_eq!(status, 200, "{sent}");
    let password = sent["pkcs12_password"].as_str().unwrap().to_string();
    let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
    assert_eq!(got[0].mail_from, "ca@corp.test");
    assert!(!got[0].text().contains(&password));
    let p12 = files.path().join("max.p12");
    std::fs::write(&p12, crate::ca_requests::attachment(&got[0].text())).unwrap();
    let (good, out) = crate::ca::openssl(&[
        "pkcs12",
        "-in",
        p12.to_str().unwrap(),
        "-passin",
        &format!("pass:{password}"),
        "-noout",
    ]);
    assert!(good, "{out}");
    assert!(!gw.log().contains(&password), "the password was logged");

    // Verify, as the running gateway answers it: max's certificate is
    // revoked by the CRL above, so it is found but not used.
    let (status, v) = call(admin, "GET", "/api/v1/verify/max@partner.test", t, None);
    assert_eq!(status, 200, "{v}");
    let keys: Vec<&serde_json::Value> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["keys"].as_array().unwrap())
        .collect();
    assert!(!keys.is_empty(), "{v}");
    assert_eq!(keys[0]["method"], "smime", "{v}");
    assert!(
        v["decision"].as_str().unwrap().contains("unencrypted")
            || v["decision"].as_str().unwrap().contains("encrypt"),
        "{v}"
    );
    let (status, v) = call(admin, "GET", "/api/v1/verify/not-an-address", t, None);
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid")), "{v}");

    // The stores as the API shows them: the CA's binding, CRL and root.
    let (status, keys) = call(
        admin,
        "GET",
        "/api/v1/keys?address=max@partner.test",
        t,
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(keys["bindings"][0]["kind"], "x509", "{keys}");
    assert_eq!(keys["bindings"][0]["level"], "provider_trust", "{keys}");
    let (_, crls) = call(admin, "GET", "/api/v1/crls", t, None);
    assert_eq!(crls[0]["valid"], true, "{crls}");
    let (_, roots) = call(admin, "GET", "/api/v1/roots", t, None);
    assert_eq!(roots[0]["sha256"], ca["root_sha256"], "{roots}");
    // A root imported through the API.
    let other = sealgate_testkit::pki::TestCa::new("Imported Root");
    let pem = String::from_utf8(other.cert_pem.clone()).unwrap();
    let (status, imported) = call(admin, "POST", "/api/v1/roots/import", t, Some(&pem));
    assert_eq!(status, 200, "{imported}");
    assert_eq!(
        call(admin, "GET", "/api/v1/roots", t, None)
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (status, json) = call(
        admin,
        "POST",
        "/api/v1/certs/import",
        t,
        Some("not a certificate"),
    );
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("invalid")),
        "{json}"
    );
    let (status, json) = call(admin, "GET", "/api/v1/audit?limit=0", t, None);
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("invalid")),
        "{json}"
    );
    assert_eq!(
        call(admin, "GET", "/api/v1/harvest", t, None),
        (200, serde_json::json!([]))
    );
}

/// One HTTP/1.0 request with extra header lines: (status, response header
/// section, body as JSON).
fn call_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[String],
    body: Option<&str>,
) -> (u16, String, serde_json::Value) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
    for h in headers {
        req.push_str(&format!("{h}\r\n"));
    }
    let b = body.unwrap_or("");
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
        b.len()
    ));
    s.write_all(req.as_bytes()).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        head.to_string(),
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn sessions_cookies_csrf_and_login_limits() {
    let admin = free_port();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[store]\nurl = \"sqlite://data/s.db\"\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n"
    ));
    sealgate_testkit::process::wait_for_port(admin, Duration::from_secs(20)).unwrap();
    let o = cli_with_input(&gw, &["admin", "add", "root"], "a long admin password\n");
    assert!(o.status.success(), "{}", text(&o));
    let good = r#"{"name":"root","password":"a long admin password"}"#;

    // Session fixation: a cookie the attacker chose is never adopted.
    let planted = "ab".repeat(32);
    let (status, head, body) = call_with(
        admin,
        "POST",
        "/api/v1/login",
        &[format!("Cookie: sg_session={planted}")],
        Some(good),
    );
    assert_eq!(status, 200, "{body}");
    let set = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .expect("a session cookie")
        .to_string();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(flag), "{flag} missing: {set}");
    }
    let id = set
        .split("sg_session=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert_ne!(id, planted);
    assert_eq!(id.len(), 64);
    let csrf = body["csrf"].as_str().unwrap().to_string();
    let cookie = format!("Cookie: sg_session={id}");
    assert_eq!(
        call_with(
            admin,
            "GET",
            "/api/v1/policy",
            &[format!("Cookie: sg_session={planted}")],
            None
        )
        .0,
        401,
        "the planted id is no session"
    );

    // Reads with the cookie; changes need the CSRF token.
    assert_eq!(
        call_with(
            admin,
            "GET",
            "/api/v1/policy",
            std::slice::from_ref(&cookie),
            None
        )
        .0,
        200
    );
    let change = r#"{"value":"mandatory"}"#;
    let (status, _, body) = call_with(
        admin,
        "PUT",
        "/api/v1/policy/global/mode",
        std::slice::from_ref(&cookie),
        Some(change),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, _, body) = call_with(
        admin,
        "PUT",
        "/api/v1/policy/global/mode",
        &[cookie.clone(), "X-CSRF-Token: 0000".into()],
        Some(change),
    );
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, _, body) = call_with(
        admin,
        "PUT",
        "/api/v1/policy/global/mode",
        &[cookie.clone(), format!("X-CSRF-Token: {csrf}")],
        Some(change),
    );
    assert_eq!(status, 200, "{body}");

    // Logout ends it on the server, not only in the browser.
    let (status, head, _) = call_with(
        admin,
        "POST",
        "/api/v1/logout",
        &[cookie.clone(), format!("X-CSRF-Token: {csrf}")],
        None,
    );
    assert_eq!(status, 200);
    assert!(head.contains("Max-Age=0"), "{head}");
    assert_eq!(
        call_with(admin, "GET", "/api/v1/policy", &[cookie], None).0,
        401
    );

    // Five wrong passwords from one client, then even the right one waits.
    for _ in 0..5 {
        let (status, _, body) = call_with(
            admin,
            "POST",
            "/api/v1/login",
            &[],
            Some(r#"{"name":"root","password":"wrong password!"}"#),
        );
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unauthenticated")),
            "{body}"
        );
    }
    let (status, _, body) = call_with(admin, "POST", "/api/v1/login", &[], Some(good));
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    // (The log reaches the test through a pipe: a moment later.)
    sealgate_testkit::process::wait_until(Duration::from_secs(10), "the refusal logged", || {
        gw.log().contains("login refused, too many failures")
    })
    .unwrap();
    assert!(
        !gw.log().contains("a long admin password"),
        "a password was logged"
    );
}
