//! Key-store files and usability, with key material made by the real tools
//! (gpg, the openssl CLI) and by sequoia's CertBuilder for the odd cases.

use sealgate_keys::files::{FileSource, KeyFiles};
use sealgate_keys::load::{load_file, parse_pgp, parse_x509};
use sealgate_keys::source::{Source, StoreSource};
use sealgate_keys::trust::AcceptAllTrust;
use sealgate_keys::usable::{check_pgp, check_x509};
use sealgate_keys::{Method, OnError, RecipientKey, Resolver};
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::pki::{CertOptions, TestCa};
use sequoia_openpgp::cert::CertBuilder;
use sequoia_openpgp::serialize::SerializeInto;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn x509(k: &RecipientKey) -> &openssl::x509::X509 {
    match k {
        RecipientKey::Smime(x) => x,
        RecipientKey::Pgp(_) => panic!("not X.509"),
    }
}

fn pgp(k: &RecipientKey) -> &sequoia_openpgp::Cert {
    match k {
        RecipientKey::Pgp(c) => c,
        RecipientKey::Smime(_) => panic!("not OpenPGP"),
    }
}

#[test]
fn openpgp_keyrings_armored_binary_and_concatenated() {
    let gpg = GnupgHome::new();
    let a = gpg.gen_key("Alice <alice@example.org>", "future-default");
    let b = gpg.gen_key("Bob <Bob@Example.org>", "future-default");
    // One armor block holding two keys (gpg --export -a of both).
    let out = gpg.gpg().args(["--armor", "--export"]).output().unwrap();
    let keys = parse_pgp(&out.stdout).unwrap();
    let mut fprs: Vec<String> = keys.iter().map(|k| k.fingerprint()).collect();
    fprs.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(fprs, want);
    // Binary keyring.
    let out = gpg.gpg().args(["--export"]).output().unwrap();
    assert_eq!(parse_pgp(&out.stdout).unwrap().len(), 2);
    // Two armor blocks concatenated (cat a.asc b.asc).
    let cat = [
        gpg.export_armored("alice@example.org"),
        gpg.export_armored("bob@example.org"),
    ]
    .concat();
    let keys = parse_pgp(&cat).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[1].addresses(),
        vec!["bob@example.org"],
        "addresses are lower-cased"
    );
    // Secret keys are reduced to public ones.
    let out = gpg
        .gpg()
        .args([
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--armor",
            "--export-secret-keys",
            &a,
        ])
        .output()
        .unwrap();
    let keys = parse_pgp(&out.stdout).unwrap();
    assert!(!pgp(&keys[0]).is_tsk(), "secret key material dropped");
    // Garbage is an error, not a panic.
    assert!(parse_pgp(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot base64!\n-----END PGP PUBLIC KEY BLOCK-----\n").is_err());
}

#[test]
fn x509_files_pem_der_and_p7b() {
    let ca = TestCa::new("keys test CA");
    let alice = ca.issue(CertOptions::default());
    let bob = ca.issue(CertOptions {
        email: None,
        subject_email: Some("bob@example.org".into()),
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("two.pem");
    std::fs::write(
        &pem,
        [alice.cert_pem.clone(), bob.cert_pem.clone()].concat(),
    )
    .unwrap();
    let keys = load_file(&pem).unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[1].addresses(),
        vec!["bob@example.org"],
        "subject emailAddress"
    );
    let der = dir.path().join("a.der");
    std::fs::write(&der, &alice.cert_der).unwrap();
    assert_eq!(
        load_file(&der).unwrap()[0].addresses(),
        vec!["alice@example.org"]
    );
    let p7b = TestCa::p7b(&[&alice, &bob]);
    assert_eq!(parse_x509(&p7b).unwrap().len(), 2);
    assert!(parse_x509(b"\x30\x03\x02\x01\x01").is_err());
    let missing = dir.path().join("missing.pem");
    let err = load_file(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.pem"), "{err}");
}

#[test]
fn x509_usability_reasons() {
    let ca = TestCa::new("usable CA");
    let now = SystemTime::now();
    let ok = ca.issue(CertOptions::default());
    let load = |c: &sealgate_testkit::pki::IssuedCert| parse_x509(&c.cert_pem).unwrap().remove(0);
    assert_eq!(
        check_x509(x509(&load(&ok)), "Alice@Example.org", now),
        Ok(())
    );
    let reason = |opts: CertOptions| {
        check_x509(x509(&load(&ca.issue(opts))), "alice@example.org", now).unwrap_err()
    };
    assert!(reason(CertOptions {
        days: -2,
        not_before_days: -30,
        ..Default::default()
    })
    .contains("expired"));
    assert!(reason(CertOptions {
        not_before_days: 5,
        days: 30,
        ..Default::default()
    })
    .contains("not valid before"));
    assert!(reason(CertOptions {
        key_usage: Some("digitalSignature".into()),
        ..Default::default()
    })
    .contains("KeyUsage"));
    assert!(reason(CertOptions {
        ext_key_usage: Some("serverAuth".into()),
        ..Default::default()
    })
    .contains("ExtendedKeyUsage"));
    assert!(reason(CertOptions {
        email: Some("other@example.org".into()),
        ..Default::default()
    })
    .contains("does not name"));
    // EC with keyAgreement is fine; no KeyUsage at all is fine.
    let ec = ca.issue(CertOptions {
        key: "ec-p256".into(),
        key_usage: Some("digitalSignature,keyAgreement".into()),
        ..Default::default()
    });
    assert_eq!(
        check_x509(x509(&load(&ec)), "alice@example.org", now),
        Ok(())
    );
    let no_ku = ca.issue(CertOptions {
        key_usage: None,
        ext_key_usage: None,
        ..Default::default()
    });
    assert_eq!(
        check_x509(x509(&load(&no_ku)), "alice@example.org", now),
        Ok(())
    );
}

/// Issue 6 item 3: a certificate is usable only if CMS can encrypt to its
/// key type. Before, an Ed25519, DSA, RSA-PSS or 1024-bit RSA certificate
/// was "usable" and the message then failed at DATA with 451, forever.
#[test]
fn x509_key_types_cms_can_encrypt_to() {
    let ca = TestCa::new("key types CA");
    let now = SystemTime::now();
    let check = |key: &str, key_usage: &str| {
        let c = ca.issue(CertOptions {
            key: key.into(),
            key_usage: Some(key_usage.into()),
            ..Default::default()
        });
        let k = parse_x509(&c.cert_pem).unwrap().remove(0);
        check_x509(x509(&k), "alice@example.org", now)
    };
    let rsa = "digitalSignature,keyEncipherment";
    let ec = "digitalSignature,keyAgreement";
    for (key, ku) in [
        ("rsa2048", rsa),
        ("rsa3072", rsa),
        ("ec-p256", ec),
        ("ec-p384", ec),
        ("ec-p521", ec),
    ] {
        assert_eq!(check(key, ku), Ok(()), "{key} must be usable");
    }
    for (key, ku, why) in [
        ("rsa1024", rsa, "RSA key of 1024 bits is too short"),
        ("rsa-pss", rsa, "RSA-PSS"),
        ("ec-secp256k1", ec, "secp256k1"),
        (
            "ed25519",
            "digitalSignature",
            "Ed25519 key cannot be encrypted to",
        ),
        (
            "dsa2048",
            "digitalSignature",
            "DSA key cannot be encrypted to",
        ),
    ] {
        let err = check(key, ku).expect_err(key);
        assert!(err.contains(why), "{key}: {err}");
    }
}

#[test]
fn openpgp_usability_reasons() {
    let now = SystemTime::now();
    let (good, _) = CertBuilder::general_purpose(Some("Alice <alice@example.org>"))
        .generate()
        .unwrap();
    assert_eq!(check_pgp(&good, "alice@example.org", now), Ok(()));
    assert!(check_pgp(&good, "mallory@example.org", now)
        .unwrap_err()
        .contains("no valid User ID"));

    let past = now - Duration::from_secs(10 * 86_400);
    let (expired, _) = CertBuilder::general_purpose(Some("Alice <alice@example.org>"))
        .set_creation_time(past)
        .set_validity_period(Duration::from_secs(86_400))
        .generate()
        .unwrap();
    assert!(check_pgp(&expired, "alice@example.org", now)
        .unwrap_err()
        .contains("expired"));

    let (sign_only, _) = CertBuilder::new()
        .add_userid("Alice <alice@example.org>")
        .add_signing_subkey()
        .generate()
        .unwrap();
    assert!(check_pgp(&sign_only, "alice@example.org", now)
        .unwrap_err()
        .contains("encryption-capable"));

    let (cert, rev) = CertBuilder::general_purpose(Some("Alice <alice@example.org>"))
        .generate()
        .unwrap();
    let (revoked, _) = cert.insert_packets(rev).unwrap();
    assert!(check_pgp(&revoked, "alice@example.org", now)
        .unwrap_err()
        .contains("revoked"));
}

#[tokio::test]
async fn file_source_reload_keeps_old_keys_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring.asc");
    std::fs::write(&ring, "").unwrap();
    let (files, summary) = FileSource::load(KeyFiles {
        pgp_keyrings: vec![ring.clone()],
        smime_certificates: vec![],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        summary.pgp_keys, 0,
        "an empty keyring is an empty key store"
    );
    let (alice, _) = CertBuilder::general_purpose(Some("<alice@example.org>"))
        .generate()
        .unwrap();
    std::fs::write(&ring, alice.armored().to_vec().unwrap()).unwrap();
    assert_eq!(files.reload().unwrap().pgp_keys, 1);
    assert_eq!(files.lookup("ALICE@example.org").await.unwrap().len(), 1);
    std::fs::write(
        &ring,
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!\n-----END PGP PUBLIC KEY BLOCK-----\n",
    )
    .unwrap();
    let err = files.reload().unwrap_err().to_string();
    assert!(err.contains("ring.asc"), "{err}");
    assert_eq!(
        files.lookup("alice@example.org").await.unwrap().len(),
        1,
        "old keys kept"
    );
}

#[tokio::test]
async fn resolver_precedence_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let store = sealgate_store::Store::open(&format!("sqlite://{}/s.db", dir.path().display()))
        .await
        .unwrap();
    let (in_store, _) = CertBuilder::general_purpose(Some("<alice@example.org>"))
        .generate()
        .unwrap();
    let (in_file, _) = CertBuilder::general_purpose(Some("<alice@example.org>"))
        .generate()
        .unwrap();
    let (expired, _) = CertBuilder::general_purpose(Some("<alice@example.org>"))
        .set_creation_time(SystemTime::now() - Duration::from_secs(10 * 86_400))
        .set_validity_period(Duration::from_secs(86_400))
        .generate()
        .unwrap();
    let ring = dir.path().join("ring.asc");
    std::fs::write(
        &ring,
        [
            in_file.armored().to_vec().unwrap(),
            expired.armored().to_vec().unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let (files, _) = FileSource::load(KeyFiles {
        pgp_keyrings: vec![ring],
        smime_certificates: vec![],
        ..Default::default()
    })
    .unwrap();
    let resolver = Resolver::new(
        vec![
            Arc::new(StoreSource::new(store.clone(), "import")),
            Arc::new(files),
        ],
        Arc::new(AcceptAllTrust),
    );
    // Only the file has keys: the usable one is chosen, the expired one is not.
    let r = resolver
        .resolve("alice@example.org", &[Method::Pgp], OnError::Stop)
        .await;
    let (source, keys) = r.keys.get(&Method::Pgp).unwrap();
    assert_eq!(source, "files");
    assert_eq!(
        keys.iter().map(|k| k.fingerprint()).collect::<Vec<_>>(),
        vec![in_file.fingerprint().to_hex()]
    );
    // An imported key outranks the files.
    let k = RecipientKey::Pgp(Arc::new(in_store.clone()));
    store
        .put_key(
            &sealgate_keys::import::to_stored(&k, "import").unwrap(),
            sealgate_store::Level::ProviderTrust,
        )
        .await
        .unwrap();
    let r = resolver
        .resolve("alice@example.org", &[Method::Pgp], OnError::Stop)
        .await;
    let (source, keys) = r.keys.get(&Method::Pgp).unwrap();
    assert_eq!(
        (source.as_str(), keys[0].fingerprint()),
        ("import", in_store.fingerprint().to_hex())
    );
    // verify asks every source and explains the unusable key.
    let (reports, _) = resolver
        .verify(
            "alice@example.org",
            &[Method::Pgp, Method::Smime],
            OnError::Stop,
        )
        .await;
    assert_eq!(reports.len(), 2);
    let file_report = &reports[1];
    assert_eq!(file_report.keys.len(), 2);
    assert!(file_report
        .keys
        .iter()
        .any(|k| k.usable.as_ref().is_err_and(|e| e.contains("expired"))));
    // A failing source is reported as an error, not as "no key".
    store.close().await;
    let r = resolver
        .resolve("alice@example.org", &[Method::Pgp], OnError::Stop)
        .await;
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert!(r.errors[0].starts_with("import:"));
}
