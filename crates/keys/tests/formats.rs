//! The key-store formats admins already have, written by the real tools:
//! GnuPG keyboxes made by `gpg` (and shared with `gpgsm`), and BouncyCastle
//! BKS stores made by `keytool` with BouncyCastle as provider (version 2, and
//! version 1 with BouncyCastle's `enable_v1` switch). Each test checks that
//! sealgate reads exactly what the tool wrote, through the parsers and
//! through the key-store file source, and that damaged files are errors.

use sealgate_keys::files::{FileSource, KeyFiles};
use sealgate_keys::formats::bks::{is_bks, parse_bks};
use sealgate_keys::formats::keybox::{is_keybox, parse_keybox};
use sealgate_keys::load::{
    load_file, load_x509_file, load_x509_file_with_password, parse_any, parse_pgp,
};
use sealgate_keys::source::Source;
use sealgate_keys::RecipientKey;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::pki::{CertOptions, IssuedCert, TestCa};
use sealgate_testkit::process::run_ok;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
const BCPROV: &str = "/usr/share/java/bcprov.jar";
const STOREPASS: &str = "changeit";

// ---------------------------------------------------------------- keybox

fn pgp_fingerprints(keys: &[RecipientKey]) -> Vec<String> {
    let mut v: Vec<String> = keys
        .iter()
        .map(|k| k.fingerprint().to_uppercase())
        .collect();
    v.sort();
    v
}

/// The blob types of a keybox, walked by hand (to see what gpg/gpgsm wrote).
fn blob_types(kbx: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= kbx.len() {
        let len = u32::from_be_bytes(kbx[at..at + 4].try_into().unwrap()) as usize;
        out.push(kbx[at + 4]);
        assert!(len >= 5, "blob length {len} at {at}");
        at += len;
    }
    out
}

#[tokio::test]
async fn keybox_written_by_gpg() {
    let home = GnupgHome::new();
    let alice = home.gen_key("Alice <alice@example.org>", "future-default");
    let bob = home.gen_key("Bob <bob@example.org>", "rsa3072");
    let carol = home.gen_key("Carol <carol@example.org>", "future-default");
    let mut cmd = home.gpg();
    cmd.args(["--quick-add-uid", &carol, "Carol Work <carol@work.example>"]);
    run_ok(cmd, TOOL_TIMEOUT).unwrap();

    let kbx_path = home.path().join("pubring.kbx");
    let kbx = std::fs::read(&kbx_path).unwrap();
    assert!(is_keybox(&kbx));
    assert_eq!(
        blob_types(&kbx),
        vec![1, 2, 2, 2],
        "gpg wrote a header and three OpenPGP blobs"
    );

    let certs = parse_keybox(&kbx).unwrap();
    let mut got: Vec<String> = certs.iter().map(|c| c.fingerprint().to_hex()).collect();
    got.sort();
    let mut want = vec![alice.clone(), bob.clone(), carol.clone()];
    want.sort();
    assert_eq!(got, want);
    let carol_cert = certs
        .iter()
        .find(|c| c.fingerprint().to_hex() == carol)
        .unwrap();
    assert_eq!(carol_cert.userids().count(), 2, "both User IDs of Carol");
    assert!(
        certs.iter().all(|c| c.keys().subkeys().count() == 1),
        "encryption subkeys kept"
    );

    // The generic loaders recognise the keybox.
    assert_eq!(pgp_fingerprints(&parse_pgp(&kbx).unwrap()), want);
    assert_eq!(pgp_fingerprints(&parse_any(&kbx).unwrap()), want);
    assert_eq!(pgp_fingerprints(&load_file(&kbx_path).unwrap()), want);

    // And the key-store file source finds every key by every address.
    let (files, summary) = FileSource::load(KeyFiles {
        pgp_keyrings: vec![kbx_path.clone()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(summary.pgp_keys, 3);
    assert_eq!(summary.addresses, 4);
    for (address, fpr) in [
        ("alice@example.org", &alice),
        ("BOB@example.org", &bob),
        ("carol@example.org", &carol),
        ("carol@work.example", &carol),
    ] {
        let found = files.lookup(address).await.unwrap();
        assert_eq!(pgp_fingerprints(&found), vec![fpr.clone()], "{address}");
    }
    assert!(files.lookup("dave@example.org").await.unwrap().is_empty());
}

#[test]
fn damaged_keybox_is_an_error() {
    let home = GnupgHome::new();
    home.gen_key("Alice <alice@example.org>", "future-default");
    home.gen_key("Bob <bob@example.org>", "future-default");
    let kbx = std::fs::read(home.path().join("pubring.kbx")).unwrap();
    assert_eq!(parse_keybox(&kbx).unwrap().len(), 2);

    // Cut anywhere after the header blob: an error, never a panic.
    let header = u32::from_be_bytes(kbx[..4].try_into().unwrap()) as usize;
    let mut boundaries = vec![];
    let mut at = 0;
    while at < kbx.len() {
        at += u32::from_be_bytes(kbx[at..at + 4].try_into().unwrap()) as usize;
        boundaries.push(at);
    }
    for cut in (header + 1..kbx.len()).step_by(7) {
        if boundaries.contains(&cut) {
            assert!(
                parse_keybox(&kbx[..cut]).is_ok(),
                "whole blobs are a keybox"
            );
            continue;
        }
        let err = parse_keybox(&kbx[..cut]).unwrap_err();
        assert!(err.contains("offset"), "cut at {cut}: {err}");
    }
    // One flipped byte in the second blob (inside its keyblock): the
    // checksum catches it and the error says where.
    let second = header + u32::from_be_bytes(kbx[header..header + 4].try_into().unwrap()) as usize;
    let mut bad = kbx.clone();
    bad[second + 200] ^= 0x01;
    let err = parse_keybox(&bad).unwrap_err();
    assert!(err.contains(&format!("offset {second}")), "{err}");
    // A huge blob length.
    let mut bad = kbx.clone();
    bad[header..header + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(parse_keybox(&bad).unwrap_err().contains("claims"));

    // Through the file source: the error names the file, and a reload keeps
    // the keys read before.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pubring.kbx");
    std::fs::write(&path, &kbx).unwrap();
    let (files, summary) = FileSource::load(KeyFiles {
        pgp_keyrings: vec![path.clone()],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(summary.pgp_keys, 2);
    std::fs::write(&path, &kbx[..kbx.len() - 10]).unwrap();
    let err = files.reload().unwrap_err().to_string();
    assert!(
        err.contains("pubring.kbx") && err.contains("keybox"),
        "{err}"
    );
    let err = FileSource::load(KeyFiles {
        pgp_keyrings: vec![path],
        ..Default::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("pubring.kbx"), "{err}");
}

#[test]
fn keybox_shared_with_gpgsm_skips_x509_blobs() {
    let home = GnupgHome::new();
    let alice = home.gen_key("Alice <alice@example.org>", "future-default");
    let ca = TestCa::new("Keybox CA");
    let cert = ca.issue(CertOptions::default());
    let mut cmd = home.gpgsm();
    cmd.arg("--import").arg(&cert.cert_pem_path);
    run_ok(cmd, TOOL_TIMEOUT).unwrap();
    let bob = home.gen_key("Bob <bob@example.org>", "future-default");

    let kbx = std::fs::read(home.path().join("pubring.kbx")).unwrap();
    let types = blob_types(&kbx);
    assert_eq!(
        types,
        vec![1, 2, 3, 2],
        "gpgsm put its certificate in the same keybox"
    );
    let mut got: Vec<String> = parse_keybox(&kbx)
        .unwrap()
        .iter()
        .map(|c| c.fingerprint().to_hex())
        .collect();
    got.sort();
    let mut want = vec![alice, bob];
    want.sort();
    assert_eq!(got, want, "OpenPGP keys read, the X.509 blob skipped");
}

// ---------------------------------------------------------------- BKS

fn keytool(store: &Path, version: u8, args: &[&str]) {
    let mut cmd = Command::new("keytool");
    if version == 1 {
        // BouncyCastle 1.72 writes version 1 stores only when asked to.
        cmd.arg("-J-Dorg.bouncycastle.bks.enable_v1=true");
    }
    cmd.args(args)
        .args(["-storetype", if version == 1 { "BKS-V1" } else { "BKS" }])
        .args([
            "-providerclass",
            "org.bouncycastle.jce.provider.BouncyCastleProvider",
        ])
        .args([
            "-providerpath",
            BCPROV,
            "-storepass",
            STOREPASS,
            "-noprompt",
            "-keystore",
        ])
        .arg(store);
    run_ok(cmd, TOOL_TIMEOUT).unwrap();
}

fn import_cert(store: &Path, version: u8, alias: &str, cert: &IssuedCert) {
    let pem = cert.cert_pem_path.to_str().unwrap();
    keytool(
        store,
        version,
        &["-importcert", "-alias", alias, "-file", pem],
    );
}

fn sorted_der(certs: impl IntoIterator<Item = Vec<u8>>) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = certs.into_iter().collect();
    v.sort();
    v
}

/// A test CA with certificates for alice and bob, in a BKS store of `version`.
fn bks_with_two_certs(dir: &Path, version: u8) -> (PathBuf, Vec<IssuedCert>) {
    let ca = TestCa::new("BKS CA");
    let alice = ca.issue(CertOptions::default());
    let bob = ca.issue(CertOptions {
        email: Some("bob@example.org".into()),
        key: "ec-p256".into(),
        key_usage: Some("digitalSignature,keyAgreement".into()),
        ..Default::default()
    });
    let store = dir.join(format!("certs-v{version}.bks"));
    import_cert(&store, version, "alice", &alice);
    import_cert(&store, version, "bob", &bob);
    (store, vec![alice, bob])
}

#[tokio::test]
async fn bks_v2_written_by_keytool() {
    let dir = tempfile::tempdir().unwrap();
    let (store, certs) = bks_with_two_certs(dir.path(), 2);
    let data = std::fs::read(&store).unwrap();
    assert_eq!(&data[..4], &[0, 0, 0, 2], "keytool wrote a version 2 store");
    assert!(is_bks(&data));
    assert!(!is_keybox(&data));
    let want = sorted_der(certs.iter().map(|c| c.cert_der.clone()));
    let der = |v: Vec<openssl::x509::X509>| sorted_der(v.iter().map(|x| x.to_der().unwrap()));

    assert_eq!(der(parse_bks(&data, None).unwrap()), want);
    assert_eq!(der(parse_bks(&data, Some(STOREPASS)).unwrap()), want);
    let err = parse_bks(&data, Some("wrong")).unwrap_err();
    assert!(err.contains("integrity"), "{err}");

    // The generic loaders recognise the store (without a password).
    let smime_der = |keys: Vec<RecipientKey>| {
        sorted_der(keys.into_iter().map(|k| match k {
            RecipientKey::Smime(x) => x.to_der().unwrap(),
            RecipientKey::Pgp(_) => panic!("an OpenPGP key from a BKS store"),
        }))
    };
    assert_eq!(smime_der(parse_any(&data).unwrap()), want);
    assert_eq!(smime_der(load_file(&store).unwrap()), want);
    assert_eq!(smime_der(load_x509_file(&store).unwrap()), want);
    assert_eq!(
        smime_der(load_x509_file_with_password(&store, Some(STOREPASS)).unwrap()),
        want
    );
    let err = load_x509_file_with_password(&store, Some("wrong"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("certs-v2.bks") && err.contains("integrity"),
        "{err}"
    );

    // The file source reads it with its password and finds both by address.
    let mut files = KeyFiles {
        smime_certificates: vec![store.clone()],
        ..Default::default()
    };
    files.bks_passwords.insert(store.clone(), STOREPASS.into());
    assert!(
        !format!("{files:?}").contains(STOREPASS),
        "passwords never printed"
    );
    let (source, summary) = FileSource::load(files.clone()).unwrap();
    assert_eq!(summary.smime_certificates, 2);
    for (address, cert) in [
        ("alice@example.org", &certs[0]),
        ("Bob@Example.org", &certs[1]),
    ] {
        let found = source.lookup(address).await.unwrap();
        assert_eq!(smime_der(found), vec![cert.cert_der.clone()], "{address}");
    }
    // A wrong password makes the load fail, naming the file.
    files.bks_passwords.insert(store.clone(), "wrong".into());
    let err = FileSource::load(files).err().unwrap().to_string();
    assert!(
        err.contains("certs-v2.bks") && err.contains("integrity"),
        "{err}"
    );
}

#[test]
fn bks_v1_written_by_keytool() {
    let dir = tempfile::tempdir().unwrap();
    let (store, certs) = bks_with_two_certs(dir.path(), 1);
    let data = std::fs::read(&store).unwrap();
    assert_eq!(&data[..4], &[0, 0, 0, 1], "keytool wrote a version 1 store");
    let want = sorted_der(certs.iter().map(|c| c.cert_der.clone()));
    let der = |v: Vec<openssl::x509::X509>| sorted_der(v.iter().map(|x| x.to_der().unwrap()));
    assert_eq!(der(parse_bks(&data, None).unwrap()), want);
    // Version 1 derives a 2-byte MAC key: the right password passes, a wrong
    // one fails (with 2 bytes of key, 1 in 65536 wrong passwords would pass).
    assert_eq!(der(parse_bks(&data, Some(STOREPASS)).unwrap()), want);
    let err = parse_bks(&data, Some("wrong password")).unwrap_err();
    assert!(err.contains("integrity"), "{err}");
}

#[test]
fn bks_key_entries_give_their_chains() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("BKS CA");
    let carol = ca.issue(CertOptions {
        email: Some("carol@example.org".into()),
        ..Default::default()
    });
    let store = dir.path().join("mixed.bks");
    // A private key entry (stored sealed, with its self-signed chain) and a
    // trusted-certificate entry.
    keytool(
        &store,
        2,
        &[
            "-genkeypair",
            "-alias",
            "own",
            "-keyalg",
            "RSA",
            "-keysize",
            "2048",
            "-dname",
            "CN=Key Entry,EMAIL=own@example.org",
            "-keypass",
            STOREPASS,
        ],
    );
    import_cert(&store, 2, "carol", &carol);
    let data = std::fs::read(&store).unwrap();
    let certs = parse_bks(&data, Some(STOREPASS)).unwrap();
    let mut subjects: Vec<String> = certs
        .iter()
        .map(|c| {
            c.subject_name()
                .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                .next()
                .unwrap()
                .data()
                .to_string()
                .unwrap()
        })
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        vec!["Key Entry".to_string(), "carol@example.org".to_string()]
    );
    assert!(certs.iter().any(|c| c.to_der().unwrap() == carol.cert_der));
    assert!(parse_bks(&data, Some("wrong")).is_err());
}

#[test]
fn damaged_bks_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = bks_with_two_certs(dir.path(), 2);
    let data = std::fs::read(&store).unwrap();
    // Cut anywhere: an error, never a panic.
    for cut in (0..data.len()).step_by(5) {
        assert!(parse_bks(&data[..cut], None).is_err(), "cut at {cut}");
    }
    // A flipped byte inside a certificate's signature still parses as DER:
    // only the MAC (with the password) notices.
    let n = data.len();
    let mut bad = data.clone();
    bad[n - 60] ^= 0x01;
    let err = parse_bks(&bad, Some(STOREPASS)).unwrap_err();
    assert!(err.contains("integrity check failed"), "{err}");
    // A damaged entry type is an error even without a password.
    let salt_len = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
    let mut bad = data.clone();
    bad[12 + salt_len] = 0x7F;
    let err = parse_bks(&bad, None).unwrap_err();
    assert!(err.contains("unknown entry type"), "{err}");
    // Through the file source, naming the file.
    std::fs::write(&store, &data[..n / 2]).unwrap();
    let err = FileSource::load(KeyFiles {
        smime_certificates: vec![store.clone()],
        ..Default::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("certs-v2.bks") && err.contains("BKS"), "{err}");
}
