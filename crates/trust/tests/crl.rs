//! CRLs: downloaded from a certificate's distribution point over http (a
//! real HTTP server on loopback) and over ldap (a real slapd), a revoked
//! certificate is no longer valid; a CRL that is expired or signed by the
//! wrong key is listed as invalid and ignored; `crl_missing = "deny"`.

mod common;
use common::sqlite_with as sqlite;
use common::Pki;
use sealgate_keys::sources::http::{client, HttpConfig};
use sealgate_testkit::pki::{CertOptions, IssuedCert, TestCa};
use sealgate_testkit::ports::free_port;
use sealgate_testkit::process::{wait_for_port, ChildGuard};
use sealgate_testkit::slapd::{Slapd, ROOT_PASSWORD};
use sealgate_trust::{Fetcher, Status, TrustOptions, TrustStore};
use std::process::Command;
use std::time::Duration;

fn fetcher() -> Fetcher {
    Fetcher {
        http: client(&HttpConfig::default()).unwrap(),
        max_bytes: 1 << 20,
        timeout: Duration::from_secs(10),
    }
}

/// A directory served over HTTP on loopback by Python's http.server.
struct WebDir {
    dir: tempfile::TempDir,
    port: u16,
    _child: ChildGuard,
}

impl WebDir {
    fn start() -> WebDir {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(dir.path());
        let child = ChildGuard::spawn(cmd, "http.server");
        wait_for_port(port, Duration::from_secs(10)).expect("http.server listens");
        WebDir {
            dir,
            port,
            _child: child,
        }
    }

    fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/{file}", self.port)
    }

    fn put(&self, file: &str, bytes: &[u8]) {
        std::fs::write(self.dir.path().join(file), bytes).unwrap();
    }
}

fn pki() -> Pki {
    common::pki("CRL")
}

async fn trusting(trust: &TrustStore, p: &Pki, ee: &IssuedCert) -> String {
    trust
        .import_roots(&p.root.cert_pem, "import")
        .await
        .unwrap();
    trust
        .import_certs(&p.inter.cert_pem, "import")
        .await
        .unwrap();
    trust.import_certs(&ee.cert_pem, "import").await.unwrap()[0]
        .sha256
        .clone()
}

async fn status(trust: &TrustStore, sha: &str) -> Status {
    trust.show_cert(sha).await.unwrap().verdict.status
}

#[tokio::test]
async fn a_certificate_revoked_on_the_crl_of_its_http_distribution_point_is_not_used() {
    let (_d, trust) = sqlite(TrustOptions::default()).await;
    http_crl(trust).await;
}

/// The same with the stores on PostgreSQL.
#[tokio::test]
async fn a_certificate_revoked_on_the_crl_of_its_http_distribution_point_is_not_used_postgres() {
    let (_db, trust) = common::postgres_with(TrustOptions::default()).await;
    http_crl(trust).await;
}

async fn http_crl(trust: TrustStore) {
    let web = WebDir::start();
    let p = pki();
    let ee = p.inter.issue(CertOptions {
        email: Some("dave@example.org".into()),
        crl_url: Some(web.url("inter.crl")),
        ..Default::default()
    });
    let sha = trusting(&trust, &p, &ee).await;
    assert_eq!(status(&trust, &sha).await, Status::Valid);

    // Nothing served yet: the update says so, the certificate stays valid
    // (crl_missing = "allow").
    let report = trust.update_crls(&fetcher()).await.unwrap();
    assert_eq!(report.len(), 1);
    assert!(
        report[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("not found"),
        "{report:?}"
    );
    assert_eq!(status(&trust, &sha).await, Status::Valid);

    p.inter.revoke(&ee);
    web.put("inter.crl", &p.inter.crl_der());
    let report = trust.update_crls(&fetcher()).await.unwrap();
    assert_eq!(report[0].error, None, "{report:?}");
    assert_eq!(report[0].issuer.as_deref(), Some("CN=CRL Intermediate"));
    assert_eq!(
        status(&trust, &sha).await,
        Status::Revoked("this certificate".into())
    );

    let crls = trust.list_crls().await.unwrap();
    assert_eq!(crls.len(), 1);
    assert_eq!(crls[0].validity, Ok(()));
    assert_eq!(crls[0].stored.info.revoked, 1);
    assert_eq!(crls[0].stored.source, web.url("inter.crl"));
    assert!(crls[0].stored.info.crl_number.is_some());
    // The resolver's view.
    use sealgate_keys::trust::{CertificateTrust, TrustContext};
    let x = openssl::x509::X509::from_pem(&ee.cert_pem).unwrap();
    assert_eq!(
        trust
            .verifier()
            .await
            .unwrap()
            .check(&x, &TrustContext::STRICT),
        Err("revoked: this certificate".into())
    );
}

#[tokio::test]
async fn a_crl_in_ldap_revokes_too() {
    let p = pki();
    let suffix = "dc=example,dc=org";
    let ldap = Slapd::start(
        suffix,
        &format!("dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n"),
    );
    let dn = format!("cn=CRL Intermediate,{suffix}");
    let url = format!(
        "{}/{}?certificateRevocationList;binary",
        ldap.url(),
        // Percent-encoded: a comma would split OpenSSL's extension value.
        dn.replace(' ', "%20").replace(',', "%2C")
    );
    let ee = p.inter.issue(CertOptions {
        email: Some("erin@example.org".into()),
        crl_url: Some(url),
        ..Default::default()
    });
    let (_d, trust) = sqlite(TrustOptions::default()).await;
    let sha = trusting(&trust, &p, &ee).await;
    p.inter.revoke(&ee);
    let crl = p.inter.crl_der();
    let b64 = openssl::base64::encode_block(&crl);
    let ldif = format!(
        "dn: {dn}\nobjectClass: cRLDistributionPoint\ncn: CRL Intermediate\ncertificateRevocationList;binary:: {b64}\n\n"
    );
    let mut add = Command::new("ldapadd");
    add.args([
        "-x",
        "-H",
        &ldap.url(),
        "-D",
        &ldap.admin_dn(),
        "-w",
        ROOT_PASSWORD,
    ]);
    let out = {
        use std::io::Write;
        let mut child = add
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ldapadd (ldap-utils)");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ldif.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(
        out.status.success(),
        "ldapadd: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let report = trust.update_crls(&fetcher()).await.unwrap();
    assert_eq!(report[0].error, None, "{report:?}");
    assert_eq!(
        status(&trust, &sha).await,
        Status::Revoked("this certificate".into())
    );
}

#[tokio::test]
async fn expired_and_wrongly_signed_crls_are_listed_invalid_and_ignored() {
    let p = pki();
    let ee = p.inter.issue(CertOptions {
        email: Some("frank@example.org".into()),
        crl_url: Some("http://127.0.0.1:9/unreachable.crl".into()),
        ..Default::default()
    });
    let (_d, trust) = sqlite(TrustOptions::default()).await;
    let sha = trusting(&trust, &p, &ee).await;
    p.inter.revoke(&ee);

    // Signed by another key under the same name.
    let impostor = TestCa::new("CRL Intermediate");
    let fake = impostor.crl_der();
    trust.import_crl(&fake, "import").await.unwrap();
    // Expired: nextUpdate one second from now, then waited past.
    let short = p.inter.crl_der_expiring_in(1);
    std::thread::sleep(Duration::from_millis(2200));
    trust
        .import_crl(&short, "http://expired.example/crl")
        .await
        .unwrap();

    let crls = trust.list_crls().await.unwrap();
    assert_eq!(crls.len(), 2);
    let reasons: Vec<String> = crls
        .iter()
        .map(|c| c.validity.clone().unwrap_err())
        .collect();
    assert!(
        reasons.iter().any(|r| r == "expired (past its nextUpdate)"),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r == "its signature does not verify with the key of CN=CRL Intermediate"),
        "{reasons:?}"
    );
    // Neither is used: the revocation they carry does not count.
    assert_eq!(status(&trust, &sha).await, Status::Valid);

    // With crl_missing = "deny" a certificate naming a distribution point
    // has no valid CRL, so it is not valid.
    let (_d2, strict) = sqlite(TrustOptions {
        crl_missing_deny: true,
        ..Default::default()
    })
    .await;
    let sha = trusting(&strict, &p, &ee).await;
    strict.import_crl(&short, "import").await.unwrap();
    match status(&strict, &sha).await {
        Status::NotTrusted(why) => {
            assert!(why.contains("no valid CRL of CN=CRL Intermediate"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    // A certificate without a distribution point is not affected.
    let plain = p.inter.issue(CertOptions {
        email: Some("gina@example.org".into()),
        ..Default::default()
    });
    let sha = strict
        .import_certs(&plain.cert_pem, "import")
        .await
        .unwrap()[0]
        .sha256
        .clone();
    assert_eq!(status(&strict, &sha).await, Status::Valid);

    // A fresh valid CRL replaces the expired one from the same source.
    let (info, replaced) = strict
        .import_crl(&p.inter.crl_der(), "import")
        .await
        .unwrap();
    assert!(replaced);
    assert_eq!(info.revoked, 1);
    assert_eq!(strict.list_crls().await.unwrap().len(), 1);
    let e = strict.import_crl(b"junk", "import").await.unwrap_err();
    assert!(e.to_string().contains("not a CRL"), "{e}");
}
