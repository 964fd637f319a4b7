//! The built-in CA's other request paths (issue 11), checked with OpenSSL:
//! - the CSR handler: a pending request whose PKCS#10 `openssl req
//!   -verify` accepts, signed by an external `openssl ca`; uploading the
//!   result matches it to its key, empties the pending list, and mail to
//!   the address is encrypted to it (`openssl cms -decrypt` with the key
//!   from the exported PKCS#12); reschedule and delete;
//! - bulk requests from CSV: aliases, quoting, a BOM, an address that has a
//!   certificate already, a repeated address; the preview is what is then
//!   issued; a missing mandatory column, an overlong value and 10,001 rows
//!   are refused naming row and column, with nothing issued;
//! - sending certificates: the PKCS#12 reaches the sink in the clear from
//!   the CA email, `openssl pkcs12` opens it with the password the admin
//!   got, the password is in no mail and no log; a certificate for another
//!   address needs `--allow-mismatch`.
//!
//! The same flows run with the store on PostgreSQL.

use crate::ca::{ok, openssl, unpack};
use crate::gateway::{text, Gateway};
use sealgate_testkit::pki::TestCa;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::wait_until;
use sealgate_testkit::sink::Sink;
use std::path::Path;
use std::time::Duration;

fn gateway(store: &str, sink: &Sink, kek: &Path) -> Gateway {
    Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\nhostname = \"gw.corp.test\"\n\
         [relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\nkey_encryption_key_file = \"{}\"\n\
         [policy]\nmode = \"mandatory\"\nmethods = [\"smime\"]\n",
        sink.port(),
        kek.display()
    ))
}

/// A temporary directory (with the key-encryption key), a sink, and a
/// gateway relaying to it with the store at `store`.
fn setup(store: &str) -> (tempfile::TempDir, Sink, Gateway) {
    let files = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let gw = gateway(store, &sink, &kek(files.path()));
    (files, sink, gw)
}

fn kek(dir: &Path) -> std::path::PathBuf {
    let k = dir.join("kek");
    std::fs::write(&k, format!("{}\n", "9d".repeat(32))).unwrap();
    k
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn create_ca(gw: &Gateway) {
    ok(
        gw,
        &[
            "ca",
            "create",
            "--root-cn",
            "Corp Root",
            "--intermediate-cn",
            "Corp Mail CA",
            "--key",
            "p256",
        ],
    );
}

/// Waits until mandatory mail to `to` is taken (its certificate is in use).
fn mail_is_taken(gw: &Gateway, to: &str, body: &str) {
    let msg = format!("From: ian@corp.test\r\nTo: {to}\r\nSubject: t\r\n\r\n{body}\r\n");
    wait_until(
        Duration::from_secs(60),
        &format!("mail to {to} taken"),
        || smtp_send(gw.port, "ian@corp.test", &[to], msg.as_bytes()).is_ok(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
}

#[test]
fn csr_requests_wait_until_their_certificate_is_uploaded() {
    csr_flow("sqlite://data/s.db");
}

#[test]
fn csr_requests_wait_until_their_certificate_is_uploaded_postgres() {
    crate::trust::on_postgres(csr_flow);
}

fn csr_flow(store: &str) {
    let (files, sink, gw) = setup(store);
    let external = TestCa::new("Partner External CA");
    ok(
        &gw,
        &["roots", "import", external.cert_pem_path.to_str().unwrap()],
    );
    ok(&gw, &["ca", "config", "set", "default_handler", "csr"]);
    let pending = json(&ok(
        &gw,
        &[
            "ca",
            "request",
            "--email",
            "dana@partner.test",
            "--cn",
            "Dana Partner",
            "--key",
            "rsa2048",
            "--json",
        ],
    ));
    let id = pending["id"].as_str().unwrap().to_string();
    let listed = json(&ok(&gw, &["ca", "pending", "list", "--json"]));
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["email"], "dana@partner.test");

    // The CSR verifies and names the address; an external CA signs it.
    let csr = files.path().join("dana.csr");
    ok(
        &gw,
        &[
            "ca",
            "pending",
            "download",
            &id,
            "--out",
            csr.to_str().unwrap(),
        ],
    );
    let (good, out) = openssl(&[
        "req",
        "-in",
        csr.to_str().unwrap(),
        "-noout",
        "-verify",
        "-text",
    ]);
    assert!(
        good && out.contains("verify OK"),
        "openssl req -verify: {out}"
    );
    assert!(
        out.contains("email:dana@partner.test") && out.contains("CN = Dana Partner"),
        "{out}"
    );
    let ext = files.path().join("ext.cnf");
    std::fs::write(
        &ext,
        "[ext]\nbasicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage = emailProtection\nsubjectAltName = email:dana@partner.test\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
    )
    .unwrap();
    let cert = files.path().join("dana.crt");
    let (good, out) = openssl(&[
        "ca",
        "-batch",
        "-notext",
        "-config",
        external.path().join("ca.cnf").to_str().unwrap(),
        "-extfile",
        ext.to_str().unwrap(),
        "-extensions",
        "ext",
        "-in",
        csr.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    assert!(good, "openssl ca: {out}");

    // A certificate for another key matches nothing, and nothing changes.
    let stranger = external.issue(sealgate_testkit::pki::CertOptions {
        email: Some("dana@partner.test".into()),
        ..Default::default()
    });
    let o = gw.cli(&[
        "ca",
        "pending",
        "upload",
        stranger.cert_pem_path.to_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("matches the key of no pending request"),
        "{}",
        text(&o)
    );
    assert_eq!(
        json(&ok(&gw, &["ca", "pending", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The issued one: matched by its key, the pending list empties.
    let said = ok(&gw, &["ca", "pending", "upload", cert.to_str().unwrap()]);
    assert!(said.contains(&format!("request {id} completed")), "{said}");
    assert!(ok(&gw, &["ca", "pending", "list"]).contains("no pending requests"));

    // Used for mail at once; the key sealgate made opens it.
    mail_is_taken(&gw, "dana@partner.test", "CSR-SECRET");
    let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
    assert!(!got[0].text().contains("CSR-SECRET"));
    let thumb = json(&ok(
        &gw,
        &[
            "certs",
            "list",
            "--email",
            "dana@partner.test",
            "--with-key",
            "--json",
        ],
    ));
    let sha = thumb[0]["certificate"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let p12 = files.path().join("dana.p12");
    let pw = files.path().join("pw");
    std::fs::write(&pw, "dana pw\n").unwrap();
    ok(
        &gw,
        &[
            "ca",
            "export",
            &sha,
            "--out",
            p12.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
        ],
    );
    let key = files.path().join("dana.key");
    let (good, out) = openssl(&[
        "pkcs12",
        "-in",
        p12.to_str().unwrap(),
        "-passin",
        "pass:dana pw",
        "-nocerts",
        "-nodes",
        "-out",
        key.to_str().unwrap(),
    ]);
    assert!(good, "{out}");
    let enc = files.path().join("enc.eml");
    std::fs::write(&enc, &got[0].data).unwrap();
    let (good, plain) = openssl(&[
        "cms",
        "-decrypt",
        "-in",
        enc.to_str().unwrap(),
        "-inkey",
        key.to_str().unwrap(),
        "-recip",
        cert.to_str().unwrap(),
    ]);
    assert!(
        good && plain.contains("CSR-SECRET"),
        "openssl cms -decrypt: {plain}"
    );

    // Reschedule and delete.
    let second = json(&ok(
        &gw,
        &["ca", "request", "--email", "eve@partner.test", "--json"],
    ));
    let id2 = second["id"].as_str().unwrap();
    assert!(ok(&gw, &["ca", "pending", "reschedule", id2]).contains("again now"));
    assert!(ok(&gw, &["ca", "pending", "delete", id2]).contains("deleted"));
    assert!(ok(&gw, &["ca", "pending", "list"]).contains("no pending requests"));
    let o = gw.cli(&["ca", "pending", "delete", id2]);
    assert!(
        !o.status.success() && text(&o).contains("no pending request"),
        "{}",
        text(&o)
    );
    // The CSR handler needs no CA of sealgate's; the built-in one does,
    // and never pends.
    let o = gw.cli(&[
        "ca",
        "request",
        "--handler",
        "builtin",
        "--email",
        "fay@partner.test",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("sealgate ca create"),
        "{}",
        text(&o)
    );
    create_ca(&gw);
    let issued = json(&ok(
        &gw,
        &[
            "ca",
            "request",
            "--handler",
            "builtin",
            "--email",
            "fay@partner.test",
            "--json",
        ],
    ));
    assert!(
        issued["sha256"].is_string() && issued.get("id").is_none(),
        "{issued}"
    );
    assert!(ok(&gw, &["ca", "pending", "list"]).contains("no pending requests"));
}

#[test]
fn bulk_requests_from_csv() {
    bulk_flow("sqlite://data/s.db");
}

#[test]
fn bulk_requests_from_csv_postgres() {
    crate::trust::on_postgres(bulk_flow);
}

fn count_certs(gw: &Gateway) -> usize {
    json(&ok(gw, &["certs", "list", "--with-key", "--json"]))
        .as_array()
        .unwrap()
        .len()
}

fn bulk_flow(store: &str) {
    let (files, _sink, gw) = setup(store);
    create_ca(&gw);
    // gus has a certificate already.
    ok(&gw, &["ca", "request", "--email", "gus@corp.test"]);
    let before = count_certs(&gw);

    // Refused files name row and column; nothing is issued.
    let put = |name: &str, bytes: &[u8]| {
        let p = files.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let mut big = String::from("email,cn\n");
    for i in 0..10_001 {
        big.push_str(&format!("u{i}@corp.test,U {i}\n"));
    }
    for (name, content, want) in [
        (
            "nocn.csv",
            "email,org\nx@corp.test,X\n".to_string(),
            "row 1: the mandatory column COMMONNAME is missing",
        ),
        (
            "long.csv",
            format!(
                "email,cn\nx@corp.test,ok\ny@corp.test,{}\n",
                "y".repeat(257)
            ),
            "row 3, column 2 (COMMONNAME): more than 256 characters",
        ),
        ("big.csv", big, "row 10002: more than 10000 rows"),
        (
            "latin1.csv",
            "email,cn\n".to_string() + "z@corp.test,J\u{f6}rg\n",
            "row 2, column 2",
        ),
    ] {
        let f = if name == "latin1.csv" {
            // ISO-8859-1 bytes, no BOM.
            let mut b = content.into_bytes();
            let at = b.iter().position(|&c| c == 0xC3).unwrap();
            b.splice(at..at + 2, [0xF6]);
            put(name, &b)
        } else {
            put(name, content.as_bytes())
        };
        for preview in [true, false] {
            let mut args = vec!["ca", "bulk", f.to_str().unwrap()];
            if preview {
                args.push("--preview");
            }
            let o = gw.cli(&args);
            assert!(!o.status.success(), "{name} was taken");
            assert!(text(&o).contains(want), "{name}: {}", text(&o));
        }
    }
    assert_eq!(count_certs(&gw), before, "a refused file issued something");

    // A good file: BOM, aliases in any case, quotes, a repeat, gus.
    let mut csv = b"\xEF\xBB\xBF".to_vec();
    csv.extend(
        "E,CN,o,GivenName,sn\r\n\
         hal@corp.test,\"Hal, Sales\",\"Corp \"\"Intl\"\"\",Hal,Berg\r\n\
         gus@corp.test,Gus,,,\r\n\
         \r\n\
         ida@corp.test,Ida M\u{fc}ller,Corp,Ida,M\u{fc}ller\r\n\
         HAL@corp.test,Hal again,,,\r\n"
            .as_bytes(),
    );
    let good = put("good.csv", &csv);
    let plan = json(&ok(
        &gw,
        &["ca", "bulk", good.to_str().unwrap(), "--preview", "--json"],
    ));
    let planned: Vec<(u64, String)> = plan["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["email"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        planned,
        [
            (2, "hal@corp.test".to_string()),
            (5, "ida@corp.test".to_string())
        ]
    );
    let skipped: Vec<u64> = plan["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["row"].as_u64().unwrap())
        .collect();
    assert_eq!(skipped, [3, 6], "{plan}");
    assert!(plan["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("valid signing certificate"));
    assert_eq!(count_certs(&gw), before, "the preview issued something");

    let done = json(&ok(&gw, &["ca", "bulk", good.to_str().unwrap(), "--json"]));
    let issued: Vec<(u64, String)> = done["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["email"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(issued, planned, "the preview is what was issued");
    assert_eq!(count_certs(&gw), before + 2);
    let hal = json(&ok(
        &gw,
        &["certs", "list", "--email", "hal@corp.test", "--json"],
    ));
    let subject = hal[0]["certificate"]["subject"].as_str().unwrap();
    assert!(
        subject.contains("Hal, Sales") && subject.contains("Corp \"Intl\""),
        "{subject}"
    );
    let ida = json(&ok(
        &gw,
        &["certs", "list", "--email", "ida@corp.test", "--json"],
    ));
    assert!(
        ida[0]["certificate"]["subject"]
            .as_str()
            .unwrap()
            .contains("M\u{fc}ller"),
        "{ida}"
    );
}

#[test]
fn certificates_are_sent_by_mail_without_their_password() {
    send_flow("sqlite://data/s.db");
}

#[test]
fn certificates_are_sent_by_mail_without_their_password_postgres() {
    crate::trust::on_postgres(send_flow);
}

fn send_flow(store: &str) {
    let (files, sink, gw) = setup(store);
    create_ca(&gw);
    let o = gw.cli(&["ca", "request", "--email", "jo@partner.test", "--send"]);
    assert!(
        !o.status.success() && text(&o).contains("ca_email"),
        "{}",
        text(&o)
    );
    ok(&gw, &["ca", "config", "set", "ca_email", "ca@corp.test"]);
    let jo = json(&ok(
        &gw,
        &[
            "ca",
            "request",
            "--email",
            "jo@partner.test",
            "--cn",
            "Jo",
            "--send",
            "--json",
        ],
    ));
    let password = jo["pkcs12_password"].as_str().unwrap().to_string();
    let kim = json(&ok(
        &gw,
        &[
            "ca",
            "request",
            "--email",
            "kim@partner.test",
            "--add-user",
            "--json",
        ],
    ));
    // The user object: kim's own policy entry, in the store.
    let shown = json(&ok(&gw, &["policy", "show", "kim@partner.test", "--json"]));
    let sign = shown
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "sign")
        .unwrap()
        .clone();
    assert_eq!(sign["value"], "opportunistic");
    assert_eq!(sign["from"][0], "user kim@partner.test (store)");

    // The mail: from the CA email, in the clear (jo's policy is
    // mandatory), the PKCS#12 attached, no password in it.
    let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
    let m = &got[0];
    assert_eq!(m.mail_from, "ca@corp.test");
    assert_eq!(m.rcpt_to, ["jo@partner.test"]);
    assert!(
        m.header("Content-Type")[0].starts_with("multipart/mixed"),
        "{}",
        m.text()
    );
    assert!(m.text().contains("application/pkcs12"), "{}", m.text());
    assert!(!m.text().contains(&password), "the password is in the mail");
    let p12 = attachment(&m.text());
    let f = files.path().join("jo.p12");
    std::fs::write(&f, &p12).unwrap();
    let u = unpack(files.path(), &f, &password);
    let (_, x) = openssl(&[
        "x509",
        "-in",
        u.cert.to_str().unwrap(),
        "-noout",
        "-subject",
    ]);
    assert!(x.contains("CN = Jo"), "{x}");

    // ca send: kim's certificates, a new password; jo's certificate for
    // kim needs --allow-mismatch.
    let sent = json(&ok(&gw, &["ca", "send", "kim@partner.test", "--json"]));
    assert_eq!(sent["certificates"][0], kim["sha256"]);
    let kim_pw = sent["pkcs12_password"].as_str().unwrap().to_string();
    let o = gw.cli(&[
        "ca",
        "send",
        "kim@partner.test",
        "--cert",
        jo["sha256"].as_str().unwrap(),
    ]);
    assert!(
        !o.status.success() && text(&o).contains("--allow-mismatch"),
        "{}",
        text(&o)
    );
    ok(
        &gw,
        &[
            "ca",
            "send",
            "kim@partner.test",
            "--cert",
            jo["sha256"].as_str().unwrap(),
            "--allow-mismatch",
        ],
    );
    let got = sink.wait_for(3, Duration::from_secs(30)).unwrap();
    let to_kim: Vec<_> = got
        .iter()
        .filter(|m| m.rcpt_to == ["kim@partner.test"])
        .collect();
    assert_eq!(to_kim.len(), 2);
    let f = files.path().join("kim.p12");
    // The mail of that send (each send has its own password).
    let queue_id = sent["queue_id"].as_str().unwrap();
    let that = to_kim
        .iter()
        .find(|m| m.header("Message-ID")[0].contains(queue_id))
        .expect("the mail of the first send");
    std::fs::write(&f, attachment(&that.text())).unwrap();
    let (good, out) = openssl(&[
        "pkcs12",
        "-in",
        f.to_str().unwrap(),
        "-passin",
        &format!("pass:{kim_pw}"),
        "-noout",
    ]);
    assert!(good, "openssl pkcs12 with the printed password: {out}");
    for m in &got {
        assert!(!m.text().contains(&password) && !m.text().contains(&kim_pw));
    }
    let log = gw.log();
    assert!(
        !log.contains(&password) && !log.contains(&kim_pw),
        "a password was logged"
    );

    // Mail from the CA email is never encrypted, even to a mandatory
    // recipient with a certificate (jo); others' mail to jo is.
    let msg = "From: ca@corp.test\r\nTo: jo@partner.test\r\nSubject: notice\r\n\r\nCA-NOTICE\r\n";
    wait_until(Duration::from_secs(30), "the CA email followed", || {
        let before = sink.messages().len();
        smtp_send(
            gw.port,
            "ca@corp.test",
            &["jo@partner.test"],
            msg.as_bytes(),
        )
        .is_ok()
            && sink
                .wait_for(before + 1, Duration::from_secs(20))
                .is_ok_and(|m| m.last().is_some_and(|m| m.text().contains("CA-NOTICE")))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    let before = sink.messages().len();
    let other = "From: ian@corp.test\r\nTo: jo@partner.test\r\nSubject: s\r\n\r\nIAN-SECRET\r\n";
    // (Refused until the running gateway's stores hold the CA's root.)
    wait_until(Duration::from_secs(30), "mail to jo taken", || {
        smtp_send(
            gw.port,
            "ian@corp.test",
            &["jo@partner.test"],
            other.as_bytes(),
        )
        .is_ok()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    let got = sink.wait_for(before + 1, Duration::from_secs(30)).unwrap();
    assert!(!got.last().unwrap().text().contains("IAN-SECRET"));
}

/// The first base64 attachment of a message (the PKCS#12), decoded.
pub(crate) fn attachment(text: &str) -> Vec<u8> {
    let at = text.find("application/pkcs12").expect("a PKCS#12 part");
    let part = &text[at..];
    let body_start = part.find("\r\n\r\n").unwrap() + 4;
    let body = &part[body_start..];
    let end = body.find("\r\n--").unwrap_or(body.len());
    let clean: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(clean)
        .expect("base64 attachment")
}
