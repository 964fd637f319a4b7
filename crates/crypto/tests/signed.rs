//! Reading signed mail (`sealgate_crypto::signed`), with the messages made
//! by `openssl cms -sign`: detached (`multipart/signed`) and opaque
//! signed-data verify and name their signer and the certificates they
//! carry; one changed byte, a wrong label or garbage is refused with the
//! reason, never a panic.

use sealgate_crypto::signed::{verify, SignedError};
use sealgate_testkit::pki::{cms_sign_mail, CertOptions, TestCa};

const HEADERS: &str = "From: Pat <pat@partner.test>\r\nTo: ian@corp.test\r\nSubject: signed\r\n";
const ENTITY: &[u8] = b"Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\nsigned world\r\n";

fn pat(ca: &TestCa) -> sealgate_testkit::pki::IssuedCert {
    ca.issue(CertOptions {
        email: Some("pat@partner.test".into()),
        ..Default::default()
    })
}

#[test]
fn detached_and_opaque_signatures_verify_and_name_the_signer() {
    let root = TestCa::new("Signed Root");
    let inter = root.intermediate("Signed Intermediate");
    let pat = pat(&inter);
    let chain = inter.cert_pem_path.to_str().unwrap().to_string();
    for extra in [
        vec!["-certfile", &chain],
        vec!["-nodetach", "-certfile", &chain],
    ] {
        let mail = cms_sign_mail(HEADERS, ENTITY, &pat, &extra);
        let signed = verify(&mail).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        assert_eq!(signed.signers.len(), 1);
        assert_eq!(signed.signers[0].cert.to_der().unwrap(), pat.cert_der);
        // OpenSSL adds its capabilities unless told not to (no GCM in them).
        let attrs = &signed.signers[0].attributes;
        assert!(attrs.capabilities.is_some(), "{extra:?}");
        assert!(!attrs.aes256_gcm);
        assert!(attrs.encryption_key_preference.is_none());
        let carried: Vec<Vec<u8>> = signed
            .certificates
            .iter()
            .map(|c| c.to_der().unwrap())
            .collect();
        assert!(carried.contains(&pat.cert_der));
        assert!(
            carried
                .iter()
                .any(|c| c.as_slice() != pat.cert_der.as_slice()),
            "the intermediate travels along"
        );
    }
    let bare = cms_sign_mail(HEADERS, ENTITY, &pat, &["-nosmimecap"]);
    let signed = verify(&bare).unwrap();
    assert_eq!(signed.signers[0].attributes.capabilities, None);
}

#[test]
fn a_changed_byte_breaks_the_signature() {
    let ca = TestCa::new("Signed Tamper CA");
    let pat = pat(&ca);
    for extra in [vec![], vec!["-nodetach"]] {
        let mut mail = cms_sign_mail(HEADERS, ENTITY, &pat, &extra);
        if extra.is_empty() {
            let at = mail.windows(5).position(|w| w == b"hello").unwrap();
            mail[at] = b'j';
        } else {
            // Inside the base64 of the opaque content: flip one character
            // of the body's middle line.
            let body = mail.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let at = body + 40;
            mail[at] = if mail[at] == b'A' { b'B' } else { b'A' };
        }
        match verify(&mail) {
            Err(SignedError::BadSignature(_)) | Err(SignedError::Malformed(_)) => {}
            other => panic!("{extra:?}: {other:?}"),
        }
    }
}

#[test]
fn unsigned_mislabelled_and_garbage_messages_are_refused_with_a_reason() {
    assert_eq!(
        verify(b"From: a@b\r\nContent-Type: text/plain\r\n\r\nhi\r\n").unwrap_err(),
        SignedError::NotSigned
    );
    let wrong_protocol = b"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b\r\n\r\ny\r\n--b--\r\n";
    assert_eq!(verify(wrong_protocol).unwrap_err(), SignedError::NotSigned);
    let garbage = b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\nMIIBAgMEBQYHCAkK\r\n--b--\r\n";
    assert!(
        matches!(verify(garbage), Err(SignedError::Malformed(_))),
        "{:?}",
        verify(garbage)
    );
    let one_part = b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
    assert!(matches!(verify(one_part), Err(SignedError::Malformed(_))));
    let not_base64 = b"Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n";
    assert!(matches!(verify(not_base64), Err(SignedError::Malformed(_))));
    // An opaque enveloped-data is not a signature.
    let ca = TestCa::new("Signed Enveloped CA");
    let pat = pat(&ca);
    let enveloped = sealgate_crypto::smime::encrypt_smime(
        b"Subject: x\r\n\r\nsecret\r\n",
        &[openssl::x509::X509::from_pem(&pat.cert_pem).unwrap()],
        sealgate_crypto::smime::SmimeCipher::Aes256Cbc,
    )
    .unwrap();
    assert_eq!(verify(&enveloped).unwrap_err(), SignedError::NotSigned);
    // Without the signer's certificate there is nothing to learn.
    let nocerts = cms_sign_mail(HEADERS, ENTITY, &pat, &["-nocerts"]);
    assert!(verify(&nocerts).is_err());
}
