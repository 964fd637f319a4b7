//! The S/MIME harvesting gates (`sealgate_harvest::smime::examine`) on mail
//! signed by `openssl cms -sign`: the signer's certificate is learned with
//! its issuers only; a signer with separate signing and encryption
//! certificates gets the encryption one from the bundle; several authors,
//! another address, a signing-only certificate alone are refused with the
//! reason; unsigned mail teaches nothing.

use sealgate_harvest::smime::examine;
use sealgate_testkit::pki::{cms_sign_mail, CertOptions, IssuedCert, TestCa};

const ENTITY: &[u8] = b"Content-Type: text/plain\r\n\r\nhi\r\n";

fn cert(ca: &TestCa, email: &str, usage: &str) -> IssuedCert {
    ca.issue(CertOptions {
        email: Some(email.into()),
        key_usage: Some(usage.into()),
        ..Default::default()
    })
}

fn from(a: &str) -> String {
    format!("From: {a}\r\nTo: x@corp.test\r\n")
}

#[test]
fn the_signer_and_its_issuers_only() {
    let root = TestCa::new("Harvest Unit Root");
    let inter = root.intermediate("Harvest Unit Intermediate");
    let unrelated = TestCa::new("Harvest Unit Unrelated");
    let pat = cert(
        &inter,
        "pat@partner.test",
        "digitalSignature,keyEncipherment",
    );
    let bundle = [
        inter.cert_pem.clone(),
        root.cert_pem.clone(),
        unrelated.cert_pem.clone(),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("bundle.pem");
    std::fs::write(&certs, bundle).unwrap();
    let mail = cms_sign_mail(
        &from("Pat <Pat@Partner.test>"),
        ENTITY,
        &pat,
        &["-certfile", certs.to_str().unwrap()],
    );
    let found = examine(&mail).unwrap().expect("something learned");
    assert_eq!(found.address, "pat@partner.test");
    assert_eq!(found.how, "signer");
    assert_eq!(found.cert.to_der().unwrap(), pat.cert_der);
    let subjects: Vec<String> = found
        .intermediates
        .iter()
        .map(|c| format!("{:?}", c.subject_name()))
        .collect();
    assert_eq!(found.intermediates.len(), 2, "{subjects:?}");
    assert!(
        subjects[0].contains("Harvest Unit Intermediate"),
        "{subjects:?}"
    );
    assert!(subjects[1].contains("Harvest Unit Root"), "{subjects:?}");
    assert!(found.capabilities.is_some());
    assert!(!found.aes256_gcm);
}

#[test]
fn a_separate_encryption_certificate_comes_from_the_bundle() {
    let ca = TestCa::new("Harvest Unit Dual CA");
    let signing = cert(&ca, "dual@partner.test", "digitalSignature");
    let encryption = cert(&ca, "dual@partner.test", "keyEncipherment");
    let other = cert(&ca, "other@partner.test", "keyEncipherment");
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs.pem");
    std::fs::write(
        &certs,
        [other.cert_pem.clone(), encryption.cert_pem.clone()].concat(),
    )
    .unwrap();
    let mail = cms_sign_mail(
        &from("dual@partner.test"),
        ENTITY,
        &signing,
        &["-certfile", certs.to_str().unwrap()],
    );
    let found = examine(&mail).unwrap().unwrap();
    assert_eq!(found.how, "bundle");
    assert_eq!(found.cert.to_der().unwrap(), encryption.cert_der);

    // Without it: refused, saying why.
    let alone = cms_sign_mail(&from("dual@partner.test"), ENTITY, &signing, &[]);
    let r = examine(&alone).unwrap_err();
    assert_eq!(r.address.as_deref(), Some("dual@partner.test"));
    assert!(r.reason.contains("may not encrypt"), "{}", r.reason);
}

#[test]
fn authors_and_addresses_must_match() {
    let ca = TestCa::new("Harvest Unit Author CA");
    let pat = cert(&ca, "pat@partner.test", "digitalSignature,keyEncipherment");
    let two = cms_sign_mail(
        &from("pat@partner.test, eve@partner.test"),
        ENTITY,
        &pat,
        &[],
    );
    let r = examine(&two).unwrap_err();
    assert!(r.reason.contains("2 From: address(es)"), "{}", r.reason);
    assert_eq!(r.address, None);
    let none = cms_sign_mail("To: x@corp.test\r\n", ENTITY, &pat, &[]);
    assert!(examine(&none).unwrap_err().reason.contains("0 From:"));
    let other = cms_sign_mail(&from("ceo@corp.test"), ENTITY, &pat, &[]);
    let r = examine(&other).unwrap_err();
    assert!(
        r.reason
            .contains("no signer's certificate names the From address <ceo@corp.test> (they name: pat@partner.test)"),
        "{}",
        r.reason
    );
    assert!(examine(b"From: a@b.test\r\n\r\nplain\r\n")
        .unwrap()
        .is_none());
}
