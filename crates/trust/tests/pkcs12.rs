//! PKCS#12 import: the certificate, its chain and its private key, the key
//! sealed under the key-encryption key: its bytes are nowhere in the
//! database files, and it opens only with that key.

mod common;
use common::sqlite;

use sealgate_testkit::pki::{CertOptions, TestCa};
use sealgate_trust::{CertFilter, Kek};
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
