//! DKIM signing of what sealgate changed (issue 10, item 7): with a
//! `[[dkim.keys]]` entry for the From domain, an encrypted copy carries a
//! DKIM-Signature that dkimpy verifies against the key a real DNS server
//! (dnsmasq on loopback) publishes, RSA and Ed25519 alike; a tampered copy
//! fails the same check. A copy that is the original bytes is not signed
//! again, and the sender's policy `dkim_sign = false` turns it off.

use crate::gateway::{text, Gateway};
use sealgate_testkit::dns::{dkim_verify, DkimKey, Dns, Ed25519DkimKey};
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::Sink;
use std::time::Duration;

#[test]
fn encrypted_copies_are_signed_for_the_from_domain_and_verify() {
    let rsa = DkimKey::new();
    let ed = Ed25519DkimKey::new();
    let dns = Dns::start(&[
        ("s1._domainkey.corp.test", &rsa.record()),
        ("s2._domainkey.ed.test", &ed.record()),
    ]);
    let carol_home = GnupgHome::new();
    let carol = carol_home.gen_key("Carol <carol@partner.test>", "future-default");
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"sqlite://data/s.db\"\n[admin]\nlisten = \"\"\n\
         [policy]\nmode = \"opportunistic\"\nreload_secs = 1\n\
         [[dkim.keys]]\ndomain = \"corp.test\"\nselector = \"s1\"\nkey_file = \"{}\"\n\
         [[dkim.keys]]\ndomain = \"ed.test\"\nselector = \"s2\"\nkey_file = \"{}\"\n",
        sink.port(),
        rsa.key_path.display(),
        ed.key_path.display()
    ));
    let ring = gw.dir.path().join("ring.asc");
    std::fs::write(&ring, carol_home.export_armored(&carol)).unwrap();
    let o = gw.cli(&["keys", "import", ring.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));

    // RSA: carol's encrypted copy is signed; zed (no key) gets the
    // original bytes, not signed again.
    let msg = "From: Ian <ian@corp.test>\r\nTo: carol@partner.test, zed@other.test\r\n\
               Subject: numbers\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <d1@corp.test>\r\n\
               Content-Type: text/plain\r\n\r\nsecret figures\r\n";
    smtp_send(
        gw.port,
        "ian@corp.test",
        &["carol@partner.test", "zed@other.test"],
        msg.as_bytes(),
    )
    .unwrap();
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    let carols = got
        .iter()
        .find(|m| m.rcpt_to == ["carol@partner.test"])
        .unwrap();
    let zeds = got
        .iter()
        .find(|m| m.rcpt_to == ["zed@other.test"])
        .unwrap();
    assert!(!carols.text().contains("secret figures"));
    let verdict = dkim_verify(&dns, &carols.data)
        .unwrap_or_else(|e| panic!("dkimpy: {e}\n{}", carols.text()));
    assert!(
        verdict.contains("pass corp.test s1 rsa-sha256"),
        "{verdict}"
    );
    assert!(
        carol_home.decrypt(&carols.data).is_ok(),
        "the signed copy still decrypts"
    );
    assert!(zeds.header("DKIM-Signature").is_empty(), "{}", zeds.text());
    // The verifier is not a rubber stamp: one byte changed, it fails.
    let mut tampered = carols.data.clone();
    let at = tampered.len() - 40;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let e = dkim_verify(&dns, &tampered).unwrap_err();
    assert!(e.contains("fail"), "{e}");

    // Ed25519 for another From domain.
    let msg = "From: eve@ed.test\r\nTo: carol@partner.test\r\nSubject: hi\r\n\r\nsecret two\r\n";
    smtp_send(
        gw.port,
        "eve@ed.test",
        &["carol@partner.test"],
        msg.as_bytes(),
    )
    .unwrap();
    let got = sink.wait_for(3, Duration::from_secs(30)).unwrap();
    let verdict = dkim_verify(&dns, &got[2].data)
        .unwrap_or_else(|e| panic!("dkimpy: {e}\n{}", got[2].text()));
    assert!(
        verdict.contains("pass ed.test s2 ed25519-sha256"),
        "{verdict}"
    );

    // The sender's policy turns it off (store, user level, no restart).
    let o = gw.cli(&["policy", "set", "ian@corp.test", "dkim_sign", "false"]);
    assert!(o.status.success(), "{}", text(&o));
    std::thread::sleep(Duration::from_secs(3));
    let msg =
        "From: ian@corp.test\r\nTo: carol@partner.test\r\nSubject: off\r\n\r\nsecret three\r\n";
    smtp_send(
        gw.port,
        "ian@corp.test",
        &["carol@partner.test"],
        msg.as_bytes(),
    )
    .unwrap();
    let got = sink.wait_for(4, Duration::from_secs(30)).unwrap();
    assert!(!got[3].text().contains("secret three"));
    assert!(
        got[3].header("DKIM-Signature").is_empty(),
        "{}",
        got[3].text()
    );
}

#[test]
fn a_bad_dkim_key_file_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a key").unwrap();
    let config = dir.path().join("sealgate.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\n[store]\nurl = \"sqlite://{}/s.db\"\n[admin]\nlisten = \"\"\n\
             [[dkim.keys]]\ndomain = \"corp.test\"\nselector = \"s1\"\nkey_file = \"{}\"\n",
            dir.path().display(),
            bad.display()
        ),
    )
    .unwrap();
    let o = crate::gateway::cli(dir.path(), &config, &["serve"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("dkim.keys[0]") && t.contains("not a PEM private key"),
        "{t}"
    );
}
