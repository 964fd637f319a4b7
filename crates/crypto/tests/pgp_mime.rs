//! PGP/MIME output judged by GnuPG.
//!
//! Keys are made by the real `gpg`; sealgate encrypts to their public
//! certificates; `gpg --decrypt` must give back the inner entity byte for byte,
//! and `gpg --list-packets` must show exactly the expected encryption subkeys
//! (recipient privacy) and nothing else.

mod common;

use sealgate_crypto::mime::Message;
use sealgate_crypto::pgp::{encrypt_pgp_mime, encryption_subkeys};
use sealgate_testkit::gnupg::GnupgHome;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::Cert;

/// A GnuPG home with one fresh key, and that key as a sequoia cert.
struct Peer {
    home: GnupgHome,
    cert: Cert,
}

fn peer(uid: &str, algo: &str) -> Peer {
    let home = GnupgHome::new();
    let fpr = home.gen_key(uid, algo);
    let cert = Cert::from_bytes(&home.export_armored(&fpr)).expect("gpg exported a parseable cert");
    assert_eq!(cert.fingerprint().to_hex(), fpr);
    Peer { home, cert }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Checks the RFC 3156 structure and returns the armored part.
fn assert_pgp_mime_structure(encrypted: &[u8]) {
    let msg = Message::parse(encrypted);
    let ct = msg.content_type();
    assert_eq!(ct.mime_type, "multipart/encrypted");
    assert_eq!(ct.param("protocol"), Some("application/pgp-encrypted"));
    let boundary = ct
        .param("boundary")
        .expect("boundary parameter")
        .to_string();
    let body = msg.body();
    let delimiter = format!("\r\n--{boundary}\r\n");
    let close = format!("\r\n--{boundary}--\r\n");
    assert!(
        body.ends_with(close.as_bytes()),
        "no close delimiter at the end"
    );
    let text = String::from_utf8(body.to_vec()).expect("PGP/MIME body is ASCII");
    let parts: Vec<&str> = text[..text.len() - close.len()].split(&delimiter).collect();
    assert_eq!(parts.len(), 3, "preamble + 2 parts");
    assert_eq!(
        parts[1],
        "Content-Type: application/pgp-encrypted\r\n\
         Content-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n"
    );
    let part2 = Message::parse(parts[2].as_bytes());
    assert_eq!(part2.content_type().mime_type, "application/octet-stream");
    assert_eq!(part2.content_type().param("name"), Some("encrypted.asc"));
    let armor = std::str::from_utf8(part2.body()).unwrap();
    assert!(
        armor.starts_with("-----BEGIN PGP MESSAGE-----\r\n"),
        "{armor:.60}"
    );
    assert!(armor.ends_with("-----END PGP MESSAGE-----\r\n"));
    assert!(
        !armor.replace("\r\n", "").contains('\n'),
        "armor lines must end in CRLF"
    );
}

fn round_trip_all_samples(p: &Peer) {
    let expected_ids = sorted(p.home.encryption_keyids(&p.cert.fingerprint().to_hex()));
    assert_eq!(expected_ids.len(), 1);
    for sample in common::all() {
        let encrypted = encrypt_pgp_mime(&sample.raw, &[&p.cert]).expect("encrypt");
        common::assert_outer_layout(&sample.raw, &encrypted);
        assert_pgp_mime_structure(&encrypted);
        let plain = p
            .home
            .decrypt(&encrypted)
            .unwrap_or_else(|e| panic!("{}: gpg could not decrypt: {e}", sample.name));
        let inner = Message::parse(&sample.raw).inner_entity();
        assert!(
            plain == inner,
            "{}: decrypted bytes differ from the inner entity",
            sample.name
        );
        assert_eq!(
            sorted(p.home.recipient_keyids(&encrypted)),
            expected_ids,
            "{}",
            sample.name
        );
    }
}

#[test]
fn ed25519_cv25519_round_trip_every_sample() {
    let alice = peer("Alice <alice@example.org>", "future-default");
    round_trip_all_samples(&alice);
}

#[test]
fn rsa3072_round_trip_every_sample() {
    let bob = peer("Bob <bob@example.net>", "rsa3072");
    round_trip_all_samples(&bob);
}

#[test]
fn two_recipients_both_decrypt_and_only_they_are_named() {
    let alice = peer("Alice <alice@example.org>", "future-default");
    let bob = peer("Bob <bob@example.net>", "rsa3072");
    let carol = peer("Carol <carol@example.com>", "future-default");
    let sample = common::html_with_attachment();
    let encrypted = encrypt_pgp_mime(&sample.raw, &[&alice.cert, &bob.cert]).expect("encrypt");
    let inner = Message::parse(&sample.raw).inner_entity();

    for (who, p) in [("alice", &alice), ("bob", &bob)] {
        let plain = p
            .home
            .decrypt(&encrypted)
            .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert!(
            plain == inner,
            "{who}: decrypted bytes differ from the inner entity"
        );
    }
    assert!(
        carol.home.decrypt(&encrypted).is_err(),
        "carol must not be able to decrypt"
    );

    let mut expected = alice
        .home
        .encryption_keyids(&alice.cert.fingerprint().to_hex());
    expected.extend(bob.home.encryption_keyids(&bob.cert.fingerprint().to_hex()));
    // What gpg lists as recipients is exactly the two encryption subkeys, as
    // both gpg and our own subkey selection see them.
    let listed = sorted(carol.home.recipient_keyids(&encrypted));
    assert_eq!(listed, sorted(expected));
    let now = std::time::SystemTime::now();
    let ours: Vec<String> = [&alice.cert, &bob.cert]
        .iter()
        .flat_map(|c| encryption_subkeys(c, now))
        .map(|k| k.key().keyid().to_hex())
        .collect();
    assert_eq!(listed, sorted(ours));
}

#[test]
fn already_encrypted_output_and_no_recipient_leak() {
    let alice = peer("Alice <alice@example.org>", "future-default");
    let sample = common::plain_ascii();
    let a = encrypt_pgp_mime(&sample.raw, &[&alice.cert]).unwrap();
    let b = encrypt_pgp_mime(&sample.raw, &[&alice.cert]).unwrap();
    // Fresh session key and boundary every time.
    assert_ne!(a, b);
    let ba = Message::parse(&a)
        .content_type()
        .param("boundary")
        .map(str::to_string);
    let bb = Message::parse(&b)
        .content_type()
        .param("boundary")
        .map(str::to_string);
    assert_ne!(ba, bb);
    // The original Content-* fields are inside only.
    assert!(common::raw_header(&a, "Content-Transfer-Encoding").is_none());
    assert!(!a.windows(b"Hello Alice".len()).any(|w| w == b"Hello Alice"));
    assert!(Message::parse(&a).is_encrypted());
}

#[test]
fn empty_recipient_list_is_an_error() {
    let err = encrypt_pgp_mime(&common::plain_ascii().raw, &[]).unwrap_err();
    assert!(
        matches!(err, sealgate_crypto::CryptoError::NoRecipients),
        "{err}"
    );
}

/// The SEIPD packet version of the PGP/MIME message in `encrypted`.
fn seipd_version(encrypted: &[u8]) -> u8 {
    use sequoia_openpgp::{Packet, PacketPile};
    let text = std::str::from_utf8(encrypted).unwrap();
    let start = text.find("-----BEGIN PGP MESSAGE-----").unwrap();
    let end = text.find("-----END PGP MESSAGE-----").unwrap() + "-----END PGP MESSAGE-----".len();
    let pile = PacketPile::from_bytes(&text[start..end]).expect("parse our OpenPGP message");
    let versions: Vec<u8> = pile
        .children()
        .filter_map(|p| match p {
            Packet::SEIP(seip) => Some(seip.version()),
            _ => None,
        })
        .collect();
    assert_eq!(versions.len(), 1, "exactly one SEIPD packet");
    versions[0]
}

#[test]
fn seipd_version_follows_the_recipients_features() {
    use sequoia_openpgp::cert::{CertBuilder, CipherSuite};
    use sequoia_openpgp::Profile;
    let alice = peer("Alice <alice@example.org>", "future-default");
    let (v6, _) = CertBuilder::general_purpose(Some("Dave <dave@example.org>"))
        .set_profile(Profile::RFC9580)
        .unwrap()
        .set_cipher_suite(CipherSuite::Cv25519)
        .generate()
        .unwrap();
    let sample = common::plain_ascii();
    // GnuPG 2.2 keys do not advertise SEIPDv2: version 1, which gpg reads.
    let for_gpg = encrypt_pgp_mime(&sample.raw, &[&alice.cert]).unwrap();
    assert_eq!(seipd_version(&for_gpg), 1);
    // An RFC 9580 key that does: version 2 (AEAD).
    let for_v6 = encrypt_pgp_mime(&sample.raw, &[&v6]).unwrap();
    assert_eq!(seipd_version(&for_v6), 2);
    // Both together: the lowest common denominator, still readable by gpg.
    let mixed = encrypt_pgp_mime(&sample.raw, &[&alice.cert, &v6]).unwrap();
    assert_eq!(seipd_version(&mixed), 1);
    let plain = alice
        .home
        .decrypt(&mixed)
        .expect("gpg decrypts the mixed message");
    assert!(plain == Message::parse(&sample.raw).inner_entity());
}

/// Issue 6 item 14: encryption checks its cancel token (set when the
/// message timed out) and stops; with a live token it encrypts as usual.
#[test]
fn a_cancelled_encryption_stops() {
    use sealgate_crypto::cpu::Cancel;
    use sealgate_crypto::mime::Parts;
    use sealgate_crypto::pgp::encrypt_pgp_mime_parts;
    let p = peer("Cleo <cleo@example.org>", "future-default");
    let parts = Parts::of(b"Subject: c\r\n\r\nbody\r\n");
    let live = Cancel::never();
    assert!(encrypt_pgp_mime_parts(&parts, &[&p.cert], &live).is_ok());
    let cancelled = {
        // A token whose job was given up: run() sets it when its caller's
        // future is dropped; here the flag is reached through a job.
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let (tx, rx) = std::sync::mpsc::channel();
            let fut = sealgate_crypto::cpu::run(move |cancel: &Cancel| {
                let c = cancel.clone();
                tx.send(c).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(300));
            });
            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), fut).await;
            rx.recv().unwrap()
        })
    };
    assert!(cancelled.is_cancelled());
    let err = encrypt_pgp_mime_parts(&parts, &[&p.cert], &cancelled).unwrap_err();
    assert!(
        matches!(err, sealgate_crypto::CryptoError::Cancelled),
        "{err}"
    );
}
