//! The main end-to-end run, once with the store on SQLite and once on
//! PostgreSQL: every kind of message of the core issue goes through Postfix and
//! sealgate, and the sink's copies are checked with gpg and openssl.

use crate::gateway::text;
use crate::world::World;
use sealgate_testkit::pki::{cms_decrypt, cms_recipients};
use sealgate_testkit::postgres::TempDatabase;
use sealgate_testkit::sink::SinkMessage;
use std::time::Duration;

/// A test message: outer headers and the entity (Content-* headers, empty line,
/// body) that encryption must preserve byte for byte.
struct Mail {
    outer: String,
    entity: Vec<u8>,
}

impl Mail {
    fn new(subject: &str, to: &str, cc: Option<&str>, entity: &[u8]) -> Mail {
        let mut outer = format!(
            "From: Sender <sender@apps.test>\r\nTo: {to}\r\n{}Subject: {subject}\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{}@apps.test>\r\nMIME-Version: 1.0\r\n",
            cc.map(|c| format!("Cc: {c}\r\n")).unwrap_or_default(),
            subject.replace(' ', "-"),
        );
        outer.push_str("X-Mailer: sealgate-e2e\r\n");
        Mail {
            outer,
            entity: entity.to_vec(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut v = self.outer.as_bytes().to_vec();
        v.extend_from_slice(&self.entity);
        v
    }
}

fn plain_entity(marker: &str) -> Vec<u8> {
    format!("Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\nHello, this is {marker}.\r\n.A line that starts with a dot\r\n..and one with two\r\n\r\n-- \r\nsig\r\n").into_bytes()
}

fn html_with_attachments(marker: &str) -> Vec<u8> {
    let b1 = "=_outer_b0undary";
    let b2 = "=_alt_b0undary";
    let attachment: String = (0..40).map(|i| format!("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo{i:04}wMTIzNDU2Nzg5YWJjZGVmZ2hpamtsbW5vcA==\r\n")).collect();
    format!(
        "Content-Type: multipart/mixed;\r\n boundary=\"{b1}\"\r\n\r\nThis is a multi-part message in MIME format.\r\n--{b1}\r\nContent-Type: multipart/alternative; boundary=\"{b2}\"\r\n\r\n--{b2}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain part {marker}\r\n--{b2}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>HTML part <b>{marker}</b></p></body></html>\r\n--{b2}--\r\n\r\n--{b1}\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"data.bin\"\r\n\r\n{attachment}--{b1}\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\n\r\nJVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K\r\n--{b1}--\r\n"
    )
    .into_bytes()
}

fn utf8_long_lines(marker: &str) -> Vec<u8> {
    let long: String = "Grüße aus Köln, ½ € für naïve Zeichen — ".repeat(19);
    assert!(long.len() > 900 && long.len() < 998);
    format!("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{marker} Überschrift\r\n{long}\r\n{long}\r\nEnde ✓\r\n").into_bytes()
}

fn find<'a>(msgs: &'a [SinkMessage], subject: &str, rcpts: &[&str]) -> &'a SinkMessage {
    let mut want: Vec<String> = rcpts.iter().map(|s| s.to_string()).collect();
    want.sort();
    msgs.iter()
        .find(|m| {
            let mut got = m.rcpt_to.clone();
            got.sort();
            got == want && contains(&m.data, format!("Subject: {subject}\r\n").as_bytes())
        })
        .unwrap_or_else(|| {
            panic!(
                "no sink message {subject:?} for {rcpts:?}; got: {:?}",
                msgs.iter()
                    .map(|m| (&m.rcpt_to, header(&m.data, "Subject")))
                    .collect::<Vec<_>>()
            )
        })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn header(data: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(data);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(v) = value.as_mut() {
            if line.starts_with(' ') || line.starts_with('\t') {
                v.push_str(line);
                continue;
            }
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            if n.eq_ignore_ascii_case(name) {
                value = Some(v.trim().to_string());
            }
        }
    }
    value
}

fn assert_pgp_mime(w: &World, m: &SinkMessage, expected: &[u8], subject: &str) {
    let ct = header(&m.data, "Content-Type").unwrap_or_default();
    assert!(
        ct.starts_with("multipart/encrypted") && ct.contains("application/pgp-encrypted"),
        "{ct}"
    );
    assert_eq!(
        header(&m.data, "Subject").as_deref(),
        Some(subject),
        "outer Subject kept"
    );
    assert!(
        header(&m.data, "X-Mailer").is_some(),
        "other outer headers kept"
    );
    let plain = w.keys.gpg.decrypt(&m.data).expect("gpg --decrypt");
    assert_eq!(
        String::from_utf8_lossy(&plain),
        String::from_utf8_lossy(expected),
        "decrypted inner entity differs"
    );
    assert_eq!(
        plain, expected,
        "decrypted inner entity is not byte-identical"
    );
}

fn assert_smime(
    m: &SinkMessage,
    cert: &sealgate_testkit::pki::IssuedCert,
    expected: &[u8],
    smime_type: &str,
) {
    let ct = header(&m.data, "Content-Type").unwrap_or_default();
    assert!(ct.starts_with("application/pkcs7-mime"), "{ct}");
    assert!(ct.contains(&format!("smime-type={smime_type}")), "{ct}");
    let plain = cms_decrypt(&m.data, cert).expect("openssl cms -decrypt");
    assert_eq!(
        plain, expected,
        "decrypted S/MIME entity is not byte-identical"
    );
    assert_eq!(
        cms_recipients(&m.data),
        vec![cert.recipient_id()],
        "only this recipient's certificate"
    );
}

/// The whole scenario of the core issue against a gateway whose store is `store_url`.
fn full_run(store_url: Option<String>) -> World {
    let w = World::start(store_url);

    // dave's key reaches sealgate only through `keys import` (the store source).
    let o = w
        .gateway
        .cli(&["keys", "import", w.keys.dave_key.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(&w.keys.dave_fpr), "{}", text(&o));
    let o = w.gateway.cli(&["keys", "list"]);
    assert!(text(&o).contains("dave@example.org"), "{}", text(&o));

    let mails = [
        (
            "plain text",
            Mail::new(
                "plain text",
                "carol@open.test",
                None,
                &plain_entity("MARKER-1"),
            ),
            vec!["carol@open.test"],
        ),
        (
            "html attachments",
            Mail::new(
                "html attachments",
                "alice@example.org",
                None,
                &html_with_attachments("MARKER-2"),
            ),
            vec!["alice@example.org"],
        ),
        (
            "utf8 long lines",
            Mail::new(
                "utf8 long lines",
                "alice@example.org",
                None,
                &utf8_long_lines("MARKER-3"),
            ),
            vec!["alice@example.org"],
        ),
        (
            "smime cbc",
            Mail::new(
                "smime cbc",
                "bob@example.org",
                None,
                &plain_entity("MARKER-4"),
            ),
            vec!["bob@example.org"],
        ),
        (
            "smime gcm",
            Mail::new(
                "smime gcm",
                "erin@gcm.test",
                None,
                &html_with_attachments("MARKER-5"),
            ),
            vec!["erin@gcm.test"],
        ),
        (
            "mixed list",
            Mail::new(
                "mixed list",
                "alice@example.org, Frank <frank@example.org>, bob@example.org",
                Some("carol@open.test"),
                &plain_entity("MARKER-6"),
            ),
            vec![
                "alice@example.org",
                "frank@example.org",
                "bob@example.org",
                "carol@open.test",
                "dave@example.org",
            ],
        ),
        (
            "mandatory no key",
            Mail::new(
                "mandatory no key",
                "nokey@example.org, alice@example.org",
                None,
                &plain_entity("MARKER-7"),
            ),
            vec!["nokey@example.org", "alice@example.org"],
        ),
    ];
    for (_, mail, rcpts) in &mails {
        w.postfix
            .send("sender@apps.test", rcpts, &mail.bytes())
            .unwrap_or_else(|e| panic!("Postfix refused the submission: {e}"));
    }
    // Already-encrypted mail passes unchanged, even to an S/MIME recipient.
    let pre = {
        let mut cmd = w.keys.gpg.gpg();
        cmd.args([
            "--armor",
            "--trust-model",
            "always",
            "--output",
            "-",
            "--encrypt",
            "-r",
            "alice@example.org",
        ]);
        let out = sealgate_testkit::process::run_with_timeout(
            {
                let f = w.keys.files.path().join("pre.txt");
                std::fs::write(&f, b"secret pre-encrypted MARKER-8\r\n").unwrap();
                cmd.arg(&f);
                cmd
            },
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(out.status.success());
        assert!(out.stdout.starts_with(b"-----BEGIN PGP MESSAGE-----"));
        out.stdout
    };
    let mut pgp_entity = b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n boundary=\"pre-enc\"\r\n\r\n--pre-enc\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--pre-enc\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    pgp_entity.extend_from_slice(
        &String::from_utf8_lossy(&pre)
            .replace("\r\n", "\n")
            .replace('\n', "\r\n")
            .into_bytes(),
    );
    pgp_entity.extend_from_slice(b"\r\n--pre-enc--\r\n");
    let pre_mail = Mail::new("already encrypted", "bob@example.org", None, &pgp_entity);
    // To alice (mandatory, and it is encrypted to her key), carol
    // (opportunistic) and bob (mandatory, S/MIME: it names none of his keys).
    w.postfix
        .send(
            "sender@apps.test",
            &["alice@example.org", "bob@example.org", "carol@open.test"],
            &pre_mail.bytes(),
        )
        .unwrap();

    // Expected sink transactions: 1 + 1 + 1 + 1 + 1 + 4 (alice with frank,
    // bob, carol, dave) + 1 (alice) + 2 (already encrypted: alice with carol, bob), plus Postfix's bounce for nokey@example.org
    // (it goes to sender@apps.test through sealgate, as plaintext: no key).
    let msgs = w
        .sink
        .wait_for(13, Duration::from_secs(90))
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nsealgate log:\n{}\nPostfix log:\n{}",
                w.gateway.child.output_tail(60),
                w.postfix.maillog()
            )
        });

    // Every copy carries sealgate's trace field on top; Postfix reached it over STARTTLS.
    for m in &msgs {
        let first = String::from_utf8_lossy(&m.data[..m.data.len().min(300)]).into_owned();
        assert!(first.starts_with("Received: from postfix-test.localdomain ([127.0.0.1])\r\n\tby sealgate.test (sealgate) with ESMTPS id "), "{first}");
    }

    // 1. Plain text, opportunistic, no key: sent as is.
    let m = find(&msgs, "plain text", &["carol@open.test"]);
    assert!(
        m.data.ends_with(&mails[0].1.entity),
        "plain message altered:\n{}",
        String::from_utf8_lossy(&m.data)
    );
    assert!(
        contains(&m.data, mails[0].1.outer.as_bytes()),
        "plain headers altered"
    );

    // 2, 3. PGP/MIME, byte for byte (multipart with attachments; 8-bit UTF-8 with long lines).
    assert_pgp_mime(
        &w,
        find(&msgs, "html attachments", &["alice@example.org"]),
        &mails[1].1.entity,
        "html attachments",
    );
    let m = find(&msgs, "utf8 long lines", &["alice@example.org"]);
    assert_pgp_mime(&w, m, &mails[2].1.entity, "utf8 long lines");

    // 4, 5. S/MIME CBC (RSA) and GCM (EC, from a .p7b bundle).
    assert_smime(
        find(&msgs, "smime cbc", &["bob@example.org"]),
        &w.keys.bob,
        &mails[3].1.entity,
        "enveloped-data",
    );
    assert_smime(
        find(&msgs, "smime gcm", &["erin@gcm.test"]),
        &w.keys.erin,
        &mails[4].1.entity,
        "authEnveloped-data",
    );

    // 6. Mixed list with a Bcc: the To/Cc recipients of one method share a
    // copy encrypted to their keys (alice and frank); the Bcc recipient has
    // a copy of its own, and its key appears in no other copy.
    let entity6 = &mails[5].1.entity;
    let gpg = &w.keys.gpg;
    let shared = find(
        &msgs,
        "mixed list",
        &["alice@example.org", "frank@example.org"],
    );
    assert_pgp_mime(&w, shared, entity6, "mixed list");
    let mut listed = gpg.recipient_keyids(&shared.data);
    listed.sort();
    let mut both = gpg.encryption_keyids("alice@example.org");
    both.extend(gpg.encryption_keyids("frank@example.org"));
    both.sort();
    assert_eq!(
        listed, both,
        "the shared copy names alice's and frank's keys only"
    );
    let m = find(&msgs, "mixed list", &["dave@example.org"]);
    assert_pgp_mime(&w, m, entity6, "mixed list");
    assert_eq!(
        gpg.recipient_keyids(&m.data),
        gpg.encryption_keyids("dave@example.org"),
        "the Bcc copy names only dave's key"
    );
    assert_smime(
        find(&msgs, "mixed list", &["bob@example.org"]),
        &w.keys.bob,
        entity6,
        "enveloped-data",
    );
    let carol = find(&msgs, "mixed list", &["carol@open.test"]);
    assert!(carol.data.ends_with(entity6));
    let dave_ids = gpg.encryption_keyids("dave@example.org");
    for m in &msgs {
        if m.rcpt_to != ["dave@example.org"] && contains(&m.data, b"-----BEGIN PGP MESSAGE-----") {
            let ids = gpg.recipient_keyids(&m.data);
            assert!(
                dave_ids.iter().all(|d| !ids.contains(d)),
                "Bcc recipient's key leaked into {:?}",
                m.rcpt_to
            );
        }
    }

    // 7. Mandatory without a key: 550 5.7.1 at RCPT (Postfix bounces), alice still gets hers, no plaintext.
    assert_pgp_mime(
        &w,
        find(&msgs, "mandatory no key", &["alice@example.org"]),
        &mails[6].1.entity,
        "mandatory no key",
    );
    w.postfix
        .wait_for_log("to=<nokey@example.org>", Duration::from_secs(30))
        .unwrap();
    let log = w.postfix.maillog();
    let line = log
        .lines()
        .find(|l| l.contains("to=<nokey@example.org>"))
        .unwrap();
    assert!(
        line.contains("status=bounced") && line.contains("5.7.1"),
        "{line}"
    );
    assert!(msgs
        .iter()
        .all(|m| !m.rcpt_to.iter().any(|r| r == "nokey@example.org")));

    // 8. Already encrypted: unchanged for alice (encrypted to her key) and
    // carol (opportunistic); encrypted again for bob, whose mandatory policy
    // needs his own key: his S/MIME copy holds the PGP/MIME entity.
    let pass: Vec<&SinkMessage> = msgs
        .iter()
        .filter(|m| contains(&m.data, b"Subject: already encrypted\r\n"))
        .filter(|m| !m.rcpt_to.iter().any(|r| r == "bob@example.org"))
        .collect();
    let mut served: Vec<&str> = pass
        .iter()
        .flat_map(|m| m.rcpt_to.iter().map(String::as_str))
        .collect();
    served.sort();
    assert_eq!(served, ["alice@example.org", "carol@open.test"]);
    for m in pass {
        assert!(
            m.data.ends_with(&pgp_entity),
            "already-encrypted message was altered for {:?}",
            m.rcpt_to
        );
    }
    let m = find(&msgs, "already encrypted", &["bob@example.org"]);
    assert_smime(m, &w.keys.bob, &pgp_entity, "enveloped-data");

    // Plaintext of encrypted messages never reached the sink, except inside
    // Postfix's bounce, which returns the sender's own message to the sender.
    let bounce = find(
        &msgs,
        "Undelivered Mail Returned to Sender",
        &["sender@apps.test"],
    );
    assert!(
        contains(&bounce.data, b"5.7.1"),
        "the bounce gives the reason"
    );
    for marker in ["MARKER-2", "MARKER-3", "MARKER-4", "MARKER-5", "MARKER-7"] {
        for m in msgs.iter().filter(|m| m.rcpt_to != ["sender@apps.test"]) {
            assert!(
                !contains(&m.data, marker.as_bytes()),
                "plaintext {marker} reached {:?}",
                m.rcpt_to
            );
        }
    }
    let marker6_plain = msgs
        .iter()
        .filter(|m| contains(&m.data, b"MARKER-6"))
        .count();
    assert_eq!(
        marker6_plain, 1,
        "only carol's copy of the mixed message is plaintext"
    );
    let log = w.gateway.log();
    assert!(!log.contains("MARKER"), "message content in the log");
    assert!(
        log.contains(&w.keys.alice_fpr) && log.contains(&w.keys.frank_fpr),
        "log names the fingerprints used:\n{log}"
    );
    assert!(log.contains("recipient refused"), "{log}");

    // verify explains the decisions.
    let o = w.gateway.cli(&["verify", "alice@example.org"]);
    let t = text(&o);
    assert!(
        o.status.success()
            && t.contains(&w.keys.alice_fpr)
            && t.contains("usable")
            && t.contains("decision: encrypt with pgp"),
        "{t}"
    );
    let o = w.gateway.cli(&["verify", "nokey@example.org"]);
    assert!(text(&o).contains("550 5.7.1"), "{}", text(&o));
    let o = w.gateway.cli(&["verify", "--json", "erin@gcm.test"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("verify --json");
    assert_eq!(v["policy"]["matched"], "gcm.test");
    let files = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"] == "files")
        .expect("the files source is reported");
    assert_eq!(files["keys"][0]["usable"], true, "{v}");
    // A certificate CMS cannot encrypt to is shown as not usable, with why,
    // and the mandatory recipient is refused (issue 6 item 3).
    let o = w.gateway.cli(&["verify", "gina@gcm.test"]);
    let t = text(&o);
    assert!(
        t.contains("NOT usable: Ed25519 key cannot be encrypted to") && t.contains("550 5.7.1"),
        "{t}"
    );
    w
}

fn audit_rows(url: &str) -> Vec<sealgate_store::AuditRecord> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = sealgate_store::Store::open(url).await.unwrap();
        let rows = store.recent_audit(100).await.unwrap();
        store.close().await;
        rows
    })
}

fn check_audit(rows: &[sealgate_store::AuditRecord], w: &World) {
    assert_eq!(
        rows.len(),
        9,
        "one audit row per message (8 sent, 1 bounce): {rows:#?}"
    );
    let mixed = rows
        .iter()
        .find(|r| r.message_id.as_deref() == Some("<mixed-list@apps.test>"))
        .expect("audit row of the mixed message");
    assert_eq!(mixed.outcome, "queued");
    let dave = mixed
        .recipients
        .iter()
        .find(|r| r.address == "dave@example.org")
        .unwrap();
    assert_eq!(dave.decision, "encrypt");
    assert_eq!(dave.method.as_deref(), Some("pgp"));
    assert_eq!(dave.fingerprints, vec![w.keys.dave_fpr.clone()]);
    let carol = mixed
        .recipients
        .iter()
        .find(|r| r.address == "carol@open.test")
        .unwrap();
    assert_eq!(carol.decision, "plain");
    assert!(
        rows.iter().all(|r| !format!("{r:?}").contains("MARKER")),
        "content in the audit table"
    );
}

#[test]
fn end_to_end_with_sqlite_store() {
    let w = full_run(None);
    let url = format!(
        "sqlite://{}/data/sealgate.db",
        w.gateway.dir.path().display()
    );
    check_audit(&audit_rows(&url), &w);
}

#[test]
fn end_to_end_with_postgres_store() {
    let db =
        TempDatabase::create().expect("PostgreSQL on 127.0.0.1:5432 is required for this test");
    let w = full_run(Some(db.url()));
    check_audit(&audit_rows(&db.url()), &w);
    // The data really is in PostgreSQL.
    let n = db
        .psql("SELECT count(*) FROM keys WHERE source = 'import'")
        .unwrap();
    assert_eq!(n.trim(), "1", "dave's imported key is in PostgreSQL");
    // So are the bindings, with the active key of every address mail was
    // encrypted to with OpenPGP.
    let n = db
        .psql("SELECT count(*) FROM key_binding WHERE kind = 'pgp' AND active = 1")
        .unwrap();
    assert!(n.trim().parse::<u32>().unwrap() >= 1, "{n}");
    drop(w);
}
