//! Autocrypt harvesting through the real binary (issue 9, item 7): a real
//! DNS server (dnsmasq on loopback) publishes the partners' DKIM keys,
//! dkimpy signs the mail, gpg makes the keys. Accepted: a DKIM signature of
//! the From domain passes, covers the Autocrypt field, has no `l=`, and
//! `addr` equals From; the next outbound mail is encrypted to the key (gpg
//! decrypts it). Refused, with the reason in `sealgate harvest log`: no
//! DKIM, DKIM of another domain, a signature not covering Autocrypt, `addr`
//! ≠ From, a signature with `l=`. With DNS down, and with the feature off,
//! nothing is learned and the mail is delivered unchanged.

use crate::gateway::{text, Gateway};
use crate::trust::on_postgres;
use sealgate_testkit::dns::{DkimKey, Dns};
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::wait_until;
use sealgate_testkit::sink::Sink;
use std::time::Duration;

#[test]
fn autocrypt_headers_vouched_for_by_dkim_teach_keys() {
    autocrypt_flow("sqlite://data/s.db");
}

/// The same with the store on PostgreSQL.
#[test]
fn autocrypt_headers_vouched_for_by_dkim_teach_keys_postgres() {
    on_postgres(autocrypt_flow);
}

const SIGNED: &[&str] = &["From", "To", "Subject", "Message-ID", "Autocrypt"];
const NOT_AUTOCRYPT: &[&str] = &["From", "To", "Subject", "Message-ID"];

fn autocrypt_flow(store: &str) {
    let gpg = GnupgHome::new();
    let names = [
        "ada", "bea", "cai", "dov", "eli", "fay", "gus", "hal", "ike",
    ];
    let keys: Vec<String> = names
        .iter()
        .map(|n| gpg.gen_key(&format!("{n} <{n}@partner.test>"), "future-default"))
        .collect();
    let key_of = |n: &str| keys[names.iter().position(|x| *x == n).unwrap()].clone();
    let keydata = |n: &str| {
        let out = gpg.gpg().args(["--export", &key_of(n)]).output().unwrap();
        assert!(out.status.success() && !out.stdout.is_empty());
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(out.stdout);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(72)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        lines.join("\r\n ")
    };
    let partner = DkimKey::new();
    let evil = DkimKey::new();
    let mut dns = Some(Dns::start(&[
        ("sel._domainkey.partner.test", &partner.record()),
        ("sel._domainkey.evil.test", &evil.record()),
    ]));
    let resolver = dns.as_ref().unwrap().addr();

    let outbound = Sink::start();
    let internal = Sink::start();
    let listen = free_port();
    let config = |autocrypt: bool| {
        format!(
            "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
             [store]\nurl = \"{store}\"\n\
             [policy]\nmode = \"mandatory\"\nmethods = [\"pgp\"]\n\
             [harvest]\nautocrypt = {autocrypt}\n\
             [dns]\nresolver = \"{resolver}\"\ntimeout_secs = 2\n\
             [incoming]\nlisten = \"127.0.0.1:{listen}\"\nupstream = \"127.0.0.1:{}\"\n",
            outbound.port(),
            internal.port()
        )
    };
    let mut gw = Gateway::start(&config(true));

    // name, From, addr, whose key, signer: (DKIM key, d=, headers, l=)
    type Signer<'a> = Option<(&'a DkimKey, &'a str, &'a [&'a str], bool)>;
    let mail = |id: &str, from: &str, addr: &str, key: &str, signer: Signer<'_>| -> Vec<u8> {
        let m = format!(
            "From: {from}\r\nTo: ian@corp.test\r\nSubject: hello\r\nMessage-ID: <{id}@partner.test>\r\n\
             Autocrypt: addr={addr}; prefer-encrypt=mutual; keydata=\r\n {}\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello from {id}\r\n",
            keydata(key)
        );
        match signer {
            Some((k, d, h, l)) => k.sign(m.as_bytes(), "sel", d, h, l),
            None => m.into_bytes(),
        }
    };
    let good: Signer<'_> = Some((&partner, "partner.test", SIGNED, false));
    let messages: Vec<(&str, Vec<u8>)> = vec![
        (
            "ada",
            mail(
                "ada",
                "Ada <ada@partner.test>",
                "ada@partner.test",
                "ada",
                good,
            ),
        ),
        (
            "bea",
            mail("bea", "bea@partner.test", "bea@partner.test", "bea", None),
        ),
        (
            "cai",
            mail(
                "cai",
                "cai@partner.test",
                "cai@partner.test",
                "cai",
                Some((&evil, "evil.test", SIGNED, false)),
            ),
        ),
        (
            "dov",
            mail(
                "dov",
                "dov@partner.test",
                "dov@partner.test",
                "dov",
                Some((&partner, "partner.test", NOT_AUTOCRYPT, false)),
            ),
        ),
        (
            "eli",
            mail("eli", "eli@partner.test", "fay@partner.test", "fay", good),
        ),
        (
            "fay",
            mail(
                "fay",
                "fay@partner.test",
                "fay@partner.test",
                "fay",
                Some((&partner, "partner.test", SIGNED, true)),
            ),
        ),
        ("ike", {
            // Nine signatures (each would cost a DNS query): not looked at.
            let mut m = mail("ike", "ike@partner.test", "ike@partner.test", "ike", good);
            for _ in 0..8 {
                m = partner.sign(&m, "sel", "partner.test", SIGNED, false);
            }
            m
        }),
    ];
    for (_, m) in &messages {
        smtp_send(listen, "bounce@partner.test", &["ian@corp.test"], m).unwrap();
    }
    let got = internal
        .wait_for(messages.len(), Duration::from_secs(30))
        .unwrap();
    for (id, m) in &messages {
        assert!(
            got.iter().any(|g| g.data.ends_with(m)),
            "{id}: relayed unchanged"
        );
    }
    let log = |gw: &Gateway| -> Vec<serde_json::Value> {
        let o = gw.cli(&["harvest", "log", "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap()
    };
    wait_until(
        Duration::from_secs(30),
        "a decision on each message",
        || log(&gw).len() >= messages.len(),
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", log(&gw), gw.log()));
    let entries = log(&gw);
    let about = |id: &str| -> serde_json::Value {
        entries
            .iter()
            .find(|e| e["message_id"].as_str() == Some(&format!("<{id}@partner.test>")))
            .cloned()
            .unwrap_or_else(|| panic!("no decision on {id}: {entries:?}"))
    };
    let refused = |id: &str, why: &str| {
        let e = about(id);
        assert_eq!(e["outcome"], "refused", "{e}");
        assert_eq!(e["kind"], "autocrypt", "{e}");
        assert!(e["reason"].as_str().unwrap().contains(why), "{why}: {e}");
    };
    refused("bea", "no DKIM signature");
    refused(
        "cai",
        "d=evil.test s=sel is not aligned with the From domain partner.test",
    );
    refused("dov", "does not cover the Autocrypt field");
    refused(
        "eli",
        "the Autocrypt addr \"fay@partner.test\" is not the From address",
    );
    // mail-auth itself refuses such a signature (and our gate would too).
    refused("fay", "Insecure 'l=' tag");
    refused("ike", "9 DKIM signatures (more than 8 are not looked at)");
    let kept = about("ada");
    assert_eq!(kept["outcome"], "kept", "{kept}");
    assert_eq!(kept["fingerprint"], key_of("ada").as_str(), "{kept}");
    let reason = kept["reason"].as_str().unwrap();
    assert!(
        reason.contains("vouched for by DKIM (d=partner.test s=sel), prefer-encrypt=mutual"),
        "{kept}"
    );

    // The binding and the recorded prefer-encrypt; no other key stored.
    let o = gw.cli(&["keys", "list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let all = String::from_utf8_lossy(&o.stdout).to_string();
    for n in ["bea", "cai", "dov", "eli", "fay", "ike"] {
        assert!(
            !all.contains(key_of(n).as_str()),
            "{n}'s key was stored: {all}"
        );
    }
    let o = gw.cli(&["keys", "list", "--address", "ada@partner.test", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let l: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let b = &l["bindings"][0];
    assert_eq!(b["fingerprint"], key_of("ada").as_str(), "{l}");
    assert_eq!(b["level"], "weak_chain", "{l}");
    assert_eq!(b["source"], "harvest:autocrypt", "{l}");
    assert_eq!(b["active"], true, "{l}");
    assert_eq!(l["autocrypt"][0]["prefer_encrypt"], "mutual", "{l}");
    assert_eq!(
        l["autocrypt"][0]["fingerprint"],
        key_of("ada").as_str(),
        "{l}"
    );

    // The next mail to ada is encrypted to the key.
    crate::harvest_header::next_mail_is_encrypted_to(
        &gw,
        &outbound,
        &gpg,
        "ada@partner.test",
        &key_of("ada"),
    );
    assert!(
        dns.as_ref()
            .unwrap()
            .queries()
            .iter()
            .any(|q| q.contains("sel._domainkey.partner.test")),
        "the DKIM key was not looked up in our DNS"
    );

    // DNS down: a good message is delivered unchanged, nothing is learned.
    drop(dns.take());
    let hal = mail("hal", "hal@partner.test", "hal@partner.test", "hal", good);
    smtp_send(listen, "bounce@partner.test", &["ian@corp.test"], &hal).unwrap();
    let got = internal
        .wait_for(messages.len() + 1, Duration::from_secs(30))
        .unwrap();
    assert!(
        got.iter().any(|g| g.data.ends_with(&hal)),
        "hal: relayed unchanged"
    );
    wait_until(Duration::from_secs(30), "hal's decision", || {
        log(&gw).len() > messages.len()
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", log(&gw), gw.log()));
    let hal_entry = log(&gw)
        .into_iter()
        .find(|e| e["message_id"] == "<hal@partner.test>")
        .unwrap();
    assert_eq!(hal_entry["outcome"], "refused", "{hal_entry}");
    assert!(
        hal_entry["reason"]
            .as_str()
            .unwrap()
            .contains("does not pass"),
        "{hal_entry}"
    );

    // The feature off: a good message teaches nothing and is not looked at.
    gw.restart(&config(false));
    let gus = mail("gus", "gus@partner.test", "gus@partner.test", "gus", good);
    smtp_send(listen, "bounce@partner.test", &["ian@corp.test"], &gus).unwrap();
    let got = internal
        .wait_for(messages.len() + 2, Duration::from_secs(30))
        .unwrap();
    assert!(
        got.iter().any(|g| g.data.ends_with(&gus)),
        "gus: relayed unchanged"
    );
    // A marker after it that harvesting does log (an OpenPGP header with an
    // http URL): harvesting takes messages in order, so once the marker is
    // logged, gus's message was looked at.
    let marker = b"From: gus@partner.test\r\nTo: ian@corp.test\r\nSubject: marker\r\n\
                   Message-ID: <marker@partner.test>\r\nOpenPGP: url=http://partner.test/k\r\n\r\nx\r\n";
    smtp_send(listen, "bounce@partner.test", &["ian@corp.test"], marker).unwrap();
    wait_until(Duration::from_secs(30), "the marker's decision", || {
        log(&gw)
            .iter()
            .any(|e| e["message_id"] == "<marker@partner.test>")
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", log(&gw), gw.log()));
    let o = gw.cli(&["keys", "list", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let all = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!all.contains(key_of("gus").as_str()), "{all}");
    assert!(!all.contains(key_of("hal").as_str()), "{all}");
    assert!(
        log(&gw)
            .iter()
            .all(|e| e["message_id"] != "<gus@partner.test>"),
        "{:?}",
        log(&gw)
    );
}
