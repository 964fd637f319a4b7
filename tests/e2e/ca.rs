//! The built-in CA (issue 11) through the real binary, every artifact
//! checked by OpenSSL's command line tools:
//! - `ca create` makes a root and an intermediate; `openssl verify -CAfile
//!   root -untrusted intermediate` passes for an issued certificate, whose
//!   key, signature algorithm, KU/EKU/SAN and CRL distribution point
//!   `openssl x509 -text` shows;
//! - with no other setup, mail to the issued address is S/MIME-encrypted to
//!   it, and `openssl cms -decrypt` opens it with the key from the PKCS#12
//!   (`openssl pkcs12` opens it with the printed password; gpgsm imports the
//!   `--legacy` variant);
//! - `ca crl create`: `openssl crl -verify` passes and lists the serials,
//!   `openssl verify -crl_check` says revoked, the CRL is downloadable at its
//!   distribution point, "update existing" keeps the earlier serials, and
//!   sealgate stops using the certificate;
//! - 1024-bit keys, SHA-1 and equal root/intermediate names are refused.
//!
//! The same flow runs with the store on PostgreSQL.

use crate::gateway::{text, Gateway};
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::wait_until;
use sealgate_testkit::sink::Sink;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `GET path` over HTTP/1.0: (status, body bytes).
pub(crate) fn get_bytes(port: u16, path: &str) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let at = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP response");
    let head = String::from_utf8_lossy(&all[..at]).to_string();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, all[at + 4..].to_vec())
}

/// Runs openssl with `args`: (success, stdout + stderr).
pub(crate) fn openssl(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl").args(args).output().unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

pub(crate) fn ok(gw: &Gateway, args: &[&str]) -> String {
    let o = gw.cli(args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The certificate, key and chain (root, intermediate) of a PKCS#12,
/// written as PEM files in `dir`.
pub(crate) struct Unpacked {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub root: PathBuf,
    pub intermediate: PathBuf,
}

pub(crate) fn unpack(dir: &Path, p12: &Path, password: &str) -> Unpacked {
    let pass = format!("pass:{password}");
    let p = p12.to_str().unwrap();
    let path = |n: &str| dir.join(n);
    let (good, out) = openssl(&[
        "pkcs12",
        "-in",
        p,
        "-passin",
        &pass,
        "-clcerts",
        "-nokeys",
        "-out",
        path("cert.pem").to_str().unwrap(),
    ]);
    assert!(
        good,
        "openssl pkcs12 does not open it with the password: {out}"
    );
    let (good, out) = openssl(&[
        "pkcs12",
        "-in",
        p,
        "-passin",
        &pass,
        "-nocerts",
        "-nodes",
        "-out",
        path("key.pem").to_str().unwrap(),
    ]);
    assert!(good, "{out}");
    let (good, out) = openssl(&[
        "pkcs12",
        "-in",
        p,
        "-passin",
        &pass,
        "-cacerts",
        "-nokeys",
        "-out",
        path("chain.pem").to_str().unwrap(),
    ]);
    assert!(good, "{out}");
    // Split the chain by subject: the root is self-issued.
    let chain =
        openssl::x509::X509::stack_from_pem(&std::fs::read(path("chain.pem")).unwrap()).unwrap();
    assert_eq!(chain.len(), 2, "intermediate and root travel with it");
    for c in &chain {
        let name = if c.subject_name().to_der().unwrap() == c.issuer_name().to_der().unwrap() {
            "root.pem"
        } else {
            "intermediate.pem"
        };
        std::fs::write(path(name), c.to_pem().unwrap()).unwrap();
    }
    Unpacked {
        cert: path("cert.pem"),
        key: path("key.pem"),
        root: path("root.pem"),
        intermediate: path("intermediate.pem"),
    }
}

#[test]
fn the_built_in_ca_issues_certificates_that_are_used_at_once() {
    ca_flow("sqlite://data/s.db");
}

#[test]
fn the_built_in_ca_issues_certificates_that_are_used_at_once_postgres() {
    crate::trust::on_postgres(ca_flow);
}

fn ca_flow(store: &str) {
    let files = tempfile::tempdir().unwrap();
    let kek = files.path().join("kek");
    std::fs::write(&kek, format!("{}\n", "3e".repeat(32))).unwrap();
    let admin = free_port();
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\nkey_encryption_key_file = \"{}\"\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [policy]\nmode = \"mandatory\"\nmethods = [\"smime\"]\n",
        sink.port(),
        kek.display()
    ));

    // Refused parameters, with the reason.
    for (args, why) in [
        (vec!["--key", "rsa1024"], "refused"),
        (vec!["--signature", "sha1"], "refused"),
        (
            vec!["--intermediate-cn", "Corp Root"],
            "different common names",
        ),
    ] {
        let mut all = vec!["ca", "create", "--root-cn", "Corp Root"];
        if !args.contains(&"--intermediate-cn") {
            all.extend(["--intermediate-cn", "Corp Mail CA"]);
        }
        all.extend(args.iter().copied());
        let o = gw.cli(&all);
        assert!(!o.status.success(), "{all:?} was accepted");
        assert!(text(&o).contains(why), "{all:?}: {}", text(&o));
    }

    let created: serde_json::Value = serde_json::from_str(&ok(
        &gw,
        &[
            "ca",
            "create",
            "--root-cn",
            "Corp Root",
            "--intermediate-cn",
            "Corp Mail CA",
            "--key",
            "rsa3072",
            "--signature",
            "sha384",
            "--days",
            "3650",
            "--json",
        ],
    ))
    .unwrap();
    let ca = created["sha256"].as_str().unwrap().to_string();
    assert_eq!(created["is_default"], true, "the first CA is the default");
    let url = format!("http://127.0.0.1:{admin}/crl/{{ca}}.crl");
    ok(
        &gw,
        &["ca", "config", "set", "crl_distribution_point_url", &url],
    );
    ok(
        &gw,
        &["ca", "config", "set", "add_crl_distribution_point", "true"],
    );
    // New certificates are signed as the configuration says.
    ok(
        &gw,
        &["ca", "config", "set", "signature_algorithm", "sha512"],
    );
    let o = gw.cli(&["ca", "config", "set", "key", "rsa1024"]);
    assert!(
        !o.status.success() && text(&o).contains("refused"),
        "{}",
        text(&o)
    );

    // Issue bob's certificate; the PKCS#12 opens with the printed password.
    let p12 = files.path().join("bob.p12");
    let issued: serde_json::Value = serde_json::from_str(&ok(
        &gw,
        &[
            "ca",
            "request",
            "--email",
            "bob@partner.test",
            "--cn",
            "Bob Partner",
            "--organisation",
            "Partner Ltd",
            "--p12-out",
            p12.to_str().unwrap(),
            "--json",
        ],
    ))
    .unwrap();
    let password = issued["pkcs12_password"].as_str().unwrap().to_string();
    assert_eq!(password.len(), 16);
    let serial = issued["serial"].as_str().unwrap().to_string();
    let u = unpack(files.path(), &p12, &password);

    // The chain verifies; the certificate says what it is.
    let (good, out) = openssl(&[
        "verify",
        "-CAfile",
        u.root.to_str().unwrap(),
        "-untrusted",
        u.intermediate.to_str().unwrap(),
        "-purpose",
        "smimeencrypt",
        u.cert.to_str().unwrap(),
    ]);
    assert!(good, "openssl verify: {out}");
    let (_, x) = openssl(&["x509", "-in", u.cert.to_str().unwrap(), "-noout", "-text"]);
    for want in [
        "Public-Key: (3072 bit)",
        "Signature Algorithm: sha512WithRSAEncryption",
        "Digital Signature, Key Encipherment",
        "E-mail Protection",
        "email:bob@partner.test",
        "X509v3 CRL Distribution Points",
        &format!("URI:http://127.0.0.1:{admin}/crl/{ca}.crl"),
        "CA:FALSE",
        "O = Partner Ltd",
    ] {
        assert!(x.contains(want), "{want:?} missing in:\n{x}");
    }
    let (_, i) = openssl(&[
        "x509",
        "-in",
        u.intermediate.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(
        i.contains("CA:TRUE, pathlen:0") && i.contains("Certificate Sign, CRL Sign"),
        "{i}"
    );
    assert!(
        i.contains("sha384WithRSAEncryption"),
        "the CA as created: {i}"
    );

    // With no other setup, mail to bob is encrypted to that certificate.
    let msg = "From: ian@corp.test\r\nTo: bob@partner.test\r\nSubject: ca\r\n\r\nCA-SECRET\r\n";
    wait_until(Duration::from_secs(90), "mail to bob accepted", || {
        smtp_send(
            gw.port,
            "ian@corp.test",
            &["bob@partner.test"],
            msg.as_bytes(),
        )
        .is_ok()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
    assert!(!got[0].text().contains("CA-SECRET"));
    let enc = files.path().join("enc.eml");
    std::fs::write(&enc, &got[0].data).unwrap();
    let (good, plain) = openssl(&[
        "cms",
        "-decrypt",
        "-in",
        enc.to_str().unwrap(),
        "-inkey",
        u.key.to_str().unwrap(),
        "-recip",
        u.cert.to_str().unwrap(),
    ]);
    assert!(
        good && plain.contains("CA-SECRET"),
        "openssl cms -decrypt: {plain}"
    );

    // gpgsm 2.2 imports the legacy PKCS#12.
    let legacy = files.path().join("bob-legacy.p12");
    let pw = files.path().join("pw");
    std::fs::write(&pw, "legacy pass\n").unwrap();
    ok(
        &gw,
        &[
            "ca",
            "export",
            &issued["sha256"].as_str().unwrap()[..16],
            "--out",
            legacy.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
            "--legacy",
        ],
    );
    let home = GnupgHome::new();
    // gpgsm takes the PKCS#12 password through the loopback pinentry.
    let mut import = Command::new("gpgsm");
    import
        .arg("--homedir")
        .arg(home.path())
        .args([
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase-fd",
            "0",
            "--import",
        ])
        .arg(&legacy)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = import.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"legacy pass\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.status.success() && said.contains("secret keys imported: 1"),
        "gpgsm: {said}"
    );

    // A CRL: verifies, lists the serial, is published, revokes.
    let crl = files.path().join("one.crl");
    let said = ok(
        &gw,
        &[
            "ca",
            "crl",
            "create",
            "--serial",
            &serial,
            "--out",
            crl.to_str().unwrap(),
        ],
    );
    assert!(said.contains("CRL #1"), "{said}");
    let (good, listed) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl.to_str().unwrap(),
        "-noout",
        "-text",
        "-verify",
        "-CAfile",
        u.intermediate.to_str().unwrap(),
    ]);
    assert!(
        good && listed.contains("verify OK"),
        "openssl crl -verify: {listed}"
    );
    assert!(
        listed.contains(&format!("Serial Number: {serial}")),
        "{listed}"
    );
    assert!(listed.contains("X509v3 CRL Number"), "{listed}");
    let (status, published) = get_bytes(admin, &format!("/crl/{ca}.crl"));
    assert_eq!(status, 200);
    assert_eq!(
        published,
        std::fs::read(&crl).unwrap(),
        "the published CRL is the new one"
    );
    let crl_pem = files.path().join("crl.pem");
    let (good, out) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl.to_str().unwrap(),
        "-out",
        crl_pem.to_str().unwrap(),
    ]);
    assert!(good, "{out}");
    let (good, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        u.root.to_str().unwrap(),
        "-untrusted",
        u.intermediate.to_str().unwrap(),
        "-CRLfile",
        crl_pem.to_str().unwrap(),
        u.cert.to_str().unwrap(),
    ]);
    assert!(
        !good && out.contains("certificate revoked"),
        "openssl verify -crl_check: {out}"
    );

    // sealgate stops using it, with no SIGHUP: the running gateway's
    // stores reload within 10 s and drop the verdicts cached before the
    // CRL; mandatory mail to bob is refused from then on.
    let before = sink.messages().len();
    wait_until(
        Duration::from_secs(25),
        "the revoked certificate unused",
        || {
            smtp_send(
                gw.port,
                "ian@corp.test",
                &["bob@partner.test"],
                msg.as_bytes(),
            )
            .is_err_and(|e| e.contains("550 5.7.1"))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    // (Until then a copy may have gone out, encrypted to the certificate
    // being revoked; none plain.)
    for m in sink.messages().iter().skip(before) {
        assert!(!m.text().contains("CA-SECRET"));
    }

    // "Update existing" keeps the first serial; --replace drops it.
    let second: serde_json::Value = serde_json::from_str(&ok(
        &gw,
        &["ca", "request", "--email", "carl@partner.test", "--json"],
    ))
    .unwrap();
    let serial2 = second["serial"].as_str().unwrap();
    let crl2 = files.path().join("two.crl");
    ok(
        &gw,
        &[
            "ca",
            "crl",
            "create",
            "--serial",
            serial2,
            "--out",
            crl2.to_str().unwrap(),
        ],
    );
    let (_, listed) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl2.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(
        listed.contains(&serial) && listed.contains(serial2),
        "{listed}"
    );
    let crl3 = files.path().join("three.crl");
    ok(
        &gw,
        &[
            "ca",
            "crl",
            "create",
            "--replace",
            "--serial",
            serial2,
            "--out",
            crl3.to_str().unwrap(),
        ],
    );
    let (_, listed) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        crl3.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(
        !listed.contains(&serial) && listed.contains(serial2),
        "{listed}"
    );
    let list = ok(&gw, &["ca", "list"]);
    assert!(
        list.contains(&format!("* {ca}")) && list.contains("CRL #3"),
        "{list}"
    );
    // The password is in no log.
    assert!(
        !gw.log().contains(&password),
        "the PKCS#12 password was logged"
    );
}
