//! The rest of the inheritance matrix (see `policy_matrix.rs` for how a
//! matrix runs): the S/MIME padding, already encrypted mail, automatic
//! certificate selection, additional keys, the triggers, copy grouping,
//! header protection and DKIM signing, each at every level from the file
//! and from the store, each cell proven by a message.
//!
//! Settings read for the sender (the triggers, `dkim_sign`) are set for
//! bob's levels and probed with mail from bob.

use crate::gateway::{text, Gateway};
use crate::policy_matrix::{matrix_in, matrix_with, refused, send, Setting, ADDRESS};
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::pki::{CertOptions, TestCa};
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::{Sink, SinkMessage};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// A recipient with an OpenPGP key, for the settings read for the sender.
const ANN: &str = "ann@other.test";

fn import(gw: &Gateway, what: &str, file: &Path) {
    let o = gw.cli(&[what, "import", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

/// A GnuPG key for `address`, exported to a file (kept with the home).
fn pgp_key(address: &str) -> (GnupgHome, String, tempfile::NamedTempFile) {
    let home = GnupgHome::new();
    let fpr = home.gen_key(&format!("<{address}>"), "future-default");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), home.export_armored(&fpr)).unwrap();
    (home, fpr, file)
}

/// The next message the sink gets for `rcpt`, after the first `before`.
fn next_for(sink: &Sink, before: usize, rcpt: &str) -> Option<SinkMessage> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if let Some(m) = sink
            .messages()
            .into_iter()
            .skip(before)
            .find(|m| m.rcpt_to.iter().any(|r| r == rcpt))
        {
            return Some(m);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// ian sends probe `n` to bob; bob's copy (which must be encrypted).
fn bobs_copy(gw: &Gateway, sink: &Sink, n: usize) -> SinkMessage {
    let before = sink.messages().len();
    send(gw, n).unwrap_or_else(|e| panic!("the probe was refused: {e}\n{}", gw.log()));
    let m = next_for(sink, before, ADDRESS).expect("bob's copy");
    assert!(
        !m.text().contains(&format!("secret body {n}")),
        "plaintext went out"
    );
    m
}

/// bob sends probe `n` to ann, with `extra` header fields; ann's copy.
fn from_bob(gw: &Gateway, sink: &Sink, n: usize, subject: &str, extra: &str) -> SinkMessage {
    let before = sink.messages().len();
    let msg = format!(
        "From: {ADDRESS}\r\nTo: {ANN}\r\nSubject: {subject} {n}\r\n{extra}\r\nfrom bob {n}\r\n"
    );
    smtp_send(gw.port, ADDRESS, &[ANN], msg.as_bytes())
        .unwrap_or_else(|e| panic!("the probe was refused: {e}\n{}", gw.log()));
    next_for(sink, before, ANN).expect("ann's copy")
}

fn encrypted(m: &SinkMessage, n: usize) -> bool {
    !m.text().contains(&format!("from bob {n}"))
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Imports `files` (what, path) on the gateway.
fn importing(files: Vec<(&'static str, std::path::PathBuf)>) -> impl Fn(&Gateway) {
    move |gw| {
        for (what, f) in &files {
            import(gw, what, f);
        }
    }
}

#[test]
fn smime_rsa_padding_inherits_through_every_level_from_file_and_store() {
    let ca = TestCa::new("matrix CA");
    let bob = ca.issue(CertOptions {
        email: Some(ADDRESS.into()),
        ..Default::default()
    });
    fn oaep(gw: &Gateway, sink: &Sink, n: usize) -> bool {
        let m = bobs_copy(gw, sink, n);
        sealgate_testkit::pki::cms_print(&m.data).contains("rsaesOaep")
    }
    matrix_with(
        &Setting {
            name: "smime_rsa_padding",
            base: "\"pkcs1\"",
            cell: "\"oaep\"",
            probe: oaep,
        },
        "mode = \"mandatory\"\nmethods = [\"smime\"]\n",
        "",
        &importing(vec![
            ("roots", ca.cert_pem_path.clone()),
            ("keys", bob.cert_pem_path.clone()),
        ]),
    );
}

#[test]
fn auto_select_inherits_through_every_level_from_file_and_store() {
    let ca = TestCa::new("matrix CA");
    let bob = ca.issue(CertOptions {
        email: Some(ADDRESS.into()),
        ..Default::default()
    });
    // auto_select = false and nothing selected by hand: no certificate,
    // so the mandatory recipient is refused.
    matrix_with(
        &Setting {
            name: "auto_select",
            base: "true",
            cell: "false",
            probe: refused,
        },
        "mode = \"mandatory\"\nmethods = [\"smime\"]\n",
        "",
        &importing(vec![
            ("roots", ca.cert_pem_path.clone()),
            ("keys", bob.cert_pem_path.clone()),
        ]),
    );
}

static FOREIGN: OnceLock<Vec<u8>> = OnceLock::new();

#[test]
fn foreign_encryption_inherits_through_every_level_from_file_and_store() {
    let (_bob_home, _, bob_file) = pgp_key(ADDRESS);
    let (joe_home, joe, _) = pgp_key("joe@elsewhere.test");
    FOREIGN
        .set(joe_home.pgp_mime_encrypted(
            &[&joe],
            None,
            &format!("From: ian@corp.test\r\nTo: {ADDRESS}\r\nSubject: for joe\r\n"),
            b"Content-Type: text/plain\r\n\r\njoe only\r\n",
        ))
        .unwrap();
    // reject: the only recipient is refused at the end of DATA.
    fn rejected(gw: &Gateway, _: &Sink, _: usize) -> bool {
        smtp_send(gw.port, "ian@corp.test", &[ADDRESS], FOREIGN.get().unwrap())
            .is_err_and(|e| e.contains("554 5.7.1"))
    }
    matrix_with(
        &Setting {
            name: "foreign_encryption",
            base: "\"reencrypt\"",
            cell: "\"reject\"",
            probe: rejected,
        },
        "mode = \"mandatory\"\nmethods = [\"pgp\"]\n",
        "",
        &importing(vec![("keys", bob_file.path().to_path_buf())]),
    );
}

static ESCROW_KEYIDS: OnceLock<Vec<String>> = OnceLock::new();

#[test]
fn additional_pgp_keys_inherit_through_every_level_from_file_and_store() {
    let (_bob_home, _, bob_file) = pgp_key(ADDRESS);
    let (escrow_home, escrow, escrow_file) = pgp_key("escrow@corp.test");
    ESCROW_KEYIDS
        .set(escrow_home.encryption_keyids(&escrow))
        .unwrap();
    fn names_escrow(gw: &Gateway, sink: &Sink, n: usize) -> bool {
        let m = bobs_copy(gw, sink, n);
        let listed = GnupgHome::new().recipient_keyids(&m.data);
        ESCROW_KEYIDS
            .get()
            .unwrap()
            .iter()
            .all(|k| listed.contains(k))
    }
    matrix_with(
        &Setting {
            name: "additional_pgp_keys",
            base: "[]",
            cell: leak(format!("[\"{escrow}\"]")),
            probe: names_escrow,
        },
        "mode = \"mandatory\"\nmethods = [\"pgp\"]\n",
        "",
        &importing(vec![
            ("keys", bob_file.path().to_path_buf()),
            ("keys", escrow_file.path().to_path_buf()),
        ]),
    );
}

#[test]
fn copy_per_recipient_inherits_through_every_level_from_file_and_store() {
    let (_bob_home, _, bob_file) = pgp_key(ADDRESS);
    let (_ann_home, _, ann_file) = pgp_key(ANN);
    fn own_copy(gw: &Gateway, sink: &Sink, n: usize) -> bool {
        let before = sink.messages().len();
        let msg = format!(
            "From: ian@corp.test\r\nTo: {ADDRESS}, {ANN}\r\nSubject: probe {n}\r\n\r\nsecret body {n}\r\n"
        );
        smtp_send(gw.port, "ian@corp.test", &[ADDRESS, ANN], msg.as_bytes())
            .unwrap_or_else(|e| panic!("the probe was refused: {e}"));
        let m = next_for(sink, before, ADDRESS).expect("bob's copy");
        assert!(!m.text().contains(&format!("secret body {n}")));
        // Wait for ann's too, so that the next probe starts clean.
        next_for(sink, before, ANN).expect("ann's copy");
        m.rcpt_to == [ADDRESS]
    }
    matrix_with(
        &Setting {
            name: "copy_per_recipient",
            base: "false",
            cell: "true",
            probe: own_copy,
        },
        "mode = \"mandatory\"\nmethods = [\"pgp\"]\n",
        "",
        &importing(vec![
            ("keys", bob_file.path().to_path_buf()),
            ("keys", ann_file.path().to_path_buf()),
        ]),
    );
}

#[test]
fn header_protection_inherits_through_every_level_from_file_and_store() {
    let (_bob_home, _, bob_file) = pgp_key(ADDRESS);
    fn protected(gw: &Gateway, sink: &Sink, n: usize) -> bool {
        bobs_copy(gw, sink, n).header("Subject") == ["[...]"]
    }
    matrix_with(
        &Setting {
            name: "header_protection",
            base: "false",
            cell: "true",
            probe: protected,
        },
        "mode = \"mandatory\"\nmethods = [\"pgp\"]\n",
        "",
        &importing(vec![("keys", bob_file.path().to_path_buf())]),
    );
}

#[test]
fn header_protection_outer_subject_inherits_through_every_level_from_file_and_store() {
    let (_bob_home, _, bob_file) = pgp_key(ADDRESS);
    fn two(gw: &Gateway, sink: &Sink, n: usize) -> bool {
        bobs_copy(gw, sink, n).header("Subject") == ["[two]"]
    }
    matrix_with(
        &Setting {
            name: "header_protection_outer_subject",
            base: "\"[one]\"",
            cell: "\"[two]\"",
            probe: two,
        },
        "mode = \"mandatory\"\nmethods = [\"pgp\"]\nheader_protection = true\n",
        "",
        &importing(vec![("keys", bob_file.path().to_path_buf())]),
    );
}

#[test]
fn trigger_subject_inherits_through_every_level_from_file_and_store() {
    let (_ann_home, _, ann_file) = pgp_key(ANN);
    // Mode off everywhere: only a fired trigger encrypts.
    fn fired(gw: &Gateway, sink: &Sink, n: usize) -> bool {
        encrypted(&from_bob(gw, sink, n, "secure-now", ""), n)
    }
    matrix_with(
        &Setting {
            name: "trigger_subject",
            base: "\"never-matches\"",
            cell: "\"secure-now\"",
            probe: fired,
        },
        "mode = \"off\"\n",
        "",
        &importing(vec![("keys", ann_file.path().to_path_buf())]),
    );
}

#[test]
fn trigger_header_inherits_through_every_level_from_file_and_store() {
    let (_ann_home, _, ann_file) = pgp_key(ANN);
    fn fired(gw: &Gateway, sink: &Sink, n: usize) -> bool {
        encrypted(&from_bob(gw, sink, n, "hello", "X-Secure: yes\r\n"), n)
    }
    matrix_with(
        &Setting {
            name: "trigger_header",
            base: "\"X-Never: 1\"",
            cell: "\"X-Secure: yes\"",
            probe: fired,
        },
        "mode = \"off\"\n",
        "",
        &importing(vec![("keys", ann_file.path().to_path_buf())]),
    );
}

#[test]
fn trigger_keep_subject_inherits_through_every_level_from_file_and_store() {
    let (_ann_home, _, ann_file) = pgp_key(ANN);
    fn kept(gw: &Gateway, sink: &Sink, n: usize) -> bool {
        let m = from_bob(gw, sink, n, "secure-now", "");
        assert!(encrypted(&m, n), "the trigger fires either way");
        m.header("Subject")[0].contains("secure-now")
    }
    matrix_with(
        &Setting {
            name: "trigger_keep_subject",
            base: "false",
            cell: "true",
            probe: kept,
        },
        "mode = \"off\"\ntrigger_subject = \"secure-now\"\n",
        "",
        &importing(vec![("keys", ann_file.path().to_path_buf())]),
    );
}

#[test]
fn dkim_sign_inherits_through_every_level_from_file_and_store() {
    let (_ann_home, _, ann_file) = pgp_key(ANN);
    let key = sealgate_testkit::dns::DkimKey::new();
    // The cell is the one that differs from the default (true): a global
    // file value equal to the default shows as the default.
    fn unsigned(gw: &Gateway, sink: &Sink, n: usize) -> bool {
        let m = from_bob(gw, sink, n, "hello", "");
        assert!(encrypted(&m, n));
        m.header("DKIM-Signature").is_empty()
    }
    matrix_with(
        &Setting {
            name: "dkim_sign",
            base: "true",
            cell: "false",
            probe: unsigned,
        },
        "mode = \"mandatory\"\nmethods = [\"pgp\"]\n",
        &format!(
            "[[dkim.keys]]\ndomain = \"partner.test\"\nselector = \"s1\"\nkey_file = \"{}\"\n",
            key.key_path.display()
        ),
        &importing(vec![("keys", ann_file.path().to_path_buf())]),
    );
}

/// bob's S/MIME certificate with its key (PKCS#12), and the store's
/// key-encryption key: what signing needs.
struct Signer {
    _dir: tempfile::TempDir,
    kek: String,
    root: std::path::PathBuf,
    p12: std::path::PathBuf,
    password: std::path::PathBuf,
}

fn signer(with_certificate: bool) -> Signer {
    let ca = TestCa::new("matrix sign CA");
    let dir = tempfile::tempdir().unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let root = put("root.pem", &ca.cert_pem);
    let (p12, password) = if with_certificate {
        let bob = ca.issue(CertOptions {
            email: Some(ADDRESS.into()),
            ..Default::default()
        });
        (
            put("bob.p12", &bob.pkcs12("bob pw")),
            put("pw", b"bob pw\n"),
        )
    } else {
        (std::path::PathBuf::new(), std::path::PathBuf::new())
    };
    let kek = put("kek", format!("{}\n", "5c".repeat(32)).as_bytes());
    Signer {
        kek: format!("key_encryption_key_file = \"{}\"\n", kek.display()),
        root,
        p12,
        password,
        _dir: dir,
    }
}

impl Signer {
    fn import(&self, gw: &Gateway) {
        import(gw, "roots", &self.root);
        if !self.p12.as_os_str().is_empty() {
            let o = gw.cli(&[
                "certs",
                "import",
                "--password-file",
                self.password.to_str().unwrap(),
                self.p12.to_str().unwrap(),
            ]);
            assert!(o.status.success(), "{}", text(&o));
        }
    }
}

#[test]
fn sign_inherits_through_every_level_from_file_and_store() {
    let s = signer(true);
    // ann has no key: her copy is the plain one, signed or not.
    fn signed(gw: &Gateway, sink: &Sink, n: usize) -> bool {
        let m = from_bob(gw, sink, n, "hello", "");
        m.header("Content-Type")
            .first()
            .is_some_and(|c| c.starts_with("multipart/signed"))
    }
    matrix_in(
        &Setting {
            name: "sign",
            base: "\"off\"",
            cell: "\"opportunistic\"",
            probe: signed,
        },
        "mode = \"opportunistic\"\n",
        &s.kek,
        "",
        &|gw| s.import(gw),
    );
}

#[test]
fn sign_unavailable_inherits_through_every_level_from_file_and_store() {
    // bob must sign and has no certificate.
    let s = signer(false);
    fn rejected(gw: &Gateway, _: &Sink, n: usize) -> bool {
        let msg = format!("From: {ADDRESS}\r\nTo: {ANN}\r\nSubject: s {n}\r\n\r\nunsigned {n}\r\n");
        match smtp_send(gw.port, ADDRESS, &[ANN], msg.as_bytes()) {
            Err(e) if e.contains("554 5.7.5") => true,
            Err(e) if e.contains("451 4.7.5") => false,
            other => panic!("neither 451 nor 554 4.7.5/5.7.5: {other:?}"),
        }
    }
    matrix_in(
        &Setting {
            name: "sign_unavailable",
            base: "\"defer\"",
            cell: "\"reject\"",
            probe: rejected,
        },
        "mode = \"opportunistic\"\nsign = \"mandatory\"\n",
        &s.kek,
        "",
        &|gw| s.import(gw),
    );
}

static ESCROW_CERT: OnceLock<String> = OnceLock::new();

#[test]
fn additional_certificates_inherit_through_every_level_from_file_and_store() {
    let ca = TestCa::new("matrix CA");
    let bob = ca.issue(CertOptions {
        email: Some(ADDRESS.into()),
        ..Default::default()
    });
    let escrow = ca.issue(CertOptions {
        email: Some("escrow@corp.test".into()),
        ..Default::default()
    });
    ESCROW_CERT.set(escrow.recipient_id()).unwrap();
    fn names_escrow(gw: &Gateway, sink: &Sink, n: usize) -> bool {
        let m = bobs_copy(gw, sink, n);
        sealgate_testkit::pki::cms_recipients(&m.data).contains(ESCROW_CERT.get().unwrap())
    }
    matrix_with(
        &Setting {
            name: "additional_certificates",
            base: "[]",
            cell: leak(format!("[\"{}\"]", crate::trust::sha256_of(&escrow))),
            probe: names_escrow,
        },
        "mode = \"mandatory\"\nmethods = [\"smime\"]\n",
        "",
        &importing(vec![
            ("roots", ca.cert_pem_path.clone()),
            ("keys", bob.cert_pem_path.clone()),
            ("certs", escrow.cert_pem_path.clone()),
        ]),
    );
}
