//! One encrypted copy per message where privacy allows (issue 10, item 6):
//! three To/Cc recipients with OpenPGP keys get one copy, encrypted to the
//! three keys and nothing else, which each of them decrypts with their own
//! key alone (three GnuPG homes); a Bcc recipient gets a copy of its own;
//! `copy_per_recipient = true` gives everyone their own copy again.

use crate::gateway::{text, Gateway};
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::Sink;
use std::time::Duration;

fn run(per_recipient: bool) {
    let names = ["ann", "ben", "cat", "dee"];
    let homes: Vec<GnupgHome> = names.iter().map(|_| GnupgHome::new()).collect();
    let keys: Vec<String> = names
        .iter()
        .zip(&homes)
        .map(|(n, h)| h.gen_key(&format!("{n} <{n}@partner.test>"), "future-default"))
        .collect();
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"sqlite://data/s.db\"\n\
         [policy]\nmode = \"mandatory\"\nmethods = [\"pgp\"]\ncopy_per_recipient = {per_recipient}\n",
        sink.port()
    ));
    let ring = gw.dir.path().join("ring.asc");
    let mut all = Vec::new();
    for (h, k) in homes.iter().zip(&keys) {
        all.extend_from_slice(&h.export_armored(k));
    }
    std::fs::write(&ring, all).unwrap();
    let o = gw.cli(&["keys", "import", ring.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let rcpts = [
        "ann@partner.test",
        "ben@partner.test",
        "cat@partner.test",
        "dee@partner.test",
    ];
    let msg = "From: ian@corp.test\r\nTo: ann@partner.test, ben@partner.test\r\n\
               Cc: cat@partner.test\r\nSubject: shared\r\nContent-Type: text/plain\r\n\r\nSHARED-SECRET\r\n";
    smtp_send(gw.port, "ian@corp.test", &rcpts, msg.as_bytes()).unwrap();
    let want = if per_recipient { 4 } else { 2 };
    let got = sink.wait_for(want, Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages().len(), want, "{:?}", sink.messages());
    for m in &got {
        assert!(!m.text().contains("SHARED-SECRET"), "plaintext went out");
    }
    let dee = got
        .iter()
        .find(|m| m.rcpt_to.iter().any(|r| r == "dee@partner.test"))
        .unwrap();
    assert_eq!(
        dee.rcpt_to,
        ["dee@partner.test"],
        "the Bcc copy is dee's own"
    );
    assert_eq!(
        homes[3].recipient_keyids(&dee.data),
        homes[3].encryption_keyids(&keys[3])
    );
    for i in 0..3 {
        let copy = got
            .iter()
            .find(|m| m.rcpt_to.iter().any(|r| r == rcpts[i]))
            .unwrap();
        // Each decrypts with their own key alone.
        let plain = homes[i].decrypt(&copy.data).unwrap();
        assert!(String::from_utf8_lossy(&plain).contains("SHARED-SECRET"));
        let mut listed = homes[i].recipient_keyids(&copy.data);
        listed.sort();
        if per_recipient {
            assert_eq!(copy.rcpt_to, [rcpts[i]]);
            assert_eq!(listed, homes[i].encryption_keyids(&keys[i]));
        } else {
            // One copy, one transaction with three RCPTs, the three keys only.
            let mut to = copy.rcpt_to.clone();
            to.sort();
            assert_eq!(to, rcpts[..3]);
            let mut three: Vec<String> = (0..3)
                .flat_map(|j| homes[j].encryption_keyids(&keys[j]))
                .collect();
            three.sort();
            assert_eq!(listed, three);
        }
    }
}

#[test]
fn to_and_cc_recipients_share_one_copy_and_bcc_gets_its_own() {
    run(false);
}

#[test]
fn copy_per_recipient_gives_everyone_their_own() {
    run(true);
}
