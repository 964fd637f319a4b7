//! `incoming.decrypt` (issue 9, item 9) through the real binary: S/MIME
//! mail from outside, made by `openssl cms -encrypt` for an internal user
//! whose PKCS#12 was imported, reaches the internal MTA decrypted and
//! marked with the certificate; signed inside, the signature's verdict is
//! marked too; a recipient sealgate holds no key for gets the message
//! unchanged (its own copy); forged marking fields are removed; mail
//! encrypted to someone else passes unchanged.

use crate::gateway::Gateway;
use crate::trust::{hup, text};
use sealgate_testkit::pki::{cms_encrypt_mail, cms_sign_mail, CertOptions, TestCa};
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::Sink;
use std::time::Duration;

#[test]
fn incoming_smime_mail_is_decrypted_for_internal_users() {
    decrypted_for_internal_users("sqlite://data/s.db");
}

/// The same with the store (and the sealed private keys) on PostgreSQL.
#[test]
fn incoming_smime_mail_is_decrypted_for_internal_users_postgres() {
    crate::trust::on_postgres(decrypted_for_internal_users);
}

fn decrypted_for_internal_users(store: &str) {
    let root = TestCa::new("e2e Decrypt Root");
    let issue = |email: &str| {
        root.issue(CertOptions {
            email: Some(email.into()),
            ..Default::default()
        })
    };
    let ian = issue("ian@corp.test");
    let pat = issue("pat@partner.test");
    let stranger = issue("nobody@elsewhere.test");
    let files = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = files.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let p12 = put("ian.p12", &ian.pkcs12("ian pw"));
    let pw = put("pw", b"ian pw\n");
    let kek = put("kek", format!("{}\n", "3c".repeat(32)).as_bytes());
    let root_pem = put("root.pem", &root.cert_pem);

    let outbound = Sink::start();
    let internal = Sink::start();
    let listen = free_port();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\nkey_encryption_key_file = \"{kek}\"\n\
         [incoming]\nlisten = \"127.0.0.1:{listen}\"\nupstream = \"127.0.0.1:{}\"\ndecrypt = true\n",
        outbound.port(),
        internal.port()
    ));
    for args in [
        vec!["roots", "import", &root_pem],
        vec!["certs", "import", "--password-file", &pw, &p12],
    ] {
        let o = gw.cli(&args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    hup(&gw, 1);

    let headers = |id: &str| {
        format!("From: pat@partner.test\r\nTo: ian@corp.test\r\nSubject: {id}\r\nMessage-ID: <{id}@partner.test>\r\n")
    };
    let entity = b"Content-Type: text/plain; charset=utf-8\r\n\r\nDECRYPT-MARKER secret text\r\n";
    let plain_enc = cms_encrypt_mail(&headers("enc"), entity, &[&ian]);
    let signed_entity = cms_sign_mail("", entity, &pat, &[]);
    let signed_enc = cms_encrypt_mail(&headers("signed"), &signed_entity, &[&ian]);
    let forged = format!(
        "{}X-Sealgate-Decrypted: by sealgate with certificate SHA256:00\r\n\r\nplain\r\n",
        headers("forged")
    );
    let foreign = cms_encrypt_mail(&headers("foreign"), entity, &[&stranger]);
    smtp_send(listen, "pat@partner.test", &["ian@corp.test"], &plain_enc).unwrap();
    smtp_send(listen, "pat@partner.test", &["ian@corp.test"], &signed_enc).unwrap();
    smtp_send(
        listen,
        "pat@partner.test",
        &["ian@corp.test", "jo@corp.test"],
        &cms_encrypt_mail(&headers("two"), entity, &[&ian]),
    )
    .unwrap();
    smtp_send(
        listen,
        "pat@partner.test",
        &["ian@corp.test"],
        forged.as_bytes(),
    )
    .unwrap();
    smtp_send(listen, "pat@partner.test", &["ian@corp.test"], &foreign).unwrap();
    let got = internal.wait_for(6, Duration::from_secs(30)).unwrap();
    let find = |subject: &str, rcpt: &str| {
        got.iter()
            .find(|m| {
                m.rcpt_to.iter().any(|r| r == rcpt)
                    && String::from_utf8_lossy(&m.data).contains(&format!("Subject: {subject}\r\n"))
            })
            .unwrap_or_else(|| panic!("{subject} for {rcpt} not delivered"))
    };
    let text_of =
        |m: &sealgate_testkit::sink::SinkMessage| String::from_utf8_lossy(&m.data).to_string();

    let m = text_of(find("enc", "ian@corp.test"));
    assert!(m.contains("DECRYPT-MARKER secret text"), "{m}");
    assert!(
        m.contains("X-Sealgate-Decrypted: by sealgate with certificate SHA256:"),
        "{m}"
    );
    assert!(m.contains("subject CN=ian@corp.test"), "{m}");
    assert!(!m.contains("application/pkcs7-mime"), "{m}");
    assert!(!m.contains("X-Sealgate-Signature"), "{m}");

    let m = text_of(find("signed", "ian@corp.test"));
    assert!(
        m.contains("X-Sealgate-Signature: valid; signer CN=pat@partner.test"),
        "{m}"
    );
    assert!(m.contains("multipart/signed"), "{m}");

    // Two recipients: ian's copy decrypted, jo's unchanged.
    let ian_copy = find("two", "ian@corp.test");
    assert_eq!(ian_copy.rcpt_to, vec!["ian@corp.test".to_string()]);
    assert!(text_of(ian_copy).contains("DECRYPT-MARKER"));
    let jo_copy = find("two", "jo@corp.test");
    assert_eq!(jo_copy.rcpt_to, vec!["jo@corp.test".to_string()]);
    assert!(!text_of(jo_copy).contains("DECRYPT-MARKER"));
    assert!(text_of(jo_copy).contains("application/pkcs7-mime"));

    let m = text_of(find("forged", "ian@corp.test"));
    assert!(
        !m.contains("X-Sealgate-Decrypted"),
        "the forged field is gone: {m}"
    );

    let m = find("foreign", "ian@corp.test");
    assert!(m.data.ends_with(&foreign), "passed unchanged");
    assert!(
        outbound.messages().is_empty(),
        "nothing left towards the outbound side"
    );
}
