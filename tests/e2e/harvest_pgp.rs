//! OpenPGP harvesting through the real binary (issue 9, items 3 and 5):
//! PGP/MIME signed mail made by gpg arrives on the incoming listener and is
//! relayed unchanged; a key attached inside the signed part and signed by
//! itself, with a User ID equal to From, is learned, and the next outbound
//! mail is encrypted to it (gpg decrypts it). Refused, with the reason in
//! `sealgate harvest log`: an unsigned attachment, a signature by another
//! key, a key with no User ID equal to From, a spoofed From. Levels: a
//! harvested key does not replace an admin-imported one (both listed with
//! their levels) until the imported key expires.

use crate::gateway::{text, Gateway};
use crate::trust::on_postgres;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::wait_until;
use sealgate_testkit::sink::Sink;
use std::time::{Duration, Instant};

#[test]
fn signed_mail_with_attached_keys_teaches_openpgp_keys() {
    pgp_harvest_flow("sqlite://data/s.db");
}

/// The same with the store on PostgreSQL.
#[test]
fn signed_mail_with_attached_keys_teaches_openpgp_keys_postgres() {
    on_postgres(pgp_harvest_flow);
}

fn pgp_harvest_flow(store: &str) {
    let gpg = GnupgHome::new();
    let olga = gpg.gen_key("Olga <olga@partner.test>", "future-default");
    let uma = gpg.gen_key("Uma <uma@partner.test>", "future-default");
    let victor = gpg.gen_key("Victor <victor@partner.test>", "future-default");
    let mallory = gpg.gen_key("Mallory <mallory@evil.test>", "future-default");
    let wanda = gpg.gen_key("Wanda <wanda@elsewhere.test>", "future-default");
    let pia_imported = gpg.gen_key("Pia <pia@partner.test>", "future-default");
    let pia_mailed = gpg.gen_key("Pia (laptop) <pia@partner.test>", "future-default");
    // The imported key of pia expires in 40 seconds (primary and subkeys).
    gpg.set_expire(&pia_imported, "seconds=40");
    let pia_expires = Instant::now() + Duration::from_secs(40);

    let outbound = Sink::start();
    let internal = Sink::start();
    let listen = free_port();
    let admin = free_port();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\n\
         [policy]\nmode = \"mandatory\"\nmethods = [\"pgp\"]\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [incoming]\nlisten = \"127.0.0.1:{listen}\"\nupstream = \"127.0.0.1:{}\"\n",
        outbound.port(),
        internal.port()
    ));
    let pia_file = gw.dir.path().join("pia.asc");
    std::fs::write(&pia_file, gpg.export_armored(&pia_imported)).unwrap();
    let o = gw.cli(&["keys", "import", pia_file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    let head = |from: &str, id: &str| {
        format!("From: {from}\r\nTo: ian@corp.test\r\nSubject: my key\r\nMessage-ID: <{id}@partner.test>\r\n")
    };
    let signed = |from: &str, id: &str, signer: &str, attached: &str| {
        gpg.pgp_mime_signed(
            signer,
            &head(from, id),
            &gpg.entity_with_key("here is my key", attached),
        )
    };
    let mut unsigned = head("uma@partner.test", "unsigned").into_bytes();
    unsigned.extend_from_slice(b"MIME-Version: 1.0\r\n");
    unsigned.extend_from_slice(&gpg.entity_with_key("here is my key", &uma));
    unsigned.extend_from_slice(b"\r\n");
    let mut tampered = signed("olga@partner.test", "tampered", &olga, &olga);
    let at = tampered.windows(7).position(|w| w == b"here is").unwrap();
    tampered[at] = b'H';
    let messages: Vec<(&str, &str, Vec<u8>)> = vec![
        ("unsigned", "uma@partner.test", unsigned),
        ("tampered", "olga@partner.test", tampered),
        (
            "other-signer",
            "victor@partner.test",
            signed("victor@partner.test", "other-signer", &mallory, &victor),
        ),
        (
            "no-uid",
            "wanda@partner.test",
            signed("wanda@partner.test", "no-uid", &wanda, &wanda),
        ),
        (
            "spoofed",
            "olga@partner.test",
            signed("olga@partner.test", "spoofed", &mallory, &mallory),
        ),
        (
            "olga",
            "olga@partner.test",
            signed("olga@partner.test", "olga", &olga, &olga),
        ),
        (
            "pia",
            "pia@partner.test",
            signed("pia@partner.test", "pia", &pia_mailed, &pia_mailed),
        ),
    ];
    for (_, from, m) in &messages {
        smtp_send(listen, from, &["ian@corp.test"], m).unwrap();
    }
    // Every one reaches the internal MTA, unchanged.
    let got = internal
        .wait_for(messages.len(), Duration::from_secs(30))
        .unwrap();
    for (id, _, m) in &messages {
        assert!(
            got.iter().any(|g| g.data.ends_with(m)),
            "{id}: relayed unchanged"
        );
    }
    let log = || -> Vec<serde_json::Value> {
        let o = gw.cli(&["harvest", "log", "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap()
    };
    wait_until(Duration::from_secs(30), "seven harvest decisions", || {
        log().len() >= messages.len()
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", log(), gw.log()));
    let entries = log();
    let about = |id: &str| -> &serde_json::Value {
        entries
            .iter()
            .find(|e| e["message_id"].as_str() == Some(id))
            .unwrap_or_else(|| panic!("no decision on {id}: {entries:?}"))
    };
    let refused = |id: &str, why: &str| {
        let e = about(id);
        assert_eq!(e["outcome"], "refused", "{e}");
        assert_eq!(e["kind"], "pgp", "{e}");
        assert!(e["reason"].as_str().unwrap().contains(why), "{e}");
    };
    refused("<unsigned@partner.test>", "not PGP/MIME signed");
    refused("<tampered@partner.test>", "verif");
    refused("<other-signer@partner.test>", "verifies");
    refused(
        "<no-uid@partner.test>",
        "has no valid User ID equal to the From address",
    );
    refused(
        "<spoofed@partner.test>",
        "has no valid User ID equal to the From address",
    );
    let kept = about("<olga@partner.test>");
    assert_eq!(kept["outcome"], "kept", "{kept}");
    assert_eq!(kept["fingerprint"], olga.as_str(), "{kept}");
    assert!(
        kept["reason"]
            .as_str()
            .unwrap()
            .contains("signed by itself; now the active key"),
        "{kept}"
    );
    // pia's mailed key is learned but the imported one stays in use.
    let pia = about("<pia@partner.test>");
    assert_eq!(pia["outcome"], "kept", "{pia}");
    assert!(
        pia["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("the active key {pia_imported} stays in use")),
        "{pia}"
    );
    // The metrics count them by outcome.
    let (_, m) = crate::observe::get(admin, "/metrics");
    assert!(
        m.contains("sealgate_harvest_decisions_total{kind=\"pgp\",outcome=\"refused\"} 5"),
        "{m}"
    );
    assert!(
        m.contains("sealgate_harvest_decisions_total{kind=\"pgp\",outcome=\"kept\"} 2"),
        "{m}"
    );

    let list = || -> serde_json::Value {
        let o = gw.cli(&["keys", "list", "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let binding = |l: &serde_json::Value, fpr: &str| -> serde_json::Value {
        l["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["fingerprint"] == fpr)
            .cloned()
            .unwrap_or_else(|| panic!("no binding {fpr}: {l}"))
    };
    let l = list();
    let b = binding(&l, &olga);
    assert_eq!(b["level"], "weak_chain", "{l}");
    assert_eq!(b["source"], "harvest:pgp");
    assert_eq!(b["sign_used"], true);
    assert_eq!(b["active"], true);
    let imported = binding(&l, &pia_imported);
    let mailed = binding(&l, &pia_mailed);
    assert_eq!(
        (imported["level"].as_str(), imported["active"].as_bool()),
        (Some("provider_trust"), Some(true)),
        "{l}"
    );
    assert_eq!(
        (mailed["level"].as_str(), mailed["active"].as_bool()),
        (Some("weak_chain"), Some(false)),
        "{l}"
    );
    for refused_key in [&uma, &victor, &mallory, &wanda] {
        assert!(
            !l.to_string().contains(refused_key.as_str()),
            "{refused_key} was stored: {l}"
        );
    }

    // Outbound mail: olga's to the harvested key, pia's to the imported one.
    let send = |to: &str, marker: &str| {
        let msg = format!(
            "From: ian@corp.test\r\nTo: {to}\r\nSubject: reply\r\nContent-Type: text/plain\r\n\r\nsecret {marker}\r\n"
        );
        smtp_send(gw.port, "ian@corp.test", &[to], msg.as_bytes()).unwrap();
    };
    let keyids_of = |n: usize, marker: &str| -> Vec<String> {
        let got = outbound.wait_for(n, Duration::from_secs(30)).unwrap();
        let m = got
            .iter()
            .find(|m| {
                gpg.decrypt(&m.data)
                    .is_ok_and(|p| String::from_utf8_lossy(&p).contains(marker))
            })
            .unwrap_or_else(|| panic!("nothing decryptable with {marker}"));
        assert!(!m.text().contains(marker), "plaintext went out");
        gpg.recipient_keyids(&m.data)
    };
    send("olga@partner.test", "TO-OLGA");
    assert_eq!(keyids_of(1, "TO-OLGA"), gpg.encryption_keyids(&olga));
    send("pia@partner.test", "TO-PIA");
    assert_eq!(keyids_of(2, "TO-PIA"), gpg.encryption_keyids(&pia_imported));
    // Once the imported key has expired, the harvested one takes over.
    let now = Instant::now();
    if pia_expires > now {
        std::thread::sleep(pia_expires - now + Duration::from_secs(2));
    }
    send("pia@partner.test", "TO-PIA-AGAIN");
    assert_eq!(
        keyids_of(3, "TO-PIA-AGAIN"),
        gpg.encryption_keyids(&pia_mailed)
    );
    wait_until(Duration::from_secs(20), "pia's mailed key active", || {
        binding(&list(), &pia_mailed)["active"] == true
    })
    .unwrap();
}
