//! S/MIME signatures judged by `openssl cms -verify`: every sample signed
//! with a certificate under an intermediate verifies against the root alone
//! (the chain travels in the signature) and gives back the inner entity
//! byte for byte; the signature carries SMIMECapabilities; signed, then
//! encrypted, it decrypts and then verifies; gpgsm verifies it too; a key
//! that is not the certificate's is refused.

mod common;

use openssl::pkey::PKey;
use openssl::x509::X509;
use sealgate_crypto::mime::{Message, Parts};
use sealgate_crypto::sign::sign_smime_parts;
use sealgate_crypto::smime::{encrypt_smime, SmimeCipher};
use sealgate_crypto::CryptoError;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::pki::{
    cms_decrypt, cms_verify, split_signed, CertOptions, IssuedCert, TestCa,
};
use std::path::Path;
use std::process::Command;

struct Signer {
    root: TestCa,
    inter: TestCa,
    cert: IssuedCert,
}

fn signer() -> Signer {
    let root = TestCa::new("Sign Root");
    let inter = root.intermediate("Sign Intermediate");
    let cert = inter.issue(CertOptions {
        email: Some("sender@example.org".into()),
        ..Default::default()
    });
    Signer { root, inter, cert }
}

fn sign(s: &Signer, raw: &[u8]) -> Vec<u8> {
    let x = X509::from_pem(&s.cert.cert_pem).unwrap();
    let key = PKey::private_key_from_pem(&std::fs::read(&s.cert.key_path).unwrap()).unwrap();
    let chain = [X509::from_pem(&s.inter.cert_pem).unwrap()];
    sign_smime_parts(&Parts::of(raw), &x, &key, &chain).unwrap()
}

/// `openssl cms -verify` against `root` only: the verified content.
fn verify(message: &[u8], root: &Path) -> Result<Vec<u8>, String> {
    cms_verify(message, root).map(|(content, _signer)| content)
}

#[test]
fn every_sample_verifies_with_openssl_against_the_root() {
    let s = signer();
    // What sealgate signs has CRLF lines (bare LF is normalised or refused
    // at DATA): the samples with bare LF are not what it would sign.
    let crlf = |raw: &[u8]| {
        !raw.windows(2)
            .enumerate()
            .any(|(i, w)| w[1] == b'\n' && w[0] != b'\r' || (i == 0 && w[0] == b'\n'))
    };
    for sample in common::all().into_iter().filter(|s| crlf(&s.raw)) {
        let signed = sign(&s, &sample.raw);
        let m = Message::parse(&signed);
        let ct = m.content_type();
        assert_eq!(ct.mime_type, "multipart/signed", "{}", sample.name);
        assert_eq!(ct.param("protocol"), Some("application/pkcs7-signature"));
        assert_eq!(ct.param("micalg"), Some("sha-256"));
        let content = verify(&signed, &s.root.cert_pem_path)
            .unwrap_or_else(|e| panic!("{}: openssl cms -verify: {e}", sample.name));
        assert!(
            content == Message::parse(&sample.raw).inner_entity(),
            "{}: the verified content is not the inner entity",
            sample.name
        );
    }
}

#[test]
fn the_signature_carries_capabilities_and_the_chain() {
    let s = signer();
    let signed = sign(&s, &common::utf8_long_lines().raw);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("signed.eml");
    std::fs::write(&input, &signed).unwrap();
    let o = Command::new("openssl")
        .args(["cms", "-cmsout", "-print", "-inform", "SMIME", "-in"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(printed.contains("S/MIME Capabilities"), "{printed}");
    assert!(
        printed.contains("Sign Intermediate"),
        "the intermediate travels along: {printed}"
    );
    assert!(printed.contains("sha256"), "{printed}");
}

#[test]
fn signed_then_encrypted_decrypts_then_verifies() {
    let s = signer();
    let recipient = s.inter.issue(CertOptions {
        email: Some("bob@example.net".into()),
        ..Default::default()
    });
    let sample = common::utf8_long_lines();
    let signed = sign(&s, &sample.raw);
    let encrypted = encrypt_smime(
        &signed,
        &[X509::from_pem(&recipient.cert_pem).unwrap()],
        SmimeCipher::Aes256Cbc,
    )
    .unwrap();
    let inner = cms_decrypt(&encrypted, &recipient).expect("openssl cms -decrypt");
    let content = verify(&inner, &s.root.cert_pem_path).expect("then openssl cms -verify");
    assert!(content == Message::parse(&sample.raw).inner_entity());
}

/// gpgsm, the other S/MIME implementation here, verifies the signature
/// over the first part with the root alone trusted (the intermediate from
/// the signature).
#[test]
fn gpgsm_verifies_the_signature() {
    let s = signer();
    let signed = sign(&s, &common::utf8_long_lines().raw);
    let (content, der) = split_signed(&signed).expect("a multipart/signed message");
    let home = GnupgHome::new();
    let status = home
        .gpgsm_verify(&s.root.cert_pem_path, &der, &content)
        .expect("gpgsm --verify");
    assert!(status.contains("sender@example.org"), "{status}");
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let s = signer();
    let other = s.inter.issue(CertOptions::default());
    let x = X509::from_pem(&s.cert.cert_pem).unwrap();
    let wrong = PKey::private_key_from_pem(&std::fs::read(&other.key_path).unwrap()).unwrap();
    let e = sign_smime_parts(&Parts::of(b"Subject: x\r\n\r\nhi\r\n"), &x, &wrong, &[]).unwrap_err();
    assert!(matches!(e, CryptoError::UnusableSigner { .. }), "{e}");
}
