//! The forms a PGP copy takes (issue 10, items 8 and 9).
//!
//! - OpenPGP v6 (RFC 9580): a recipient with a v6 key (made with sequoia's
//!   RFC 9580 profile), or a v4 key that announces SEIPDv2, gets SEIPDv2
//!   (AEAD), which OpenPGP.js 6 decrypts; a GnuPG 2.2 key (SEIPDv1 only)
//!   in the same To list gets a copy of its own in SEIPDv1, which gpg
//!   decrypts: one legacy recipient does not downgrade the others.
//! - Inline PGP (`methods = ["pgp-inline"]`): a text/plain message goes out
//!   as text/plain with the armored message as its body, and gpg gives back
//!   the text decoded from its transfer encoding; a multipart message gets
//!   PGP/MIME, and the log says so.

use crate::gateway::{text, Gateway};
use openpgp::serialize::SerializeInto;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::{Sink, SinkMessage};
use sequoia_openpgp as openpgp;
use std::path::Path;
use std::time::Duration;

/// Where `.ci/install-deps.sh` puts OpenPGP.js.
const OPENPGPJS: &str = "/usr/local/lib/sealgate-test/openpgpjs/node_modules";

fn gateway(sink: &Sink, methods: &str) -> Gateway {
    Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"sqlite://data/s.db\"\n[admin]\nlisten = \"\"\n\
         [policy]\nmode = \"mandatory\"\nmethods = {methods}\n",
        sink.port()
    ))
}

fn import(gw: &Gateway, armored: &[u8]) {
    let f = gw.dir.path().join(format!("k{}.asc", armored.len()));
    std::fs::write(&f, armored).unwrap();
    let o = gw.cli(&["keys", "import", f.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

/// A key made with sequoia: v6 with the RFC 9580 profile, else v4 (which
/// sequoia makes announcing SEIPDv2). Returns (public, secret) armored.
fn sequoia_key(uid: &str, v6: bool) -> (Vec<u8>, Vec<u8>) {
    let mut b = openpgp::cert::CertBuilder::general_purpose(Some(uid));
    if v6 {
        b = b.set_profile(openpgp::Profile::RFC9580).unwrap();
    }
    let (cert, _) = b.generate().unwrap();
    assert_eq!(cert.primary_key().key().version(), if v6 { 6 } else { 4 });
    let public = cert.armored().to_vec().unwrap();
    let secret = cert.as_tsk().armored().to_vec().unwrap();
    (public, secret)
}

/// The armored OpenPGP message of a PGP/MIME copy.
fn armored_part(m: &SinkMessage) -> String {
    let t = m.text();
    let start = t
        .find("-----BEGIN PGP MESSAGE-----")
        .expect("no PGP message");
    let end = t.find("-----END PGP MESSAGE-----").unwrap() + "-----END PGP MESSAGE-----".len();
    t[start..end].to_string()
}

/// OpenPGP.js 6 decrypts `message` with `secret`: (SEIPD version, AEAD
/// algorithm, PKESK versions, plaintext).
fn openpgpjs(dir: &Path, secret: &[u8], message: &str) -> (u64, String, Vec<u64>, Vec<u8>) {
    assert!(
        Path::new(OPENPGPJS).join("openpgp/package.json").exists(),
        "OpenPGP.js is not installed at {OPENPGPJS}: run .ci/install-deps.sh"
    );
    let key = dir.join("secret.asc");
    let msg = dir.join("message.asc");
    std::fs::write(&key, secret).unwrap();
    std::fs::write(&msg, message).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/support/openpgpjs.cjs");
    let o = std::process::Command::new("node")
        .arg(script)
        .arg(&key)
        .arg(&msg)
        .env("NODE_PATH", OPENPGPJS)
        .output()
        .expect("node");
    assert!(o.status.success(), "OpenPGP.js: {}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    use base64::Engine;
    (
        v["seipd"].as_u64().unwrap(),
        v["aead"].as_str().unwrap_or("").to_string(),
        v["pkesk"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect(),
        base64::engine::general_purpose::STANDARD
            .decode(v["data"].as_str().unwrap())
            .unwrap(),
    )
}

#[test]
fn v6_and_seipdv2_recipients_get_aead_and_a_legacy_one_gets_its_own_copy() {
    let (vera_pub, vera_sec) = sequoia_key("Vera <vera@partner.test>", true);
    let (wes_pub, wes_sec) = sequoia_key("Wes <wes@partner.test>", false);
    let carl_home = GnupgHome::new();
    let carl = carl_home.gen_key("Carl <carl@partner.test>", "future-default");
    let sink = Sink::start();
    let gw = gateway(&sink, "[\"pgp\"]");
    import(&gw, &vera_pub);
    import(&gw, &wes_pub);
    import(&gw, &carl_home.export_armored(&carl));
    let rcpts = ["vera@partner.test", "wes@partner.test", "carl@partner.test"];
    let msg =
        "From: ian@corp.test\r\nTo: vera@partner.test, wes@partner.test, carl@partner.test\r\n\
               Subject: v6\r\nContent-Type: text/plain\r\n\r\nAEAD-SECRET\r\n";
    smtp_send(gw.port, "ian@corp.test", &rcpts, msg.as_bytes()).unwrap();
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages().len(), 2, "two copies: SEIPDv2 and SEIPDv1");
    for m in &got {
        assert!(!m.text().contains("AEAD-SECRET"), "plaintext went out");
    }
    let modern = got
        .iter()
        .find(|m| m.rcpt_to.iter().any(|r| r == "vera@partner.test"))
        .unwrap();
    let mut to = modern.rcpt_to.clone();
    to.sort();
    assert_eq!(to, ["vera@partner.test", "wes@partner.test"]);
    // Both read it with OpenPGP.js alone: SEIPDv2, PKESKv6 for each.
    for secret in [&vera_sec, &wes_sec] {
        let (seipd, aead, pkesk, data) = openpgpjs(gw.dir.path(), secret, &armored_part(modern));
        assert_eq!(seipd, 2);
        assert!(!aead.is_empty(), "an AEAD algorithm");
        assert_eq!(pkesk, [6, 6]);
        assert!(String::from_utf8_lossy(&data).contains("AEAD-SECRET"));
    }
    // carl (GnuPG 2.2, SEIPDv1 only) has his own copy, which gpg reads.
    let legacy = got
        .iter()
        .find(|m| m.rcpt_to.iter().any(|r| r == "carl@partner.test"))
        .unwrap();
    assert_eq!(legacy.rcpt_to, ["carl@partner.test"]);
    let plain = carl_home.decrypt(&legacy.data).unwrap();
    assert!(String::from_utf8_lossy(&plain).contains("AEAD-SECRET"));
    let file = gw.dir.path().join("legacy.asc");
    std::fs::write(&file, armored_part(legacy)).unwrap();
    let mut list = carl_home.gpg();
    list.arg("--list-packets").arg(&file);
    let out = list.output().unwrap();
    let packets = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        packets.contains(":encrypted data packet:") && packets.contains("mdc_method: 2"),
        "SEIPDv1 expected: {packets}"
    );
}

#[test]
fn inline_pgp_for_text_plain_and_pgp_mime_for_multipart() {
    let home = GnupgHome::new();
    let carol = home.gen_key("Carol <carol@partner.test>", "future-default");
    let sink = Sink::start();
    let gw = gateway(&sink, "[\"pgp-inline\"]");
    import(&gw, &home.export_armored(&carol));
    let msg = "From: ian@corp.test\r\nTo: carol@partner.test\r\nSubject: inline\r\n\
               MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
               Content-Transfer-Encoding: quoted-printable\r\n\r\n\
               Gr=C3=BC=C3=9Fe, the secret is 42.\r\nSecond line=\r\n continues.\r\n";
    smtp_send(
        gw.port,
        "ian@corp.test",
        &["carol@partner.test"],
        msg.as_bytes(),
    )
    .unwrap();
    let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
    let copy = &got[0];
    assert!(!copy.text().contains("secret is 42"), "plaintext went out");
    assert_eq!(
        copy.header("Content-Type"),
        ["text/plain; charset=\"utf-8\""]
    );
    assert_eq!(copy.header("Content-Transfer-Encoding"), ["7bit"]);
    assert_eq!(copy.header("Subject"), ["inline"]);
    let body = String::from_utf8(copy.body().to_vec()).unwrap();
    assert!(
        body.starts_with("-----BEGIN PGP MESSAGE-----\r\n"),
        "{body}"
    );
    let plain = home.decrypt(copy.body()).unwrap();
    assert_eq!(
        String::from_utf8(plain).unwrap(),
        "Grüße, the secret is 42.\r\nSecond line continues.\r\n"
    );

    let msg = "From: ian@corp.test\r\nTo: carol@partner.test\r\nSubject: parts\r\n\
               MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n\
               --b1\r\nContent-Type: text/plain\r\n\r\nsecret part\r\n--b1--\r\n";
    smtp_send(
        gw.port,
        "ian@corp.test",
        &["carol@partner.test"],
        msg.as_bytes(),
    )
    .unwrap();
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    let copy = &got[1];
    assert!(!copy.text().contains("secret part"));
    assert!(
        copy.header("Content-Type")[0].starts_with("multipart/encrypted"),
        "{}",
        copy.text()
    );
    let plain = home.decrypt(&copy.data).unwrap();
    assert!(String::from_utf8_lossy(&plain).contains("secret part"));
    let log = gw.log();
    assert!(
        log.contains("pgp-inline asked, but the message is not text/plain"),
        "{log}"
    );
}
