//! Which OpenPGP keys may be encrypted to (`encryption_subkeys`).
//!
//! The key stage calls a certificate unusable when this selection is empty,
//! and the encryptor encrypts to exactly this selection, so both its positive
//! and its negative answers matter: expired, revoked and sign-only
//! certificates must yield nothing, and the encryptor must refuse them rather
//! than silently drop a recipient.

use std::time::{Duration, SystemTime};

use sealgate_crypto::pgp::{encrypt_pgp_mime, encryption_subkeys};
use sealgate_crypto::CryptoError;
use sealgate_testkit::gnupg::GnupgHome;
use sequoia_openpgp::cert::prelude::*;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::types::{KeyFlags, ReasonForRevocation};
use sequoia_openpgp::Cert;

const DAY: Duration = Duration::from_secs(86400);

fn builder() -> CertBuilder<'static> {
    CertBuilder::general_purpose(Some("Alice <alice@example.org>"))
        .set_creation_time(SystemTime::now() - 10 * DAY)
}

fn assert_refused(cert: &Cert) {
    let err = encrypt_pgp_mime(b"Subject: x\r\n\r\nsecret\r\n", &[cert]).unwrap_err();
    match err {
        CryptoError::NoEncryptionSubkey { fingerprint } => {
            assert_eq!(fingerprint, cert.fingerprint().to_hex())
        }
        other => panic!("expected NoEncryptionSubkey, got {other}"),
    }
}

#[test]
fn general_purpose_cert_has_its_encryption_subkey() {
    let (cert, _) = builder().generate().unwrap();
    let keys = encryption_subkeys(&cert, SystemTime::now());
    assert_eq!(keys.len(), 1);
    assert!(keys[0].for_transport_encryption() || keys[0].for_storage_encryption());
    assert_ne!(
        keys[0].key().fingerprint(),
        cert.fingerprint(),
        "a subkey, not the primary"
    );
}

#[test]
fn storage_only_and_multiple_encryption_subkeys_all_count() {
    let (cert, _) = CertBuilder::new()
        .add_userid("Alice <alice@example.org>")
        .set_creation_time(SystemTime::now() - DAY)
        .add_transport_encryption_subkey()
        .add_storage_encryption_subkey()
        .add_signing_subkey()
        .generate()
        .unwrap();
    assert_eq!(encryption_subkeys(&cert, SystemTime::now()).len(), 2);
}

#[test]
fn expired_cert_has_none() {
    let (cert, _) = builder().set_validity_period(DAY).generate().unwrap();
    assert!(encryption_subkeys(&cert, SystemTime::now()).is_empty());
    // It was usable while it was valid.
    assert_eq!(
        encryption_subkeys(&cert, SystemTime::now() - 9 * DAY - DAY / 2).len(),
        1
    );
    assert_refused(&cert);
}

#[test]
fn cert_not_yet_valid_has_none() {
    let (cert, _) = CertBuilder::general_purpose(Some("Alice <alice@example.org>"))
        .set_creation_time(SystemTime::now() + DAY)
        .generate()
        .unwrap();
    assert!(encryption_subkeys(&cert, SystemTime::now()).is_empty());
}

#[test]
fn revoked_cert_has_none() {
    let (cert, revocation) = builder().generate().unwrap();
    let (cert, _) = cert.insert_packets(revocation).unwrap();
    assert!(encryption_subkeys(&cert, SystemTime::now()).is_empty());
    assert_refused(&cert);
}

#[test]
fn expired_or_revoked_subkey_is_not_selected() {
    // Subkey expired a day after creation; the certificate itself is valid.
    let (cert, _) = CertBuilder::new()
        .add_userid("Alice <alice@example.org>")
        .set_creation_time(SystemTime::now() - 10 * DAY)
        .add_subkey(KeyFlags::empty().set_transport_encryption(), DAY, None)
        .generate()
        .unwrap();
    assert!(encryption_subkeys(&cert, SystemTime::now()).is_empty());
    assert_refused(&cert);

    // A revoked encryption subkey.
    let (cert, _) = builder().generate().unwrap();
    let mut signer = cert
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let enc = encryption_subkeys(&cert, SystemTime::now())[0]
        .key()
        .fingerprint();
    let subkey = cert
        .keys()
        .subkeys()
        .find(|k| k.key().fingerprint() == enc)
        .unwrap()
        .key()
        .clone();
    let sig = SubkeyRevocationBuilder::new()
        .set_reason_for_revocation(ReasonForRevocation::KeyCompromised, b"lost")
        .unwrap()
        .build(&mut signer, &cert, &subkey, None)
        .unwrap();
    let (cert, _) = cert.insert_packets(sig).unwrap();
    assert!(encryption_subkeys(&cert, SystemTime::now()).is_empty());
    assert_refused(&cert);
}

#[test]
fn sign_only_cert_has_none() {
    let (cert, _) = CertBuilder::new()
        .add_userid("Alice <alice@example.org>")
        .set_creation_time(SystemTime::now() - DAY)
        .add_signing_subkey()
        .generate()
        .unwrap();
    assert!(encryption_subkeys(&cert, SystemTime::now()).is_empty());
    assert_refused(&cert);
}

#[test]
fn gpg_made_keys_agree_with_gpg() {
    let home = GnupgHome::new();
    for (uid, algo) in [
        ("Alice <alice@example.org>", "future-default"),
        ("Bob <bob@example.net>", "rsa3072"),
    ] {
        let fpr = home.gen_key(uid, algo);
        let cert = Cert::from_bytes(&home.export_armored(&fpr)).unwrap();
        let ours: Vec<String> = encryption_subkeys(&cert, SystemTime::now())
            .iter()
            .map(|k| k.key().keyid().to_hex())
            .collect();
        assert_eq!(ours, home.encryption_keyids(&fpr), "{algo}");
    }
    // A gpg key made sign-only (no encryption subkey) is unusable.
    let mut cmd = home.gpg();
    cmd.args([
        "--quick-gen-key",
        "Sign Only <sign@example.org>",
        "ed25519",
        "sign",
        "never",
    ]);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = Cert::from_bytes(&home.export_armored("sign@example.org")).unwrap();
    assert!(encryption_subkeys(&cert, SystemTime::now()).is_empty());
}
