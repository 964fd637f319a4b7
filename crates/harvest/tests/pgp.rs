//! The OpenPGP harvesting gates (`sealgate_harvest::pgp::examine`) on
//! PGP/MIME mail signed by gpg: a key signed by itself is learned; the
//! address's current key may vouch for a new one; a key outside the signed
//! part, an oversized key, a signature by another key are refused with the
//! reason; an `.asc` attachment that holds no key and mail without keys
//! teach nothing.

use sealgate_harvest::pgp::{examine, MAX_KEY_BYTES};
use sealgate_testkit::gnupg::GnupgHome;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::Cert;

fn head(from: &str) -> String {
    format!("From: {from}\r\nTo: ian@corp.test\r\nSubject: key\r\n")
}

fn cert(gpg: &GnupgHome, fpr: &str) -> Cert {
    Cert::from_bytes(&gpg.export_armored(fpr)).unwrap()
}

#[test]
fn self_signed_and_vouched_keys() {
    let gpg = GnupgHome::new();
    let old = gpg.gen_key("Olga <olga@partner.test>", "future-default");
    let new = gpg.gen_key("Olga (new) <Olga@Partner.test>", "future-default");
    let m = gpg.pgp_mime_signed(
        &old,
        &head("Olga <OLGA@partner.test>"),
        &gpg.entity_with_key("my key", &old),
    );
    let found = examine(&m, None).unwrap().unwrap();
    assert_eq!(found.address, "olga@partner.test");
    assert_eq!(found.signer.to_hex(), old);
    assert_eq!(found.keys.len(), 1);
    assert_eq!(found.keys[0].fingerprint().to_hex(), old);
    assert!(!found.keys[0].is_tsk(), "public parts only");

    // The new key, signed by the old (current) one: vouched for.
    let m = gpg.pgp_mime_signed(
        &old,
        &head("olga@partner.test"),
        &gpg.entity_with_key("my new key", &new),
    );
    let current = cert(&gpg, &old);
    let found = examine(&m, Some(&current)).unwrap().unwrap();
    assert_eq!(found.keys[0].fingerprint().to_hex(), new);
    assert_eq!(
        found.how,
        "attached key, signed by the address's current key"
    );
    // Without the current key, nothing vouches for it.
    let r = examine(&m, None).unwrap_err();
    assert!(r.reason.contains("verifies"), "{r:?}");
}

#[test]
fn refusals_and_nothing_to_learn() {
    let gpg = GnupgHome::new();
    let olga = gpg.gen_key("Olga <olga@partner.test>", "future-default");
    // A key next to the signed part, not inside it.
    let signed = gpg.pgp_mime_signed(&olga, "", b"Content-Type: text/plain\r\n\r\nhello\r\n");
    let key = gpg.entity_with_key("k", &olga);
    let mut outside = head("olga@partner.test").into_bytes();
    outside.extend_from_slice(
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"out\"\r\n\r\n--out\r\n",
    );
    outside.extend_from_slice(&signed[..signed.len() - 2]);
    outside.extend_from_slice(b"\r\n--out\r\n");
    outside.extend_from_slice(&key);
    outside.extend_from_slice(b"\r\n--out--\r\n");
    let r = examine(&outside, None).unwrap_err();
    assert!(r.reason.contains("not PGP/MIME signed"), "{r:?}");
    assert_eq!(r.address.as_deref(), Some("olga@partner.test"));

    // An oversized key attachment inside the signed part.
    let big = format!(
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: application/pgp-keys\r\n\r\n-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n\r\n{}\r\n-----END PGP PUBLIC KEY BLOCK-----\r\n--b--",
        "mQINBGN".repeat(MAX_KEY_BYTES / 6)
    );
    let m = gpg.pgp_mime_signed(&olga, &head("olga@partner.test"), big.as_bytes());
    let r = examine(&m, None).unwrap_err();
    assert!(r.reason.contains("larger than"), "{r:?}");

    // Two From addresses.
    let m = gpg.pgp_mime_signed(
        &olga,
        &head("olga@partner.test, eve@evil.test"),
        &gpg.entity_with_key("k", &olga),
    );
    let r = examine(&m, None).unwrap_err();
    assert!(r.reason.contains("single From"), "{r:?}");

    // An .asc attachment that is a signature or text, not a key: nothing.
    let not_a_key = b"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream; name=\"notes.asc\"\r\n\r\njust text\r\n--b--";
    let m = gpg.pgp_mime_signed(&olga, &head("olga@partner.test"), not_a_key);
    assert!(examine(&m, None).unwrap().is_none());
    // A key sent as an .asc file (application/octet-stream, base64) is found.
    let armored = gpg.export_armored(&olga);
    let b64 = b64(&armored);
    let as_file = format!(
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"OLGA.ASC\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--"
    );
    let m = gpg.pgp_mime_signed(&olga, &head("olga@partner.test"), as_file.as_bytes());
    let found = examine(&m, None).unwrap().unwrap();
    assert_eq!(found.keys[0].fingerprint().to_hex(), olga);
    // Mail without any key: nothing to learn, not a refusal.
    assert!(examine(&signed, None).unwrap().is_none());
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode(data)
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n")
}
