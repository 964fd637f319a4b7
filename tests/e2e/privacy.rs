//! Recipient privacy with a submitter that leaves a `Bcc:` field in the
//! header (sent straight to sealgate, since Postfix would remove it first):
//! no copy carries the field, each Bcc recipient gets its own encrypted copy
//! that names only its own key, and the inner entity stays byte for byte.

use crate::gateway::Gateway;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::Sink;
use std::time::Duration;

#[test]
fn bcc_fields_never_leave_and_bcc_copies_stay_separate() {
    let gpg = GnupgHome::new();
    gpg.gen_key("Vera <vera@example.org>", "future-default");
    gpg.gen_key("Bert <bert@example.org>", "future-default");
    gpg.gen_key("Cleo <cleo@example.org>", "future-default");
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring.asc");
    std::fs::write(
        &ring,
        [
            gpg.export_armored("vera@example.org"),
            gpg.export_armored("bert@example.org"),
            gpg.export_armored("cleo@example.org"),
        ]
        .concat(),
    )
    .unwrap();
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n[store]\nurl = \"sqlite://data/s.db\"\n[keys]\npgp_keyrings = [\"{}\"]\n",
        sink.port(),
        ring.display()
    ));
    let entity = b"Content-Type: text/plain; charset=utf-8\r\n\r\nfor your eyes only\r\n";
    let msg = [
        b"From: app@apps.test\r\nTo: vera@example.org\r\nBcc: bert@example.org,\r\n cleo@example.org, plain@open.test\r\nSubject: bcc\r\n".as_slice(),
        entity,
    ]
    .concat();
    smtp_send(
        gw.port,
        "app@apps.test",
        &[
            "vera@example.org",
            "bert@example.org",
            "cleo@example.org",
            "plain@open.test",
        ],
        &msg,
    )
    .unwrap();
    let got = sink.wait_for(4, Duration::from_secs(30)).unwrap();
    assert_eq!(got.len(), 4, "vera, bert, cleo each alone, plain@ as is");
    for m in &got {
        let head = String::from_utf8_lossy(m.headers()).to_lowercase();
        assert!(
            !head.contains("\nbcc:") && !head.starts_with("bcc:"),
            "a Bcc field left in the copy for {:?}",
            m.rcpt_to
        );
    }
    for who in ["vera@example.org", "bert@example.org", "cleo@example.org"] {
        let m = got
            .iter()
            .find(|m| m.rcpt_to == [who])
            .unwrap_or_else(|| panic!("no copy for {who}"));
        assert_eq!(gpg.decrypt(&m.data).unwrap(), entity, "{who}");
        assert_eq!(
            gpg.recipient_keyids(&m.data),
            gpg.encryption_keyids(who),
            "{who}'s copy names only its key"
        );
    }
    let plain = got
        .iter()
        .find(|m| m.rcpt_to == ["plain@open.test"])
        .unwrap();
    assert!(plain.data.ends_with(entity));
}
