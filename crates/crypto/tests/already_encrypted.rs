//! "Already encrypted" is decided from content (issue 6 item 1).
//!
//! Encrypted and signed-only messages are made by independent tools (gpg,
//! `openssl cms`, `openssl smime`), wrapped the way mail clients send them,
//! and judged by `Message::encryption`: only PKESK/SKESK + SEIPD/AEAD
//! OpenPGP data and CMS enveloped / authEnveloped data count, and the
//! recipients they name are the ones the tools encrypted to. Signed-only
//! output (`gpg --armor --sign`, opaque S/MIME signed-data called
//! `smime.p7m`) counts as plaintext: on the old label-based check every one
//! of the negatives here passed as "already encrypted".

use openssl::x509::X509;
use sealgate_crypto::inspect::Encryption;
use sealgate_crypto::mime::Message;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::pki::{CertOptions, IssuedCert, TestCa};
use sealgate_testkit::process::run_with_timeout;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::Cert;
use std::process::Command;
use std::time::{Duration, SystemTime};

const T: Duration = Duration::from_secs(60);

/// Runs `cmd` with `input` in a temp file appended as its last argument.
fn run(mut cmd: Command, input: &[u8]) -> Vec<u8> {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), input).unwrap();
    cmd.arg(f.path());
    let out = run_with_timeout(cmd, T).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn gpg(home: &GnupgHome, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut c = home.gpg();
    c.args(["--trust-model", "always", "--output", "-"])
        .args(args);
    run(c, input)
}

fn pgp_mime(armored: &[u8]) -> Vec<u8> {
    let mut m = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"XyZ\"\r\n\r\nThis is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n--XyZ\r\nContent-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n--XyZ\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\nContent-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n".to_vec();
    m.extend_from_slice(armored);
    m.extend_from_slice(b"\r\n--XyZ--\r\n");
    m
}

fn inline(armored: &[u8]) -> Vec<u8> {
    let mut m =
        b"From: a@example.org\r\nSubject: s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            .to_vec();
    m.extend_from_slice(armored);
    m
}

fn smime(der: &[u8], content_type: &str) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut m = format!("From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"smime.p7m\"\r\n\r\n").into_bytes();
    for line in b64.as_bytes().chunks(76) {
        m.extend_from_slice(line);
        m.extend_from_slice(b"\r\n");
    }
    m
}

fn encryption(raw: &[u8]) -> Encryption {
    Message::parse(raw).encryption()
}

struct Pgp {
    home: GnupgHome,
    alice: Cert,
    bob: Cert,
}

fn pgp_world() -> Pgp {
    let home = GnupgHome::new();
    let fa = home.gen_key("Alice <alice@example.org>", "future-default");
    let fb = home.gen_key("Bob <bob@example.org>", "rsa3072");
    let alice = Cert::from_bytes(&home.export_armored(&fa)).unwrap();
    let bob = Cert::from_bytes(&home.export_armored(&fb)).unwrap();
    Pgp { home, alice, bob }
}

#[test]
fn gpg_encrypted_mail_is_recognised_with_its_recipients() {
    let w = pgp_world();
    let now = SystemTime::now();
    let armored = gpg(
        &w.home,
        &["--armor", "--encrypt", "-r", "alice@example.org"],
        b"secret text\n",
    );
    let crlf = String::from_utf8_lossy(&armored)
        .replace('\n', "\r\n")
        .into_bytes();
    for raw in [
        pgp_mime(&armored),
        inline(&armored),
        pgp_mime(&crlf),
        inline(&crlf),
    ] {
        let e = encryption(&raw);
        assert!(e.is_encrypted(), "{e:?}");
        assert!(e.names_pgp(&w.alice, now));
        assert!(!e.names_pgp(&w.bob, now));
    }
    // Two recipients: both named.
    let both = gpg(
        &w.home,
        &[
            "--armor",
            "--encrypt",
            "-r",
            "alice@example.org",
            "-r",
            "bob@example.org",
        ],
        b"x\n",
    );
    let e = encryption(&pgp_mime(&both));
    assert!(e.names_pgp(&w.alice, now) && e.names_pgp(&w.bob, now));
    // Hidden recipient (--throw-keyids) and password-only: encrypted, but
    // they name nobody, so a mandatory recipient gets its own copy.
    for args in [
        &[
            "--armor",
            "--throw-keyids",
            "--encrypt",
            "-r",
            "alice@example.org",
        ][..],
        &["--armor", "--symmetric", "--passphrase", "pw"][..],
    ] {
        let e = encryption(&pgp_mime(&gpg(&w.home, args, b"x\n")));
        assert!(e.is_encrypted(), "{args:?}: {e:?}");
        assert!(!e.names_pgp(&w.alice, now), "{args:?}");
    }
}

#[test]
fn signed_or_doctored_openpgp_is_plaintext() {
    let w = pgp_world();
    let signed = gpg(
        &w.home,
        &["--armor", "--sign", "-u", "alice@example.org"],
        b"readable\n",
    );
    assert!(signed.starts_with(b"-----BEGIN PGP MESSAGE-----"));
    // `gpg --decrypt` reads it without any key: it is not encrypted.
    assert!(!encryption(&pgp_mime(&signed)).is_encrypted());
    assert!(!encryption(&inline(&signed)).is_encrypted());
    let stored = gpg(&w.home, &["--armor", "--store"], b"readable\n");
    assert!(!encryption(&inline(&stored)).is_encrypted());

    let armored = gpg(
        &w.home,
        &["--armor", "--encrypt", "-r", "alice@example.org"],
        b"x\n",
    );
    // Plaintext after the armored block, or a second block.
    let mut tail = armored.clone();
    tail.extend_from_slice(b"\r\nAnd here is the secret in clear.\r\n");
    assert!(!encryption(&inline(&tail)).is_encrypted());
    let mut two = armored.clone();
    two.extend_from_slice(&signed);
    assert!(!encryption(&inline(&two)).is_encrypted());
    // A literal data packet appended after the encrypted container.
    let bin_enc = gpg(&w.home, &["--encrypt", "-r", "alice@example.org"], b"x\n");
    let bin_lit = gpg(&w.home, &["--store"], b"readable\n");
    let mut glued = bin_enc;
    glued.extend_from_slice(&bin_lit);
    let mut w_ =
        sequoia_openpgp::armor::Writer::new(Vec::new(), sequoia_openpgp::armor::Kind::Message)
            .unwrap();
    std::io::Write::write_all(&mut w_, &glued).unwrap();
    let glued_armored = w_.finalize().unwrap();
    assert!(!encryption(&pgp_mime(&glued_armored)).is_encrypted());
    // A PGP/MIME wrapper with a third part, or a long readable preamble.
    let mut third = pgp_mime(&armored);
    let cut = third.len() - b"--XyZ--\r\n".len();
    third.truncate(cut);
    third.extend_from_slice(b"--XyZ\r\nContent-Type: text/plain\r\n\r\nclear\r\n--XyZ--\r\n");
    assert!(!encryption(&third).is_encrypted());
    let long = pgp_mime(&armored);
    let pos = long.windows(5).position(|w| w == b"--XyZ").unwrap();
    let mut long2 = long[..pos].to_vec();
    long2.extend(std::iter::repeat_n(b'A', 2000));
    long2.extend_from_slice(b"\r\n");
    long2.extend_from_slice(&long[pos..]);
    assert!(!encryption(&long2).is_encrypted());
    // The genuine one still counts.
    assert!(encryption(&pgp_mime(&armored)).is_encrypted());
}

/// `openssl ARGS -in INPUT [RECIPIENT]`: recipient certificates go last.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let (certs, opts): (Vec<&str>, Vec<&str>) = match args.split_last() {
        Some((l, rest))
            if l.starts_with('/') && !rest.last().is_some_and(|p| p.starts_with('-')) =>
        {
            (vec![*l], rest.to_vec())
        }
        _ => (vec![], args.to_vec()),
    };
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), input).unwrap();
    let mut c = Command::new("openssl");
    c.args(opts).arg("-in").arg(f.path()).args(certs);
    let out = run_with_timeout(c, T).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn issue(ca: &TestCa, email: &str, key: &str) -> IssuedCert {
    let ec = key.starts_with("ec");
    ca.issue(CertOptions {
        email: Some(email.into()),
        key: key.into(),
        key_usage: Some(if ec {
            "digitalSignature,keyAgreement".into()
        } else {
            "digitalSignature,keyEncipherment".into()
        }),
        ..CertOptions::default()
    })
}

#[test]
fn cms_enveloped_data_is_recognised_with_its_recipients() {
    let ca = TestCa::new("Detect CA");
    let rsa = issue(&ca, "rsa@example.org", "rsa2048");
    let ec = issue(&ca, "ec@example.org", "ec-p256");
    let other = issue(&ca, "other@example.org", "rsa2048");
    let x = |c: &IssuedCert| X509::from_der(&c.cert_der).unwrap();
    let path = |c: &IssuedCert| c.cert_pem_path.to_str().unwrap().to_string();
    let body = b"Content-Type: text/plain\r\n\r\nsecret\r\n";
    let cases: Vec<(Vec<String>, &IssuedCert, &str)> = vec![
        // issuer+serial, DER
        (
            vec![
                "-encrypt".into(),
                "-aes256".into(),
                "-outform".into(),
                "DER".into(),
                path(&rsa),
            ],
            &rsa,
            "enveloped-data",
        ),
        // subject key identifier
        (
            vec![
                "-encrypt".into(),
                "-keyid".into(),
                "-aes256".into(),
                "-outform".into(),
                "DER".into(),
                path(&rsa),
            ],
            &rsa,
            "enveloped-data",
        ),
        // BER with indefinite lengths (streaming)
        (
            vec![
                "-encrypt".into(),
                "-stream".into(),
                "-aes256".into(),
                "-outform".into(),
                "DER".into(),
                path(&rsa),
            ],
            &rsa,
            "enveloped-data",
        ),
        // ECDH key agreement
        (
            vec![
                "-encrypt".into(),
                "-aes256".into(),
                "-outform".into(),
                "DER".into(),
                path(&ec),
            ],
            &ec,
            "enveloped-data",
        ),
        // AES-GCM authEnveloped-data
        (
            vec![
                "-encrypt".into(),
                "-aes-256-gcm".into(),
                "-outform".into(),
                "DER".into(),
                path(&rsa),
            ],
            &rsa,
            "authEnveloped-data",
        ),
    ];
    for (mut args, cert, kind) in cases {
        args.insert(0, "cms".into());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let der = openssl(&a, body);
        let raw = smime(
            &der,
            &format!("application/pkcs7-mime; smime-type={kind}; name=\"smime.p7m\""),
        );
        let e = encryption(&raw);
        assert!(e.is_encrypted(), "{args:?}: {e:?}");
        assert!(e.names_x509(&x(cert)), "{args:?}: {e:?}");
        assert!(!e.names_x509(&x(&other)), "{args:?}");
        // The label's smime-type and name do not matter; the content does.
        let relabelled = smime(&der, "application/x-pkcs7-mime");
        assert!(encryption(&relabelled).names_x509(&x(cert)), "{args:?}");
    }
    // Password-only recipient: encrypted, names no certificate.
    let der = openssl(
        &[
            "cms",
            "-encrypt",
            "-pwri_password",
            "pw",
            "-aes256",
            "-outform",
            "DER",
        ],
        body,
    );
    let e = encryption(&smime(
        &der,
        "application/pkcs7-mime; smime-type=enveloped-data",
    ));
    assert!(e.is_encrypted() && !e.names_x509(&x(&rsa)), "{e:?}");
}

#[test]
fn opaque_signed_data_and_other_cms_are_plaintext() {
    let ca = TestCa::new("Detect CA 2");
    let rsa = issue(&ca, "rsa@example.org", "rsa2048");
    let body = b"Content-Type: text/plain\r\n\r\nreadable by anyone\r\n";
    let cert = rsa.cert_pem_path.to_str().unwrap();
    let key = rsa.key_path.to_str().unwrap();
    // Opaque signed-data, named smime.p7m, labelled as enveloped-data.
    let signed = openssl(
        &[
            "cms",
            "-sign",
            "-nodetach",
            "-binary",
            "-outform",
            "DER",
            "-signer",
            cert,
            "-inkey",
            key,
        ],
        body,
    );
    // (-compress needs zlib, which Debian's OpenSSL lacks.)
    let data = openssl(&["cms", "-data_create", "-outform", "DER"], body);
    for der in [signed, data] {
        for label in [
            "application/pkcs7-mime; smime-type=signed-data; name=\"smime.p7m\"",
            "application/pkcs7-mime; smime-type=enveloped-data; name=\"smime.p7m\"",
        ] {
            assert!(!encryption(&smime(&der, label)).is_encrypted(), "{label}");
        }
    }
    // An enveloped-data with bytes glued after it is not one ContentInfo.
    let mut der = openssl(
        &["cms", "-encrypt", "-aes256", "-outform", "DER", cert],
        body,
    );
    assert!(encryption(&smime(&der, "application/pkcs7-mime")).is_encrypted());
    der.extend_from_slice(b"trailing");
    assert!(!encryption(&smime(&der, "application/pkcs7-mime")).is_encrypted());
}
