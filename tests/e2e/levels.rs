//! Which OpenPGP key wins (issue 9, items 2 and 3): validation levels and
//! the can-upgrade rules against the real binary, keys made and checked by
//! gpg, a real HKP key server on loopback.
//!
//! - An imported key (provider_trust) outranks a key-server key (weak_chain)
//!   for the same address; the key server is not even asked while the
//!   imported key is usable; once it expires, the key-server key takes over
//!   and becomes the active binding.
//! - A second imported key at the same level does not displace the active
//!   one; `keys trust` pins it; a key certified by the pinned one replaces it;
//!   the same fingerprint with a new expiry updates the binding.
//!
//! Each runs on SQLite and on PostgreSQL.

use crate::gateway::{text, Gateway};
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::keyserver::KeyServer;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::wait_until;
use sealgate_testkit::sink::Sink;
use std::time::{Duration, Instant};

fn config(sink: u16, store: &str, extra: &str) -> String {
    format!(
        r#"
[smtp]
listen = "127.0.0.1:{{port}}"
[relay]
upstream = "127.0.0.1:{sink}"
tls = "none"
[store]
url = "{store}"
[keys]
memory_cache_secs = 0
{extra}
[policy]
mode = "mandatory"
"#
    )
}

fn gpg_ok(gpg: &GnupgHome, args: &[&str]) {
    let out = gpg.gpg().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn import(gw: &Gateway, dir: &std::path::Path, name: &str, armored: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, armored).unwrap();
    let o = gw.cli(&["keys", "import", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    text(&o)
}

/// The key ids the message to `to` carrying `marker` is encrypted to.
fn sent_to(sink: &Sink, gpg: &GnupgHome, n: usize, marker: &str) -> Vec<String> {
    let got = sink.wait_for(n, Duration::from_secs(30)).unwrap();
    let m = got
        .iter()
        .find(|m| {
            gpg.decrypt(&m.data)
                .map(|p| String::from_utf8_lossy(&p).contains(marker))
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no decryptable message with {marker}"));
    assert!(!m.text().contains(marker), "plaintext reached the sink");
    gpg.recipient_keyids(&m.data)
}

fn send(gw: &Gateway, to: &str, marker: &str) {
    let msg = format!(
        "From: app@apps.test\r\nTo: {to}\r\nSubject: levels\r\nContent-Type: text/plain\r\n\r\nsecret {marker}\r\n"
    );
    smtp_send(gw.port, "app@apps.test", &[to], msg.as_bytes()).unwrap();
}

fn binding<'a>(list: &'a serde_json::Value, address: &str, fpr: &str) -> &'a serde_json::Value {
    list["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["address"] == address && b["fingerprint"] == fpr)
        .unwrap_or_else(|| panic!("no binding {address} {fpr}: {list}"))
}

fn keys_list(gw: &Gateway) -> serde_json::Value {
    let o = gw.cli(&["keys", "list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn imported_key_outranks_a_keyserver_key_until_it_expires() {
    outranks_until_expiry("sqlite://data/s.db");
}

/// The same with the store (keys, bindings, lookup cache) on PostgreSQL.
#[test]
fn imported_key_outranks_a_keyserver_key_until_it_expires_postgres() {
    crate::trust::on_postgres(outranks_until_expiry);
}

fn outranks_until_expiry(store: &str) {
    let gpg = GnupgHome::new();
    let imported = gpg.gen_key("Alice <alice@partner.test>", "future-default");
    let served = gpg.gen_key(
        "Alice at the key server <alice@partner.test>",
        "future-default",
    );
    // The imported key and its subkeys expire in 25 seconds.
    gpg_ok(&gpg, &["--quick-set-expire", &imported, "seconds=25"]);
    gpg_ok(&gpg, &["--quick-set-expire", &imported, "seconds=25", "*"]);
    let expires = Instant::now() + Duration::from_secs(25);
    let hkp = KeyServer::start_http();
    hkp.put_hkp("alice@partner.test", &gpg.export_armored(&served));
    let sink = Sink::start();
    let gw = Gateway::start(&config(
        sink.port(),
        store,
        &format!(
            r#"keyservers = [{{ url = "hkp://127.0.0.1:{}", allow_insecure = true }}]"#,
            hkp.port()
        ),
    ));
    let out = import(
        &gw,
        gw.dir.path(),
        "alice.asc",
        &gpg.export_armored(&imported),
    );
    assert!(out.contains("level provider_trust"), "{out}");
    assert!(
        out.contains("alice@partner.test: now the active key (the address had no key)"),
        "{out}"
    );

    send(&gw, "alice@partner.test", "ONE");
    assert_eq!(
        sent_to(&sink, &gpg, 1, "ONE"),
        gpg.encryption_keyids(&imported),
        "encrypted to the imported key"
    );
    // The key server (weak_chain) cannot outrank provider_trust: not asked.
    assert!(
        !hkp.requests().iter().any(|r| r.contains("alice")),
        "{:?}",
        hkp.requests()
    );
    // verify asks every source and says why the key-server key is not used.
    let o = gw.cli(&["verify", "alice@partner.test", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pgp_choice"]["fingerprint"], imported.as_str(), "{v}");
    assert_eq!(v["pgp_choice"]["level"], "provider_trust", "{v}");
    let not_used = &v["pgp_choice"]["not_used"][0];
    assert_eq!(not_used["fingerprint"], served.as_str(), "{v}");
    let why = not_used["reason"].as_str().unwrap();
    assert!(
        why.contains("keyserver:hkp://127.0.0.1")
            && why.contains("level weak_chain at most")
            && why.contains("does not ask"),
        "{why}"
    );
    let list = keys_list(&gw);
    let b = binding(&list, "alice@partner.test", &imported);
    assert_eq!(b["active"], true, "{list}");
    assert_eq!(b["level"], "provider_trust");
    // encr_used is recorded off the reply path.
    wait_until(Duration::from_secs(20), "encr_used", || {
        binding(&keys_list(&gw), "alice@partner.test", &imported)["encr_used"] == true
    })
    .unwrap();

    // Once the imported key has expired, the key-server key is used and
    // becomes the active binding.
    let now = Instant::now();
    if expires > now {
        std::thread::sleep(expires - now + Duration::from_secs(2));
    }
    send(&gw, "alice@partner.test", "TWO");
    assert_eq!(
        sent_to(&sink, &gpg, 2, "TWO"),
        gpg.encryption_keyids(&served),
        "encrypted to the key-server key"
    );
    wait_until(Duration::from_secs(20), "the key-server key active", || {
        let list = keys_list(&gw);
        list["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["fingerprint"] == served.as_str() && b["active"] == true)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", keys_list(&gw), gw.log()));
    let list = keys_list(&gw);
    let b = binding(&list, "alice@partner.test", &served);
    assert_eq!(b["level"], "weak_chain", "{list}");
    assert!(
        b["source"]
            .as_str()
            .unwrap()
            .starts_with("keyserver:hkp://127.0.0.1"),
        "{list}"
    );
    assert_eq!(
        binding(&list, "alice@partner.test", &imported)["active"],
        false
    );
    let t = text(&gw.cli(&["keys", "list"]));
    assert!(
        t.contains(&format!("* pgp  {served}  level weak_chain")),
        "{t}"
    );
}

#[test]
fn keys_trust_pins_and_a_certified_key_replaces() {
    trust_and_certification("sqlite://data/s.db");
}

/// The same with the store on PostgreSQL.
#[test]
fn keys_trust_pins_and_a_certified_key_replaces_postgres() {
    crate::trust::on_postgres(trust_and_certification);
}

fn trust_and_certification(store: &str) {
    let gpg = GnupgHome::new();
    let a = gpg.gen_key("Bob <bob@partner.test>", "future-default");
    let b = gpg.gen_key("Bob two <bob@partner.test>", "future-default");
    let sink = Sink::start();
    let gw = Gateway::start(&config(sink.port(), store, ""));
    let dir = gw.dir.path().to_path_buf();
    let out = import(&gw, &dir, "a.asc", &gpg.export_armored(&a));
    assert!(out.contains("now the active key"), "{out}");
    // Same level, the active key without expiry but not higher: B waits.
    let out = import(&gw, &dir, "b.asc", &gpg.export_armored(&b));
    assert!(
        out.contains(&format!("the active key {a} stays in use")),
        "{out}"
    );
    send(&gw, "bob@partner.test", "FIRST");
    assert_eq!(sent_to(&sink, &gpg, 1, "FIRST"), gpg.encryption_keyids(&a));

    // An unknown fingerprint, or a key that does not name the address: clear errors.
    let o = gw.cli(&["keys", "trust", "bob@partner.test", "0000"]);
    assert!(
        !o.status.success() && text(&o).contains("no stored key 0000"),
        "{}",
        text(&o)
    );

    // The admin confirms B.
    let o = gw.cli(&["keys", "trust", "Bob@Partner.test", &b.to_lowercase()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("level fingerprint"), "{}", text(&o));
    send(&gw, "bob@partner.test", "SECOND");
    assert_eq!(sent_to(&sink, &gpg, 2, "SECOND"), gpg.encryption_keyids(&b));
    let list = keys_list(&gw);
    assert_eq!(
        binding(&list, "bob@partner.test", &b)["level"],
        "fingerprint"
    );
    assert_eq!(binding(&list, "bob@partner.test", &b)["active"], true);
    assert_eq!(binding(&list, "bob@partner.test", &a)["active"], false);

    // A third key at a lower position, certified by the pinned B, replaces it.
    let c = gpg.gen_key("Bob three <bob@partner.test>", "future-default");
    gpg_ok(&gpg, &["--default-key", &b, "--quick-sign-key", &c]);
    let out = import(&gw, &dir, "c.asc", &gpg.export_armored(&c));
    assert!(
        out.contains("now the active key (the new key is certified by the old key)"),
        "{out}"
    );
    send(&gw, "bob@partner.test", "THIRD");
    assert_eq!(sent_to(&sink, &gpg, 3, "THIRD"), gpg.encryption_keyids(&c));

    // The same fingerprint with a new expiry: an update of the binding.
    assert!(binding(&keys_list(&gw), "bob@partner.test", &c)["expires_at"].is_null());
    gpg_ok(&gpg, &["--quick-set-expire", &c, "1y"]);
    let out = import(&gw, &dir, "c2.asc", &gpg.export_armored(&c));
    assert!(
        out.contains("now the active key (same fingerprint (an update of the key))"),
        "{out}"
    );
    let list = keys_list(&gw);
    let bc = binding(&list, "bob@partner.test", &c);
    assert!(bc["expires_at"].as_i64().unwrap() > 0, "{list}");
    assert_eq!(bc["active"], true);
    send(&gw, "bob@partner.test", "FOURTH");
    assert_eq!(sent_to(&sink, &gpg, 4, "FOURTH"), gpg.encryption_keyids(&c));
}
