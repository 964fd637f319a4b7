//! PKCS#12 import: the certificate, its chain and its private key, the key
//! sealed under the key-encryption key: its bytes are nowhere in the
//! database files, and it opens only with that key.

mod common;
use common::sqlite;

use sealgate_testkit::pki::{CertOptions, TestCa};
use sealgate_trust::{CertFilter, Kek, TrustStore};
use std::process::Command;

const KEK_HEX: &str = "e09336207cb5eada7454f79696ef499ad4058f01fcd46a6d9ccc8931cd463eb7";

#[tokio::test]
async fn a_pkcs12_private_key_is_stored_sealed() {
    let root = TestCa::new("P12 Root");
    let inter = root.intermediate("P12 Intermediate");
    let ee = inter.issue(CertOptions {
        email: Some("jane@example.org".into()),
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    let p12 = work.path().join("jane.p12");
    let out = Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:s3cret", "-in"])
        .arg(&ee.cert_pem_path)
        .arg("-inkey")
        .arg(&ee.key_path)
        .arg("-certfile")
        .arg(&inter.cert_pem_path)
        .arg("-out")
        .arg(&p12)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&p12).unwrap();

    let (dir, trust) = sqlite().await;
    let kek = Kek::from_hex(KEK_HEX, "test").unwrap();
    let e = trust
        .import_pkcs12(&bytes, "wrong", &kek, "import")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("does not open with this password"),
        "{e}"
    );
    let e = trust
        .import_pkcs12(b"junk", "s3cret", &kek, "import")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not a PKCS#12 file"), "{e}");

    let imported = trust
        .import_pkcs12(&bytes, "s3cret", &kek, "import")
        .await
        .unwrap();
    assert_eq!(imported.len(), 2, "the certificate and its intermediate");
    assert!(!imported[0].is_ca && imported[1].is_ca);
    let sha = imported[0].sha256.clone();
    let with_key = trust
        .list_certs(&CertFilter {
            with_key: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(with_key.len(), 1);
    assert_eq!(with_key[0].stored.info.sha256, sha);

    // The key comes back whole with the KEK...
    let original =
        openssl::pkey::PKey::private_key_from_pem(&std::fs::read(&ee.key_path).unwrap()).unwrap();
    let back = trust.private_key(&sha, &kek).await.unwrap();
    assert_eq!(
        back.private_key_to_pkcs8().unwrap(),
        original.private_key_to_pkcs8().unwrap()
    );
    // ...not with another one...
    let flipped = format!(
        "{}{}",
        if KEK_HEX.starts_with('0') { '1' } else { '0' },
        &KEK_HEX[1..]
    );
    let other = Kek::from_hex(&flipped, "test").unwrap();
    let e = trust.private_key(&sha, &other).await.unwrap_err();
    assert!(e.to_string().contains("another key-encryption key"), "{e}");

    // ...and is not in the database files: none of its secret numbers
    // (the private exponent, the primes), in any 32-byte piece. (The
    // modulus is public: it is in the certificate.)
    let rsa = original.rsa().unwrap();
    let secrets = [
        rsa.d().to_vec(),
        rsa.p().unwrap().to_vec(),
        rsa.q().unwrap().to_vec(),
    ];
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        files.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let all: Vec<u8> = files.concat();
    assert!(all.len() > 4096, "the database files were read");
    for secret in &secrets {
        for piece in secret.chunks(32).filter(|p| p.len() == 32) {
            assert!(
                !all.windows(32).any(|w| w == piece),
                "a piece of the private key is in the database files"
            );
        }
    }
    // Removing the certificate removes its key.
    trust.remove_cert(&sha).await.unwrap();
    assert!(trust.private_key(&sha, &kek).await.is_err());
}

fn p12(cert: &sealgate_testkit::pki::IssuedCert, dir: &std::path::Path, name: &str) -> Vec<u8> {
    let out = dir.join(name);
    let o = Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:pw", "-in"])
        .arg(&cert.cert_pem_path)
        .arg("-inkey")
        .arg(&cert.key_path)
        .arg("-out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(&out).unwrap()
}

/// Signing certificate selection: automatically the first valid certificate
/// with a key that names the sender and may sign; one chosen by hand (for
/// the address or its domain) wins while valid, else the automatic one is
/// back; only certificates with a key can be chosen.
#[tokio::test]
async fn signing_certificate_selection() {
    let root = TestCa::new("Signing Root");
    let (_dir, trust) = sqlite().await;
    trust.import_roots(&root.cert_pem, "import").await.unwrap();
    let kek = Kek::from_hex(KEK_HEX, "test").unwrap();
    let work = tempfile::tempdir().unwrap();
    let issue = |email: &str, ku: &str| {
        root.issue(CertOptions {
            email: Some(email.into()),
            key_usage: Some(ku.into()),
            ..Default::default()
        })
    };
    let encrypt_only = issue("lee@example.org", "keyEncipherment");
    let first = issue("lee@example.org", "digitalSignature,keyEncipherment");
    let second = issue("lee@example.org", "digitalSignature");
    let no_key = issue("lee@example.org", "digitalSignature");
    let mut sha = Vec::new();
    for (c, n) in [
        (&encrypt_only, "a.p12"),
        (&first, "b.p12"),
        (&second, "c.p12"),
    ] {
        let i = trust
            .import_pkcs12(&p12(c, work.path(), n), "pw", &kek, "import")
            .await
            .unwrap();
        sha.push(i[0].sha256.clone());
    }
    let no_key_sha = trust
        .import_certs(&no_key.cert_pem, "import")
        .await
        .unwrap()[0]
        .sha256
        .clone();

    let chosen = |t: &TrustStore| {
        let t = t.clone();
        async move {
            t.signing_certificate("lee@example.org")
                .await
                .unwrap()
                .map(|(c, how)| (c.info.sha256, how))
        }
    };
    // The encrypt-only one may not sign, nor the one without a key: one of
    // the two that may is chosen (the earliest imported; these two were
    // imported within the same second).
    let (auto, how) = chosen(&trust).await.unwrap();
    assert_eq!(how, "automatic");
    assert!(auto == sha[1] || auto == sha[2], "{auto}");
    let other = if auto == sha[1] { &sha[2] } else { &sha[1] };
    let e = trust
        .sign_select("lee@example.org", &no_key_sha)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no private key"), "{e}");
    trust.sign_select("@example.org", other).await.unwrap();
    assert_eq!(
        chosen(&trust).await,
        Some((other.clone(), "chosen for @example.org".into()))
    );
    // Black-listed: not valid any more, the automatic one is back.
    trust.ctl_add(other, false, false).await.unwrap();
    assert_eq!(
        chosen(&trust).await,
        Some((auto.clone(), "automatic".into()))
    );
    trust.ctl_remove(other).await.unwrap();
    assert!(trust.sign_auto("@example.org").await.unwrap());
    assert!(!trust.sign_auto("@example.org").await.unwrap());
    assert_eq!(
        chosen(&trust).await,
        Some((auto.clone(), "automatic".into()))
    );
    assert_eq!(
        trust
            .signing_certificate("nobody@example.org")
            .await
            .unwrap()
            .map(|c| c.1),
        None
    );
}
