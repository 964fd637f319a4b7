//! The two LDAP key sources against a real OpenLDAP slapd started by each
//! test: the user directory ([`LdapDirectory`]: userSMIMECertificate chains,
//! userCertificate;binary, several and expired certificates, bind, extra
//! filter, referrals, ldaps/StartTLS, timeouts, connection reuse) and the
//! PGP Universal / dirmngr key server layout ([`LdapKeyserver`]).

use base64::Engine;
use openssl::x509::X509;
use sealgate_keys::source::Source;
use sealgate_keys::sources::ldap_directory::{LdapDirectory, LdapDirectoryConfig};
use sealgate_keys::sources::ldap_keyserver::LdapKeyserver;
use sealgate_keys::usable::{check_pgp, check_x509};
use sealgate_keys::RecipientKey;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::pki::{CertOptions, IssuedCert, TestCa};
use sealgate_testkit::ports::free_port;
use sealgate_testkit::slapd::{self, Slapd, SlapdOptions, ROOT_PASSWORD};
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime};

const SUFFIX: &str = "dc=example,dc=org";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn base_ldif() -> String {
    format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n"
    )
}

/// An inetOrgPerson under ou=people with `mail`, `ou` and extra lines.
fn person(uid: &str, mail: &str, ou: &str, extra: &[String]) -> String {
    let mut s = format!(
        "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {mail}\nou: {ou}\n"
    );
    for line in extra {
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    s
}

fn user_cert(der: &[u8]) -> String {
    format!("userCertificate;binary:: {}", b64(der))
}

/// The directory a referral points to: `ou=remote` holding henry with `cert`.
fn remote_ldif(cert: &[u8]) -> String {
    let mut ldif = base_ldif();
    ldif.push_str(&format!(
        "dn: ou=remote,{SUFFIX}\nobjectClass: organizationalUnit\nou: remote\n\n\
         dn: uid=henry,ou=remote,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: henry\ncn: henry\nsn: henry\n\
         mail: henry@example.org\n{}\n\n",
        user_cert(cert)
    ));
    ldif
}

fn smime_cert(der: &[u8]) -> String {
    format!("userSMIMECertificate:: {}", b64(der))
}

fn config(name: &str, url: &str) -> LdapDirectoryConfig {
    LdapDirectoryConfig {
        name: name.to_string(),
        url: url.to_string(),
        starttls: false,
        tls_verify: true,
        tls_ca_file: None,
        bind_dn: None,
        bind_password: None,
        base_dn: SUFFIX.to_string(),
        filter: None,
        mail_attribute: "mail".to_string(),
        follow_referrals: true,
        max_referral_hops: 3,
        referral_hosts: Vec::new(),
        referral_credentials: false,
        // The test directories listen on plain loopback ports.
        allow_insecure: true,
        timeout_secs: 5,
        require_chain: true,
    }
}

fn fingerprints(keys: &[RecipientKey]) -> Vec<String> {
    let mut v: Vec<String> = keys.iter().map(|k| k.fingerprint()).collect();
    v.sort();
    v
}

fn fp_of(cert: &IssuedCert) -> String {
    RecipientKey::Smime(std::sync::Arc::new(
        X509::from_der(&cert.cert_der).expect("test cert DER"),
    ))
    .fingerprint()
}

fn x509(key: &RecipientKey) -> &X509 {
    match key {
        RecipientKey::Smime(x) => x,
        other => panic!("expected an X.509 certificate, got {other:?}"),
    }
}

async fn found(source: &dyn Source, address: &str) -> Vec<RecipientKey> {
    source
        .lookup(address)
        .await
        .unwrap_or_else(|e| panic!("{} lookup of {address} failed: {e}", source.name()))
}

/// The CA certificate as an [`IssuedCert`], so that `TestCa::p7b` can bundle
/// it with an end-entity certificate.
fn ca_as_issued(ca: &TestCa) -> IssuedCert {
    IssuedCert {
        cert_pem_path: ca.cert_pem_path.clone(),
        key_path: ca.key_path.clone(),
        cert_pem: ca.cert_pem.clone(),
        cert_der: ca.cert_der.clone(),
        serial: String::new(),
        issuer: format!("CN={}", ca.name()),
    }
}

fn email(addr: &str) -> CertOptions {
    CertOptions {
        email: Some(addr.to_string()),
        ..CertOptions::default()
    }
}

#[tokio::test]
async fn directory_reads_chains_binary_several_expired_and_foreign_certificates() {
    let ca = TestCa::new("Directory Test CA");
    let alice = ca.issue(email("alice@example.org"));
    let bob = ca.issue(email("bob@example.org"));
    let carol1 = ca.issue(email("carol@example.org"));
    let carol2 = ca.issue(CertOptions {
        key: "ec-p256".into(),
        key_usage: Some("digitalSignature,keyAgreement".into()),
        ..email("carol@example.org")
    });
    let dave = ca.issue(CertOptions {
        days: -1,
        ..email("dave@example.org")
    });
    let mallory = ca.issue(email("mallory@example.org"));
    let grace = ca.issue(email("grace@example.org"));
    let chain = TestCa::p7b(&[&alice, &ca_as_issued(&ca)]);

    let mut ldif = base_ldif();
    ldif.push_str(&person(
        "alice",
        "alice@example.org",
        "staff",
        &[smime_cert(&chain)],
    ));
    ldif.push_str(&person(
        "bob",
        "bob@example.org",
        "staff",
        &[user_cert(&bob.cert_der)],
    ));
    ldif.push_str(&person(
        "carol",
        "carol@example.org",
        "staff",
        &[user_cert(&carol1.cert_der), user_cert(&carol2.cert_der)],
    ));
    ldif.push_str(&person(
        "dave",
        "dave@example.org",
        "staff",
        &[user_cert(&dave.cert_der)],
    ));
    ldif.push_str(&person(
        "erin",
        "erin@example.org",
        "staff",
        &[user_cert(&mallory.cert_der)],
    ));
    ldif.push_str(&person(
        "grace",
        "grace@example.org",
        "contractors",
        &[user_cert(&grace.cert_der)],
    ));
    let server = Slapd::start(SUFFIX, &ldif);
    let dir = LdapDirectory::new(config("corp", &server.url())).expect("valid config");
    assert_eq!(dir.name(), "ldap:corp");
    let now = SystemTime::now();

    // Chain in userSMIMECertificate: only the end entity names the address.
    let keys = found(&dir, "alice@example.org").await;
    assert_eq!(
        fingerprints(&keys),
        vec![fp_of(&alice)],
        "alice: expected exactly her end-entity certificate, not the CA"
    );
    check_x509(x509(&keys[0]), "alice@example.org", now).expect("alice's cert is usable");
    // Case does not matter for the address.
    let keys = found(&dir, "Alice@Example.ORG").await;
    assert_eq!(
        fingerprints(&keys),
        vec![fp_of(&alice)],
        "mixed-case address"
    );

    // userCertificate;binary, DER.
    let keys = found(&dir, "bob@example.org").await;
    assert_eq!(fingerprints(&keys), vec![fp_of(&bob)], "bob");

    // Two certificates on one entry: both.
    let keys = found(&dir, "carol@example.org").await;
    let mut want = vec![fp_of(&carol1), fp_of(&carol2)];
    want.sort();
    assert_eq!(fingerprints(&keys), want, "carol: both certificates");

    // Expired: returned, but the resolver's check says why it is unusable.
    let keys = found(&dir, "dave@example.org").await;
    assert_eq!(fingerprints(&keys), vec![fp_of(&dave)], "dave");
    let why = check_x509(x509(&keys[0]), "dave@example.org", now)
        .expect_err("an expired certificate must be unusable");
    assert!(why.contains("expired"), "reason should say expired: {why}");

    // A certificate for another address on erin's entry: not a key for erin.
    let keys = found(&dir, "erin@example.org").await;
    assert!(
        keys.iter()
            .all(|k| !k.addresses().contains(&"erin@example.org".to_string())),
        "no returned key may name erin"
    );
    for k in &keys {
        let why = check_x509(x509(k), "erin@example.org", now)
            .expect_err("mallory's certificate must be unusable for erin");
        assert!(why.contains("does not name"), "reason: {why}");
    }

    // Nobody, and filter metacharacters are escaped (a bare `*` would match all).
    assert!(found(&dir, "nobody@example.org").await.is_empty(), "nobody");
    assert!(
        found(&dir, "*").await.is_empty(),
        "'*' must be escaped, not a wildcard"
    );
    assert!(
        found(&dir, "*)(mail=*").await.is_empty(),
        "filter injection must be escaped"
    );

    // Without the extra filter grace is found; with it, she is excluded.
    assert_eq!(
        fingerprints(&found(&dir, "grace@example.org").await),
        vec![fp_of(&grace)]
    );
    let mut cfg = config("staff", &server.url());
    cfg.filter = Some("(ou=staff)".into());
    let staff = LdapDirectory::new(cfg).expect("valid config");
    assert!(
        found(&staff, "grace@example.org").await.is_empty(),
        "grace is not in ou=staff: the extra filter must exclude her"
    );
    assert_eq!(
        fingerprints(&found(&staff, "bob@example.org").await),
        vec![fp_of(&bob)],
        "bob is staff: found with the filter"
    );

    // Another mail attribute.
    let mut cfg = config("byuid", &server.url());
    cfg.mail_attribute = "uid".into();
    let byuid = LdapDirectory::new(cfg).expect("valid config");
    assert_eq!(fingerprints(&found(&byuid, "bob").await), vec![fp_of(&bob)]);
}

#[tokio::test]
async fn directory_bind_with_credentials() {
    let ca = TestCa::new("Bind Test CA");
    let alice = ca.issue(email("alice@example.org"));
    let mut ldif = base_ldif();
    ldif.push_str(&person(
        "alice",
        "alice@example.org",
        "staff",
        &[user_cert(&alice.cert_der)],
    ));
    let tls = slapd::server_cert(&ca);
    let server = Slapd::start_with(SlapdOptions {
        suffix: SUFFIX.into(),
        ldif,
        require_bind: true,
        tls: Some((tls.cert_path.clone(), tls.key_path.clone())),
        ..SlapdOptions::default()
    });

    let anonymous = LdapDirectory::new(config("anon", &server.url())).unwrap();
    let err = anonymous
        .lookup("alice@example.org")
        .await
        .expect_err("anonymous lookup on a server that requires bind must fail");
    eprintln!("expected error: {err}");
    assert!(err.contains("bind"), "error should mention the bind: {err}");

    // A password goes only over an encrypted connection (issue 6 item 7).
    let mut cfg = config("bound", &server.url());
    cfg.bind_dn = Some(server.admin_dn());
    cfg.bind_password = Some(ROOT_PASSWORD.into());
    let e = LdapDirectory::new(cfg.clone())
        .err()
        .expect("a bind over plain ldap:// is a config error");
    assert!(e.starts_with("keys.ldap[bound].bind_dn:"), "{e}");
    cfg.starttls = true;
    cfg.tls_ca_file = Some(ca.cert_pem_path.clone());
    cfg.bind_password = Some(ROOT_PASSWORD.into());
    let bound = LdapDirectory::new(cfg.clone()).unwrap();
    assert_eq!(
        fingerprints(&found(&bound, "alice@example.org").await),
        vec![fp_of(&alice)]
    );

    cfg.bind_password = Some("wrong-password".into());
    let wrong = LdapDirectory::new(cfg).unwrap();
    let err = wrong
        .lookup("alice@example.org")
        .await
        .expect_err("a wrong password must fail");
    eprintln!("expected error: {err}");
    assert!(err.contains("bind refused"), "error: {err}");
    assert!(
        !err.contains("wrong-password"),
        "the password must not appear in errors: {err}"
    );
}

#[tokio::test]
async fn directory_follows_referrals_up_to_the_hop_limit() {
    let ca = TestCa::new("Referral Test CA");
    let henry = ca.issue(email("henry@example.org"));
    // The second server holds ou=remote with henry.
    let remote_ldif = remote_ldif(&henry.cert_der);
    let remote = Slapd::start(SUFFIX, &remote_ldif);
    // The first server refers ou=remote to it.
    let mut ldif = base_ldif();
    ldif.push_str(&format!(
        "dn: ou=remote,{SUFFIX}\nobjectClass: referral\nobjectClass: extensibleObject\nou: remote\n\
         ref: {}/ou=remote,{SUFFIX}\n\n",
        remote.url()
    ));
    let server = Slapd::start(SUFFIX, &ldif);

    let follow = LdapDirectory::new(config("follow", &server.url())).unwrap();
    assert_eq!(
        fingerprints(&found(&follow, "henry@example.org").await),
        vec![fp_of(&henry)],
        "henry is found through the referral"
    );

    let mut cfg = config("nofollow", &server.url());
    cfg.follow_referrals = false;
    let nofollow = LdapDirectory::new(cfg).unwrap();
    assert!(
        found(&nofollow, "henry@example.org").await.is_empty(),
        "follow_referrals = false must not follow the referral"
    );

    let mut cfg = config("nohops", &server.url());
    cfg.max_referral_hops = 0;
    let nohops = LdapDirectory::new(cfg).unwrap();
    assert!(
        found(&nohops, "henry@example.org").await.is_empty(),
        "max_referral_hops = 0 must not follow the referral"
    );
}

/// Issue 6 item 7: a referral is followed only to the configured host or a
/// host in `referral_hosts`; there sealgate binds anonymously unless
/// `referral_credentials = true`, and with StartTLS because the configured
/// connection uses it. Before, every referral was followed with the bind DN
/// and password of the configured directory, to any host, over whatever the
/// referral URL said.
#[tokio::test]
async fn referrals_keep_the_bind_password_home() {
    let ca = TestCa::new("Referral Credentials CA");
    let henry = ca.issue(email("henry@example.org"));
    let tls = slapd::server_cert(&ca);
    let remote_ldif = remote_ldif(&henry.cert_der);
    // The referral target: another host name ("localhost", not the
    // configured "127.0.0.1"), logging every bind.
    let remote = Slapd::start_with(SlapdOptions {
        suffix: SUFFIX.into(),
        ldif: remote_ldif,
        tls: Some((tls.cert_path.clone(), tls.key_path.clone())),
        log_stats: true,
        ..SlapdOptions::default()
    });
    let mut ldif = base_ldif();
    ldif.push_str(&format!(
        "dn: ou=remote,{SUFFIX}\nobjectClass: referral\nobjectClass: extensibleObject\nou: remote\n\
         ref: ldap://localhost:{}/ou=remote,{SUFFIX}\n\n",
        remote.port()
    ));
    let server = Slapd::start_with(SlapdOptions {
        suffix: SUFFIX.into(),
        ldif,
        tls: Some((tls.cert_path.clone(), tls.key_path.clone())),
        ..SlapdOptions::default()
    });
    let admin = server.admin_dn();
    let make = |hosts: &[&str], credentials: bool| {
        let mut cfg = config("corp", &server.url());
        cfg.starttls = true;
        cfg.allow_insecure = false;
        cfg.tls_ca_file = Some(ca.cert_pem_path.clone());
        cfg.bind_dn = Some(admin.clone());
        cfg.bind_password = Some(ROOT_PASSWORD.into());
        cfg.referral_hosts = hosts.iter().map(|h| h.to_string()).collect();
        cfg.referral_credentials = credentials;
        LdapDirectory::new(cfg).unwrap()
    };
    let binds = |remote: &Slapd| -> Vec<String> {
        remote
            .output()
            .lines()
            .filter(|l| l.contains(" BIND dn=") && l.contains(" method="))
            .map(str::to_string)
            .collect()
    };
    // slapd's log reaches us a little after the answer does.
    let binds_at_least = |remote: &Slapd, n: usize| -> Vec<String> {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let seen = binds(remote);
            if seen.len() >= n || std::time::Instant::now() > until {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // Not listed: not followed, nothing reaches the other host.
    assert!(found(&make(&[], true), "henry@example.org")
        .await
        .is_empty());
    assert!(binds(&remote).is_empty(), "{:?}", binds(&remote));

    // A listed host with another port is not the listed host:port.
    let other_port = format!("localhost:{}", remote.port() + 1);
    assert!(found(&make(&[&other_port], true), "henry@example.org")
        .await
        .is_empty());
    assert!(binds(&remote).is_empty(), "{:?}", binds(&remote));

    // Listed: followed, anonymously, over StartTLS.
    assert_eq!(
        fingerprints(&found(&make(&["localhost"], false), "henry@example.org").await),
        vec![fp_of(&henry)]
    );
    let seen = binds_at_least(&remote, 1);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].contains("BIND dn=\"\""), "anonymous: {seen:?}");
    let out = remote.output();
    assert!(out.contains("STARTTLS"), "StartTLS on the referral:\n{out}");

    // referral_credentials = true: the bind DN is used there (over TLS).
    let exact = format!("localhost:{}", remote.port());
    assert_eq!(
        fingerprints(&found(&make(&[&exact], true), "henry@example.org").await),
        vec![fp_of(&henry)]
    );
    let seen = binds_at_least(&remote, 2);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[1].contains(&format!("BIND dn=\"{admin}\"")),
        "{seen:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = remote.output();
    assert!(
        out.lines()
            .any(|l| l.contains("mech=SIMPLE") && l.contains("ssf=256")),
        "the password went over TLS:\n{out}"
    );
}

#[tokio::test]
async fn directory_over_ldaps_and_starttls_with_a_test_ca() {
    let ca = TestCa::new("TLS Test CA");
    let alice = ca.issue(email("alice@example.org"));
    let tls = slapd::server_cert(&ca);
    let mut ldif = base_ldif();
    ldif.push_str(&person(
        "alice",
        "alice@example.org",
        "staff",
        &[user_cert(&alice.cert_der)],
    ));
    let server = Slapd::start_with(SlapdOptions {
        suffix: SUFFIX.into(),
        ldif,
        tls: Some((tls.cert_path.clone(), tls.key_path.clone())),
        ..SlapdOptions::default()
    });
    let ldaps = server.ldaps_url().expect("ldaps URL");

    let mut cfg = config("ldaps", &ldaps);
    cfg.tls_ca_file = Some(ca.cert_pem_path.clone());
    let dir = LdapDirectory::new(cfg).unwrap();
    assert_eq!(
        fingerprints(&found(&dir, "alice@example.org").await),
        vec![fp_of(&alice)],
        "ldaps with the test CA"
    );

    let mut cfg = config("starttls", &server.url());
    cfg.starttls = true;
    cfg.tls_ca_file = Some(ca.cert_pem_path.clone());
    let dir = LdapDirectory::new(cfg).unwrap();
    assert_eq!(
        fingerprints(&found(&dir, "alice@example.org").await),
        vec![fp_of(&alice)],
        "StartTLS with the test CA"
    );

    let untrusted = LdapDirectory::new(config("untrusted", &ldaps)).unwrap();
    let err = untrusted
        .lookup("alice@example.org")
        .await
        .expect_err("ldaps without the CA must fail verification");
    eprintln!("expected error: {err}");
    assert!(err.contains("TLS"), "error should name TLS: {err}");

    let mut cfg = config("untrusted-starttls", &server.url());
    cfg.starttls = true;
    let err = LdapDirectory::new(cfg)
        .unwrap()
        .lookup("alice@example.org")
        .await
        .expect_err("StartTLS without the CA must fail verification");
    eprintln!("expected error: {err}");
    assert!(err.contains("TLS"), "error should name TLS: {err}");

    let mut cfg = config("noverify", &ldaps);
    cfg.tls_verify = false;
    let dir = LdapDirectory::new(cfg).unwrap();
    assert_eq!(
        fingerprints(&found(&dir, "alice@example.org").await),
        vec![fp_of(&alice)],
        "tls_verify = false accepts the unknown CA"
    );
}

/// A TCP listener that accepts connections and never answers.
fn silent_listener() -> (u16, std::thread::JoinHandle<()>) {
    let port = free_port();
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind silent listener");
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    (port, handle)
}

#[tokio::test]
async fn a_server_that_never_answers_fails_within_the_timeout() {
    let (port, _listener) = silent_listener();
    let url = format!("ldap://127.0.0.1:{port}");

    let mut cfg = config("silent", &url);
    cfg.timeout_secs = 2;
    let dir = LdapDirectory::new(cfg).unwrap();
    let start = Instant::now();
    let err = dir
        .lookup("alice@example.org")
        .await
        .expect_err("a silent server must give an error, not an empty answer");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?} (timeout 2 s)");
    eprintln!("expected error: {err}");
    assert!(err.contains("timed out"), "error: {err}");

    let ks = LdapKeyserver::new(&url, Duration::from_secs(2), None).unwrap();
    let start = Instant::now();
    let err = ks
        .lookup("alice@example.org")
        .await
        .expect_err("a silent key server must give an error");
    let took = start.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?} (timeout 2 s)");
    eprintln!("expected error: {err}");
    assert!(err.contains("timed out"), "error: {err}");
}

#[tokio::test]
async fn directory_reuses_its_connection_and_reconnects_after_a_restart() {
    let ca = TestCa::new("Reuse Test CA");
    let alice = ca.issue(email("alice@example.org"));
    let mut ldif = base_ldif();
    ldif.push_str(&person(
        "alice",
        "alice@example.org",
        "staff",
        &[user_cert(&alice.cert_der)],
    ));
    let mut server = Slapd::start_with(SlapdOptions {
        suffix: SUFFIX.into(),
        ldif,
        log_stats: true,
        ..SlapdOptions::default()
    });
    let dir = LdapDirectory::new(config("reuse", &server.url())).unwrap();
    for _ in 0..3 {
        assert_eq!(
            fingerprints(&found(&dir, "alice@example.org").await),
            vec![fp_of(&alice)]
        );
    }
    assert!(found(&dir, "nobody@example.org").await.is_empty());
    assert_eq!(
        server.bound_connections(1),
        1,
        "four lookups should share one connection; slapd log:\n{}",
        server.output()
    );

    server.restart();
    assert_eq!(
        fingerprints(&found(&dir, "alice@example.org").await),
        vec![fp_of(&alice)],
        "the lookup after a server restart must reconnect"
    );
    assert_eq!(
        server.bound_connections(1),
        1,
        "one new connection after the restart; slapd log:\n{}",
        server.output()
    );
}

#[test]
fn directory_config_validation_names_the_key_and_hides_the_password() {
    let mut cfg = config("corp", "ldap://127.0.0.1:389");
    cfg.validate().expect("valid");
    cfg.bind_dn = Some("cn=reader,dc=example,dc=org".into());
    cfg.bind_password = Some("s3cret-pw".into());
    let debug = format!("{cfg:?}");
    assert!(
        !debug.contains("s3cret-pw"),
        "Debug leaks the password: {debug}"
    );

    let bad = |f: &dyn Fn(&mut LdapDirectoryConfig)| {
        let mut c = config("corp", "ldap://127.0.0.1:389");
        f(&mut c);
        c.validate().expect_err("must be rejected")
    };
    let e = bad(&|c| c.url = "http://example.org".into());
    assert!(e.starts_with("keys.ldap[corp].url:"), "{e}");
    let e = bad(&|c| {
        c.url = "ldaps://127.0.0.1:636".into();
        c.starttls = true
    });
    assert!(e.starts_with("keys.ldap[corp].starttls:"), "{e}");
    let e = bad(&|c| c.filter = Some("objectClass=person".into()));
    assert!(e.starts_with("keys.ldap[corp].filter:"), "{e}");
    let e = bad(&|c| c.filter = Some("(&(objectClass=person)".into()));
    assert!(e.starts_with("keys.ldap[corp].filter:"), "{e}");
    let e = bad(&|c| c.base_dn = String::new());
    assert!(e.starts_with("keys.ldap[corp].base_dn:"), "{e}");
    let e = bad(&|c| c.timeout_secs = 0);
    assert!(e.starts_with("keys.ldap[corp].timeout_secs:"), "{e}");
    let e = bad(&|c| c.bind_password = Some("x".into()));
    assert!(e.starts_with("keys.ldap[corp].bind_password:"), "{e}");
    let e = bad(&|c| c.mail_attribute = "mail)(x".into());
    assert!(e.starts_with("keys.ldap[corp].mail_attribute:"), "{e}");
    // Plain ldap:// needs allow_insecure; a password never goes over it
    // (issue 6 item 7).
    let e = bad(&|c| c.allow_insecure = false);
    assert!(
        e.starts_with("keys.ldap[corp].url:") && e.contains("allow_insecure"),
        "{e}"
    );
    let e = bad(&|c| {
        c.bind_dn = Some("cn=reader,dc=example,dc=org".into());
        c.bind_password = Some("pw".into());
    });
    assert!(e.starts_with("keys.ldap[corp].bind_dn:"), "{e}");
    let e = bad(&|c| c.referral_hosts = vec!["ldap://evil.test".into()]);
    assert!(e.starts_with("keys.ldap[corp].referral_hosts:"), "{e}");
    let mut ok = config("corp", "ldaps://ldap.example.org");
    ok.allow_insecure = false;
    ok.bind_dn = Some("cn=reader,dc=example,dc=org".into());
    ok.bind_password = Some("pw".into());
    ok.referral_hosts = vec!["ldap2.example.org".into(), "[::1]:3389".into()];
    ok.validate().expect("ldaps with a bind is fine");
    ok.url = "ldap://ldap.example.org".into();
    ok.starttls = true;
    ok.validate().expect("StartTLS with a bind is fine");
}

fn pgp_entry(cert_id: &str, uid_attr: &str, armored: &[u8]) -> String {
    format!(
        "dn: pgpCertID={cert_id},ou=PGP Keys,{SUFFIX}\nobjectClass: pgpKeyInfo\npgpCertID: {cert_id}\n\
         pgpKeyID: {}\npgpUserID: {uid_attr}\npgpDisabled: 0\npgpRevoked: 0\npgpKey:: {}\n\n",
        &cert_id[8..],
        b64(armored)
    )
}

#[tokio::test]
async fn keyserver_returns_only_keys_with_exactly_the_address() {
    let gpg = GnupgHome::new();
    let alice_fpr = gpg.gen_key("Alice <alice@example.org>", "future-default");
    let bob_fpr = gpg.gen_key("Bob <bob@example.org>", "future-default");
    let xalice_fpr = gpg.gen_key("X Alice <xalice@example.org>", "future-default");
    let keyid = |fpr: &str| fpr[fpr.len() - 16..].to_string();

    let mut ldif = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: cn=PGPServerInfo,{SUFFIX}\nobjectClass: pgpServerInfo\ncn: PGPServerInfo\n\
         pgpBaseKeySpaceDN: ou=PGP Keys,{SUFFIX}\npgpSoftware: sealgate test\npgpVersion: 1\n\n\
         dn: ou=PGP Keys,{SUFFIX}\nobjectClass: organizationalUnit\nou: PGP Keys\n\n"
    );
    ldif.push_str(&pgp_entry(
        &keyid(&alice_fpr),
        "Alice <alice@example.org>",
        &gpg.export_armored(&alice_fpr),
    ));
    // A server entry that claims alice but holds bob's key.
    ldif.push_str(&pgp_entry(
        &keyid(&bob_fpr),
        "Alice <alice@example.org>",
        &gpg.export_armored(&bob_fpr),
    ));
    // The address only as a substring of a longer one.
    ldif.push_str(&pgp_entry(
        &keyid(&xalice_fpr),
        "X Alice <xalice@example.org>",
        &gpg.export_armored(&xalice_fpr),
    ));
    let server = Slapd::start_with(SlapdOptions {
        suffix: SUFFIX.into(),
        ldif,
        extra_schemas: vec![slapd::pgp_keyserver_schema()],
        ..SlapdOptions::default()
    });

    let ks = LdapKeyserver::new(&server.url(), Duration::from_secs(5), None).unwrap();
    assert_eq!(ks.name(), format!("keyserver:{}", server.url()));
    let keys = found(&ks, "alice@example.org").await;
    assert_eq!(
        fingerprints(&keys),
        vec![alice_fpr.clone()],
        "only the key with exactly alice@example.org as a User ID"
    );
    match &keys[0] {
        RecipientKey::Pgp(cert) => {
            check_pgp(cert, "alice@example.org", SystemTime::now()).expect("alice's key is usable")
        }
        other => panic!("expected an OpenPGP key, got {other:?}"),
    }
    // Second lookup on the reused connection, other case.
    assert_eq!(
        fingerprints(&found(&ks, "ALICE@example.org").await),
        vec![alice_fpr.clone()]
    );
    assert_eq!(
        fingerprints(&found(&ks, "xalice@example.org").await),
        vec![xalice_fpr.clone()]
    );
    assert!(found(&ks, "nobody@example.org").await.is_empty());
    assert!(
        found(&ks, "bob@example.org").await.is_empty(),
        "no pgpUserID names bob, so the server finds nothing"
    );

    // A directory that is not a key server: an error, not "no key".
    let plain = Slapd::start(SUFFIX, &base_ldif());
    let ks = LdapKeyserver::new(&plain.url(), Duration::from_secs(5), None).unwrap();
    let err = ks
        .lookup("alice@example.org")
        .await
        .expect_err("no cn=PGPServerInfo: error");
    eprintln!("expected error: {err}");
    assert!(err.contains("PGPServerInfo"), "error: {err}");
}

/// Issue 6 item 14: a directory that answers one lookup with a flood of
/// entries gives an error, not unbounded memory. Before, every entry was
/// collected (ldap3's `search` has no bound).
#[tokio::test]
async fn a_flood_of_entries_is_an_error() {
    let mut ldif = base_ldif();
    for i in 0..300 {
        ldif.push_str(&person(
            &format!("flood{i}"),
            "flood@example.org",
            "staff",
            &[],
        ));
    }
    ldif.push_str(&person("single", "single@example.org", "staff", &[]));
    // slapd's own default size limit (500) is above the client's bound.
    let server = Slapd::start(SUFFIX, &ldif);
    let dir = LdapDirectory::new(config("flood", &server.url())).unwrap();
    let err = dir
        .lookup("flood@example.org")
        .await
        .expect_err("300 entries for one address must be refused");
    assert!(err.contains("more than 256 entries"), "{err}");
    // The connection is still good for the next lookup.
    assert!(dir.lookup("single@example.org").await.unwrap().is_empty());
}
