//! S/MIME signing of outgoing mail through the real binary (issue 8, item
//! 10). Sam's two certificates (root -> intermediate -> end entity, with
//! their keys) are imported from PKCS#12 files; `policy.sign` is mandatory
//! for corp.test:
//! - a plain copy is `multipart/signed` and verifies with `openssl cms
//!   -verify -CAfile root` and with `gpgsm --verify` (the intermediate
//!   travels in the signature), and carries SMIMECapabilities;
//! - an encrypted copy decrypts (`openssl cms -decrypt`) and then verifies;
//! - the certificate chosen with `certs sign-select` signs while valid;
//!   revoked, the automatic one takes over; with none left the message is
//!   deferred (451 4.7.5) and nothing goes out unsigned;
//! - `sign_unavailable = "reject"` refuses (554 5.7.5); an opportunistic
//!   sender without a certificate gets its mail out unsigned; a user-level
//!   `sign = "off"` wins over its domain's `mandatory`.

use crate::gateway::Gateway;
use crate::trust::{hup, on_postgres, sha256_of, text};
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::pki::{
    cms_decrypt, cms_print, cms_verify, split_signed, CertOptions, TestCa,
};
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::Sink;
use std::time::Duration;

#[test]
fn outgoing_mail_is_signed_for_its_sender() {
    signing_flow("sqlite://data/s.db");
}

/// The same with the stores on PostgreSQL.
#[test]
fn outgoing_mail_is_signed_for_its_sender_postgres() {
    on_postgres(signing_flow);
}

fn signing_flow(store: &str) {
    let root = TestCa::new("e2e Sign Root");
    let inter = root.intermediate("e2e Sign Intermediate");
    let issue = |email: &str| {
        inter.issue(CertOptions {
            email: Some(email.into()),
            ..Default::default()
        })
    };
    let sam1 = issue("sam@corp.test");
    let sam2 = issue("sam@corp.test");
    let bob = issue("bob@partner.test");
    let files = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = files.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p.to_str().unwrap().to_string()
    };
    let root_pem = put("root.pem", &root.cert_pem);
    let inter_pem = put("inter.pem", &inter.cert_pem);
    let bob_pem = put("bob.pem", &bob.cert_pem);
    let p12_1 = put("sam1.p12", &sam1.pkcs12("sam one"));
    let p12_2 = put("sam2.p12", &sam2.pkcs12("sam two"));
    let pw1 = put("pw1", b"sam one\n");
    let pw2 = put("pw2", b"sam two\n");
    let kek = put("kek", format!("{}\n", "a7".repeat(32)).as_bytes());

    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\nkey_encryption_key_file = \"{kek}\"\n\
         [keys]\nsmime_certificates = [\"{bob_pem}\"]\n\
         [policy]\nmode = \"opportunistic\"\nmethods = [\"smime\"]\n\
         [policy.domains.\"corp.test\"]\nsign = \"mandatory\"\n\
         [policy.domains.\"opp.test\"]\nsign = \"opportunistic\"\n\
         [policy.domains.\"strict.test\"]\nsign = \"mandatory\"\nsign_unavailable = \"reject\"\n\
         [policy.users.\"robot@corp.test\"]\nsign = \"off\"\n",
        sink.port()
    ));
    for args in [
        vec!["roots", "import", &root_pem],
        vec!["certs", "import", &inter_pem],
        vec!["certs", "import", "--password-file", &pw1, &p12_1],
        vec!["certs", "import", "--password-file", &pw2, &p12_2],
    ] {
        let o = gw.cli(&args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    let (sha1, sha2) = (sha256_of(&sam1), sha256_of(&sam2));
    // Sam's second certificate, chosen by hand.
    let o = gw.cli(&["certs", "sign-select", "sam@corp.test", &sha2]);
    assert!(o.status.success(), "{}", text(&o));
    hup(&gw, 1);

    let send = |from: &str, to: &str, marker: &str| {
        let msg = format!(
            "From: Sender <{from}>\r\nTo: {to}\r\nSubject: {marker}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{marker} body line\r\n"
        );
        smtp_send(gw.port, from, &[to], msg.as_bytes())
    };
    let signer_of = |message: &[u8]| -> String {
        let (content, signer) = cms_verify(message, std::path::Path::new(&root_pem))
            .unwrap_or_else(|e| panic!("openssl cms -verify: {e}"));
        assert!(
            String::from_utf8_lossy(&content).contains("body line"),
            "the verified content is the message"
        );
        let x = openssl::x509::X509::from_pem(&signer).unwrap();
        if x.to_der().unwrap() == sam1.cert_der {
            "sam1".into()
        } else if x.to_der().unwrap() == sam2.cert_der {
            "sam2".into()
        } else {
            format!("someone else: {:?}", x.subject_name())
        }
    };

    // A plain copy: signed by the chosen certificate; openssl and gpgsm
    // verify it against the root alone; the capabilities are there.
    send("sam@corp.test", "carol@plain.test", "SIGN-1").unwrap();
    let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
    let m = &got[0].data;
    let head = String::from_utf8_lossy(&m[..m.len().min(2000)]).to_string();
    assert!(head.contains("multipart/signed"), "{head}");
    assert!(
        head.contains("Subject: SIGN-1"),
        "outer header kept: {head}"
    );
    assert_eq!(signer_of(m), "sam2");
    let (content, der) = split_signed(m).expect("multipart/signed");
    let gpg = GnupgHome::new();
    let status = gpg
        .gpgsm_verify(std::path::Path::new(&root_pem), &der, &content)
        .expect("gpgsm --verify");
    assert!(status.contains("sam@corp.test"), "{status}");
    let printed = cms_print(&der);
    assert!(printed.contains("S/MIME Capabilities"), "{printed}");
    assert!(printed.contains("e2e Sign Intermediate"), "{printed}");
    let log = gw.log().to_lowercase();
    assert!(
        log.lines().any(|l| l.contains("message signed")
            && l.contains(&sha2)
            && l.contains("chosen for sam@corp.test")),
        "the log names the signer and how it was chosen"
    );

    // An encrypted copy: sign, then encrypt; decrypts, then verifies.
    send("sam@corp.test", "bob@partner.test", "SIGN-2").unwrap();
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    let m = &got[1].data;
    let inner = cms_decrypt(m, &bob).expect("openssl cms -decrypt");
    assert!(
        String::from_utf8_lossy(&inner).contains("multipart/signed"),
        "the encrypted entity is the signed message"
    );
    assert_eq!(signer_of(&inner), "sam2");

    // Opportunistic without a certificate: out unsigned.
    send("ola@opp.test", "carol@plain.test", "SIGN-3").unwrap();
    let got = sink.wait_for(3, Duration::from_secs(30)).unwrap();
    assert!(!String::from_utf8_lossy(&got[2].data).contains("multipart/signed"));
    assert!(String::from_utf8_lossy(&got[2].data).contains("SIGN-3 body line"));

    // One user of corp.test does not sign (the user level over the domain).
    send("robot@corp.test", "carol@plain.test", "SIGN-3B").unwrap();
    let got = sink.wait_for(4, Duration::from_secs(30)).unwrap();
    assert!(!String::from_utf8_lossy(&got[3].data).contains("multipart/signed"));

    // Mandatory with sign_unavailable = reject, and no certificate: 554.
    let e = send("rex@strict.test", "carol@plain.test", "SIGN-4").unwrap_err();
    assert!(e.contains("554") && e.contains("5.7.5"), "{e}");
    assert!(e.contains("no usable signing certificate"), "{e}");

    // The chosen certificate is revoked: the automatic one signs.
    inter.revoke(&sam2);
    let crl = put("inter.crl", &inter.crl_der());
    let o = gw.cli(&["crl", "import", &crl]);
    assert!(o.status.success(), "{}", text(&o));
    hup(&gw, 2);
    send("sam@corp.test", "carol@plain.test", "SIGN-5").unwrap();
    let got = sink.wait_for(5, Duration::from_secs(30)).unwrap();
    assert_eq!(signer_of(&got[4].data), "sam1");

    // None left: deferred, never sent unsigned.
    let o = gw.cli(&["certs", "remove", &sha1]);
    assert!(o.status.success(), "{}", text(&o));
    hup(&gw, 3);
    let e = send("sam@corp.test", "carol@plain.test", "SIGN-6").unwrap_err();
    assert!(e.contains("451") && e.contains("4.7.5"), "{e}");
    std::thread::sleep(Duration::from_secs(2));
    let all = sink.messages();
    assert_eq!(all.len(), 5, "nothing more went out");
    assert!(!all
        .iter()
        .any(|m| String::from_utf8_lossy(&m.data).contains("SIGN-6")));
}
