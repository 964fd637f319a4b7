//! S/MIME harvesting through the real binary (issue 9, item 4): signed
//! mail from partners arrives on the incoming listener and is relayed
//! unchanged; a detached-signed and an opaque-signed message teach their
//! signers' certificates, and the next outbound mail to each partner is
//! S/MIME-encrypted to it (`openssl cms -decrypt`), with AES-256-GCM only
//! for the partner whose signature listed it in its SMIMECapabilities
//! (`smime_cipher = "auto"`, the default). Refused, with the
//! reason in `sealgate harvest log`: a broken signature, a certificate that
//! names another address than From, a signing-only certificate; a
//! certificate that does not chain is learned but not used (550 5.7.1 for
//! a mandatory recipient). Every one of these messages still reaches the
//! internal MTA.

use crate::gateway::Gateway;
use crate::trust::{hup, on_postgres, text};
use sealgate_testkit::pki::{
    cms_content_type, cms_decrypt, cms_sign_mail, sign_mail_with_capabilities, CertOptions,
    IssuedCert, TestCa,
};
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::wait_until;
use sealgate_testkit::sink::Sink;
use std::time::Duration;

#[test]
fn signed_incoming_mail_teaches_certificates() {
    harvest_flow("sqlite://data/s.db");
}

/// The same with the stores on PostgreSQL.
#[test]
fn signed_incoming_mail_teaches_certificates_postgres() {
    on_postgres(harvest_flow);
}

fn harvest_flow(store: &str) {
    let root = TestCa::new("e2e Harvest Root");
    let inter = root.intermediate("e2e Harvest Intermediate");
    let issue = |email: &str, usage: &str| {
        inter.issue(CertOptions {
            email: Some(email.into()),
            key_usage: Some(usage.into()),
            ..Default::default()
        })
    };
    let pat = issue("pat@partner.test", "digitalSignature,keyEncipherment");
    let quinn = issue("quinn@partner.test", "digitalSignature,keyEncipherment");
    let gina = issue("gina@partner.test", "digitalSignature,keyEncipherment");
    let sam = issue("sam@partner.test", "digitalSignature");
    let stranger_ca = TestCa::new("e2e Unknown CA");
    let eve = stranger_ca.issue(CertOptions {
        email: Some("eve@partner.test".into()),
        ..Default::default()
    });
    let files = tempfile::tempdir().unwrap();
    let root_pem = files.path().join("root.pem");
    std::fs::write(&root_pem, &root.cert_pem).unwrap();

    let outbound = Sink::start();
    let internal = Sink::start();
    let listen = free_port();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\n\
         [policy]\nmode = \"mandatory\"\nmethods = [\"smime\"]\n\
         [incoming]\nlisten = \"127.0.0.1:{listen}\"\nupstream = \"127.0.0.1:{}\"\n",
        outbound.port(),
        internal.port()
    ));
    let o = gw.cli(&["roots", "import", root_pem.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    hup(&gw, 1);

    let chain = inter.cert_pem_path.to_str().unwrap().to_string();
    let entity = b"Content-Type: text/plain\r\n\r\nsigned by a partner\r\n";
    // The Message-ID names the case; the envelope sender is the From.
    let signed = |from: &str, id: &str, cert: &IssuedCert, extra: &[&str]| {
        let mut opts = vec!["-certfile", chain.as_str()];
        opts.extend_from_slice(extra);
        cms_sign_mail(
            &format!("From: {from}\r\nTo: ian@corp.test\r\nSubject: hello\r\nMessage-ID: <{id}@partner.test>\r\n"),
            entity,
            cert,
            &opts,
        )
    };
    let mut tampered = signed("pat@partner.test", "tampered", &pat, &[]);
    let at = tampered.windows(9).position(|w| w == b"by a part").unwrap();
    tampered[at] = b'B';
    let messages: Vec<(&str, &str, Vec<u8>)> = vec![
        ("tampered", "pat@partner.test", tampered),
        (
            "mallory",
            "mallory@partner.test",
            signed("mallory@partner.test", "mallory", &pat, &[]),
        ),
        (
            "sam",
            "sam@partner.test",
            signed("sam@partner.test", "sam", &sam, &[]),
        ),
        (
            "eve",
            "eve@partner.test",
            signed("eve@partner.test", "eve", &eve, &[]),
        ),
        (
            "pat",
            "pat@partner.test",
            signed("pat@partner.test", "pat", &pat, &[]),
        ),
        (
            "quinn",
            "quinn@partner.test",
            signed("quinn@partner.test", "quinn", &quinn, &["-nodetach"]),
        ),
        // A client that announces AES-256-GCM (then AES-256-CBC).
        (
            "gina",
            "gina@partner.test",
            sign_mail_with_capabilities(
                "From: gina@partner.test\r\nTo: ian@corp.test\r\nMessage-ID: <gina@partner.test>\r\n",
                entity,
                &gina,
                &["2.16.840.1.101.3.4.1.46", "2.16.840.1.101.3.4.1.42"],
            ),
        ),
    ];
    for (_, from, m) in &messages {
        smtp_send(listen, from, &["ian@corp.test"], m).unwrap();
    }
    // Every one reaches the internal MTA, unchanged.
    let got = internal
        .wait_for(messages.len(), Duration::from_secs(30))
        .unwrap();
    for (id, _, m) in &messages {
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
    wait_until(Duration::from_secs(30), "seven harvest decisions", || {
        log().len() >= 7
    })
    .unwrap();
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
        assert!(e["reason"].as_str().unwrap().contains(why), "{e}");
    };
    refused("<tampered@partner.test>", "does not verify");
    assert_eq!(
        about("<tampered@partner.test>")["address"],
        "pat@partner.test"
    );
    refused(
        "<mallory@partner.test>",
        "no signer's certificate names the From address <mallory@partner.test>",
    );
    refused("<sam@partner.test>", "may not encrypt");
    for id in [
        "<pat@partner.test>",
        "<quinn@partner.test>",
        "<eve@partner.test>",
        "<gina@partner.test>",
    ] {
        assert_eq!(about(id)["outcome"], "kept", "{}", about(id));
    }
    let text_log = text(&gw.cli(&["harvest", "log", "--address", "pat@partner.test"]));
    assert!(
        text_log.contains("smime kept <pat@partner.test>"),
        "{text_log}"
    );

    // Outbound mail to the partners: encrypted to what was learned (the
    // gateway reloads its trust snapshot within a second of a harvest that
    // added certificates).
    // smime_cipher = "auto" (the default): GCM only for gina, whose
    // signature listed it; OpenSSL's own list (pat, quinn) has no GCM.
    for (n, (to, cert, content_type)) in [
        ("pat@partner.test", &pat, "pkcs7-envelopedData"),
        ("quinn@partner.test", &quinn, "pkcs7-envelopedData"),
        ("gina@partner.test", &gina, "id-smime-ct-authEnvelopedData"),
    ]
    .into_iter()
    .enumerate()
    {
        let msg =
            format!("From: ian@corp.test\r\nTo: {to}\r\nSubject: reply\r\n\r\nREPLY-TO-{to}\r\n");
        let mut last = String::new();
        wait_until(
            Duration::from_secs(15),
            "the learned certificate in use",
            || match smtp_send(gw.port, "ian@corp.test", &[to], msg.as_bytes()) {
                Ok(()) => true,
                Err(e) => {
                    last = e;
                    false
                }
            },
        )
        .unwrap_or_else(|e| panic!("{to}: {e}: {last}"));
        let out = outbound.wait_for(n + 1, Duration::from_secs(30)).unwrap();
        let m = out
            .iter()
            .find(|m| m.rcpt_to.iter().any(|r| r == to))
            .unwrap_or_else(|| panic!("{to}: nothing sent"));
        assert_eq!(cms_content_type(&m.data), content_type, "{to}");
        let plain = cms_decrypt(&m.data, cert).expect("openssl cms -decrypt");
        assert!(String::from_utf8_lossy(&plain).contains(&format!("REPLY-TO-{to}")));
    }
    // The binding records the use (encr_used), written off the reply path.
    wait_until(
        Duration::from_secs(20),
        "encr_used on pat's binding",
        || text(&gw.cli(&["verify", "pat@partner.test"])).contains(", encrypted to"),
    )
    .unwrap();
    let t = text(&gw.cli(&["verify", "pat@partner.test"]));
    assert!(t.contains("source harvested:"), "{t}");
    assert!(t.contains("key bindings (* active):"), "{t}");
    let pat_sha = about("<pat@partner.test>")["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        t.contains(&format!(
            "x509 {pat_sha} level weak_chain from harvest:smime"
        )) && t.contains("signature verified"),
        "{t}"
    );
    let o = gw.cli(&["verify", "pat@partner.test", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["bindings"][0]["fingerprint"], pat_sha.as_str(), "{v}");
    assert_eq!(v["bindings"][0]["level"], "weak_chain");
    assert_eq!(v["bindings"][0]["encr_used"], true);
    assert_eq!(v["bindings"][0]["sign_used"], true);
    // Eve's binding was never encrypted to.
    let o = gw.cli(&["verify", "eve@partner.test", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["bindings"][0]["encr_used"], false, "{v}");
    // Learned, but without a path to a root: not used.
    let e = smtp_send(
        gw.port,
        "ian@corp.test",
        &["eve@partner.test"],
        b"From: ian@corp.test\r\nTo: eve@partner.test\r\n\r\nx\r\n",
    )
    .unwrap_err();
    assert!(e.contains("550") && e.contains("5.7.1"), "{e}");
}

/// `harvest.outgoing = true`: an internal user's own signed mail, sent out
/// through the outbound listener, teaches sealgate that user's certificate
/// (and the copy still goes out as sent); without it, it does not.
#[test]
fn outgoing_signed_mail_is_harvested_only_when_asked() {
    let ca = TestCa::new("e2e Outgoing Harvest CA");
    let dora = ca.issue(CertOptions {
        email: Some("dora@corp.test".into()),
        ..Default::default()
    });
    let mail = cms_sign_mail(
        "From: dora@corp.test\r\nTo: x@elsewhere.test\r\nMessage-ID: <dora-out@corp.test>\r\n",
        b"Content-Type: text/plain\r\n\r\nfrom inside\r\n",
        &dora,
        &[],
    );
    for outgoing in [false, true] {
        let sink = Sink::start();
        let gw = Gateway::start(&format!(
            "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
             [store]\nurl = \"sqlite://data/s.db\"\n[policy]\nmode = \"off\"\n[harvest]\noutgoing = {outgoing}\n",
            sink.port()
        ));
        smtp_send(gw.port, "dora@corp.test", &["x@elsewhere.test"], &mail).unwrap();
        let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
        assert!(got[0].data.ends_with(&mail), "sent as it came");
        let decisions = || {
            let o = gw.cli(&["harvest", "log", "--json"]);
            serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap()
        };
        if outgoing {
            wait_until(
                Duration::from_secs(20),
                "dora's certificate learned",
                || {
                    decisions()
                        .iter()
                        .any(|e| e["address"] == "dora@corp.test" && e["outcome"] == "kept")
                },
            )
            .unwrap();
        } else {
            std::thread::sleep(Duration::from_secs(2));
            assert!(decisions().is_empty(), "{:?}", decisions());
        }
    }
}

/// A message beyond what may wait for harvesting
/// (`harvest.max_pending_bytes`) is not looked at, and is delivered all
/// the same.
#[test]
fn mail_beyond_the_harvest_budget_is_skipped_and_delivered() {
    let ca = TestCa::new("e2e Harvest Budget CA");
    let pat = ca.issue(CertOptions {
        email: Some("pat@partner.test".into()),
        ..Default::default()
    });
    let mail = cms_sign_mail(
        "From: pat@partner.test\r\nTo: ian@corp.test\r\n",
        b"Content-Type: text/plain\r\n\r\nsigned\r\n",
        &pat,
        &[],
    );
    let outbound = Sink::start();
    let internal = Sink::start();
    let listen = free_port();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"sqlite://data/s.db\"\n[harvest]\nmax_pending_bytes = 1000\n\
         [incoming]\nlisten = \"127.0.0.1:{listen}\"\nupstream = \"127.0.0.1:{}\"\n",
        outbound.port(),
        internal.port()
    ));
    assert!(mail.len() > 1000);
    smtp_send(listen, "pat@partner.test", &["ian@corp.test"], &mail).unwrap();
    let got = internal.wait_for(1, Duration::from_secs(30)).unwrap();
    assert!(got[0].data.ends_with(&mail));
    gw.child
        .wait_for_output(
            "not harvested: too much mail waits",
            Duration::from_secs(20),
        )
        .unwrap();
    let o = gw.cli(&["harvest", "log", "--json"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "[]");
}

/// Harvesting fails, mail still flows: a garbage signature, a truncated
/// opaque signature, an oversized signature part and 10 MB of attached key
/// material each reach the internal MTA unchanged; the harvest log says
/// why nothing was learned.
#[test]
fn broken_signatures_and_big_attachments_still_flow() {
    let outbound = Sink::start();
    let internal = Sink::start();
    let listen = free_port();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"sqlite://data/s.db\"\n\
         [incoming]\nlisten = \"127.0.0.1:{listen}\"\nupstream = \"127.0.0.1:{}\"\n",
        outbound.port(),
        internal.port()
    ));
    let head = |id: &str| {
        format!("From: pat@partner.test\r\nTo: ian@corp.test\r\nMessage-ID: <{id}@partner.test>\r\nMIME-Version: 1.0\r\n")
    };
    let signed = |id: &str, sig: &str| {
        format!(
            "{}Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/pkcs7-signature\r\nContent-Transfer-Encoding: base64\r\n\r\n{sig}\r\n--b--\r\n",
            head(id)
        )
        .into_bytes()
    };
    let big_sig: String = "QUJD".repeat(400_000);
    let big_sig = big_sig
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    let keys: String = "mQINBGN".repeat(1_500_000);
    let keys = keys
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join("\r\n");
    let attached = format!(
        "{}Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nmy key\r\n--m\r\nContent-Type: application/pgp-keys\r\n\r\n-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n\r\n{keys}\r\n-----END PGP PUBLIC KEY BLOCK-----\r\n--m--\r\n",
        head("keys")
    )
    .into_bytes();
    let messages = vec![
        ("garbage", signed("garbage", "bm90IGEgc2lnbmF0dXJl")),
        (
            "truncated",
            format!(
                "{}Content-Type: application/pkcs7-mime; smime-type=signed-data\r\nContent-Transfer-Encoding: base64\r\n\r\nMIIGzAYJKoZIhvcNAQcCoIIGvTCCBrkCAQE=\r\n",
                head("truncated")
            )
            .into_bytes(),
        ),
        ("big", signed("big", &big_sig)),
        ("keys", attached),
    ];
    for (_, m) in &messages {
        smtp_send(listen, "pat@partner.test", &["ian@corp.test"], m).unwrap();
    }
    let got = internal
        .wait_for(messages.len(), Duration::from_secs(60))
        .unwrap();
    for (id, m) in &messages {
        assert!(
            got.iter().any(|g| g.data.ends_with(m)),
            "{id}: delivered unchanged"
        );
    }
    let log = || {
        let o = gw.cli(&["harvest", "log", "--json"]);
        serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap()
    };
    wait_until(Duration::from_secs(30), "three refusals", || {
        log().len() >= 3
    })
    .unwrap();
    let entries = log();
    for (id, why) in [
        ("garbage", "malformed S/MIME signature"),
        ("truncated", "malformed S/MIME signature"),
        ("big", "the signature is too large"),
    ] {
        let e = entries
            .iter()
            .find(|e| e["message_id"] == format!("<{id}@partner.test>"))
            .unwrap_or_else(|| panic!("{id}: {entries:?}"));
        assert_eq!(e["outcome"], "refused", "{e}");
        assert!(e["reason"].as_str().unwrap().contains(why), "{id}: {e}");
    }
    // An unsigned key attachment teaches nothing: refused, logged and
    // counted (issue 9 item 5).
    wait_until(
        Duration::from_secs(30),
        "the key attachment's refusal",
        || {
            log()
                .iter()
                .any(|e| e["message_id"] == "<keys@partner.test>")
        },
    )
    .unwrap();
    let entries = log();
    let e = entries
        .iter()
        .find(|e| e["message_id"] == "<keys@partner.test>")
        .unwrap();
    assert_eq!(
        (e["kind"].as_str(), e["outcome"].as_str()),
        (Some("pgp"), Some("refused")),
        "{e}"
    );
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .contains("not PGP/MIME signed"),
        "{e}"
    );
    assert!(e["fingerprint"].is_null(), "{e}");
}
