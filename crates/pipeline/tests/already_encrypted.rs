//! Already-encrypted mail and mandatory recipients (issue 6 item 1), through
//! the real pipeline, relay and SMTP sink; gpg and `openssl cms` judge what
//! the sink received.
//!
//! On the old label-based check, every message here went to the mandatory
//! recipient unchanged: signed-only mail labelled as encrypted reached it as
//! readable plaintext, and mail encrypted to somebody else reached it
//! unreadable. Now the content decides, and a mandatory recipient gets the
//! message unchanged only if the encryption names one of its keys.

mod common;
use common::{client, envelope, queue_to, Fixed};
use sealgate_keys::source::Source;
use sealgate_keys::trust::AcceptAllTrust;
use sealgate_keys::{RecipientKey, Resolver};
use sealgate_pipeline::{Pipeline, PipelineOptions};
use sealgate_policy::{DomainPolicy, ForeignEncryption, Mode, Policy, PolicyConfig};
use sealgate_smtp_server::Handler;
use sealgate_store::Store;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::pki::{cms_content_type, cms_decrypt, CertOptions, IssuedCert, TestCa};
use sealgate_testkit::process::run_with_timeout;
use sealgate_testkit::sink::{Sink, SinkMessage};
use sequoia_openpgp::parse::Parse;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

struct World {
    gpg: GnupgHome,
    ca: TestCa,
    carol: IssuedCert,
    sink: Sink,
    pipeline: Pipeline,
    _dir: tempfile::TempDir,
}

/// alice@example.org (OpenPGP) and carol@example.org (S/MIME) are
/// mandatory; bob@strict.example.org is mandatory with foreign_encryption =
/// reject; eve@open.test is opportunistic. eve has a key too.
async fn world() -> World {
    let gpg = GnupgHome::new();
    let mut keys = Vec::new();
    for uid in [
        "Alice <alice@example.org>",
        "Bob <bob@strict.example.org>",
        "Eve <eve@open.test>",
    ] {
        let fpr = gpg.gen_key(uid, "future-default");
        let cert = sequoia_openpgp::Cert::from_bytes(&gpg.export_armored(&fpr)).unwrap();
        keys.push(RecipientKey::Pgp(Arc::new(cert)));
    }
    let ca = TestCa::new("Pass CA");
    let carol = ca.issue(CertOptions {
        email: Some("carol@example.org".into()),
        ..CertOptions::default()
    });
    keys.push(RecipientKey::Smime(Arc::new(
        openssl::x509::X509::from_der(&carol.cert_der).unwrap(),
    )));
    let mut policy = PolicyConfig::default();
    policy.domains.insert(
        "example.org".into(),
        DomainPolicy {
            mode: Some(Mode::Mandatory),
            ..Default::default()
        },
    );
    policy.domains.insert(
        "strict.example.org".into(),
        DomainPolicy {
            mode: Some(Mode::Mandatory),
            foreign_encryption: Some(ForeignEncryption::Reject),
            ..Default::default()
        },
    );
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/s.db", dir.path().display()))
        .await
        .unwrap();
    let pipeline = Pipeline::new(
        Policy::new(policy).unwrap(),
        Arc::new(Resolver::new(
            vec![Arc::new(Fixed(keys)) as Arc<dyn Source>],
            Arc::new(AcceptAllTrust),
        )),
        queue_to(&store, sink.port()).await,
        PipelineOptions::default(),
    );
    World {
        gpg,
        ca,
        carol,
        sink,
        pipeline,
        _dir: dir,
    }
}

impl World {
    /// Sends `raw` to `rcpt` through the pipeline; the DATA reply, and what
    /// the sink got for `rcpt`.
    async fn send(
        &self,
        rcpt: &str,
        raw: &[u8],
    ) -> (sealgate_smtp_server::Reply, Vec<SinkMessage>) {
        let before = self.sink.messages().len();
        let token = self
            .pipeline
            .recipient(&client(), "s@apps.test", rcpt)
            .await
            .unwrap_or_else(|r| panic!("{rcpt} refused at RCPT: {r}"));
        let envelope = envelope(rcpt, token);
        let reply = self.pipeline.message(envelope, raw.to_vec()).await;
        let msgs = if reply.code == 250 {
            self.sink
                .wait_for(before + 1, Duration::from_secs(20))
                .unwrap()
        } else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.sink.messages()
        };
        (reply, msgs[before..].to_vec())
    }

    fn gpg_out(&self, args: &[&str], input: &[u8]) -> Vec<u8> {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), input).unwrap();
        let mut c = self.gpg.gpg();
        c.args(["--trust-model", "always", "--armor", "--output", "-"])
            .args(args)
            .arg(f.path());
        let out = run_with_timeout(c, Duration::from_secs(60)).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    fn openssl_out(&self, args: &[&str], input: &[u8], cert: &IssuedCert) -> Vec<u8> {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), input).unwrap();
        let mut c = Command::new("openssl");
        c.args(args)
            .arg("-in")
            .arg(f.path())
            .arg(&cert.cert_pem_path);
        let out = run_with_timeout(c, Duration::from_secs(60)).unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

/// A PGP/MIME message around gpg's armored output, with CRLF line endings
/// as the listener hands every message over.
fn pgp_mime(to: &str, armored: &[u8]) -> Vec<u8> {
    let armored = crlf(armored);
    let mut m = format!("From: s@apps.test\r\nTo: {to}\r\nSubject: pass\r\nMIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b1\r\nContent-Type: application/octet-stream\r\n\r\n").into_bytes();
    m.extend_from_slice(&armored);
    m.extend_from_slice(b"\r\n--b1--\r\n");
    m
}

/// Bare LF to CRLF.
fn crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 50);
    for (i, &b) in text.iter().enumerate() {
        if b == b'\n' && (i == 0 || text[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// The message as relayed, without sealgate's own `Received:` field.
fn without_trace(m: &SinkMessage) -> &[u8] {
    let d = &m.data;
    assert!(d.starts_with(b"Received: "), "no trace field first");
    let mut pos = 0;
    loop {
        let nl = pos + d[pos..].iter().position(|&b| b == b'\n').unwrap() + 1;
        pos = nl;
        if !matches!(d.get(pos), Some(b' ') | Some(b'\t')) {
            return &d[pos..];
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pgp_mandatory_recipient_gets_plaintext_labels_encrypted_and_its_own_encryption_unchanged()
{
    let w = world().await;
    // 1. gpg --armor --sign labelled as PGP/MIME: readable by anyone.
    let signed = w.gpg_out(&["--sign", "-u", "eve@open.test"], b"SIGNED-ONLY MARKER\n");
    let raw = pgp_mime("alice@example.org", &signed);
    let (reply, got) = w.send("alice@example.org", &raw).await;
    assert_eq!(reply.code, 250, "{reply}");
    assert_ne!(
        without_trace(&got[0]),
        &raw[..],
        "signed-only mail went out as it came"
    );
    let plain = w.gpg.decrypt(&got[0].data).expect("gpg decrypts the copy");
    assert!(
        plain.ends_with(b"\r\n--b1--\r\n"),
        "the inner entity is the original"
    );
    assert!(w.gpg.recipient_keyids(&got[0].data).len() == 1);

    // 2. Encrypted to eve only: alice gets it encrypted again, to her key.
    let to_eve = w.gpg_out(&["--encrypt", "-r", "eve@open.test"], b"for eve\n");
    let raw = pgp_mime("alice@example.org", &to_eve);
    let (reply, got) = w.send("alice@example.org", &raw).await;
    assert_eq!(reply.code, 250, "{reply}");
    assert_ne!(without_trace(&got[0]), &raw[..]);
    let alice_ids = w.gpg.encryption_keyids("alice@example.org");
    assert_eq!(w.gpg.recipient_keyids(&got[0].data), alice_ids);

    // 3. Encrypted to alice: unchanged.
    let to_alice = w.gpg_out(&["--encrypt", "-r", "alice@example.org"], b"for alice\n");
    let raw = pgp_mime("alice@example.org", &to_alice);
    let (reply, got) = w.send("alice@example.org", &raw).await;
    assert_eq!(reply.code, 250, "{reply}");
    assert_eq!(
        without_trace(&got[0]),
        &raw[..],
        "her own encryption passes unchanged"
    );

    // 4. An opportunistic recipient gets any genuinely encrypted mail unchanged.
    let raw = pgp_mime("eve@open.test", &to_alice);
    let (_, got) = w.send("eve@open.test", &raw).await;
    assert_eq!(without_trace(&got[0]), &raw[..]);

    // 5. foreign_encryption = reject: 554 5.7.1, nothing sent.
    let raw = pgp_mime("bob@strict.example.org", &to_eve);
    let (reply, got) = w.send("bob@strict.example.org", &raw).await;
    assert_eq!((reply.code, reply.status), (554, (5, 7, 1)), "{reply}");
    assert!(
        got.is_empty(),
        "nothing may be relayed to a refused recipient"
    );
    // ... and its own encryption still passes.
    let to_bob = w.gpg_out(&["--encrypt", "-r", "bob@strict.example.org"], b"for bob\n");
    let raw = pgp_mime("bob@strict.example.org", &to_bob);
    let (reply, got) = w.send("bob@strict.example.org", &raw).await;
    assert_eq!(reply.code, 250, "{reply}");
    assert_eq!(without_trace(&got[0]), &raw[..]);
}

#[tokio::test(flavor = "multi_thread")]
async fn smime_mandatory_recipient_gets_opaque_signed_data_encrypted() {
    let w = world().await;
    let entity = b"Content-Type: text/plain\r\n\r\nSIGNED-ONLY SMIME MARKER\r\n";
    let signer = w.ca.issue(CertOptions {
        email: Some("s@apps.test".into()),
        ..CertOptions::default()
    });
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), entity).unwrap();
    let mut c = Command::new("openssl");
    c.args([
        "cms",
        "-sign",
        "-nodetach",
        "-binary",
        "-outform",
        "SMIME",
        "-signer",
    ])
    .arg(&signer.cert_pem_path)
    .arg("-inkey")
    .arg(&signer.key_path)
    .arg("-in")
    .arg(f.path());
    let out = run_with_timeout(c, Duration::from_secs(60)).unwrap();
    assert!(out.status.success());
    // openssl writes `Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"`.
    let mut raw = b"From: s@apps.test\r\nTo: carol@example.org\r\nSubject: opaque\r\n".to_vec();
    raw.extend_from_slice(
        &String::from_utf8_lossy(&out.stdout)
            .replace("\r\n", "\n")
            .replace('\n', "\r\n")
            .into_bytes(),
    );
    let (reply, got) = w.send("carol@example.org", &raw).await;
    assert_eq!(reply.code, 250, "{reply}");
    assert_eq!(cms_content_type(&got[0].data), "pkcs7-envelopedData");
    let inner = cms_decrypt(&got[0].data, &w.carol).expect("openssl cms -decrypt");
    assert!(
        String::from_utf8_lossy(&inner).contains("smime-type=signed-data"),
        "the inner entity is the original signed-data entity"
    );

    // Encrypted to carol by openssl: unchanged.
    let enc = w.openssl_out(
        &["cms", "-encrypt", "-aes256", "-outform", "SMIME"],
        entity,
        &w.carol,
    );
    let mut raw = b"From: s@apps.test\r\nTo: carol@example.org\r\nSubject: enc\r\n".to_vec();
    raw.extend_from_slice(
        &String::from_utf8_lossy(&enc)
            .replace("\r\n", "\n")
            .replace('\n', "\r\n")
            .into_bytes(),
    );
    let (reply, got) = w.send("carol@example.org", &raw).await;
    assert_eq!(reply.code, 250, "{reply}");
    assert_eq!(without_trace(&got[0]), &raw[..]);
}
