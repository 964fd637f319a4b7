//! `trust.system_roots`: with it, the operating system's bundle (OpenSSL's
//! default paths; here `SSL_CERT_FILE`, pointed at a test root) also holds
//! trust anchors; without it (the default), only the root store does. Its
//! own test binary: it sets an environment variable for the process.

use sealgate_store::Store;
use sealgate_testkit::pki::{CertOptions, TestCa};
use sealgate_trust::{Status, TrustOptions, TrustStore};

#[tokio::test]
async fn system_roots_add_the_bundle_only_when_asked() {
    let root = TestCa::new("System Bundle Root");
    let ee = root.issue(CertOptions {
        email: Some("ivy@example.org".into()),
        ..Default::default()
    });
    std::env::set_var("SSL_CERT_FILE", &root.cert_pem_path);
    std::env::set_var("SSL_CERT_DIR", "/nonexistent");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    for (system_roots, expected_valid) in [(false, false), (true, true)] {
        let trust = TrustStore::with_options(
            store.clone(),
            TrustOptions {
                system_roots,
                ..Default::default()
            },
        );
        let sha = trust.import_certs(&ee.cert_pem, "import").await.unwrap()[0]
            .sha256
            .clone();
        let status = trust.show_cert(&sha).await.unwrap().verdict.status;
        assert_eq!(
            status == Status::Valid,
            expected_valid,
            "system_roots = {system_roots}: {status:?}"
        );
    }
}
