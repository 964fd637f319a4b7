//! `incoming.decrypt` for PGP/MIME (issue 9, item 9) through the real
//! binary: mail made by `gpg --encrypt` for an internal user whose secret
//! key was handed over with `sealgate keys import-secret` reaches the
//! internal MTA decrypted and marked with the key; signed inside by a
//! partner whose key sealgate knows, the signature is marked valid (and the
//! binding's `sign_used` set); by an unknown key, not verified. A recipient
//! without a held key gets the message unchanged (its own copy), mail to
//! someone else passes unchanged, and nothing goes towards the outbound side.

use crate::gateway::{text, Gateway};
use crate::trust::on_postgres;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::{Sink, SinkMessage};
use std::time::Duration;

#[test]
fn incoming_pgp_mime_mail_is_decrypted_for_internal_users() {
    pgp_decrypted_for_internal_users("sqlite://data/s.db");
}

/// The same with the store (and the sealed secret keys) on PostgreSQL.
#[test]
fn incoming_pgp_mime_mail_is_decrypted_for_internal_users_postgres() {
    on_postgres(pgp_decrypted_for_internal_users);
}

fn pgp_decrypted_for_internal_users(store: &str) {
    let gpg = GnupgHome::new();
    let ida = gpg.gen_key("Ida <ida@corp.test>", "future-default");
    let pat = gpg.gen_key("Pat <pat@partner.test>", "future-default");
    let mallory = gpg.gen_key("Mallory <pat@partner.test>", "future-default");
    let joe = gpg.gen_key("Joe <joe@elsewhere.test>", "future-default");
    let files = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = files.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let ida_secret = put("ida.sec.asc", &gpg.export_secret(&ida));
    let ida_public = put("ida.asc", &gpg.export_armored(&ida));
    let pat_public = put("pat.asc", &gpg.export_armored(&pat));
    let kek = put("kek", format!("{}\n", "5a".repeat(32)).as_bytes());

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
    // A public key is not a secret key; then the real one.
    let o = gw.cli(&["keys", "import-secret", &ida_public]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no secret key material"), "{}", text(&o));
    for args in [
        vec!["keys", "import-secret", &ida_secret],
        vec!["keys", "import", &pat_public],
    ] {
        let o = gw.cli(&args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    let o = gw.cli(&["keys", "list"]);
    assert!(
        text(&o).contains(&format!("pgp  {ida}  for ida@corp.test")),
        "{}",
        text(&o)
    );
    // The secret key is not in the store in the clear.
    if store.starts_with("sqlite") {
        let db = std::fs::read(gw.dir.path().join("data/s.db")).unwrap();
        let secret = String::from_utf8(gpg.export_secret(&ida)).unwrap();
        for line in secret.lines().skip(3).take(5) {
            assert!(
                !db.windows(line.len()).any(|w| w == line.as_bytes()),
                "secret key text in the database file"
            );
        }
    }

    let headers = |id: &str| {
        format!("From: pat@partner.test\r\nTo: ida@corp.test\r\nSubject: {id}\r\nMessage-ID: <{id}@partner.test>\r\n")
    };
    let entity =
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nPGP-DECRYPT-MARKER secret text\r\n";
    let signed = gpg.pgp_mime_encrypted(&[&ida], Some(&pat), &headers("signed"), entity);
    let unsigned = gpg.pgp_mime_encrypted(&[&ida], None, &headers("unsigned"), entity);
    let stranger = gpg.pgp_mime_encrypted(&[&ida], Some(&mallory), &headers("stranger"), entity);
    let two = gpg.pgp_mime_encrypted(&[&ida], None, &headers("two"), entity);
    let foreign = gpg.pgp_mime_encrypted(&[&joe], None, &headers("foreign"), entity);
    // Signed first (a multipart/signed entity, RFC 3156 §6.1), then
    // encrypted; once intact, once with a byte of the signed text changed.
    let detached = gpg.pgp_mime_signed(&pat, "", entity);
    let mut tampered = detached.clone();
    let at = tampered.windows(6).position(|w| w == b"secret").unwrap();
    tampered[at] = b'S';
    let signed_inside = gpg.pgp_mime_encrypted(&[&ida], None, &headers("detached"), &detached);
    let bad_inside = gpg.pgp_mime_encrypted(&[&ida], None, &headers("tampered"), &tampered);
    for m in [
        &signed,
        &unsigned,
        &stranger,
        &foreign,
        &signed_inside,
        &bad_inside,
    ] {
        smtp_send(listen, "pat@partner.test", &["ida@corp.test"], m).unwrap();
    }
    smtp_send(
        listen,
        "pat@partner.test",
        &["ida@corp.test", "jo@corp.test"],
        &two,
    )
    .unwrap();
    let got = internal.wait_for(8, Duration::from_secs(30)).unwrap();
    let find = |subject: &str, rcpt: &str| -> &SinkMessage {
        got.iter()
            .find(|m| {
                m.rcpt_to.iter().any(|r| r == rcpt)
                    && String::from_utf8_lossy(&m.data).contains(&format!("Subject: {subject}\r\n"))
            })
            .unwrap_or_else(|| panic!("{subject} for {rcpt} not delivered"))
    };
    let text_of = |m: &SinkMessage| String::from_utf8_lossy(&m.data).to_string();

    let m = text_of(find("signed", "ida@corp.test"));
    assert!(m.contains("PGP-DECRYPT-MARKER secret text"), "{m}");
    assert!(
        m.contains(&format!(
            "X-Sealgate-Decrypted: by sealgate with OpenPGP key {ida}; user id Ida <ida@corp.test>"
        )),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "X-Sealgate-Signature: valid; signer OpenPGP key {pat} (bound to the sender at level provider_trust)"
        )),
        "{m}"
    );
    assert!(!m.contains("application/pgp-encrypted"), "{m}");
    assert!(!m.contains("BEGIN PGP MESSAGE"), "{m}");

    let m = text_of(find("unsigned", "ida@corp.test"));
    assert!(m.contains("PGP-DECRYPT-MARKER"), "{m}");
    assert!(m.contains("X-Sealgate-Decrypted"), "{m}");
    assert!(!m.contains("X-Sealgate-Signature"), "{m}");

    let m = text_of(find("stranger", "ida@corp.test"));
    assert!(m.contains("PGP-DECRYPT-MARKER"), "{m}");
    assert!(
        m.contains("X-Sealgate-Signature: not verified (sealgate has no key of the signer"),
        "{m}"
    );

    let m = text_of(find("detached", "ida@corp.test"));
    assert!(m.contains("multipart/signed"), "{m}");
    assert!(
        m.contains(&format!(
            "X-Sealgate-Signature: valid; signer OpenPGP key {pat}"
        )),
        "{m}"
    );
    let m = text_of(find("tampered", "ida@corp.test"));
    assert!(m.contains("PGP-DECRYPT-MARKER Secret"), "{m}");
    assert!(m.contains("X-Sealgate-Signature: invalid ("), "{m}");

    // Two recipients: ida's copy decrypted, jo's unchanged.
    let ida_copy = find("two", "ida@corp.test");
    assert_eq!(ida_copy.rcpt_to, vec!["ida@corp.test".to_string()]);
    assert!(text_of(ida_copy).contains("PGP-DECRYPT-MARKER"));
    let jo_copy = find("two", "jo@corp.test");
    assert_eq!(jo_copy.rcpt_to, vec!["jo@corp.test".to_string()]);
    assert!(jo_copy.data.ends_with(&two), "jo's copy unchanged");

    let m = find("foreign", "ida@corp.test");
    assert!(m.data.ends_with(&foreign), "passed unchanged");
    assert!(
        outbound.messages().is_empty(),
        "nothing left towards the outbound side"
    );

    // The verified signature is recorded on pat's binding.
    let o = gw.cli(&["keys", "list", "--address", "pat@partner.test", "--json"]);
    let l: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(l["bindings"][0]["fingerprint"], pat.as_str(), "{l}");
    assert_eq!(l["bindings"][0]["sign_used"], true, "{l}");
    // Removing the key stops decryption.
    let o = gw.cli(&["keys", "remove", &ida]);
    assert!(
        text(&o).contains("removed the held secret key"),
        "{}",
        text(&o)
    );
    let again = gpg.pgp_mime_encrypted(&[&ida], None, &headers("again"), entity);
    smtp_send(listen, "pat@partner.test", &["ida@corp.test"], &again).unwrap();
    let got = internal.wait_for(9, Duration::from_secs(30)).unwrap();
    assert!(
        got.iter().any(|m| m.data.ends_with(&again)),
        "passed unchanged"
    );
}
