//! X.509 trust through the real binary (issue 8): a certificate from a
//! key-store file that has no path to a root is not used, and a mandatory
//! recipient is refused with 550 5.7.1 while `verify` says "not trusted";
//! once the root and the intermediate are in the stores (and the daemon
//! got SIGHUP) the same recipient gets mail that `openssl cms -decrypt`
//! opens, and the certificate is recorded in the certificate store with
//! its source; black-listing the intermediate on the CTL refuses it again; a
//! source declared authoritative (`files_require_chain = false`) needs no
//! root.

use crate::gateway::Gateway;
use sealgate_testkit::pki::{cms_decrypt, CertOptions, TestCa};
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::{signal, wait_until};
use sealgate_testkit::sink::Sink;
use std::time::Duration;

pub(crate) fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Sends SIGHUP and waits until the daemon logged its `n`-th reload.
pub(crate) fn hup(gw: &Gateway, n: usize) {
    signal(gw.child.pid(), 1);
    wait_until(Duration::from_secs(20), "the SIGHUP reload", || {
        gw.log().matches("key files reloaded").count() >= n
    })
    .unwrap();
}

fn config(sink: u16, cert: &std::path::Path, files_require_chain: bool) -> String {
    config_on(sink, cert, files_require_chain, "sqlite://data/s.db")
}

fn config_on(sink: u16, cert: &std::path::Path, files_require_chain: bool, store: &str) -> String {
    format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{sink}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\n[keys]\nsmime_certificates = [\"{}\"]\nfiles_require_chain = {files_require_chain}\n\
         [policy]\nmode = \"mandatory\"\nmethods = [\"smime\"]\n",
        cert.display()
    )
}

#[test]
fn a_certificate_is_used_only_with_a_path_to_a_trusted_root() {
    trust_flow("sqlite://data/s.db");
}

/// The same with the stores on PostgreSQL (every instance shares them).
#[test]
fn a_certificate_is_used_only_with_a_path_to_a_trusted_root_postgres() {
    on_postgres(trust_flow);
}

fn trust_flow(store: &str) {
    let root = TestCa::new("e2e Trust Root");
    let inter = root.intermediate("e2e Trust Intermediate");
    let tina = inter.issue(CertOptions {
        email: Some("tina@trust.test".into()),
        ..Default::default()
    });
    let files = tempfile::tempdir().unwrap();
    let cert = files.path().join("tina.pem");
    std::fs::write(&cert, &tina.cert_pem).unwrap();
    let root_pem = files.path().join("root.pem");
    std::fs::write(&root_pem, &root.cert_pem).unwrap();
    let inter_pem = files.path().join("inter.pem");
    std::fs::write(&inter_pem, &inter.cert_pem).unwrap();

    let sink = Sink::start();
    let gw = Gateway::start(&config_on(sink.port(), &cert, true, store));
    let msg = b"From: a@apps.test\r\nTo: tina@trust.test\r\nSubject: trust\r\n\r\nTRUST-MARKER\r\n";

    // No root: the log says so at start; not used, and said why.
    gw.child
        .wait_for_output(
            "the root store is empty: S/MIME certificates of these sources need a path to a root",
            Duration::from_secs(20),
        )
        .unwrap();
    let o = gw.cli(&["verify", "tina@trust.test"]);
    let t = text(&o);
    assert!(
        t.contains("not trusted: no path to a root (the root store is empty)")
            && t.contains("chain: none found")
            && t.contains("550 5.7.1"),
        "{t}"
    );
    let err = smtp_send(gw.port, "a@apps.test", &["tina@trust.test"], msg).unwrap_err();
    assert!(err.contains("550") && err.contains("5.7.1"), "{err}");

    // The root and the intermediate, then SIGHUP: used.
    let o = gw.cli(&["roots", "import", root_pem.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let o = gw.cli(&["certs", "import", inter_pem.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    hup(&gw, 1);
    smtp_send(gw.port, "a@apps.test", &["tina@trust.test"], msg).unwrap();
    let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
    let plain = cms_decrypt(&got[0].data, &tina).expect("openssl cms -decrypt opens it");
    assert!(String::from_utf8_lossy(&plain).contains("TRUST-MARKER"));
    let t = text(&gw.cli(&["verify", "tina@trust.test"]));
    assert!(
        t.contains("chain: CN=tina@trust.test > CN=e2e Trust Intermediate > CN=e2e Trust Root"),
        "{t}"
    );

    // The certificate the files source found is in the certificate store,
    // with its source.
    wait_until(
        Duration::from_secs(20),
        "tina's certificate recorded",
        || {
            let o = gw.cli(&["certs", "list", "--email", "tina@trust.test", "--json"]);
            serde_json::from_slice::<serde_json::Value>(&o.stdout)
                .map(|l| {
                    l.as_array()
                        .is_some_and(|a| a.len() == 1 && a[0]["source"] == "files")
                })
                .unwrap_or(false)
        },
    )
    .unwrap();

    // Black-listing the intermediate refuses it again.
    let list: serde_json::Value =
        serde_json::from_slice(&gw.cli(&["certs", "list", "--json"]).stdout).unwrap();
    let inter_sha = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["certificate"]["is_ca"] == true)
        .unwrap()["certificate"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(gw
        .cli(&["ctl", "add", &inter_sha, "--black"])
        .status
        .success());
    hup(&gw, 2);
    let err = smtp_send(gw.port, "a@apps.test", &["tina@trust.test"], msg).unwrap_err();
    assert!(err.contains("550") && err.contains("5.7.1"), "{err}");
    let t = text(&gw.cli(&["verify", "tina@trust.test"]));
    assert!(
        t.contains("black-listed: its issuing CA CN=e2e Trust Intermediate"),
        "{t}"
    );
}

#[test]
fn an_authoritative_key_store_needs_no_root() {
    let root = TestCa::new("e2e Own Directory CA");
    let uma = root.issue(CertOptions {
        email: Some("uma@trust.test".into()),
        ..Default::default()
    });
    let files = tempfile::tempdir().unwrap();
    let cert = files.path().join("uma.pem");
    std::fs::write(&cert, &uma.cert_pem).unwrap();
    let sink = Sink::start();
    let gw = Gateway::start(&config(sink.port(), &cert, false));
    let msg = b"From: a@apps.test\r\nTo: uma@trust.test\r\nSubject: own\r\n\r\nOWN-MARKER\r\n";
    smtp_send(gw.port, "a@apps.test", &["uma@trust.test"], msg).unwrap();
    let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
    let plain = cms_decrypt(&got[0].data, &uma).expect("openssl cms -decrypt opens it");
    assert!(String::from_utf8_lossy(&plain).contains("OWN-MARKER"));
}

/// `smime_rsa_padding = "oaep"` for one domain: its recipient's copy uses
/// RSA-OAEP key transport (openssl cms decrypts it and names rsaesOaep);
/// another domain keeps PKCS#1 v1.5 with AES-256-CBC, which gpgsm opens too.
#[test]
fn rsa_oaep_per_domain() {
    let ca = TestCa::new("e2e OAEP CA");
    let vic = ca.issue(CertOptions {
        email: Some("vic@oaep.test".into()),
        ..Default::default()
    });
    let wes = ca.issue(CertOptions {
        email: Some("wes@pkcs1.test".into()),
        ..Default::default()
    });
    let files = tempfile::tempdir().unwrap();
    let certs = files.path().join("certs.pem");
    std::fs::write(
        &certs,
        [vic.cert_pem.clone(), wes.cert_pem.clone()].concat(),
    )
    .unwrap();
    let sink = Sink::start();
    let mut cfg = config(sink.port(), &certs, false);
    cfg.push_str("[policy.domains.\"oaep.test\"]\nsmime_rsa_padding = \"oaep\"\n");
    let gw = Gateway::start(&cfg);
    for (to, marker) in [
        ("vic@oaep.test", "OAEP-MARKER"),
        ("wes@pkcs1.test", "PKCS1-MARKER"),
    ] {
        let msg = format!("From: a@apps.test\r\nTo: {to}\r\nSubject: {marker}\r\n\r\n{marker}\r\n");
        smtp_send(gw.port, "a@apps.test", &[to], msg.as_bytes()).unwrap();
    }
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    for m in &got {
        let (cert, oaep) = if m.rcpt_to.iter().any(|r| r == "vic@oaep.test") {
            (&vic, true)
        } else {
            (&wes, false)
        };
        let printed = sealgate_testkit::pki::cms_print(&m.data);
        assert_eq!(printed.contains("rsaesOaep"), oaep, "{printed}");
        let plain = cms_decrypt(&m.data, cert).expect("openssl cms -decrypt opens it");
        let marker = if oaep { "OAEP-MARKER" } else { "PKCS1-MARKER" };
        assert!(String::from_utf8_lossy(&plain).contains(marker));
        if !oaep {
            // AES-256-CBC with PKCS#1 v1.5: gpgsm reads it too.
            let home = sealgate_testkit::gnupg::GnupgHome::new();
            home.gpgsm_import_p12(&wes.pkcs12_legacy());
            let body: Vec<u8> = m
                .data
                .split(|&b| b == b'\n')
                .skip_while(|l| !l.iter().all(|b| b.is_ascii_whitespace()))
                .flatten()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let der = openssl::base64::decode_block(std::str::from_utf8(&body).unwrap()).unwrap();
            let plain = home.gpgsm_decrypt(&der).expect("gpgsm --decrypt opens it");
            assert!(String::from_utf8_lossy(&plain).contains("PKCS1-MARKER"));
        }
    }
}

/// Additional certificates and keys (key escrow): the global one, the
/// domain's and the user's are all added; the S/MIME copy opens with the
/// recipient's key and each escrow key (`openssl cms -decrypt`) and names
/// exactly those four, while another user of the domain gets the global and
/// domain ones only; the PGP/MIME copy opens with the recipient's and the escrow's
/// key (`gpg --decrypt`) and not with a stranger's.
#[test]
fn additional_certificates_and_keys() {
    escrow_flow("sqlite://data/s.db");
}

/// The same with the stores on PostgreSQL.
#[test]
fn additional_certificates_and_keys_postgres() {
    on_postgres(escrow_flow);
}

fn escrow_flow(store: &str) {
    use sealgate_testkit::gnupg::GnupgHome;
    use sealgate_testkit::pki::cms_recipients;
    let ca = TestCa::new("e2e Escrow CA");
    let issue = |email: &str| {
        ca.issue(CertOptions {
            email: Some(email.into()),
            ..Default::default()
        })
    };
    let xena = issue("xena@esc.test");
    let escrow_global = issue("archive@corp.test");
    let escrow_domain = issue("scanner@corp.test");
    let escrow_user = issue("legal@corp.test");
    let zoe = issue("zoe@esc.test");
    let sha = sha256_of;
    let yan = GnupgHome::new();
    yan.gen_key("Yan <yan@esc.test>", "future-default");
    let escrow_pgp = GnupgHome::new();
    let escrow_fpr = escrow_pgp.gen_key("Escrow <pgp-archive@corp.test>", "future-default");
    let stranger = GnupgHome::new();
    stranger.gen_key("Yan <yan@esc.test>", "future-default");

    let files = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = files.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let xena_pem = put(
        "xena.pem",
        &[xena.cert_pem.clone(), zoe.cert_pem.clone()].concat(),
    );
    let ring = put("yan.asc", &yan.export_armored("yan@esc.test"));
    let root = put("root.pem", &ca.cert_pem);
    let escrows = put(
        "escrows.pem",
        &[
            escrow_global.cert_pem.clone(),
            escrow_domain.cert_pem.clone(),
            escrow_user.cert_pem.clone(),
        ]
        .concat(),
    );
    let escrow_key = put("escrow.asc", &escrow_pgp.export_armored(&escrow_fpr));

    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\n[keys]\npgp_keyrings = [\"{}\"]\nsmime_certificates = [\"{}\"]\nfiles_require_chain = false\n\
         [policy]\nmode = \"mandatory\"\nadditional_certificates = [\"{}\"]\nadditional_pgp_keys = [\"{escrow_fpr}\"]\n\
         [policy.domains.\"esc.test\"]\nadditional_certificates = [\"{}\"]\n\
         [policy.users.\"Xena@esc.test\"]\nadditional_certificates = [\"{}\"]\n",
        sink.port(),
        ring.display(),
        xena_pem.display(),
        sha(&escrow_global),
        sha(&escrow_domain),
        sha(&escrow_user),
    ));
    for args in [
        vec!["roots", "import", root.to_str().unwrap()],
        vec!["certs", "import", escrows.to_str().unwrap()],
        vec!["keys", "import", escrow_key.to_str().unwrap()],
    ] {
        let o = gw.cli(&args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    hup(&gw, 1);
    for (to, marker) in [
        ("xena@esc.test", "ESCROW-SMIME"),
        ("yan@esc.test", "ESCROW-PGP"),
        ("zoe@esc.test", "ESCROW-ZOE"),
    ] {
        let msg = format!("From: a@apps.test\r\nTo: {to}\r\nSubject: {marker}\r\n\r\n{marker}\r\n");
        smtp_send(gw.port, "a@apps.test", &[to], msg.as_bytes()).unwrap();
    }
    let got = sink.wait_for(3, Duration::from_secs(30)).unwrap();
    let smime = got
        .iter()
        .find(|m| m.rcpt_to.iter().any(|r| r == "xena@esc.test"))
        .unwrap();
    let mut named = cms_recipients(&smime.data);
    named.sort();
    let mut expected = vec![
        xena.recipient_id(),
        escrow_global.recipient_id(),
        escrow_domain.recipient_id(),
        escrow_user.recipient_id(),
    ];
    expected.sort();
    assert_eq!(
        named, expected,
        "the recipient and the escrows of all three levels"
    );
    for cert in [&xena, &escrow_global, &escrow_domain, &escrow_user] {
        let plain = cms_decrypt(&smime.data, cert).expect("openssl cms -decrypt opens it");
        assert!(String::from_utf8_lossy(&plain).contains("ESCROW-SMIME"));
    }
    // Zoe, in the same domain, has no user-level escrow.
    let z = got
        .iter()
        .find(|m| m.rcpt_to.iter().any(|r| r == "zoe@esc.test"))
        .unwrap();
    let mut named = cms_recipients(&z.data);
    named.sort();
    let mut expected = vec![
        zoe.recipient_id(),
        escrow_global.recipient_id(),
        escrow_domain.recipient_id(),
    ];
    expected.sort();
    assert_eq!(named, expected);
    let pgp = got
        .iter()
        .find(|m| m.rcpt_to.iter().any(|r| r == "yan@esc.test"))
        .unwrap();
    for home in [&yan, &escrow_pgp] {
        let plain = home.decrypt(&pgp.data).expect("gpg --decrypt opens it");
        assert!(String::from_utf8_lossy(&plain).contains("ESCROW-PGP"));
    }
    assert!(stranger.decrypt(&pgp.data).is_err());
    // The log names the additional keys of each copy.
    let log = gw.log();
    assert!(
        log.lines().any(|l| l.contains("copy queued")
            && l.contains("(additional keys: ")
            && l.contains(&escrow_fpr)),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("copy queued") && l.contains(&sha(&escrow_domain).to_uppercase())),
        "{log}"
    );
}

/// Manual certificate selection: a certificate that does not name the
/// recipient is used for them once selected (for the address or its
/// domain), while it is valid, and dropped once it is revoked;
/// `auto_select = false` (for a domain, or one user) keeps the certificates
/// that name the recipient out,
/// and automatic selections cannot be deselected.
#[test]
fn manual_selection_and_auto_select() {
    selection_flow("sqlite://data/s.db");
}

/// The same with the stores on PostgreSQL.
#[test]
fn manual_selection_and_auto_select_postgres() {
    on_postgres(selection_flow);
}

fn selection_flow(store: &str) {
    let ca = TestCa::new("e2e Selection CA");
    let issue = |email: &str| {
        ca.issue(CertOptions {
            email: Some(email.into()),
            ..Default::default()
        })
    };
    let other = issue("other@x.test");
    let amy = issue("amy@noauto.test");
    let desk = issue("desk@noauto.test");
    let files = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = files.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let uma = issue("uma@sel2.test");
    let (duo1, duo2) = (issue("duo@two.test"), issue("duo@two.test"));
    let amy_pem = put(
        "amy.pem",
        &[
            amy.cert_pem.clone(),
            uma.cert_pem.clone(),
            duo1.cert_pem.clone(),
            duo2.cert_pem.clone(),
        ]
        .concat(),
    );
    let root = put("root.pem", &ca.cert_pem);
    let certs = put(
        "certs.pem",
        &[
            other.cert_pem.clone(),
            desk.cert_pem.clone(),
            amy.cert_pem.clone(),
        ]
        .concat(),
    );
    let sink = Sink::start();
    let mut cfg = config_on(sink.port(), &amy_pem, false, store);
    cfg.push_str("[policy.domains.\"noauto.test\"]\nauto_select = false\n");
    cfg.push_str("[policy.users.\"uma@sel2.test\"]\nauto_select = false\n");
    let gw = Gateway::start(&cfg);
    assert!(gw
        .cli(&["roots", "import", root.to_str().unwrap()])
        .status
        .success());
    assert!(gw
        .cli(&["certs", "import", certs.to_str().unwrap()])
        .status
        .success());
    let sha_of = |email: &str| -> String {
        let o = gw.cli(&["certs", "list", "--email", email, "--json"]);
        let l: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        l[0]["certificate"]["sha256"].as_str().unwrap().to_string()
    };
    let (other_sha, amy_sha, desk_sha) = (
        sha_of("other@x.test"),
        sha_of("amy@noauto.test"),
        sha_of("desk@noauto.test"),
    );
    let send = |to: &str, marker: &str| {
        let msg = format!("From: a@apps.test\r\nTo: {to}\r\nSubject: {marker}\r\n\r\n{marker}\r\n");
        smtp_send(gw.port, "a@apps.test", &[to], msg.as_bytes())
    };
    let refused = |r: Result<(), String>| {
        let e = r.unwrap_err();
        assert!(e.contains("550") && e.contains("5.7.1"), "{e}");
    };

    // auto_select = false for one user: her own certificate is not used.
    refused(send("uma@sel2.test", "SEL-0"));

    // Two valid certificates: one copy, encrypted to both, that either
    // private key opens.
    send("duo@two.test", "SEL-DUO").unwrap();
    let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
    let mut named = sealgate_testkit::pki::cms_recipients(&got[0].data);
    named.sort();
    let mut both = vec![duo1.recipient_id(), duo2.recipient_id()];
    both.sort();
    assert_eq!(named, both);
    for c in [&duo1, &duo2] {
        let plain = cms_decrypt(&got[0].data, c).expect("either key opens it");
        assert!(String::from_utf8_lossy(&plain).contains("SEL-DUO"));
    }

    // zed has no certificate of his own: refused, until one is selected.
    refused(send("zed@sel.test", "SEL-1"));
    let o = gw.cli(&["certs", "select", "zed@sel.test", &other_sha]);
    assert!(stdout_of(&o).starts_with("selected "), "{}", text(&o));
    hup(&gw, 1);
    send("zed@sel.test", "SEL-2").unwrap();
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    assert_eq!(
        sealgate_testkit::pki::cms_recipients(&got[1].data),
        vec![other.recipient_id()]
    );
    assert!(String::from_utf8_lossy(&cms_decrypt(&got[1].data, &other).unwrap()).contains("SEL-2"));
    let o = gw.cli(&["certs", "selected", "zed@sel.test", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["manual"][0]["selected_for"], "zed@sel.test", "{v}");
    assert_eq!(v["manual"][0]["status"], "valid");

    // Revoked (a CRL of its CA): dropped, zed is refused again.
    ca.revoke(&other);
    let crl = put("ca.crl", &ca.crl_der());
    assert!(gw
        .cli(&["crl", "import", crl.to_str().unwrap()])
        .status
        .success());
    hup(&gw, 2);
    refused(send("zed@sel.test", "SEL-3"));

    // auto_select = false: amy's own certificate (from the files) is not
    // used; a certificate selected for her domain is, and only it.
    refused(send("amy@noauto.test", "SEL-4"));
    let o = gw.cli(&["certs", "deselect", "amy@noauto.test", &amy_sha]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("automatic selections cannot be deselected"),
        "{}",
        text(&o)
    );
    assert!(gw
        .cli(&["certs", "select", "@noauto.test", &desk_sha])
        .status
        .success());
    hup(&gw, 3);
    send("amy@noauto.test", "SEL-5").unwrap();
    let got = sink.wait_for(3, Duration::from_secs(30)).unwrap();
    let m = got
        .iter()
        .find(|m| m.rcpt_to.iter().any(|r| r == "amy@noauto.test"))
        .unwrap();
    assert_eq!(
        sealgate_testkit::pki::cms_recipients(&m.data),
        vec![desk.recipient_id()]
    );
    let o = gw.cli(&["certs", "deselect", "@noauto.test", &desk_sha]);
    assert!(o.status.success(), "{}", text(&o));
}

/// Runs `flow` with the stores in a fresh PostgreSQL database (dropped
/// afterwards).
pub(crate) fn on_postgres(flow: fn(&str)) {
    let db = sealgate_testkit::postgres::TempDatabase::create()
        .expect("PostgreSQL on 127.0.0.1:5432 (see test-peers)");
    flow(&db.url());
}

/// The SHA-256 thumbprint of `c` as sealgate prints it (lower-case hex).
pub(crate) fn sha256_of(c: &sealgate_testkit::pki::IssuedCert) -> String {
    openssl::x509::X509::from_der(&c.cert_der)
        .unwrap()
        .digest(openssl::hash::MessageDigest::sha256())
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn stdout_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
