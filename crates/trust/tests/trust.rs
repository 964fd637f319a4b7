//! The certificate store, the root store and chain validation, with real
//! PKIs made by `openssl` at test time (root -> intermediate -> end entity),
//! on SQLite and on a throwaway PostgreSQL database.

mod common;
use common::sqlite;
use common::Pki;
use openssl::x509::X509;
use sealgate_keys::trust::{CertificateTrust, TrustContext};
use sealgate_store::Store;
use sealgate_testkit::pki::{CertOptions, TestCa};
use sealgate_testkit::postgres::TempDatabase;
use sealgate_trust::{CertFilter, Status, TrustStore};

fn pki() -> Pki {
    common::pki("Trust Test")
}

fn ee(ca: &TestCa, email: &str) -> sealgate_testkit::pki::IssuedCert {
    ca.issue(CertOptions {
        email: Some(email.into()),
        ..Default::default()
    })
}

fn x509(pem: &[u8]) -> X509 {
    X509::from_pem(pem).unwrap()
}

/// Without the root the certificate is not trusted (and says why); with
/// the root but without the intermediate it still is not; with both it is
/// valid, and the chain goes leaf, intermediate, root.
async fn chain_rules(trust: &TrustStore, pki: &Pki) {
    let alice = ee(&pki.inter, "alice@example.org");
    let imported = trust.import_certs(&alice.cert_pem, "import").await.unwrap();
    assert_eq!(imported.len(), 1);
    assert!(imported[0].added && !imported[0].is_ca);
    let sha = imported[0].sha256.clone();

    let v = trust.show_cert(&sha).await.unwrap();
    assert_eq!(
        v.verdict.status,
        Status::NotTrusted("no path to a root (the root store is empty)".into())
    );
    assert_eq!(v.stored.info.emails, vec!["alice@example.org".to_string()]);

    let roots = trust
        .import_roots(&pki.root.cert_pem, "import")
        .await
        .unwrap();
    assert!(roots[0].added);
    let v = trust.show_cert(&sha).await.unwrap();
    match &v.verdict.status {
        Status::NotTrusted(why) => assert!(
            why.contains("neither in the root store nor a known intermediate"),
            "{why}"
        ),
        other => panic!("without the intermediate: {other:?}"),
    }

    // The intermediate arrives with its own import (a p7b would do too).
    let i = trust
        .import_certs(&pki.inter.cert_pem, "import")
        .await
        .unwrap();
    assert!(i[0].is_ca);
    let v = trust.show_cert(&sha).await.unwrap();
    assert_eq!(v.verdict.status, Status::Valid);
    let names: Vec<String> = v
        .verdict
        .chain
        .iter()
        .map(|c| sealgate_trust::cert::name(c.subject_name()))
        .collect();
    assert_eq!(
        names,
        vec![
            "CN=alice@example.org".to_string(),
            "CN=Trust Test Intermediate".to_string(),
            "CN=Trust Test Root".to_string()
        ]
    );

    // The resolver's view: the same verdict through the trust seam.
    let verifier = trust.verifier().await.unwrap();
    assert_eq!(
        verifier.check(&x509(&alice.cert_pem), &TrustContext::STRICT),
        Ok(())
    );

    // Importing again changes nothing.
    assert!(!trust.import_certs(&alice.cert_pem, "import").await.unwrap()[0].added);

    // Without the root again: not trusted.
    trust.remove_root(&roots[0].sha256[..12]).await.unwrap();
    let verifier = trust.verifier().await.unwrap();
    let err = verifier
        .check(&x509(&alice.cert_pem), &TrustContext::STRICT)
        .unwrap_err();
    assert!(err.starts_with("not trusted: "), "{err}");
}

#[tokio::test]
async fn a_certificate_is_valid_only_with_a_path_to_a_root_sqlite() {
    let (_dir, trust) = sqlite().await;
    chain_rules(&trust, &pki()).await;
}

#[tokio::test]
async fn a_certificate_is_valid_only_with_a_path_to_a_root_postgres() {
    let db = TempDatabase::create().expect("PostgreSQL on 127.0.0.1:5432 (see test-peers)");
    let store = Store::open(&db.url()).await.unwrap();
    chain_rules(&TrustStore::new(store), &pki()).await;
}

/// Expired and not-yet-valid certificates say so, before any chain
/// question; usages are checked per key type; a self-signed end entity is
/// not trusted unless it is itself a root.
#[tokio::test]
async fn time_and_usage_rules() {
    let (_dir, trust) = sqlite().await;
    let p = pki();
    trust
        .import_roots(&p.root.cert_pem, "import")
        .await
        .unwrap();
    trust
        .import_certs(&p.inter.cert_pem, "import")
        .await
        .unwrap();
    let cases: Vec<(CertOptions, Status)> = vec![
        (
            CertOptions {
                email: Some("old@example.org".into()),
                days: -1,
                ..Default::default()
            },
            Status::Expired,
        ),
        (
            CertOptions {
                email: Some("soon@example.org".into()),
                not_before_days: 2,
                days: 30,
                ..Default::default()
            },
            Status::NotYetValid,
        ),
        (
            CertOptions {
                email: Some("sign@example.org".into()),
                key_usage: Some("digitalSignature".into()),
                ..Default::default()
            },
            Status::WrongUsage("an RSA key whose KeyUsage lacks keyEncipherment".into()),
        ),
        (
            CertOptions {
                email: Some("web@example.org".into()),
                ext_key_usage: Some("serverAuth".into()),
                ..Default::default()
            },
            Status::WrongUsage(
                "ExtendedKeyUsage has neither emailProtection nor anyExtendedKeyUsage".into(),
            ),
        ),
        (
            CertOptions {
                email: Some("ec@example.org".into()),
                key: "ec-p256".into(),
                key_usage: Some("digitalSignature,keyEncipherment".into()),
                ..Default::default()
            },
            Status::WrongUsage("an EC key whose KeyUsage lacks keyAgreement".into()),
        ),
        (
            CertOptions {
                email: Some("ecdh@example.org".into()),
                key: "ec-p256".into(),
                key_usage: Some("digitalSignature,keyAgreement".into()),
                ..Default::default()
            },
            Status::Valid,
        ),
        (
            CertOptions {
                email: Some("any@example.org".into()),
                ext_key_usage: Some("anyExtendedKeyUsage".into()),
                ..Default::default()
            },
            Status::Valid,
        ),
    ];
    for (opts, expected) in cases {
        let email = opts.email.clone().unwrap();
        let c = p.inter.issue(opts);
        let sha = trust.import_certs(&c.cert_pem, "import").await.unwrap()[0]
            .sha256
            .clone();
        assert_eq!(
            trust.show_cert(&sha).await.unwrap().verdict.status,
            expected,
            "{email}"
        );
    }

    // Filters: by address, expired or not.
    let expired = trust
        .list_certs(&CertFilter {
            expired: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(
        expired[0].stored.info.emails,
        vec!["old@example.org".to_string()]
    );
    let by_mail = trust
        .list_certs(&CertFilter {
            email: Some("EC@example.org".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_mail.len(), 1);
    let all = trust.list_certs(&CertFilter::default()).await.unwrap();
    // Seven end entities and the intermediate.
    assert_eq!(all.len(), 8);
    assert!(trust
        .list_certs(&CertFilter {
            with_key: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
}

/// A p7b bundle brings every certificate in it; a wrong file and a
/// thumbprint that is no thumbprint get errors that say so.
#[tokio::test]
async fn bundles_and_bad_input() {
    let (_dir, trust) = sqlite().await;
    let p = pki();
    let bob = ee(&p.inter, "bob@example.org");
    let p7b = TestCa::p7b(&[&bob]);
    let mut with_inter = p.inter.cert_pem.clone();
    with_inter.extend_from_slice(&bob.cert_pem);
    let from_pem = trust.import_certs(&with_inter, "import").await.unwrap();
    assert_eq!(from_pem.len(), 2);
    let from_p7b = trust.import_certs(&p7b, "import").await.unwrap();
    assert_eq!(from_p7b.len(), 1);
    assert!(
        !from_p7b[0].added,
        "the same certificate as in the PEM file"
    );
    let der = trust.import_certs(&bob.cert_der, "import").await.unwrap();
    assert_eq!(der[0].sha256, from_p7b[0].sha256);

    let e = trust
        .import_certs(b"not a certificate", "import")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("neither a PEM file"), "{e}");
    let e = trust.show_cert("xyz").await.unwrap_err();
    assert!(e.to_string().contains("is not a thumbprint"), "{e}");
    let e = trust.show_cert("00000000").await.unwrap_err();
    assert!(
        e.to_string().contains("no certificate with the thumbprint"),
        "{e}"
    );
    // SHA-512 finds it as well; removal by prefix removes exactly it.
    let sha512 = trust
        .show_cert(&der[0].sha256)
        .await
        .unwrap()
        .stored
        .info
        .sha512;
    assert_eq!(
        trust
            .show_cert(&sha512.to_lowercase())
            .await
            .unwrap()
            .stored
            .info
            .sha256,
        der[0].sha256
    );
    let removed = trust.remove_cert(&der[0].sha256[..10]).await.unwrap();
    assert_eq!(removed.info.emails, vec!["bob@example.org".to_string()]);
    assert!(trust.show_cert(&der[0].sha256).await.is_err());
}

/// A source declared authoritative (`require_chain = false`) needs no root;
/// validity and the black list still hold. A running gateway's snapshot
/// (`LiveTrust`) sees store changes once refreshed.
#[tokio::test]
async fn authoritative_sources_and_the_live_snapshot() {
    let (_dir, trust) = sqlite().await;
    let ca = TestCa::new("Own Directory CA");
    let fresh = x509(&ee(&ca, "own@example.org").cert_pem);
    let old = x509(
        &ca.issue(CertOptions {
            email: Some("old@example.org".into()),
            days: -1,
            ..Default::default()
        })
        .cert_pem,
    );
    let lenient = TrustContext {
        require_chain: false,
        bundle: &[],
        source: "ldap:own",
    };
    let live = sealgate_trust::LiveTrust::load(&trust).await.unwrap();
    let strict = live.check(&fresh, &TrustContext::STRICT).unwrap_err();
    assert!(
        strict.starts_with("not trusted: no path to a root"),
        "{strict}"
    );
    assert_eq!(live.check(&fresh, &lenient), Ok(()));
    assert_eq!(live.check(&old, &lenient), Err("expired".into()));

    // The root: seen only after a refresh.
    trust.import_roots(&ca.cert_pem, "import").await.unwrap();
    assert!(live.check(&fresh, &TrustContext::STRICT).is_err());
    live.refresh(&trust).await.unwrap();
    assert_eq!(live.check(&fresh, &TrustContext::STRICT), Ok(()));

    // Black-listed: refused from an authoritative source too.
    let sha = trust
        .import_certs(&fresh.to_pem().unwrap(), "import")
        .await
        .unwrap()[0]
        .sha256
        .clone();
    trust.ctl_add(&sha, false, false).await.unwrap();
    live.refresh(&trust).await.unwrap();
    assert_eq!(
        live.check(&fresh, &lenient),
        Err("black-listed: this certificate".into())
    );

    // A bundle that came with the certificate serves as its intermediates.
    let (_dir2, other) = sqlite().await;
    let root = TestCa::new("Bundle Root");
    let inter = root.intermediate("Bundle Intermediate");
    let leaf = x509(&ee(&inter, "bundled@example.org").cert_pem);
    other.import_roots(&root.cert_pem, "import").await.unwrap();
    let v = other.verifier().await.unwrap();
    assert!(v.check(&leaf, &TrustContext::STRICT).is_err());
    let bundle = [x509(&inter.cert_pem)];
    let with_bundle = TrustContext {
        require_chain: true,
        bundle: &bundle,
        source: "ldap:partner",
    };
    assert_eq!(v.check(&leaf, &with_bundle), Ok(()));
}
