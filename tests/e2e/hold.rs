//! `no_key_action = "hold"` (issue 10, item 3) through the real binary: a
//! mandatory recipient without a key is accepted and waits in the queue,
//! nothing reaches it meanwhile; a key uploaded while it waits releases it
//! encrypted to that key (checked with gpg); one whose key never comes gets
//! a failure DSN after `policy.hold_max_age`, without the body. A trigger
//! holds a keyless recipient the same way.

use crate::gateway::{text, Gateway};
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::wait_until;
use sealgate_testkit::sink::Sink;
use std::time::Duration;

fn config(sink: &Sink, policy: &str) -> String {
    format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"sqlite://data/s.db\"\n\
         [queue]\nretry_schedule = [\"1s\"]\n\
         [policy]\nmode = \"opportunistic\"\nmethods = [\"pgp\"]\n{policy}",
        sink.port()
    )
}

/// Every recipient of the queue as `queue show --json` gives them, with
/// its copy's method: `(address, method, state, attempts, last_error)`.
fn queued(gw: &Gateway) -> Vec<(String, String, String, i64, String)> {
    let o = gw.cli(&["queue", "list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut out = Vec::new();
    for m in list.as_array().unwrap() {
        let id = m["id"].as_str().unwrap();
        let o = gw.cli(&["queue", "show", id, "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for c in d["copies"].as_array().unwrap() {
            for r in c["recipients"].as_array().unwrap() {
                out.push((
                    r["address"].as_str().unwrap().to_string(),
                    c["method"].as_str().unwrap().to_string(),
                    r["state"].as_str().unwrap().to_string(),
                    r["attempts"].as_i64().unwrap(),
                    r["last_error"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
    }
    out
}

#[test]
fn a_held_recipient_is_released_encrypted_once_its_key_is_uploaded() {
    let gpg = sealgate_testkit::gnupg::GnupgHome::new();
    let bob = gpg.gen_key("Bob <bob@partner.test>", "future-default");
    let sink = Sink::start();
    let gw = Gateway::start(&config(
        &sink,
        "[policy.domains.\"partner.test\"]\nmode = \"mandatory\"\nno_key_action = \"hold\"\n",
    ));
    let msg = "From: ian@corp.test\r\nTo: bob@partner.test, carol@elsewhere.test\r\n\
               Subject: contract\r\nContent-Type: text/plain\r\n\r\nHELD-SECRET text\r\n";
    smtp_send(
        gw.port,
        "ian@corp.test",
        &["bob@partner.test", "carol@elsewhere.test"],
        msg.as_bytes(),
    )
    .unwrap();
    // carol (opportunistic, no key) gets hers; bob waits.
    let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
    assert_eq!(got[0].rcpt_to, ["carol@elsewhere.test"], "{got:?}");
    // Looked up again on the retry schedule (1 s), still waiting, never sent.
    wait_until(Duration::from_secs(30), "bob looked up again", || {
        queued(&gw)
            .iter()
            .any(|(a, _, _, attempts, _)| a == "bob@partner.test" && *attempts >= 2)
    })
    .unwrap();
    let q = queued(&gw);
    assert_eq!(q.len(), 1, "{q:?}");
    let (address, method, state, _, error) = &q[0];
    assert_eq!(
        (address.as_str(), method.as_str(), state.as_str()),
        ("bob@partner.test", "key-wait", "deferred"),
        "{q:?}"
    );
    assert!(
        error.contains("4.7.1 held until a usable encryption key is found"),
        "{q:?}"
    );
    assert_eq!(sink.messages().len(), 1, "{:?}", sink.messages());

    // bob's key is uploaded meanwhile: the next attempt encrypts to it.
    let key = gw.dir.path().join("bob.asc");
    std::fs::write(&key, gpg.export_armored(&bob)).unwrap();
    let o = gw.cli(&[
        "keys",
        "import",
        "--for",
        "bob@partner.test",
        key.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    let to_bob: Vec<_> = got
        .iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == "bob@partner.test"))
        .collect();
    assert_eq!(to_bob.len(), 1, "{got:?}");
    let t = to_bob[0].text();
    assert!(!t.contains("HELD-SECRET"), "plaintext went out: {t}");
    assert!(t.contains("multipart/encrypted"), "{t}");
    assert!(t.contains("Subject: contract"), "{t}");
    assert!(
        t.contains("for <bob@partner.test>"),
        "no Received for bob: {t}"
    );
    let plain = gpg.decrypt(&to_bob[0].data).unwrap();
    assert!(String::from_utf8_lossy(&plain).contains("HELD-SECRET"));
    assert_eq!(
        gpg.recipient_keyids(&to_bob[0].data),
        gpg.encryption_keyids(&bob)
    );
    assert!(gw
        .log()
        .contains("held copy encrypted: a usable key was found"));
    // Delivered: nothing is left, plaintext included.
    wait_until(Duration::from_secs(30), "an empty queue", || {
        queued(&gw).is_empty()
    })
    .unwrap();
    assert_eq!(gw.sqlite_count("queue_chunk"), "0");
    // No DSN went to the sender.
    assert!(
        sink.messages()
            .iter()
            .all(|m| m.rcpt_to != ["ian@corp.test"]),
        "{:?}",
        sink.messages()
    );
}

#[test]
fn a_held_recipient_whose_key_never_comes_is_bounced_after_hold_max_age() {
    let sink = Sink::start();
    // Global hold (and a trigger): dora is mandatory by her domain, carol
    // only because the Subject triggers.
    let gw = Gateway::start(&config(
        &sink,
        "no_key_action = \"hold\"\nhold_max_age = \"6s\"\n\
         trigger_subject = '\\[secure\\]'\n\
         [policy.domains.\"partner.test\"]\nmode = \"mandatory\"\n",
    ));
    let send = |to: &str, subject: &str, marker: &str| {
        let m = format!(
            "From: ian@corp.test\r\nTo: {to}\r\nSubject: {subject}\r\n\r\n{marker} text\r\n"
        );
        smtp_send(gw.port, "ian@corp.test", &[to], m.as_bytes()).unwrap();
    };
    send("dora@partner.test", "roadmap", "DORA-SECRET");
    send("carol@elsewhere.test", "[secure] plans", "CAROL-SECRET");
    // Held first: nothing is sent, both wait.
    wait_until(Duration::from_secs(20), "both held", || {
        let q = queued(&gw);
        q.len() == 2
            && q.iter()
                .all(|(_, m, s, _, _)| m == "key-wait" && s == "deferred")
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}", queued(&gw)));
    // Then, after 6 s, two DSNs to ian and nothing else.
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    for m in &got {
        assert_eq!(m.rcpt_to, ["ian@corp.test"], "{got:?}");
        let t = m.text();
        assert!(t.contains("Action: failed"), "{t}");
        assert!(t.contains("Status: 5.7.1"), "{t}");
        assert!(
            t.contains("no usable encryption key was found within policy.hold_max_age"),
            "{t}"
        );
        assert!(
            !t.contains("DORA-SECRET") && !t.contains("CAROL-SECRET"),
            "the DSN returned the body: {t}"
        );
    }
    let all: String = got.iter().map(|m| m.text()).collect();
    assert!(
        all.contains("<dora@partner.test>") && all.contains("<carol@elsewhere.test>"),
        "{all}"
    );
    // carol's Subject was cleaned before she was held.
    assert!(
        all.contains("Subject: plans\r\n") && !all.contains("[secure]"),
        "{all}"
    );
    wait_until(Duration::from_secs(30), "an empty queue", || {
        queued(&gw).is_empty()
    })
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.messages().len(), 2, "{:?}", sink.messages());
}
