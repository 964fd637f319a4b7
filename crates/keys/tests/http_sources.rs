//! The HTTP key sources (HKP/HKPS key servers, WKD) and their shared client
//! against a real HTTP(S) server (`tests/support/keyserver.py`) and a real
//! forward proxy started on loopback, with keys made by the real `gpg` and
//! TLS certificates from a test CA made by the `openssl` CLI.
//!
//! WKD tests serve HTTPS on port 443 of their own address in 127.0.1.0/24
//! (we run as root; Linux routes all of 127/8 to `lo`) and pin the WKD host
//! names to it through `HttpConfig::resolve`; names left unpinned end in
//! `.test`, which never resolves (RFC 6761).

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use sealgate_keys::source::Source;
use sealgate_keys::sources::hkp::HkpKeyserver;
use sealgate_keys::sources::http::{self, HttpConfig};
use sealgate_keys::sources::wkd::{self, Wkd};
use sealgate_keys::RecipientKey;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::keyserver::{
    server_cert, wkd_path, ForwardProxy, KeyServer, KeyServerOptions,
};
use sealgate_testkit::pki::TestCa;
use sealgate_testkit::process::run_with_timeout;

const ALICE: &str = "alice@example.org";

/// A GnuPG home with keys for `uids` (ed25519/cv25519); returns the home and
/// the fingerprints in order.
fn keys(uids: &[&str]) -> (GnupgHome, Vec<String>) {
    let home = GnupgHome::new();
    let fprs = uids
        .iter()
        .map(|u| home.gen_key(u, "future-default"))
        .collect();
    (home, fprs)
}

/// `gpg --export` (binary) of `who`.
fn export_binary(home: &GnupgHome, who: &[&str]) -> Vec<u8> {
    let mut cmd: Command = home.gpg();
    cmd.arg("--export").args(who);
    let out = run_with_timeout(cmd, Duration::from_secs(60)).expect("gpg --export");
    assert!(out.status.success() && !out.stdout.is_empty());
    out.stdout
}

fn fingerprints(keys: &[RecipientKey]) -> Vec<String> {
    keys.iter()
        .map(|k| match k {
            RecipientKey::Pgp(cert) => cert.fingerprint().to_hex(),
            other => panic!("not an OpenPGP key: {other:?}"),
        })
        .collect()
}

fn client(config: &HttpConfig) -> reqwest::Client {
    http::client(config).expect("HTTP client")
}

/// The client WKD gets in the daemon: public addresses only, unless pinned.
fn wkd_client(config: &HttpConfig) -> reqwest::Client {
    http::public_client(config).expect("HTTP client")
}

fn hkp(url: &str, config: &HttpConfig) -> HkpKeyserver {
    HkpKeyserver::new(url, client(config), config.max_response_bytes).expect("key server")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// An HTTPS server on `addr`:443 with a certificate for `names`.
fn https_443(ca: &TestCa, addr: &str, names: &[&str]) -> KeyServer {
    let cert = server_cert(ca, names);
    KeyServer::start(KeyServerOptions {
        bind: ip(addr),
        port: Some(443),
        tls: Some(cert.pair()),
        hang: false,
    })
}

fn wkd_config(ca: &TestCa, pins: &[(&str, &str)]) -> HttpConfig {
    HttpConfig {
        ca_file: Some(ca.cert_pem_path.clone()),
        resolve: pins.iter().map(|(n, a)| (n.to_string(), ip(a))).collect(),
        timeout_secs: 5,
        ..HttpConfig::default()
    }
}

#[test]
fn wkd_urls_follow_the_draft() {
    let (advanced, direct) = wkd::wkd_urls("Joe.Doe@Example.ORG").unwrap();
    assert_eq!(
        advanced.as_str(),
        "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe"
    );
    assert_eq!(
        direct.as_str(),
        "https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe"
    );
    assert_eq!(
        wkd::local_part_hash("Joe.Doe"),
        "iy9q119eutrkn8s1mk4r39qejnbu3n5q"
    );
    // The testkit's independent encoder (openssl dgst + bitwise z-base-32) agrees.
    assert_eq!(
        advanced.path(),
        wkd_path(true, "Joe.Doe@Example.ORG").as_str()
    );
    assert_eq!(
        direct.path(),
        wkd_path(false, "Joe.Doe@Example.ORG").as_str()
    );
    let (_, d) = wkd::wkd_urls("a+b c@example.org").unwrap();
    assert_eq!(d.query(), Some("l=a%2Bb+c"));
    assert!(wkd::wkd_urls("no-at-sign").is_err());
    assert!(wkd::wkd_urls("x@").is_err());
    assert!(wkd::wkd_urls("x@evil/path").is_err());
}

#[test]
fn config_defaults_and_validation() {
    let c = HttpConfig::default();
    assert_eq!(c.timeout_secs, 10);
    assert_eq!(c.max_response_bytes, 1024 * 1024);
    assert!(c.proxy.is_none() && c.ca_file.is_none() && c.resolve.is_empty());
    assert!(c.validate().is_ok());
    let bad = HttpConfig {
        proxy: Some("not a url".into()),
        ..HttpConfig::default()
    };
    assert!(bad.validate().unwrap_err().contains("keys.http.proxy"));
    let bad = HttpConfig {
        ca_file: Some("/nonexistent/ca.pem".into()),
        ..HttpConfig::default()
    };
    assert!(bad.validate().unwrap_err().contains("keys.http.ca_file"));
    let bad = HttpConfig {
        timeout_secs: 0,
        ..HttpConfig::default()
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .contains("keys.http.timeout_secs"));
    assert!(http::client(&bad).is_err());
    let err = HkpKeyserver::new("ftp://keys.example.org", reqwest::Client::new(), 10)
        .err()
        .unwrap();
    assert!(err.contains("ftp://keys.example.org"), "{err}");
}

#[tokio::test]
async fn hkp_over_plain_http_returns_the_key() {
    let (home, fprs) = keys(&["Alice <alice@example.org>"]);
    let server = KeyServer::start_http();
    server.put_hkp(ALICE, &home.export_armored(&fprs[0]));
    let config = HttpConfig::default();
    let ks = hkp(&format!("hkp://127.0.0.1:{}", server.port()), &config);
    assert_eq!(
        ks.name(),
        format!("keyserver:hkp://127.0.0.1:{}", server.port())
    );
    let found = ks.lookup(ALICE).await.expect("lookup");
    assert_eq!(fingerprints(&found), fprs);
    // Case of the address does not matter.
    let found = ks.lookup("Alice@Example.ORG").await.expect("lookup");
    assert_eq!(fingerprints(&found), fprs);
    let requests = server.requests();
    assert!(
        requests[0].starts_with("GET /pks/lookup?op=get&options=mr&search=alice%40example.org "),
        "{requests:?}"
    );
    assert!(requests[0].contains(&format!("Host: 127.0.0.1:{}", server.port())));
}

#[tokio::test]
async fn hkp_keeps_only_keys_with_the_exact_address() {
    let (home, fprs) = keys(&[
        "Alice <alice@example.org>",
        "Bob <bob@example.org>",
        "X Alice <xalice@example.org>",
        "Alice Elsewhere <alice@example.org.evil.test>",
    ]);
    let server = KeyServer::start_http();
    let mut all = Vec::new();
    for f in &fprs {
        all.extend(home.export_armored(f));
    }
    server.put_hkp(ALICE, &all);
    // An answer holding only a near miss.
    server.put_hkp("lice@example.org", &home.export_armored(&fprs[2]));
    let ks = hkp(&server.url(), &HttpConfig::default());
    let found = ks.lookup(ALICE).await.expect("lookup");
    assert_eq!(fingerprints(&found), vec![fprs[0].clone()]);
    let found = ks.lookup("lice@example.org").await.expect("lookup");
    assert!(found.is_empty(), "substring match must not count");
}

#[tokio::test]
async fn hkp_not_found_is_empty_and_server_errors_fail() {
    let server = KeyServer::start_http();
    let ks = hkp(&server.url(), &HttpConfig::default());
    assert!(ks.lookup("nobody@example.org").await.unwrap().is_empty());
    server.put_hkp_status("broken@example.org", 500);
    let err = ks.lookup("broken@example.org").await.unwrap_err();
    assert!(err.contains("500"), "{err}");
    server.put_hkp("garbage@example.org", b"this is not a key");
    assert!(ks.lookup("garbage@example.org").await.is_err());
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn hkps_needs_the_ca() {
    let (home, fprs) = keys(&["Alice <alice@example.org>"]);
    let ca = TestCa::new("HKPS Test CA");
    let cert = server_cert(&ca, &["keys.hkps.test", "127.0.0.1"]);
    let server = KeyServer::start(KeyServerOptions {
        tls: Some(cert.pair()),
        ..KeyServerOptions::default()
    });
    server.put_hkp(ALICE, &home.export_armored(&fprs[0]));
    let url = format!("hkps://keys.hkps.test:{}", server.port());
    let pinned = HttpConfig {
        resolve: [("keys.hkps.test".to_string(), ip("127.0.0.1"))].into(),
        ..HttpConfig::default()
    };

    let without_ca = hkp(&url, &pinned);
    let err = without_ca.lookup(ALICE).await.unwrap_err();
    assert!(
        err.to_lowercase().contains("certificate"),
        "expected a TLS verification error: {err}"
    );

    let with_ca = HttpConfig {
        ca_file: Some(ca.cert_pem_path.clone()),
        ..pinned.clone()
    };
    let found = hkp(&url, &with_ca).lookup(ALICE).await.expect("lookup");
    assert_eq!(fingerprints(&found), fprs);

    // https:// is the same protocol; a name the certificate lacks fails.
    let other = HttpConfig {
        resolve: [("other.hkps.test".to_string(), ip("127.0.0.1"))].into(),
        ..with_ca.clone()
    };
    let url = format!("https://other.hkps.test:{}", server.port());
    assert!(hkp(&url, &other).lookup(ALICE).await.is_err());
}

#[tokio::test]
async fn redirect_from_https_to_http_is_refused() {
    let (home, fprs) = keys(&["Alice <alice@example.org>"]);
    let ca = TestCa::new("Redirect Test CA");
    let cert = server_cert(&ca, &["127.0.0.1"]);
    let tls = KeyServer::start(KeyServerOptions {
        tls: Some(cert.pair()),
        ..KeyServerOptions::default()
    });
    let plain = KeyServer::start_http();
    plain.put_hkp(ALICE, &home.export_armored(&fprs[0]));
    let target = format!(
        "{}/pks/lookup?op=get&options=mr&search=alice%40example.org",
        plain.url()
    );
    tls.put_hkp_redirect(ALICE, &target);
    let config = HttpConfig {
        ca_file: Some(ca.cert_pem_path.clone()),
        ..HttpConfig::default()
    };
    let err = hkp(&tls.url(), &config).lookup(ALICE).await.unwrap_err();
    assert!(err.contains("redirect"), "{err}");
    assert!(plain.requests().is_empty(), "{:?}", plain.requests());
    // http -> http redirects are followed.
    let plain2 = KeyServer::start_http();
    plain2.put_hkp_redirect(ALICE, &target);
    let found = hkp(&plain2.url(), &HttpConfig::default())
        .lookup(ALICE)
        .await
        .expect("redirected lookup");
    assert_eq!(fingerprints(&found), fprs);
}

#[tokio::test]
async fn a_hanging_server_fails_within_the_timeout() {
    let server = KeyServer::start(KeyServerOptions {
        hang: true,
        ..KeyServerOptions::default()
    });
    let config = HttpConfig {
        timeout_secs: 2,
        ..HttpConfig::default()
    };
    let ks = hkp(&server.url(), &config);
    let start = Instant::now();
    let err = ks.lookup(ALICE).await.unwrap_err();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(took >= Duration::from_secs(1), "took {took:?}");
    assert!(err.contains("timed out"), "{err}");
}

#[tokio::test]
async fn an_oversized_answer_fails() {
    let (home, fprs) = keys(&["Alice <alice@example.org>"]);
    let armored = home.export_armored(&fprs[0]);
    let server = KeyServer::start_http();
    server.put_hkp(ALICE, &armored);
    let small = HttpConfig {
        max_response_bytes: armored.len() - 1,
        ..HttpConfig::default()
    };
    let err = hkp(&server.url(), &small).lookup(ALICE).await.unwrap_err();
    assert!(err.contains("larger than the limit"), "{err}");
    let exact = HttpConfig {
        max_response_bytes: armored.len(),
        ..HttpConfig::default()
    };
    assert_eq!(
        fingerprints(&hkp(&server.url(), &exact).lookup(ALICE).await.unwrap()),
        fprs
    );
    // Default limit (1 MiB) against a 2 MiB answer.
    server.put_hkp("big@example.org", &vec![b'A'; 2 * 1024 * 1024]);
    let err = hkp(&server.url(), &HttpConfig::default())
        .lookup("big@example.org")
        .await
        .unwrap_err();
    assert!(err.contains("larger than the limit"), "{err}");
}

#[tokio::test]
async fn wkd_advanced_method() {
    let (home, fprs) = keys(&["Alice <alice@wkd-adv.test>", "Bob <bob@wkd-adv.test>"]);
    let ca = TestCa::new("WKD Test CA 1");
    let server = https_443(
        &ca,
        "127.0.1.1",
        &["openpgpkey.wkd-adv.test", "wkd-adv.test"],
    );
    // The file holds Bob's key too: only Alice's may come back.
    server.put_wkd(
        true,
        "alice@wkd-adv.test",
        &export_binary(&home, &[&fprs[0], &fprs[1]]),
    );
    server.put_wkd(false, "alice@wkd-adv.test", b"direct must not be asked");
    let config = wkd_config(
        &ca,
        &[
            ("openpgpkey.wkd-adv.test", "127.0.1.1"),
            ("wkd-adv.test", "127.0.1.1"),
        ],
    );
    let source = Wkd::new(wkd_client(&config), config.max_response_bytes);
    assert_eq!(source.name(), "wkd");
    let found = source.lookup("Alice@WKD-adv.test").await.expect("lookup");
    assert_eq!(fingerprints(&found), vec![fprs[0].clone()]);
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].starts_with(&format!(
            "GET {}?l=Alice ",
            wkd_path(true, "alice@wkd-adv.test")
        )),
        "{requests:?}"
    );
    assert!(
        requests[0].ends_with("Host: openpgpkey.wkd-adv.test"),
        "{requests:?}"
    );

    // Advanced host exists and says 404: no key, and no fallback.
    let none = source.lookup("carol@wkd-adv.test").await.expect("lookup");
    assert!(none.is_empty());
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert!(requests[1].contains("Host: openpgpkey.wkd-adv.test"));

    // A server error on the advanced host is an error, not a fallback.
    server.put_status(&wkd_path(true, "dave@wkd-adv.test"), 503);
    assert!(source.lookup("dave@wkd-adv.test").await.is_err());
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn wkd_direct_method_when_the_advanced_host_does_not_exist() {
    let (home, fprs) = keys(&["Alice <alice@wkd-direct.test>"]);
    let ca = TestCa::new("WKD Test CA 2");
    let server = https_443(&ca, "127.0.1.2", &["wkd-direct.test"]);
    server.put_wkd(
        false,
        "alice@wkd-direct.test",
        &export_binary(&home, &[&fprs[0]]),
    );
    // Only the bare domain resolves: openpgpkey.wkd-direct.test does not exist.
    let config = wkd_config(&ca, &[("wkd-direct.test", "127.0.1.2")]);
    let source = Wkd::new(wkd_client(&config), config.max_response_bytes);
    let found = source
        .lookup("alice@wkd-direct.test")
        .await
        .expect("lookup");
    assert_eq!(fingerprints(&found), fprs);
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(
        requests[0].starts_with(&format!(
            "GET {}?l=alice ",
            wkd_path(false, "alice@wkd-direct.test")
        )),
        "{requests:?}"
    );
    assert!(
        requests[0].ends_with("Host: wkd-direct.test"),
        "{requests:?}"
    );
    // Neither host exists: the domain has no WKD, that is "no key" (issue 6
    // item 4: before, it was an error, and every keyless recipient of such a
    // domain was deferred on every retry).
    let nowhere = Wkd::new(wkd_client(&wkd_config(&ca, &[])), 1 << 20);
    assert_eq!(
        nowhere
            .lookup("alice@wkd-nowhere.test")
            .await
            .map(|k| k.len()),
        Ok(0)
    );
    // Addresses WKD cannot express are "no key" too.
    assert_eq!(nowhere.lookup("postmaster").await.map(|k| k.len()), Ok(0));
}

/// The WKD outcome table (issue 6 item 4): "this source has nothing" is no
/// key; only "we could not find out" is an error.
#[tokio::test]
async fn wkd_outcomes_are_classified() {
    let (home, fprs) = keys(&["Alice <alice@wkd-cls.test>"]);
    let ca = TestCa::new("WKD Test CA 5");
    let server = https_443(
        &ca,
        "127.0.1.5",
        &["openpgpkey.wkd-cls.test", "wkd-cls.test"],
    );
    server.put_wkd(
        true,
        "alice@wkd-cls.test",
        &export_binary(&home, &[&fprs[0]]),
    );
    server.put_wkd(true, "empty@wkd-cls.test", b"");
    server.put_status(&wkd_path(true, "gone@wkd-cls.test"), 410);
    server.put_status(&wkd_path(true, "busy@wkd-cls.test"), 503);
    server.put_wkd(true, "junk@wkd-cls.test", b"<html>not a key</html>");
    let pins = [
        ("openpgpkey.wkd-cls.test", "127.0.1.5"),
        ("wkd-cls.test", "127.0.1.5"),
    ];
    let source = Wkd::new(wkd_client(&wkd_config(&ca, &pins)), 1 << 20);
    assert_eq!(
        fingerprints(&source.lookup("alice@wkd-cls.test").await.unwrap()),
        fprs
    );
    for none in [
        "nobody@wkd-cls.test",
        "empty@wkd-cls.test",
        "gone@wkd-cls.test",
    ] {
        assert_eq!(source.lookup(none).await.map(|k| k.len()), Ok(0), "{none}");
    }
    for error in ["busy@wkd-cls.test", "junk@wkd-cls.test"] {
        assert!(source.lookup(error).await.is_err(), "{error}");
    }
    // A TLS failure (a certificate we do not trust) is an error.
    let other_ca = TestCa::new("WKD Other CA");
    let untrusting = Wkd::new(wkd_client(&wkd_config(&other_ca, &pins)), 1 << 20);
    let err = untrusting.lookup("alice@wkd-cls.test").await.unwrap_err();
    assert!(err.contains("advanced"), "{err}");
}

#[tokio::test]
async fn wkd_is_never_asked_over_plain_http() {
    // Only a plain HTTP server listens at the pinned address (port 80).
    let plain = KeyServer::start(KeyServerOptions {
        bind: ip("127.0.1.3"),
        port: Some(80),
        ..KeyServerOptions::default()
    });
    plain.put_wkd(true, "alice@wkd-plain.test", b"x");
    plain.put_wkd(false, "alice@wkd-plain.test", b"x");
    let ca = TestCa::new("WKD Test CA 3");
    let config = wkd_config(
        &ca,
        &[
            ("openpgpkey.wkd-plain.test", "127.0.1.3"),
            ("wkd-plain.test", "127.0.1.3"),
        ],
    );
    let source = Wkd::new(wkd_client(&config), config.max_response_bytes);
    // HTTPS to 127.0.1.3:443 is refused: nothing serves WKD there, so no
    // key, and nothing is tried over http.
    let found = source.lookup("alice@wkd-plain.test").await;
    assert_eq!(found.map(|k| k.len()), Ok(0));
    assert!(plain.requests().is_empty(), "{:?}", plain.requests());
    let (a, d) = wkd::wkd_urls("alice@wkd-plain.test").unwrap();
    assert_eq!((a.scheme(), d.scheme()), ("https", "https"));
}

#[tokio::test]
async fn hkp_through_an_explicit_proxy() {
    let (home, fprs) = keys(&["Alice <alice@example.org>"]);
    let ca = TestCa::new("Proxy Test CA");
    let cert = server_cert(&ca, &["keys-tls.proxied.test"]);
    let plain = KeyServer::start_http();
    let tls = KeyServer::start(KeyServerOptions {
        tls: Some(cert.pair()),
        ..KeyServerOptions::default()
    });
    plain.put_hkp(ALICE, &home.export_armored(&fprs[0]));
    tls.put_hkp(ALICE, &home.export_armored(&fprs[0]));
    // Only the proxy knows these names.
    let proxy = ForwardProxy::start(&[
        ("keys.proxied.test", ip("127.0.0.1")),
        ("keys-tls.proxied.test", ip("127.0.0.1")),
    ]);
    let config = HttpConfig {
        proxy: Some(proxy.url()),
        ca_file: Some(ca.cert_pem_path.clone()),
        ..HttpConfig::default()
    };

    let url = format!("hkp://keys.proxied.test:{}", plain.port());
    let found = hkp(&url, &config).lookup(ALICE).await.expect("via proxy");
    assert_eq!(fingerprints(&found), fprs);
    let url = format!("hkps://keys-tls.proxied.test:{}", tls.port());
    let found = hkp(&url, &config).lookup(ALICE).await.expect("via CONNECT");
    assert_eq!(fingerprints(&found), fprs);

    let log = proxy.requests();
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        log[0],
        format!(
            "GET http://keys.proxied.test:{}/pks/lookup?op=get&options=mr&search=alice%40example.org",
            plain.port()
        )
    );
    assert_eq!(
        log[1],
        format!("CONNECT keys-tls.proxied.test:{}", tls.port())
    );
    assert_eq!(plain.requests().len(), 1);
    assert_eq!(tls.requests().len(), 1);
}

#[tokio::test]
async fn wkd_through_a_proxy_falls_back_when_the_proxy_cannot_reach_the_advanced_host() {
    let (home, fprs) = keys(&["Alice <alice@wkd-proxy.test>"]);
    let ca = TestCa::new("WKD Proxy Test CA");
    let server = https_443(&ca, "127.0.1.4", &["wkd-proxy.test"]);
    server.put_wkd(
        false,
        "alice@wkd-proxy.test",
        &export_binary(&home, &[&fprs[0]]),
    );
    let proxy = ForwardProxy::start(&[("wkd-proxy.test", ip("127.0.1.4"))]);
    let config = HttpConfig {
        proxy: Some(proxy.url()),
        ..wkd_config(&ca, &[])
    };
    let source = Wkd::new(wkd_client(&config), config.max_response_bytes);
    let found = source.lookup("alice@wkd-proxy.test").await.expect("lookup");
    assert_eq!(fingerprints(&found), fprs);
    assert_eq!(
        proxy.requests(),
        vec![
            "CONNECT openpgpkey.wkd-proxy.test:443".to_string(),
            "CONNECT wkd-proxy.test:443".to_string()
        ]
    );
    assert_eq!(server.requests().len(), 1);
}

/// Issue 6 item 14: WKD never connects to a loopback, private or link-local
/// address unless keys.http.resolve pins the name. `localhost` resolves to
/// 127.0.0.1, where a WKD server holds alice@localhost's key: unpinned, the
/// lookup is "no key" and the server sees no request; pinned, the key is
/// found. Before, any recipient domain could point sealgate at internal
/// services.
#[tokio::test]
async fn wkd_does_not_connect_to_private_addresses_unless_pinned() {
    let (home, fprs) = keys(&["Alice <alice@localhost>"]);
    let ca = TestCa::new("WKD Test CA private");
    let server = https_443(&ca, "127.0.0.1", &["localhost"]);
    server.put_wkd(false, "alice@localhost", &export_binary(&home, &[&fprs[0]]));
    let unpinned = Wkd::new(wkd_client(&wkd_config(&ca, &[])), 1 << 20);
    assert_eq!(
        unpinned.lookup("alice@localhost").await.map(|k| k.len()),
        Ok(0)
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    // A domain that is an address is no WKD domain at all.
    assert_eq!(
        unpinned.lookup("alice@127.0.0.1").await.map(|k| k.len()),
        Ok(0)
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
    let pinned = Wkd::new(
        wkd_client(&wkd_config(&ca, &[("localhost", "127.0.0.1")])),
        1 << 20,
    );
    assert_eq!(
        fingerprints(&pinned.lookup("alice@localhost").await.unwrap()),
        fprs
    );
    assert!(!server.requests().is_empty());
    for (ip, public) in [
        ("127.0.0.1", false),
        ("10.1.2.3", false),
        ("172.16.0.1", false),
        ("192.168.1.1", false),
        ("169.254.169.254", false),
        ("100.64.0.1", false),
        ("0.0.0.0", false),
        ("::1", false),
        ("fd00::1", false),
        ("fe80::1", false),
        ("::ffff:10.0.0.1", false),
        ("8.8.8.8", true),
        ("2a00:1450:4001::1", true),
    ] {
        assert_eq!(http::is_public(ip.parse().unwrap()), public, "{ip}");
    }
}
