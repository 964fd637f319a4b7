//! S/MIME output judged by `openssl cms`.
//!
//! Certificates come from a real test CA (the `openssl` CLI); sealgate
//! encrypts; `openssl cms -decrypt` must give back the inner entity byte for
//! byte, for AES-256-CBC EnvelopedData and AES-256-GCM AuthEnvelopedData,
//! with RSA and EC (P-256) recipients; the RecipientInfos must name exactly
//! the given certificates.

mod common;

use openssl::x509::X509;
use sealgate_crypto::mime::Message;
use sealgate_crypto::smime::{encrypt_smime, encrypt_smime_parts, RsaPadding, SmimeCipher};
use sealgate_crypto::CryptoError;
use sealgate_testkit::pki::{
    cms_content_type, cms_decrypt, cms_print, cms_recipients, CertOptions, IssuedCert, TestCa,
};

const CIPHERS: [SmimeCipher; 2] = [SmimeCipher::Aes256Cbc, SmimeCipher::Aes256Gcm];

fn rsa_cert(ca: &TestCa, email: &str) -> IssuedCert {
    ca.issue(CertOptions {
        email: Some(email.to_string()),
        ..CertOptions::default()
    })
}

fn ec_cert(ca: &TestCa, email: &str) -> IssuedCert {
    ca.issue(CertOptions {
        email: Some(email.to_string()),
        key: "ec-p256".to_string(),
        key_usage: Some("digitalSignature,keyAgreement".to_string()),
        ..CertOptions::default()
    })
}

fn x509(c: &IssuedCert) -> X509 {
    X509::from_der(&c.cert_der).expect("parse issued cert")
}

fn assert_smime_headers(encrypted: &[u8], cipher: SmimeCipher) {
    let msg = Message::parse(encrypted);
    let ct = msg.content_type();
    assert_eq!(ct.mime_type, "application/pkcs7-mime");
    let smime_type = match cipher {
        SmimeCipher::Aes256Cbc => "enveloped-data",
        SmimeCipher::Aes256Gcm => "authEnveloped-data",
    };
    assert_eq!(ct.param("smime-type"), Some(smime_type));
    assert_eq!(ct.param("name"), Some("smime.p7m"));
    let value = |n: &str| {
        msg.header(n)
            .map(sealgate_crypto::mime::header_value_unfolded)
    };
    assert_eq!(
        value("Content-Transfer-Encoding").as_deref(),
        Some("base64")
    );
    assert_eq!(
        value("Content-Disposition").as_deref(),
        Some("attachment; filename=\"smime.p7m\"")
    );
    assert_eq!(
        value("Content-Description").as_deref(),
        Some("S/MIME Encrypted Message")
    );
    let body = std::str::from_utf8(msg.body()).expect("base64 body is ASCII");
    assert!(body.ends_with("\r\n"));
    for line in body.split_terminator("\r\n") {
        assert!(
            line.len() <= 76 && !line.is_empty(),
            "bad base64 line length {}",
            line.len()
        );
        assert!(line
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
    }
}

fn round_trip_all_samples(cert: &IssuedCert) {
    for cipher in CIPHERS {
        for sample in common::all() {
            let encrypted = encrypt_smime(&sample.raw, &[x509(cert)], cipher).expect("encrypt");
            common::assert_outer_layout(&sample.raw, &encrypted);
            assert_smime_headers(&encrypted, cipher);
            let plain = cms_decrypt(&encrypted, cert).unwrap_or_else(|e| {
                panic!("{} {cipher:?}: openssl could not decrypt: {e}", sample.name)
            });
            let inner = Message::parse(&sample.raw).inner_entity();
            assert!(
                plain == inner,
                "{} {cipher:?}: decrypted bytes differ from the inner entity",
                sample.name
            );
            assert_eq!(cms_recipients(&encrypted), vec![cert.recipient_id()]);
            let expected_type = match cipher {
                SmimeCipher::Aes256Cbc => "pkcs7-envelopedData",
                SmimeCipher::Aes256Gcm => "id-smime-ct-authEnvelopedData",
            };
            assert_eq!(cms_content_type(&encrypted), expected_type, "{cipher:?}");
        }
    }
}

#[test]
fn rsa_recipient_cbc_and_gcm_round_trip_every_sample() {
    let ca = TestCa::new("Crypto Test CA RSA");
    let alice = rsa_cert(&ca, "alice@example.org");
    round_trip_all_samples(&alice);
}

#[test]
fn ec_p256_recipient_cbc_and_gcm_round_trip_every_sample() {
    let ca = TestCa::new("Crypto Test CA EC");
    let bob = ec_cert(&ca, "bob@example.net");
    round_trip_all_samples(&bob);
}

#[test]
fn two_recipients_each_decrypt_and_exactly_they_are_named() {
    let ca = TestCa::new("Crypto Test CA Two");
    let alice = rsa_cert(&ca, "alice@example.org");
    let bob = ec_cert(&ca, "bob@example.net");
    let carol = rsa_cert(&ca, "carol@example.com");
    let sample = common::utf8_long_lines();
    let inner = Message::parse(&sample.raw).inner_entity();
    for cipher in CIPHERS {
        let encrypted = encrypt_smime(&sample.raw, &[x509(&alice), x509(&bob)], cipher).unwrap();
        for (who, cert) in [("alice", &alice), ("bob", &bob)] {
            let plain =
                cms_decrypt(&encrypted, cert).unwrap_or_else(|e| panic!("{who} {cipher:?}: {e}"));
            assert!(plain == inner, "{who} {cipher:?}: decrypted bytes differ");
        }
        assert!(
            cms_decrypt(&encrypted, &carol).is_err(),
            "carol must not decrypt ({cipher:?})"
        );
        let mut listed = cms_recipients(&encrypted);
        listed.sort();
        let mut expected = vec![alice.recipient_id(), bob.recipient_id()];
        expected.sort();
        assert_eq!(listed, expected, "{cipher:?}");
        assert!(!listed.contains(&carol.recipient_id()));
    }
}

#[test]
fn content_is_not_visible_and_outputs_differ() {
    let ca = TestCa::new("Crypto Test CA Misc");
    let alice = rsa_cert(&ca, "alice@example.org");
    let sample = common::plain_ascii();
    let a = encrypt_smime(&sample.raw, &[x509(&alice)], SmimeCipher::Aes256Cbc).unwrap();
    let b = encrypt_smime(&sample.raw, &[x509(&alice)], SmimeCipher::Aes256Cbc).unwrap();
    assert_ne!(a, b, "fresh content-encryption key each time");
    assert!(!a.windows(b"Hello Alice".len()).any(|w| w == b"Hello Alice"));
    // The original Content-Type is inside only.
    assert_eq!(
        common::raw_header(&a, "Content-Type")
            .map(|r| r.starts_with(b"Content-Type: application/pkcs7-mime")),
        Some(true)
    );
}

#[test]
fn gpgsm_decrypts_cbc_enveloped_data() {
    use base64::Engine as _;
    let ca = TestCa::new("Crypto Test CA gpgsm");
    let alice = rsa_cert(&ca, "alice@example.org");
    let home = sealgate_testkit::gnupg::GnupgHome::new();
    home.gpgsm_import_p12(&alice.pkcs12_legacy());
    for sample in common::all() {
        let encrypted =
            encrypt_smime(&sample.raw, &[x509(&alice)], SmimeCipher::Aes256Cbc).unwrap();
        let body: Vec<u8> = Message::parse(&encrypted)
            .body()
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        let plain = home
            .gpgsm_decrypt(&der)
            .unwrap_or_else(|e| panic!("{}: {e}", sample.name));
        assert!(
            plain == Message::parse(&sample.raw).inner_entity(),
            "{}: gpgsm output differs",
            sample.name
        );
    }
}

#[test]
fn empty_recipient_list_is_an_error() {
    let err = encrypt_smime(&common::plain_ascii().raw, &[], SmimeCipher::Aes256Gcm).unwrap_err();
    assert!(matches!(err, CryptoError::NoRecipients), "{err}");
}

/// Issue 6 item 3: P-384 and P-521 are encrypted to (ECDH) and read back by
/// openssl; key types CMS cannot encrypt to are refused before OpenSSL is
/// asked, with a permanent error (the pipeline answers 554 5.7.5, not 451).
#[test]
fn key_types_supported_and_refused() {
    let ca = TestCa::new("Crypto Test CA key types");
    let sample = common::plain_ascii();
    for key in ["ec-p384", "ec-p521"] {
        let cert = ca.issue(CertOptions {
            key: key.to_string(),
            key_usage: Some("digitalSignature,keyAgreement".to_string()),
            ..CertOptions::default()
        });
        let encrypted =
            encrypt_smime(&sample.raw, &[x509(&cert)], SmimeCipher::Aes256Cbc).expect(key);
        let plain = cms_decrypt(&encrypted, &cert).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(plain, Message::parse(&sample.raw).inner_entity(), "{key}");
    }
    let good = rsa_cert(&ca, "alice@example.org");
    for (key, why) in [
        ("ed25519", "Ed25519"),
        ("rsa1024", "1024 bits"),
        ("dsa2048", "DSA"),
    ] {
        let bad = ca.issue(CertOptions {
            key: key.to_string(),
            key_usage: Some("digitalSignature".to_string()),
            ..CertOptions::default()
        });
        // One unusable certificate among good ones fails the whole copy.
        let err = encrypt_smime(
            &sample.raw,
            &[x509(&good), x509(&bad)],
            SmimeCipher::Aes256Cbc,
        )
        .unwrap_err();
        assert!(
            matches!(err, CryptoError::UnusableCertificate { .. }),
            "{key}: {err}"
        );
        assert!(err.is_permanent(), "{key}");
        assert!(err.to_string().contains(why), "{key}: {err}");
    }
    assert!(CryptoError::NoRecipients.is_permanent());
    assert!(!CryptoError::OpenSsl("malloc failure".into()).is_permanent());
}

/// RSA-OAEP key transport (SHA-256, MGF1-SHA-256) for RSA recipients, ECDH
/// for an EC one in the same message: `openssl cms -decrypt` opens it for
/// each, with either cipher, and the RecipientInfo says rsaesOaep (PKCS#1
/// v1.5 stays the default: rsaEncryption).
#[test]
fn rsa_oaep_recipients_decrypt_with_openssl() {
    let ca = TestCa::new("Crypto Test CA OAEP");
    let alice = rsa_cert(&ca, "alice@example.org");
    let bob = ec_cert(&ca, "bob@example.net");
    let sample = common::utf8_long_lines();
    let parts = sealgate_crypto::mime::Parts::of(&sample.raw);
    let inner = Message::parse(&sample.raw).inner_entity();
    let never = sealgate_crypto::cpu::Cancel::never();
    for cipher in CIPHERS {
        let encrypted = encrypt_smime_parts(
            &parts,
            &[x509(&alice), x509(&bob)],
            cipher,
            RsaPadding::Oaep,
            &never,
        )
        .unwrap();
        assert_smime_headers(&encrypted, cipher);
        for (who, cert) in [("alice", &alice), ("bob", &bob)] {
            let plain =
                cms_decrypt(&encrypted, cert).unwrap_or_else(|e| panic!("{who} {cipher:?}: {e}"));
            assert!(plain == inner, "{who} {cipher:?}: decrypted bytes differ");
        }
        let printed = cms_print(&encrypted);
        assert!(printed.contains("rsaesOaep"), "{cipher:?}: {printed}");
        let mut listed = cms_recipients(&encrypted);
        listed.sort();
        let mut expected = vec![alice.recipient_id(), bob.recipient_id()];
        expected.sort();
        assert_eq!(listed, expected, "{cipher:?}");
    }
    let pkcs1 = encrypt_smime(&sample.raw, &[x509(&alice)], SmimeCipher::Aes256Cbc).unwrap();
    let printed = cms_print(&pkcs1);
    assert!(
        !printed.contains("rsaesOaep") && printed.contains("rsaEncryption"),
        "{printed}"
    );
}
