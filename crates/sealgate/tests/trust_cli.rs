//! `sealgate certs` and `sealgate roots` through the real binary, on its
//! embedded defaults (SQLite under ./data), with a PKI made by openssl now:
//! a certificate under an intermediate is "not-trusted" (and says why, exit
//! 2) until its root is in the root store, then "valid" with its chain, in
//! text and JSON; bad input names what is wrong.

use sealgate_testkit::pki::{CertOptions, TestCa};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_sealgate");

fn sealgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env_remove("SEALGATE_CONFIG")
        .env_remove("SEALGATE_KEY_ENCRYPTION_KEY")
        .output()
        .expect("run sealgate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn text(o: &Output) -> String {
    format!("{}{}", stdout(o), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn certs_and_roots_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = TestCa::new("CLI Root");
    let inter = root.intermediate("CLI Intermediate");
    let carol = inter.issue(CertOptions {
        email: Some("carol@example.org".into()),
        ..Default::default()
    });
    let bundle = d.join("bundle.pem");
    std::fs::write(
        &bundle,
        [inter.cert_pem.clone(), carol.cert_pem.clone()].concat(),
    )
    .unwrap();
    let root_file = d.join("root.pem");
    std::fs::write(&root_file, &root.cert_pem).unwrap();

    let o = sealgate(d, &["roots", "list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("the root store is empty"),
        "{}",
        text(&o)
    );

    let o = sealgate(d, &["certs", "import", bundle.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let t = stdout(&o);
    assert!(
        t.contains("imported") && t.contains("CN=CLI Intermediate (CA: an intermediate)"),
        "{t}"
    );
    assert!(t.contains("CN=carol@example.org"), "{t}");

    let o = sealgate(
        d,
        &["certs", "list", "--email", "carol@example.org", "--json"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["status"], "not-trusted");
    assert_eq!(
        list[0]["reason"],
        "no path to a root (the root store is empty)"
    );
    let sha = list[0]["certificate"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(sha.len(), 64);
    assert_eq!(list[0]["certificate"]["emails"][0], "carol@example.org");

    // Not usable: shown with its reason, exit 2.
    let o = sealgate(d, &["certs", "show", &sha[..12]]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = stdout(&o);
    assert!(
        t.contains("status:         not trusted: no path to a root"),
        "{t}"
    );
    assert!(t.contains("chain:          none found"), "{t}");

    let o = sealgate(d, &["roots", "import", root_file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("trusted") && stdout(&o).contains("CN=CLI Root"),
        "{}",
        text(&o)
    );

    let o = sealgate(d, &["certs", "show", &sha, "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "valid");
    let chain: Vec<&str> = v["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        chain,
        ["CN=carol@example.org", "CN=CLI Intermediate", "CN=CLI Root"]
    );

    let o = sealgate(d, &["certs", "list"]);
    let t = stdout(&o);
    assert!(
        t.lines()
            .any(|l| l.starts_with("valid") && l.contains("carol@example.org")),
        "{t}"
    );

    // Bad input names what is wrong.
    let junk = d.join("junk.pem");
    std::fs::write(&junk, b"hello").unwrap();
    let o = sealgate(d, &["certs", "import", junk.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("junk.pem") && text(&o).contains("neither a PEM file"),
        "{}",
        text(&o)
    );
    let o = sealgate(d, &["certs", "show", "nothex!"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("is not a thumbprint"), "{}", text(&o));
    let o = sealgate(
        d,
        &["certs", "import", d.join("missing.pem").to_str().unwrap()],
    );
    assert!(
        text(&o).contains("cannot read") && text(&o).contains("missing.pem"),
        "{}",
        text(&o)
    );

    // The CTL: black-listing the intermediate refuses carol; off the list, valid again.
    let inter_sha = {
        let l: serde_json::Value =
            serde_json::from_slice(&sealgate(d, &["certs", "list", "--json"]).stdout).unwrap();
        l.as_array()
            .unwrap()
            .iter()
            .find(|c| c["certificate"]["is_ca"] == true)
            .unwrap()["certificate"]["sha256"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let o = sealgate(d, &["ctl", "add", &inter_sha, "--black"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).starts_with("black-listed "), "{}", text(&o));
    let o = sealgate(d, &["certs", "show", &sha, "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "black-listed");
    assert_eq!(v["reason"], "its issuing CA CN=CLI Intermediate");
    let o = sealgate(d, &["ctl", "list"]);
    assert!(
        stdout(&o).starts_with("black") && stdout(&o).contains("CN=CLI Intermediate"),
        "{}",
        text(&o)
    );
    let o = sealgate(d, &["ctl", "add", &sha, "--black", "--allow-expired"]);
    assert!(
        !o.status.success(),
        "--allow-expired needs --white: {}",
        text(&o)
    );
    let o = sealgate(d, &["ctl", "remove", &inter_sha]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(sealgate(d, &["certs", "show", &sha]).status.success());
    assert!(stdout(&sealgate(d, &["ctl", "list"])).contains("the CTL is empty"));

    // Removing the root makes it untrusted again; removing the certificate removes it.
    let roots: serde_json::Value =
        serde_json::from_slice(&sealgate(d, &["roots", "list", "--json"]).stdout).unwrap();
    let root_sha = roots[0]["sha256"].as_str().unwrap();
    assert!(sealgate(d, &["roots", "remove", root_sha]).status.success());
    assert_eq!(sealgate(d, &["certs", "show", &sha]).status.code(), Some(2));
    let o = sealgate(d, &["certs", "remove", &sha]);
    assert!(o.status.success(), "{}", text(&o));
    let o = sealgate(d, &["certs", "show", &sha]);
    assert!(
        text(&o).contains("no certificate with the thumbprint"),
        "{}",
        text(&o)
    );
}

#[test]
fn crl_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = TestCa::new("CRL CLI Root");
    let hank = root.issue(CertOptions {
        email: Some("hank@example.org".into()),
        // Nothing listens on the discard port.
        crl_url: Some("http://127.0.0.1:9/root.crl".into()),
        ..Default::default()
    });
    let files = [
        ("root.pem", root.cert_pem.clone()),
        ("hank.pem", hank.cert_pem.clone()),
    ];
    for (name, bytes) in &files {
        std::fs::write(d.join(name), bytes).unwrap();
    }
    assert!(sealgate(d, &["roots", "import", "root.pem"])
        .status
        .success());
    let o = sealgate(d, &["certs", "import", "hank.pem"]);
    assert!(o.status.success(), "{}", text(&o));
    let list: serde_json::Value =
        serde_json::from_slice(&sealgate(d, &["certs", "list", "--json"]).stdout).unwrap();
    let sha = list[0]["certificate"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();

    // The distribution point is down: the update says so and exits 1; the
    // certificate stays valid (crl_missing = "allow").
    let o = sealgate(d, &["crl", "update"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stdout(&o).starts_with("failed  http://127.0.0.1:9/root.crl"),
        "{}",
        text(&o)
    );
    assert!(sealgate(d, &["certs", "show", &sha]).status.success());
    // With crl_missing = "deny" (here from the environment) it is not.
    let o = Command::new(BIN)
        .current_dir(d)
        .args(["certs", "show", &sha])
        .env_remove("SEALGATE_CONFIG")
        .env("SEALGATE__TRUST__CRL_MISSING", "deny")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stdout(&o).contains("no valid CRL of CN=CRL CLI Root yet"),
        "{}",
        text(&o)
    );

    root.revoke(&hank);
    std::fs::write(d.join("root.crl"), root.crl_der()).unwrap();
    let o = sealgate(d, &["crl", "import", "root.crl"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("of CN=CRL CLI Root (1 entries)"),
        "{}",
        text(&o)
    );
    let o = sealgate(d, &["certs", "show", &sha, "--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["status"], "revoked");
    assert_eq!(v["reason"], "this certificate");

    let o = sealgate(d, &["crl", "list", "--json"]);
    let crls: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(crls[0]["valid"], true, "{crls}");
    assert_eq!(crls[0]["crl"]["revoked"], 1);
    let id = crls[0]["crl"]["sha256"].as_str().unwrap();
    let o = sealgate(d, &["crl", "show", &id[..10]]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("status:       valid"), "{}", text(&o));
    let o = sealgate(d, &["crl", "import", "hank.pem"]);
    assert!(
        text(&o).contains("hank.pem") && text(&o).contains("not a CRL"),
        "{}",
        text(&o)
    );
}

#[test]
fn pkcs12_import_needs_the_key_encryption_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = TestCa::new("P12 CLI Root");
    let kim = root.issue(CertOptions {
        email: Some("kim@example.org".into()),
        ..Default::default()
    });
    std::fs::write(d.join("kim.p12"), kim.pkcs12("pw 1")).unwrap();
    std::fs::write(d.join("pw"), "pw 1\n").unwrap();

    let o = sealgate(d, &["certs", "import", "kim.p12"]);
    assert!(
        text(&o).contains("kim.p12: a PKCS#12 file needs --password-file"),
        "{}",
        text(&o)
    );
    let o = sealgate(d, &["certs", "import", "--password-file", "pw", "kim.p12"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("set store.key_encryption_key_file"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("SEALGATE_KEY_ENCRYPTION_KEY"),
        "{}",
        text(&o)
    );

    // The KEK from a file named in the configuration.
    let kek = "5f".repeat(32);
    std::fs::write(d.join("kek"), format!("{kek}\n")).unwrap();
    std::fs::write(
        d.join("sealgate.toml"),
        "[store]\nkey_encryption_key_file = \"kek\"\n",
    )
    .unwrap();
    let o = sealgate(
        d,
        &[
            "--config",
            "sealgate.toml",
            "certs",
            "import",
            "--password-file",
            "pw",
            "kim.p12",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains("with its private key (sealed)"),
        "{}",
        text(&o)
    );
    let o = sealgate(d, &["certs", "list", "--with-key", "--json"]);
    let l: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(l.as_array().unwrap().len(), 1);
    assert_eq!(l[0]["has_key"], true);
    assert_eq!(l[0]["certificate"]["emails"][0], "kim@example.org");

    // A malformed KEK in the environment is named.
    let o = Command::new(BIN)
        .current_dir(d)
        .args(["certs", "import", "--password-file", "pw", "kim.p12"])
        .env_remove("SEALGATE_CONFIG")
        .env("SEALGATE_KEY_ENCRYPTION_KEY", "not-hex")
        .output()
        .unwrap();
    assert!(
        text(&o)
            .contains("SEALGATE_KEY_ENCRYPTION_KEY: the key-encryption key must be 64 hex digits"),
        "{}",
        text(&o)
    );
}
