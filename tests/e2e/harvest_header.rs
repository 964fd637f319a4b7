//! The `OpenPGP: url=` header through the real binary (issue 9, item 6):
//! mail arrives on the incoming listener with the header; a real HTTPS
//! server (tests/support/keyserver.py, certificate from a test CA) serves
//! the keys. An https URL in the sender's domain is fetched once and its key
//! (User ID = From) learned at `weak_chain`, and the next outbound mail is
//! encrypted to it (gpg decrypts it). A URL in another domain and a plain
//! http URL are never requested (the servers' request logs show it), and a
//! key without a User ID equal to From is refused.

use crate::gateway::{text, Gateway};
use crate::trust::on_postgres;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::keyserver::{KeyServer, KeyServerOptions};
use sealgate_testkit::pki::{server_cert, TestCa};
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::wait_until;
use sealgate_testkit::sink::Sink;
use std::time::Duration;

#[test]
fn openpgp_header_urls_in_the_senders_domain_are_fetched() {
    openpgp_header_flow("sqlite://data/s.db");
}

/// The same with the store on PostgreSQL.
#[test]
fn openpgp_header_urls_in_the_senders_domain_are_fetched_postgres() {
    on_postgres(openpgp_header_flow);
}

fn openpgp_header_flow(store: &str) {
    let gpg = GnupgHome::new();
    let olga = gpg.gen_key("Olga <olga@partner.test>", "future-default");
    let pete = gpg.gen_key("Pete <pete@partner.test>", "future-default");
    let quinn = gpg.gen_key("Quinn <quinn@partner.test>", "future-default");
    let rita = gpg.gen_key("Rita <rita@other.test>", "future-default");

    let ca = TestCa::new("openpgp header e2e CA");
    let cert = server_cert(&ca, &["keys.partner.test", "partner.test", "evil.test"]);
    let https = KeyServer::start(KeyServerOptions {
        tls: Some(cert.pair()),
        ..Default::default()
    });
    let http = KeyServer::start_http();
    https.put("/olga.asc", &gpg.export_armored(&olga));
    https.put("/pete.asc", &gpg.export_armored(&pete));
    https.put("/rita.asc", &gpg.export_armored(&rita));
    http.put("/quinn.asc", &gpg.export_armored(&quinn));
    // An open redirect on the partner's site, to a key elsewhere.
    let sam = gpg.gen_key("Sam <sam@partner.test>", "future-default");
    https.put("/sam-key.asc", &gpg.export_armored(&sam));
    https.put_redirect(
        "/go",
        302,
        &format!("https://evil.test:{}/sam-key.asc", https.port()),
    );

    let outbound = Sink::start();
    let internal = Sink::start();
    let listen = free_port();
    let admin = free_port();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\n\
         [policy]\nmode = \"mandatory\"\nmethods = [\"pgp\"]\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [keys.http]\nca_file = \"{}\"\n\
         resolve = {{ \"keys.partner.test\" = \"127.0.0.1\", \"partner.test\" = \"127.0.0.1\", \"evil.test\" = \"127.0.0.1\" }}\n\
         [incoming]\nlisten = \"127.0.0.1:{listen}\"\nupstream = \"127.0.0.1:{}\"\n",
        outbound.port(),
        ca.cert_pem_path.display(),
        internal.port()
    ));

    let (sp, hp) = (https.port(), http.port());
    let mail = |from: &str, id: &str, url: &str| {
        format!(
            "From: {from}\r\nTo: ian@corp.test\r\nSubject: hello\r\nMessage-ID: <{id}@partner.test>\r\n\
             OpenPGP: id=0123456789ABCDEF;\r\n url=\"{url}\"; preference=signencrypt\r\n\
             \r\nmy key is on the web\r\n"
        )
        .into_bytes()
    };
    let messages: Vec<(&str, Vec<u8>)> = vec![
        (
            "olga",
            mail(
                "olga@partner.test",
                "olga",
                &format!("https://keys.partner.test:{sp}/olga.asc"),
            ),
        ),
        (
            "pete",
            mail(
                "pete@partner.test",
                "pete",
                &format!("https://evil.test:{sp}/pete.asc"),
            ),
        ),
        (
            "quinn",
            mail(
                "quinn@partner.test",
                "quinn",
                &format!("http://partner.test:{hp}/quinn.asc"),
            ),
        ),
        (
            "rita",
            mail(
                "rita@partner.test",
                "rita",
                &format!("https://partner.test:{sp}/rita.asc"),
            ),
        ),
        (
            "sam",
            mail(
                "sam@partner.test",
                "sam",
                &format!("https://partner.test:{sp}/go?to=sam"),
            ),
        ),
        (
            "olga-again",
            mail(
                "olga@partner.test",
                "olga-again",
                &format!("https://keys.partner.test:{sp}/olga.asc"),
            ),
        ),
    ];
    for (_, m) in &messages {
        smtp_send(listen, "someone@partner.test", &["ian@corp.test"], m).unwrap();
    }
    let got = internal
        .wait_for(messages.len(), Duration::from_secs(30))
        .unwrap();
    for (id, m) in &messages {
        assert!(
            got.iter().any(|g| g.data.ends_with(m)),
            "{id}: relayed unchanged"
        );
    }
    let log = || -> Vec<serde_json::Value> {
        let o = gw.cli(&["harvest", "log", "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap()
    };
    // Harvesting takes the messages in order; the last one is skipped.
    let skipped = "sealgate_harvest_decisions_total{kind=\"openpgp-header\",outcome=\"skipped\"} 1";
    wait_until(
        Duration::from_secs(30),
        "the last message harvested",
        || crate::observe::get(admin, "/metrics").1.contains(skipped),
    )
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", log(), gw.log()));
    let entries = log();
    let about = |id: &str| -> &serde_json::Value {
        entries
            .iter()
            .find(|e| e["message_id"].as_str() == Some(id))
            .unwrap_or_else(|| panic!("no decision on {id}: {entries:?}"))
    };
    let refused = |id: &str, why: &str| {
        let e = about(id);
        assert_eq!(e["outcome"], "refused", "{e}");
        assert_eq!(e["kind"], "openpgp-header", "{e}");
        assert!(e["reason"].as_str().unwrap().contains(why), "{e}");
    };
    refused(
        "<pete@partner.test>",
        "is not in the sender's domain partner.test",
    );
    refused("<quinn@partner.test>", "only https URLs are fetched");
    refused(
        "<rita@partner.test>",
        "none of its 1 key(s) has a valid User ID equal to the From address",
    );
    // The redirect is not followed.
    let e = about("<sam@partner.test>");
    assert_eq!(e["outcome"], "error", "{e}");
    assert!(
        e["reason"].as_str().unwrap().contains("HTTP status 302"),
        "{e}"
    );
    let kept = about("<olga@partner.test>");
    assert_eq!(kept["outcome"], "kept", "{kept}");
    assert_eq!(kept["fingerprint"], olga.as_str(), "{kept}");
    assert!(
        kept["reason"]
            .as_str()
            .unwrap()
            .contains("fetched from https://keys.partner.test"),
        "{kept}"
    );
    // The second mail pointing at the same URL did not fetch it again.
    assert!(
        entries
            .iter()
            .all(|e| e["message_id"] != "<olga-again@partner.test>"),
        "{entries:?}"
    );
    let requests = https.requests();
    assert_eq!(
        requests.iter().filter(|r| r.contains("/olga.asc")).count(),
        1,
        "{requests:?}"
    );
    assert!(
        requests.iter().any(|r| r.contains("/rita.asc")),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.contains("/pete.asc")),
        "another domain was fetched: {requests:?}"
    );
    assert!(requests.iter().any(|r| r.contains("/go")), "{requests:?}");
    assert!(
        !requests.iter().any(|r| r.contains("/sam-key.asc")),
        "a redirect was followed: {requests:?}"
    );
    assert!(
        http.requests().is_empty(),
        "an http URL was fetched: {:?}",
        http.requests()
    );
    let (_, m) = crate::observe::get(admin, "/metrics");
    for (outcome, n) in [("kept", 1), ("refused", 3)] {
        let line = format!(
            "sealgate_harvest_decisions_total{{kind=\"openpgp-header\",outcome=\"{outcome}\"}} {n}"
        );
        assert!(m.contains(&line), "{line}\n{m}");
    }

    // The binding, at weak_chain, is active: the next mail is encrypted to it.
    let o = gw.cli(&["keys", "list", "--address", "olga@partner.test", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let l: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let b = l["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["fingerprint"] == olga.as_str())
        .unwrap_or_else(|| panic!("no binding: {l}"));
    assert_eq!(b["level"], "weak_chain", "{l}");
    assert_eq!(b["source"], "harvest:openpgp-header", "{l}");
    assert_eq!(b["active"], true, "{l}");
    for other in [&pete, &quinn, &rita, &sam] {
        let o = gw.cli(&["keys", "list", "--json"]);
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains(other.as_str()),
            "{other} was stored"
        );
    }
    next_mail_is_encrypted_to(&gw, &outbound, &gpg, "olga@partner.test", &olga);
}

/// Sends the first mail through `gw`'s outbound listener to `to` and checks
/// what `outbound` got: gpg decrypts it, and it is encrypted to `key` only.
pub(crate) fn next_mail_is_encrypted_to(
    gw: &Gateway,
    outbound: &Sink,
    gpg: &GnupgHome,
    to: &str,
    key: &str,
) {
    let msg = format!(
        "From: ian@corp.test\r\nTo: {to}\r\nSubject: reply\r\n\
         Content-Type: text/plain\r\n\r\nsecret TO-{to}\r\n"
    );
    smtp_send(gw.port, "ian@corp.test", &[to], msg.as_bytes()).unwrap();
    let out = outbound.wait_for(1, Duration::from_secs(30)).unwrap();
    assert!(!out[0].text().contains("secret TO-"), "plaintext went out");
    let plain = gpg.decrypt(&out[0].data).unwrap();
    assert!(String::from_utf8_lossy(&plain).contains(&format!("secret TO-{to}")));
    assert_eq!(
        gpg.recipient_keyids(&out[0].data),
        gpg.encryption_keyids(key)
    );
}
