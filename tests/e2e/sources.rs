//! Key sources end to end (issue 3): recipients known only to an LDAP
//! directory, only to an HKP key server, or only to WKD get encrypted mail
//! through Postfix and sealgate, decrypted by gpg / openssl; the lookup cache
//! is observed through the key server's request log; source precedence is read
//! back with `sealgate verify --json`; a key server that never answers defers
//! the recipient with 4.4.3 within its timeout, never plaintext.

use crate::gateway::{text, Gateway};
use base64::Engine;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::keyserver::{server_cert, KeyServer, KeyServerOptions};
use sealgate_testkit::pki::{cms_decrypt, CertOptions, TestCa};
use sealgate_testkit::postfix::{smtp_send, Postfix};
use sealgate_testkit::sink::Sink;
use sealgate_testkit::slapd::Slapd;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

const SUFFIX: &str = "dc=example,dc=org";

fn directory_ldif(entries: &[(&str, &str, &[u8])]) -> String {
    let mut l = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n"
    );
    for (uid, mail, der) in entries {
        l.push_str(&format!(
            "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {mail}\nuserCertificate;binary:: {}\n\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        ));
    }
    l
}

/// A loopback address of its own for this process, so that HTTPS servers on
/// port 443 of parallel tests and test runs do not collide.
fn private_loopback(n: u8) -> IpAddr {
    let pid = std::process::id();
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (pid % 200) as u8,
        ((pid / 200) % 250) as u8,
        n,
    ))
}

fn binary_export(gpg: &GnupgHome, who: &str) -> Vec<u8> {
    let out = gpg.gpg().args(["--export", who]).output().unwrap();
    assert!(out.status.success() && !out.stdout.is_empty());
    out.stdout
}

#[test]
fn ldap_hkp_and_wkd_only_recipients_through_postfix() {
    let gpg = GnupgHome::new();
    gpg.gen_key("Hank <hank@hkp.test>", "future-default");
    gpg.gen_key("Wendy <wendy@wkd.test>", "future-default");
    let ca = TestCa::new("sources e2e CA");
    let lena = ca.issue(CertOptions {
        email: Some("lena@ldap.test".into()),
        ..Default::default()
    });

    let slapd = Slapd::start(
        SUFFIX,
        &directory_ldif(&[("lena", "lena@ldap.test", &lena.cert_der)]),
    );
    let hkp = KeyServer::start_http();
    hkp.put_hkp("hank@hkp.test", &gpg.export_armored("hank@hkp.test"));
    let wkd_ip = private_loopback(1);
    let cert = server_cert(&ca, &["openpgpkey.wkd.test", "wkd.test"]);
    let wkd = KeyServer::start(KeyServerOptions {
        bind: wkd_ip,
        port: Some(443),
        tls: Some(cert.pair()),
        hang: false,
    });
    wkd.put_wkd(
        true,
        "wendy@wkd.test",
        &binary_export(&gpg, "wendy@wkd.test"),
    );

    let sink = Sink::start();
    let config = |http_timeout: u32| {
        format!(
            r#"
[smtp]
listen = "127.0.0.1:{{port}}"
[relay]
upstream = "127.0.0.1:{sink}"
tls = "none"
[store]
url = "sqlite://data/s.db"
[keys]
keyservers = [{{ url = "hkp://127.0.0.1:{hkp}", allow_insecure = true }}]
# `cache expire` runs as another process: it cannot reach this daemon's
# memory cache, which would serve hank's answer for memory_cache_secs more.
memory_cache_secs = 0
[[keys.ldap]]
name = "corp"
url = "{ldap}"
allow_insecure = true
base_dn = "{SUFFIX}"
filter = "(objectClass=inetOrgPerson)"
timeout_secs = 5
# The organisation's own directory: its certificates need no root.
require_chain = false
[keys.wkd]
enabled = true
[keys.http]
ca_file = "{ca}"
resolve = {{ "openpgpkey.wkd.test" = "{wkd_ip}", "wkd.test" = "{wkd_ip}" }}
timeout_secs = {http_timeout}
[policy]
mode = "mandatory"
"#,
            sink = sink.port(),
            hkp = hkp.port(),
            ldap = slapd.url(),
            ca = ca.cert_pem_path.display(),
        )
    };
    let mut gw = Gateway::start(&config(5));
    let postfix = Postfix::start(gw.port);
    let msg = |to: &str, marker: &str| {
        format!("From: app@apps.test\r\nTo: {to}\r\nSubject: {marker}\r\nContent-Type: text/plain\r\n\r\nsecret {marker}\r\n").into_bytes()
    };
    for (to, marker) in [
        ("lena@ldap.test", "LDAP-ONLY"),
        ("hank@hkp.test", "HKP-ONLY"),
        ("wendy@wkd.test", "WKD-ONLY"),
    ] {
        postfix
            .send("app@apps.test", &[to], &msg(to, marker))
            .unwrap();
    }
    let got = sink
        .wait_for(3, Duration::from_secs(60))
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nsealgate:\n{}\nPostfix:\n{}",
                gw.child.output_tail(40),
                postfix.maillog()
            )
        });
    let by = |rcpt: &str| {
        got.iter()
            .find(|m| m.rcpt_to == [rcpt])
            .unwrap_or_else(|| panic!("nothing for {rcpt}"))
    };
    let lena_copy = by("lena@ldap.test");
    assert_eq!(
        cms_decrypt(&lena_copy.data, &lena).unwrap(),
        b"Content-Type: text/plain\r\n\r\nsecret LDAP-ONLY\r\n"
    );
    assert_eq!(
        gpg.decrypt(&by("hank@hkp.test").data).unwrap(),
        b"Content-Type: text/plain\r\n\r\nsecret HKP-ONLY\r\n"
    );
    assert_eq!(
        gpg.decrypt(&by("wendy@wkd.test").data).unwrap(),
        b"Content-Type: text/plain\r\n\r\nsecret WKD-ONLY\r\n"
    );
    for m in &got {
        assert!(
            !m.text().contains("secret "),
            "plaintext reached the sink: {:?}",
            m.rcpt_to
        );
    }
    assert!(
        wkd.requests()
            .iter()
            .any(|r| r.contains("/.well-known/openpgpkey/wkd.test/hu/")
                && r.contains("openpgpkey.wkd.test")),
        "WKD advanced method used: {:?}",
        wkd.requests()
    );

    // The cache: a second message to hank does not ask the key server again;
    // after `sealgate cache expire hank@hkp.test` the next one does.
    let hkp_requests = || {
        hkp.requests()
            .iter()
            .filter(|r| r.contains("hank%40hkp.test") || r.contains("hank@hkp.test"))
            .count()
    };
    assert_eq!(hkp_requests(), 1, "{:?}", hkp.requests());
    smtp_send(
        gw.port,
        "app@apps.test",
        &["hank@hkp.test"],
        &msg("hank@hkp.test", "AGAIN"),
    )
    .unwrap();
    assert_eq!(hkp_requests(), 1, "served from the cache");
    let o = gw.cli(&["cache", "expire", "hank@hkp.test"]);
    assert!(
        // hank's answers of the key server and of WKD: WKD (provider_trust)
        // outranks a key-server key (weak_chain), so it was asked too.
        o.status.success() && text(&o).contains("marked 2"),
        "{}",
        text(&o)
    );
    smtp_send(
        gw.port,
        "app@apps.test",
        &["hank@hkp.test"],
        &msg("hank@hkp.test", "REFETCH"),
    )
    .unwrap();
    assert_eq!(hkp_requests(), 2, "refetched after cache expire");

    // Changing a source's settings expires its cached answers when the
    // configuration is loaded: same settings, still cached; changed, refetched.
    gw.restart(&config(5));
    smtp_send(
        gw.port,
        "app@apps.test",
        &["hank@hkp.test"],
        &msg("hank@hkp.test", "SAME"),
    )
    .unwrap();
    assert_eq!(hkp_requests(), 2, "unchanged settings keep the cache");
    gw.restart(&config(6));
    assert!(
        gw.log().contains("cached answers are stale"),
        "{}",
        gw.log()
    );
    smtp_send(
        gw.port,
        "app@apps.test",
        &["hank@hkp.test"],
        &msg("hank@hkp.test", "MOVED"),
    )
    .unwrap();
    assert_eq!(hkp_requests(), 3, "changed settings refetch");
    let o = gw.cli(&["cache", "expire"]);
    assert!(o.status.success(), "{}", text(&o));

    // verify asks every source directly and explains.
    let o = gw.cli(&["verify", "lena@ldap.test"]);
    let t = text(&o);
    assert!(
        t.contains("source ldap:corp:")
            && t.contains("usable")
            && t.contains("decision: encrypt with smime"),
        "{t}"
    );
}

#[test]
fn precedence_between_sources() {
    let gpg = GnupgHome::new();
    let from_upload = gpg.gen_key("Pat <pat@prec.test>", "future-default");
    let from_file = gpg.gen_key("Pat <pat@prec.test>", "future-default");
    let from_hkp = gpg.gen_key("Pat <pat@prec.test>", "future-default");
    let ca = TestCa::new("precedence CA");
    let sam_file = ca.issue(CertOptions {
        email: Some("sam@prec.test".into()),
        ..Default::default()
    });
    let sam_ldap = ca.issue(CertOptions {
        email: Some("sam@prec.test".into()),
        ..Default::default()
    });
    let slapd = Slapd::start(
        SUFFIX,
        &directory_ldif(&[("sam", "sam@prec.test", &sam_ldap.cert_der)]),
    );
    let hkp = KeyServer::start_http();
    hkp.put_hkp("pat@prec.test", &gpg.export_armored(&from_hkp));

    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring.asc");
    std::fs::write(&ring, gpg.export_armored(&from_file)).unwrap();
    let certs = dir.path().join("sam.pem");
    std::fs::write(&certs, &sam_file.cert_pem).unwrap();
    let upload = dir.path().join("upload.asc");
    std::fs::write(&upload, gpg.export_armored(&from_upload)).unwrap();
    let ldap_url = slapd.url();
    let config = |name: &str, pgp: &str, smime: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "[store]\nurl = \"sqlite://{d}/s.db\"\n[keys]\npgp_keyrings = [\"{ring}\"]\nsmime_certificates = [\"{certs}\"]\nkeyservers = [{{ url = \"hkp://127.0.0.1:{hkp}\", allow_insecure = true }}]\npgp_sources = {pgp}\nsmime_sources = {smime}\nfiles_require_chain = false\n[[keys.ldap]]\nname = \"corp\"\nurl = \"{ldap}\"\nallow_insecure = true\nbase_dn = \"{SUFFIX}\"\nrequire_chain = false\n",
                d = dir.path().display(),
                ring = ring.display(),
                certs = certs.display(),
                hkp = hkp.port(),
                ldap = ldap_url
            ),
        )
        .unwrap();
        path
    };
    let decision = |path: &std::path::Path, who: &str| -> String {
        let o = crate::gateway::cli(dir.path(), path, &["verify", "--json", who]);
        assert!(o.status.success(), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["decision"].as_str().unwrap().to_string()
    };
    let defaults = config(
        "defaults",
        r#"["upload", "import", "files", "keyservers", "wkd"]"#,
        r#"["upload", "import", "files", "ldap"]"#,
    );
    let o = crate::gateway::cli(
        dir.path(),
        &defaults,
        &[
            "keys",
            "import",
            "--for",
            "pat@prec.test",
            upload.to_str().unwrap(),
        ],
    );
    assert!(
        o.status.success() && text(&o).contains("as upload"),
        "{}",
        text(&o)
    );

    // All three sources have a key for pat: the upload wins, then the files, then HKP.
    let d = decision(&defaults, "pat@prec.test");
    assert!(
        d.contains(&from_upload) && d.contains("source upload"),
        "{d}"
    );
    let o = crate::gateway::cli(dir.path(), &defaults, &["keys", "remove", &from_upload]);
    assert!(o.status.success(), "{}", text(&o));
    let d = decision(&defaults, "pat@prec.test");
    assert!(d.contains(&from_file) && d.contains("source files"), "{d}");
    let hkp_first = config(
        "remote-first",
        r#"["keyservers", "files"]"#,
        r#"["ldap", "files"]"#,
    );
    // OpenPGP: levels decide, precedence only breaks ties (issue 9): the
    // key file (provider_trust) outranks the key server (weak_chain) even
    // when the key server comes first; with the key server alone, it serves.
    let d = decision(&hkp_first, "pat@prec.test");
    assert!(
        d.contains(&from_file) && d.contains("source files") && d.contains("level provider_trust"),
        "{d}"
    );
    let hkp_only = config("hkp-only", r#"["keyservers"]"#, r#"["ldap", "files"]"#);
    let d = decision(&hkp_only, "pat@prec.test");
    assert!(
        d.contains(&from_hkp)
            && d.contains("source keyserver:hkp://")
            && d.contains("level weak_chain"),
        "{d}"
    );
    // S/MIME: files before LDAP by default; LDAP first when configured so.
    let sha = |pem: &[u8]| {
        let x = openssl::x509::X509::from_pem(pem).unwrap();
        let d = x.digest(openssl::hash::MessageDigest::sha256()).unwrap();
        format!(
            "SHA256:{}",
            d.iter().map(|b| format!("{b:02X}")).collect::<String>()
        )
    };
    let d = decision(&defaults, "sam@prec.test");
    assert!(
        d.contains(&sha(&sam_file.cert_pem)) && d.contains("source files"),
        "{d}\n{}",
        text(&crate::gateway::cli(
            dir.path(),
            &defaults,
            &["verify", "sam@prec.test"]
        ))
    );
    let d = decision(&hkp_first, "sam@prec.test");
    assert!(
        d.contains(&sha(&sam_ldap.cert_pem)) && d.contains("source ldap:corp"),
        "{d}"
    );
    // Precedence holds when a source fails (issue 6 item 2): with the
    // directory down, the lower-ranked key file must not decide; sam is
    // deferred. Before, the file's certificate was used. With
    // on_source_error = "skip" the file decides.
    let mut slapd = slapd;
    slapd.stop();
    let d = decision(&hkp_first, "sam@prec.test");
    assert!(d.contains("451 4.4.3") && d.contains("ldap:corp"), "{d}");
    let skip = dir.path().join("skip.toml");
    let mut skip_text = std::fs::read_to_string(&hkp_first).unwrap();
    skip_text.push_str("[policy]\non_source_error = \"skip\"\n");
    std::fs::write(&skip, skip_text).unwrap();
    let d = decision(&skip, "sam@prec.test");
    assert!(
        d.contains(&sha(&sam_file.cert_pem)) && d.contains("source files"),
        "{d}"
    );
    // verify decides as the gateway does (issue 6 item 4): a failing source
    // of a method the domain's policy excludes plays no part. Before, verify
    // walked every method and said "defer" where the gateway sent plain.
    let pgp_only = dir.path().join("pgp-only.toml");
    let mut text_ = std::fs::read_to_string(&hkp_first).unwrap();
    text_.push_str("[policy.domains.\"prec.test\"]\nmethods = [\"pgp\"]\n");
    std::fs::write(&pgp_only, text_).unwrap();
    let d = decision(&pgp_only, "sam@prec.test");
    assert!(d.starts_with("send unencrypted"), "{d}");
    // pat's PGP keys do not depend on the directory (policy methods put pgp
    // first and it has keys), so pat is still served from the key file.
    let d = decision(&hkp_first, "pat@prec.test");
    assert!(d.contains(&from_file), "{d}");
    // A name in a precedence list that is not configured is a config error naming the key.
    let bad = config("bad", r#"["files", "ldap:nope"]"#, r#"["files"]"#);
    let o = crate::gateway::cli(dir.path(), &bad, &["check-config"]);
    assert!(
        !o.status.success() && text(&o).contains("keys.pgp_sources"),
        "{}",
        text(&o)
    );
}

#[test]
fn hanging_key_server_defers_with_443_never_plaintext() {
    let hang = KeyServer::start(KeyServerOptions {
        hang: true,
        ..Default::default()
    });
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n[store]\nurl = \"sqlite://data/s.db\"\n[keys]\nkeyservers = [{{ url = \"hkp://127.0.0.1:{}\", allow_insecure = true }}]\n[keys.http]\ntimeout_secs = 2\n[policy]\nmode = \"mandatory\"\n[policy.domains.\"open.test\"]\nmode = \"opportunistic\"\n[policy.domains.\"skip.test\"]\nmode = \"opportunistic\"\non_source_error = \"skip\"\n[policy.domains.\"skipm.test\"]\non_source_error = \"skip\"\n",
        sink.port(),
        hang.port()
    ));
    let msg = b"From: a@apps.test\r\nSubject: t\r\n\r\nsecret HANG\r\n";
    for to in ["m@strict.test", "o@open.test"] {
        let t = Instant::now();
        let err = smtp_send(gw.port, "a@apps.test", &[to], msg).unwrap_err();
        assert!(err.contains("451") && err.contains("4.4.3"), "{to}: {err}");
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "{to}: not bounded by the timeout: {:?}",
            t.elapsed()
        );
    }
    // on_source_error = skip: opportunistic goes out as is; mandatory is refused.
    let err = smtp_send(gw.port, "a@apps.test", &["m@skipm.test"], msg).unwrap_err();
    assert!(err.contains("550") && err.contains("5.7.1"), "{err}");
    smtp_send(gw.port, "a@apps.test", &["o@skip.test"], msg).unwrap();
    let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, vec!["o@skip.test".to_string()]);
}

/// URL userinfo never reaches a source name, `verify`'s output or the log
/// (issue 6 item 6): `hkp://u:pw@ks` is shown as `hkp://***@ks`. Before, the
/// source name was the URL as configured, password included.
#[test]
fn key_server_credentials_stay_out_of_names_and_logs() {
    let ks = KeyServer::start_http();
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n[store]\nurl = \"sqlite://data/s.db\"\n[keys]\nkeyservers = [{{ url = \"hkp://sguser:SECRETPW42@127.0.0.1:{}\", allow_insecure = true }}]\n[log]\nlevel = \"debug\"\n",
        sink.port(),
        ks.port()
    ));
    let o = gw.cli(&["verify", "x@open.test"]);
    let shown = text(&o);
    assert!(o.status.success(), "{shown}");
    assert!(
        !shown.contains("SECRETPW42") && !shown.contains("sguser"),
        "{shown}"
    );
    assert!(shown.contains("keyserver:hkp://***@127.0.0.1:"), "{shown}");
    let o = gw.cli(&["check-config"]);
    assert!(!text(&o).contains("SECRETPW42"), "{}", text(&o));
    smtp_send(
        gw.port,
        "a@apps.test",
        &["x@open.test"],
        b"From: a@apps.test\r\nSubject: t\r\n\r\nhi\r\n",
    )
    .unwrap();
    sink.wait_for(1, Duration::from_secs(30)).unwrap();
    let log = gw.log();
    assert!(!log.contains("SECRETPW42"), "{log}");
}
