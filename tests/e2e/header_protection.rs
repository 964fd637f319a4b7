//! Header protection (issue 10, item 5): with `header_protection = true`,
//! the outside of an encrypted copy shows `Subject: [...]`, and what
//! `gpg --decrypt` and `openssl cms -decrypt` give back is the original
//! entity with the real header fields, the `HP-Outer` record and the
//! `hp="cipher"` / `protected-headers="v1"` parameters in front, as in
//! RFC 9788's examples. The entity's own fields and body keep every byte.
//! Off by default: a recipient whose policy turns it off gets the Subject
//! in the clear.

use crate::gateway::{text, Gateway};
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::pki::{cms_decrypt, CertOptions, TestCa};
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::Sink;
use std::time::Duration;

const HEADER: &str = "From: Ian <ian@corp.test>\r\n\
    To: carol@partner.test, bob@partner.test\r\n\
    Cc: dave@partner.test\r\n\
    Reply-To: team@corp.test\r\n\
    Subject: Quarterly numbers\r\n\
    Date: Mon, 07 Dec 2026 10:00:00 +0000\r\n\
    Message-ID: <q4@corp.test>\r\n\
    In-Reply-To: <q3@corp.test>\r\n\
    References: <q2@corp.test> <q3@corp.test>\r\n\
    MIME-Version: 1.0\r\n";
const ENTITY: &str = "Content-Type: text/plain; charset=utf-8\r\n\
    Content-Transfer-Encoding: 8bit\r\n\
    \r\n\
    Revenue is up.\r\n";

#[test]
fn protected_headers_inside_and_an_obscured_subject_outside() {
    let ca = TestCa::new("hp CA");
    let bob = ca.issue(CertOptions {
        email: Some("bob@partner.test".into()),
        ..Default::default()
    });
    let carol_home = GnupgHome::new();
    let carol = carol_home.gen_key("Carol <carol@partner.test>", "future-default");
    let dave_home = GnupgHome::new();
    let dave = dave_home.gen_key("Dave <dave@partner.test>", "future-default");
    let sink = Sink::start();
    // On for everyone but dave (user level, file); carol's domain sets its
    // own outer Subject in the store below.
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"sqlite://data/s.db\"\n[admin]\nlisten = \"\"\n\
         [policy]\nmode = \"mandatory\"\nheader_protection = true\nreload_secs = 1\n\
         [policy.users.\"dave@partner.test\"]\nheader_protection = false\n",
        sink.port()
    ));
    let ring = gw.dir.path().join("ring.asc");
    let mut all = carol_home.export_armored(&carol);
    all.extend(dave_home.export_armored(&dave));
    std::fs::write(&ring, all).unwrap();
    for (args, file) in [
        (["roots", "import"], ca.cert_pem_path.as_path()),
        (["keys", "import"], bob.cert_pem_path.as_path()),
        (["keys", "import"], ring.as_path()),
    ] {
        let o = gw.cli(&[args[0], args[1], file.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
    }
    // The running gateway judges certificates with what it read last.
    crate::trust::hup(&gw, 1);
    // A bad outer Subject is refused with the rule.
    let o = gw.cli(&[
        "policy",
        "set",
        "@partner.test",
        "header_protection_outer_subject",
        "a\u{7}b",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("printable US-ASCII"), "{}", text(&o));
    let show = gw.cli(&["policy", "show", "dave@partner.test", "--json"]);
    assert!(show.status.success(), "{}", text(&show));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&show.stdout).unwrap();
    let hp = v
        .iter()
        .find(|s| s["name"] == "header_protection")
        .unwrap_or_else(|| panic!("{v:?}"));
    assert_eq!(hp["value"], false, "{hp}");
    assert!(
        hp["from"][0]
            .as_str()
            .unwrap()
            .starts_with("user dave@partner.test"),
        "{hp}"
    );

    let msg = format!("{HEADER}{ENTITY}");
    let rcpts = [
        "carol@partner.test",
        "bob@partner.test",
        "dave@partner.test",
    ];
    smtp_send(gw.port, "ian@corp.test", &rcpts, msg.as_bytes())
        .unwrap_or_else(|e| panic!("{e}\n{}", text(&gw.cli(&["verify", "bob@partner.test"]))));
    let got = sink.wait_for(3, Duration::from_secs(30)).unwrap();
    let copy = |who: &str| {
        got.iter()
            .find(|m| m.rcpt_to.iter().any(|r| r == who))
            .unwrap_or_else(|| panic!("no copy for {who}"))
    };
    for m in &got {
        assert!(!m.text().contains("Revenue is up"), "plaintext went out");
    }

    // PGP/MIME (carol) and S/MIME (bob): the outside shows [...], the
    // other fields unchanged.
    let pgp = copy("carol@partner.test");
    let smime = copy("bob@partner.test");
    for m in [pgp, smime] {
        assert_eq!(m.header("Subject"), ["[...]"], "{}", m.text());
        assert_eq!(m.header("Message-ID"), ["<q4@corp.test>"]);
        assert_eq!(m.header("From"), ["Ian <ian@corp.test>"]);
    }
    let inner_pgp = String::from_utf8(carol_home.decrypt(&pgp.data).unwrap()).unwrap();
    let inner_smime = String::from_utf8(cms_decrypt(&smime.data, &bob).unwrap()).unwrap();
    for inner in [&inner_pgp, &inner_smime] {
        check_protected(inner);
    }

    // dave's policy turns it off: the Subject stays, the entity is the
    // original one.
    let plain_dave = copy("dave@partner.test");
    assert_eq!(plain_dave.header("Subject"), ["Quarterly numbers"]);
    let inner = dave_home.decrypt(&plain_dave.data).unwrap();
    assert_eq!(String::from_utf8(inner).unwrap(), ENTITY);

    // The outer Subject is a policy setting too (store, domain level).
    let o = gw.cli(&[
        "policy",
        "set",
        "@partner.test",
        "header_protection_outer_subject",
        "[encrypted message]",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    std::thread::sleep(Duration::from_secs(3));
    smtp_send(
        gw.port,
        "ian@corp.test",
        &["carol@partner.test"],
        msg.as_bytes(),
    )
    .unwrap();
    let got = sink.wait_for(4, Duration::from_secs(30)).unwrap();
    let last = got.last().unwrap();
    assert_eq!(last.header("Subject"), ["[encrypted message]"]);
    let inner = String::from_utf8(carol_home.decrypt(&last.data).unwrap()).unwrap();
    assert!(
        inner.contains("HP-Outer: Subject: [encrypted message]\r\n"),
        "{inner}"
    );
    assert!(
        inner.contains("\r\nSubject: Quarterly numbers\r\n"),
        "{inner}"
    );
}

/// The decrypted entity has RFC 9788's shape: the protected fields as
/// sent, one `HP-Outer` per field the outside shows (the Subject as
/// `[...]`), then the original `Content-*` fields with the parameters
/// appended to the Content-Type, then the body, byte for byte.
fn check_protected(inner: &str) {
    let (head, body) = inner.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, "Revenue is up.\r\n");
    let lines: Vec<&str> = head.split("\r\n").collect();
    let protected: Vec<&str> = HEADER
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with("MIME-Version"))
        .collect();
    assert_eq!(&lines[..protected.len()], &protected[..], "{inner}");
    let hp_outer: Vec<String> = protected
        .iter()
        .map(|l| {
            if l.starts_with("Subject:") {
                "HP-Outer: Subject: [...]".to_string()
            } else {
                format!("HP-Outer: {l}")
            }
        })
        .collect();
    assert_eq!(
        &lines[protected.len()..protected.len() * 2],
        &hp_outer[..],
        "{inner}"
    );
    assert_eq!(
        &lines[protected.len() * 2..],
        [
            "Content-Type: text/plain; charset=utf-8; hp=\"cipher\"; protected-headers=\"v1\"",
            "Content-Transfer-Encoding: 8bit"
        ],
        "{inner}"
    );
}
