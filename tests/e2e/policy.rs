//! The policy kept in the store (issue 10, items 1 and 2) through the real
//! binary: two gateways share one PostgreSQL store; `sealgate policy set`
//! made through one is obeyed by the other within `policy.reload_secs`,
//! without a restart, and `policy unset` gives the file's policy back.
//! `policy show --json` names the level each setting came from, and bad
//! scopes, settings and values are clear errors.

use crate::gateway::{text, Gateway};
use crate::trust::on_postgres;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::{signal, wait_until};
use sealgate_testkit::sink::Sink;
use std::time::Duration;

fn config(store: &str, sink: &Sink) -> String {
    format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\n\
         [policy]\nmode = \"opportunistic\"\nsmime_cipher = \"aes-256-gcm\"\nreload_secs = 1\n\
         [policy.domains.\"partner.test\"]\nmethods = [\"pgp\"]\n",
        sink.port()
    )
}

/// Mail to bob@partner.test (no key anywhere) through `gw`.
fn to_bob(gw: &Gateway, n: usize) -> Result<(), String> {
    let msg =
        format!("From: ian@corp.test\r\nTo: bob@partner.test\r\nSubject: {n}\r\n\r\nhello {n}\r\n");
    smtp_send(
        gw.port,
        "ian@corp.test",
        &["bob@partner.test"],
        msg.as_bytes(),
    )
}

/// How often `gw` logged that a stored policy change is in force.
fn reloads(gw: &Gateway) -> usize {
    gw.log()
        .matches("policy: a change in the store is in force")
        .count()
}

#[test]
fn a_policy_set_through_one_instance_is_obeyed_by_another() {
    on_postgres(|store| {
        let sink = Sink::start();
        let a = Gateway::start(&config(store, &sink));
        let b = Gateway::start(&config(store, &sink));
        // Opportunistic, no key: plaintext.
        to_bob(&b, 1).unwrap();
        sink.wait_for(1, Duration::from_secs(30)).unwrap();

        let o = a.cli(&["policy", "set", "@Partner.TEST", "mode", "mandatory"]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            text(&o).contains("domain partner.test mode = \"mandatory\""),
            "{}",
            text(&o)
        );
        wait_until(Duration::from_secs(20), "b follows the store", || {
            reloads(&b) >= 1
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", b.log()));
        let e = to_bob(&b, 2).unwrap_err();
        assert!(e.contains("550 5.7.1") && e.contains("mandatory"), "{e}");

        // Where each setting comes from.
        let o = b.cli(&["policy", "show", "bob@partner.test", "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        let shown: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
        let get = |n: &str| {
            shown
                .iter()
                .find(|s| s["name"] == n)
                .cloned()
                .unwrap_or_else(|| panic!("no {n}: {shown:?}"))
        };
        assert_eq!(get("mode")["value"], "mandatory");
        assert_eq!(get("mode")["from"][0], "domain partner.test (store)");
        assert_eq!(get("methods")["value"], serde_json::json!(["pgp"]));
        assert_eq!(get("methods")["from"][0], "domain partner.test (file)");
        assert_eq!(get("smime_cipher")["from"][0], "global (file)");
        assert_eq!(get("on_source_error")["from"][0], "default");
        let o = a.cli(&["policy", "list", "--json"]);
        let rows: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(rows[0]["scope"], "partner.test", "{rows}");

        // A user's own setting wins over the domain's.
        let o = a.cli(&["policy", "set", "bob@partner.test", "mode", "opportunistic"]);
        assert!(o.status.success(), "{}", text(&o));
        wait_until(Duration::from_secs(20), "b follows again", || {
            reloads(&b) >= 2
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", b.log()));
        to_bob(&b, 3).unwrap();
        sink.wait_for(2, Duration::from_secs(30)).unwrap();

        // Unset both: the file's policy is back.
        for scope in ["bob@partner.test", "@partner.test"] {
            let o = a.cli(&["policy", "unset", scope, "mode"]);
            assert!(o.status.success(), "{}", text(&o));
        }
        let o = a.cli(&["policy", "unset", "@partner.test", "mode"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let o = a.cli(&["policy", "list"]);
        assert!(
            text(&o).contains("holds no policy settings"),
            "{}",
            text(&o)
        );
        // Two changes: b may reload between them, so its reload count does
        // not say it has seen both. A message it takes does (while the
        // domain's mandatory holds, RCPT gets 550 and nothing is sent).
        wait_until(Duration::from_secs(20), "b follows the unsets", || {
            to_bob(&b, 4).is_ok()
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", b.log()));
        sink.wait_for(3, Duration::from_secs(30)).unwrap();
    });
}

/// SIGHUP re-reads the whole file: the policy takes effect at once, other
/// changed sections are named for a restart, and a file that does not load
/// keeps the policy in force.
#[test]
fn sighup_rereads_the_policy_from_the_file() {
    let sink = Sink::start();
    let first = config("sqlite://data/s.db", &sink);
    let gw = Gateway::start(&first);
    to_bob(&gw, 1).unwrap();
    sink.wait_for(1, Duration::from_secs(30)).unwrap();
    let mut config_text = std::fs::read_to_string(&gw.config).unwrap();
    config_text = config_text
        .replace("mode = \"opportunistic\"", "mode = \"mandatory\"")
        .replace("[smtp]\n", "[smtp]\nmax_recipients = 50\n");
    std::fs::write(&gw.config, &config_text).unwrap();
    let applied = |n: usize| {
        move |gw: &Gateway| {
            gw.log()
                .matches("SIGHUP: the policy from the file is in force")
                .count()
                >= n
        }
    };
    signal(gw.child.pid(), 1); // SIGHUP
    wait_until(Duration::from_secs(20), "the file's policy", || {
        applied(1)(&gw)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    let e = to_bob(&gw, 2).unwrap_err();
    assert!(e.contains("550 5.7.1") && e.contains("mandatory"), "{e}");
    assert!(
        gw.log().contains(
            "SIGHUP: [smtp] changed in the configuration; it takes effect after a restart"
        ),
        "{}",
        gw.log()
    );
    // A broken file keeps what is in force.
    std::fs::write(
        &gw.config,
        config_text.replace("mode = \"mandatory\"", "mode = \"loud\""),
    )
    .unwrap();
    signal(gw.child.pid(), 1); // SIGHUP
    wait_until(Duration::from_secs(20), "the refusal", || {
        gw.log()
            .contains("SIGHUP: the configuration file does not load, keeping the one in force")
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    let e = to_bob(&gw, 3).unwrap_err();
    assert!(e.contains("550 5.7.1"), "{e}");
}

#[test]
fn bad_policy_commands_are_clear_errors() {
    let sink = Sink::start();
    let gw = Gateway::start(&config("sqlite://data/s.db", &sink));
    for (args, why) in [
        (
            vec!["policy", "set", "@partner.test", "mode", "sometimes"],
            "unknown variant `sometimes`, expected one of `off`, `opportunistic`, `mandatory`",
        ),
        (
            vec!["policy", "set", "global", "colour", "red"],
            "\"colour\" is not a policy setting; the settings are: mode, methods",
        ),
        (
            vec!["policy", "set", "a b", "mode", "off"],
            "is not a scope",
        ),
        (
            vec!["policy", "set", "global", "methods", "[]"],
            "must name at least one method",
        ),
        (
            vec!["policy", "set", "@x.test", "additional_pgp_keys", "ABC"],
            "is not an OpenPGP fingerprint",
        ),
        (vec!["policy", "show", "nobody"], "is not an address"),
        (
            vec!["policy", "unset", "global", "colour"],
            "is not a policy setting",
        ),
    ] {
        let o = gw.cli(&args);
        assert!(!o.status.success(), "{args:?} accepted: {}", text(&o));
        assert!(text(&o).contains(why), "{args:?}: {}", text(&o));
        assert!(!text(&o).contains("panicked"), "{}", text(&o));
    }
    // Nothing bad was stored: the gateway still loads its policy.
    let o = gw.cli(&["check-config"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = gw.cli(&["policy", "list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
}

/// `no_key_action = "bounce"` (issue 10, item 3): a mandatory recipient
/// without a key is accepted, nothing reaches it, and the sender gets a
/// failure DSN saying why; the other recipients of the message are served.
/// Never plaintext.
#[test]
fn no_key_bounce_accepts_and_reports_without_plaintext() {
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"sqlite://data/s.db\"\n\
         [policy]\nmode = \"opportunistic\"\n\
         [policy.domains.\"partner.test\"]\nmode = \"mandatory\"\nno_key_action = \"bounce\"\n",
        sink.port()
    ));
    let msg = |to: &str| {
        format!("From: ian@corp.test\r\nTo: {to}\r\nSubject: hi\r\n\r\nSECRET-BODY text\r\n")
    };
    // Only a bounced recipient: 250, and a DSN.
    smtp_send(
        gw.port,
        "ian@corp.test",
        &["bob@partner.test"],
        msg("bob@partner.test").as_bytes(),
    )
    .unwrap();
    // A bounced and a served one.
    smtp_send(
        gw.port,
        "ian@corp.test",
        &["bob@partner.test", "carol@elsewhere.test"],
        msg("bob@partner.test, carol@elsewhere.test").as_bytes(),
    )
    .unwrap();
    let got = sink.wait_for(3, Duration::from_secs(30)).unwrap();
    let dsns: Vec<_> = got
        .iter()
        .filter(|m| m.rcpt_to == ["ian@corp.test"])
        .collect();
    assert_eq!(dsns.len(), 2, "{got:?}");
    for d in &dsns {
        let t = d.text();
        assert!(t.contains("multipart/report"), "{t}");
        assert!(t.contains("Action: failed"), "{t}");
        assert!(t.contains("Status: 5.7.1"), "{t}");
        assert!(
            t.contains(
                "<bob@partner.test>: recipient requires encryption: encryption is mandatory"
            ),
            "{t}"
        );
        assert!(!t.contains("SECRET-BODY"), "the DSN returned the body: {t}");
    }
    let carol: Vec<_> = got
        .iter()
        .filter(|m| m.rcpt_to == ["carol@elsewhere.test"])
        .collect();
    assert_eq!(carol.len(), 1, "{got:?}");
    assert!(
        got.iter()
            .all(|m| !m.rcpt_to.iter().any(|r| r == "bob@partner.test")),
        "something went to bob: {got:?}"
    );
    // Nothing is left in the queue (a bounced-only message leaves no row).
    wait_until(Duration::from_secs(30), "an empty queue", || {
        let o = gw.cli(&["queue", "list", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .is_ok_and(|l| l.as_array().is_some_and(|a| a.is_empty()))
    })
    .unwrap_or_else(|e| panic!("{e}: {}", text(&gw.cli(&["queue", "list"]))));
    assert_eq!(gw.sqlite_count("queue_message"), "0");
    // The store can turn it back to reject.
    let o = gw.cli(&["policy", "set", "@partner.test", "no_key_action", "reject"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = gw.cli(&["policy", "show", "bob@partner.test"]);
    assert!(
        text(&o).contains("no_key_action") && text(&o).contains("domain partner.test (store)"),
        "{}",
        text(&o)
    );
}

/// Encrypt-by-subject (issue 10, item 4): the sender's trigger makes every
/// recipient mandatory: one with a key gets an encrypted copy (even in a
/// domain whose mode is off), one without is bounced (never plaintext), and
/// the matched text leaves the Subject. A header field triggers too; a
/// message without either goes as the recipients' own policies say.
#[test]
fn a_subject_trigger_makes_every_recipient_mandatory() {
    let gpg = sealgate_testkit::gnupg::GnupgHome::new();
    let alice = gpg.gen_key("Alice <alice@partner.test>", "future-default");
    let dan = gpg.gen_key("Dan <dan@off.test>", "future-default");
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"sqlite://data/s.db\"\n\
         [policy]\nmode = \"opportunistic\"\nmethods = [\"pgp\"]\n\
         trigger_subject = '\\[(secure|encrypt)\\]'\ntrigger_header = \"X-Encrypt: yes\"\n\
         [policy.domains.\"off.test\"]\nmode = \"off\"\n",
        sink.port()
    ));
    let keys = gw.dir.path().join("keys.asc");
    let mut both = gpg.export_armored(&alice);
    both.extend_from_slice(&gpg.export_armored(&dan));
    std::fs::write(&keys, both).unwrap();
    let o = gw.cli(&["keys", "import", keys.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let rcpts = ["alice@partner.test", "carol@elsewhere.test", "dan@off.test"];
    let send = |subject: &str, extra: &str, marker: &str| {
        let m = format!(
            "From: ian@corp.test\r\nTo: {}\r\nSubject: {subject}\r\n{extra}Content-Type: text/plain\r\n\r\n{marker} text\r\n",
            rcpts.join(", ")
        );
        smtp_send(gw.port, "ian@corp.test", &rcpts, m.as_bytes()).unwrap();
    };
    send("[SECURE] Q3 numbers", "", "TRIGGERED-SECRET");
    // alice and dan (both in To): one shared copy, encrypted to both keys;
    // carol: a DSN to ian.
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    let to = |r: &str| -> Vec<&sealgate_testkit::sink::SinkMessage> {
        got.iter()
            .filter(|m| m.rcpt_to.iter().any(|x| x == r))
            .collect()
    };
    let copies = to("alice@partner.test");
    assert_eq!(copies.len(), 1, "{got:?}");
    let mut both = copies[0].rcpt_to.clone();
    both.sort();
    assert_eq!(both, ["alice@partner.test", "dan@off.test"]);
    let t = copies[0].text();
    assert!(!t.contains("TRIGGERED-SECRET"), "plaintext went out: {t}");
    assert!(
        t.contains("Subject: Q3 numbers\r\n"),
        "the Subject is not cleaned: {t}"
    );
    let plain = gpg.decrypt(&copies[0].data).unwrap();
    assert!(String::from_utf8_lossy(&plain).contains("TRIGGERED-SECRET"));
    let mut listed = gpg.recipient_keyids(&copies[0].data);
    listed.sort();
    let mut keys = gpg.encryption_keyids(&alice);
    keys.extend(gpg.encryption_keyids(&dan));
    keys.sort();
    assert_eq!(listed, keys);
    assert!(
        to("carol@elsewhere.test").is_empty(),
        "carol got something: {got:?}"
    );
    let dsn = to("ian@corp.test");
    assert_eq!(dsn.len(), 1, "{got:?}");
    let t = dsn[0].text();
    assert!(
        t.contains("Action: failed") && t.contains("<carol@elsewhere.test>"),
        "{t}"
    );
    assert!(!t.contains("TRIGGERED-SECRET"), "{t}");
    assert!(gw
        .log()
        .contains("trigger: the message is mandatory for every recipient"));

    // No trigger: carol plain, dan plain (off; both in one copy), alice
    // encrypted.
    send("Q4 numbers", "", "PLAIN-OK");
    let got = sink.wait_for(4, Duration::from_secs(30)).unwrap();
    let plain_to = |r: &str| {
        got.iter()
            .any(|m| m.rcpt_to.iter().any(|x| x == r) && m.text().contains("PLAIN-OK"))
    };
    assert!(
        plain_to("carol@elsewhere.test") && plain_to("dan@off.test"),
        "{got:?}"
    );
    assert!(!plain_to("alice@partner.test"), "{got:?}");

    // The header field triggers too; the Subject stays as it is.
    send("Q5 numbers", "X-Encrypt: YES\r\n", "HEADER-SECRET");
    let got = sink.wait_for(6, Duration::from_secs(30)).unwrap();
    assert!(
        got.iter().all(|m| !m.text().contains("HEADER-SECRET")),
        "plaintext went out: {got:?}"
    );
    assert!(
        got.iter()
            .any(|m| m.rcpt_to == ["ian@corp.test"] && m.text().contains("Q5 numbers")),
        "no DSN for carol: {got:?}"
    );
}
