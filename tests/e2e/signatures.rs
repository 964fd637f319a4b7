//! DKIM and ARC fields (issue 6 item 8): an encrypted copy drops the
//! original's `DKIM-Signature`, `ARC-Seal`, `ARC-Message-Signature` and
//! `ARC-Authentication-Results`, which could no longer verify over the new
//! body; a plain copy of the same message keeps them byte for byte. Before,
//! the encrypted copy carried them and failed DKIM at the receiver.

use crate::gateway::Gateway;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::Sink;
use std::time::Duration;

const SIGNATURES: &[u8] = b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=apps.test; s=arc;\r\n\
    \tb=c2VhbGdhdGUgdGVzdCBzZWFs\r\n\
    ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=apps.test;\r\n\
    \ts=arc; h=from:to:subject; bh=Ym9keWhhc2g=; b=c2lnbmF0dXJl\r\n\
    ARC-Authentication-Results: i=1; mx.apps.test; dkim=pass header.d=apps.test\r\n\
    DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=apps.test; s=sel;\r\n\
    \th=from:to:subject; bh=Ym9keWhhc2g=; b=ZGtpbXNpZ25hdHVyZQ==\r\n";

#[test]
fn encrypted_copies_drop_dkim_and_arc_plain_copies_keep_them() {
    let gpg = GnupgHome::new();
    gpg.gen_key("Vera <vera@example.org>", "future-default");
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring.asc");
    std::fs::write(&ring, gpg.export_armored("vera@example.org")).unwrap();
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n[store]\nurl = \"sqlite://data/s.db\"\n[keys]\npgp_keyrings = [\"{}\"]\n",
        sink.port(),
        ring.display()
    ));
    let entity =
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nsigned by the sender's domain\r\n";
    let head = b"From: app@apps.test\r\nTo: vera@example.org, plain@open.test\r\nSubject: dkim\r\n";
    let msg = [SIGNATURES, head.as_slice(), entity].concat();
    smtp_send(
        gw.port,
        "app@apps.test",
        &["vera@example.org", "plain@open.test"],
        &msg,
    )
    .unwrap();
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    let copy = |who: &str| {
        got.iter()
            .find(|m| m.rcpt_to == [who])
            .unwrap_or_else(|| panic!("no copy for {who}"))
    };

    let encrypted = copy("vera@example.org");
    let fields = String::from_utf8_lossy(encrypted.headers()).to_ascii_lowercase();
    for name in [
        "dkim-signature:",
        "arc-seal:",
        "arc-message-signature:",
        "arc-authentication-results:",
    ] {
        assert!(
            !fields.contains(name),
            "{name} left on the encrypted copy:\n{fields}"
        );
    }
    assert!(
        find(encrypted.headers(), head).is_some(),
        "the other fields stay byte for byte"
    );
    assert_eq!(gpg.decrypt(&encrypted.data).unwrap(), entity);

    // The plain copy is the original after sealgate's Received: field.
    let plain = copy("plain@open.test");
    let at = find(&plain.data, &msg).expect("the plain copy holds the original bytes");
    assert!(
        plain.data[..at].starts_with(b"Received: "),
        "only a Received: field before it"
    );
    assert_eq!(plain.data.len() - at, msg.len());
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
