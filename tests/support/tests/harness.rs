//! Self-tests of the test-peer harness: each peer really starts, behaves as
//! documented, and is gone after Drop. Everything here talks to real programs
//! (aiosmtpd, Postfix, swaks, psql).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::{smtp_send, smtp_send_with_params, Postfix};
use sealgate_testkit::postgres::TempDatabase;
use sealgate_testkit::process::{pid_alive, wait_for_port, wait_until, ChildGuard};
use sealgate_testkit::sink::{Sink, SinkOptions};

const T: Duration = Duration::from_secs(30);

/// A message with a line starting with ".", one that is only "..", and
/// 8-bit UTF-8 in header and body; CRLF line endings.
fn tricky_message() -> Vec<u8> {
    b"From: Sender <sender@example.test>\r\n\
To: alice@example.org, bob@example.org\r\n\
Subject: Gr\xc3\xbc\xc3\x9fe\r\n\
Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n\
Message-ID: <harness-1@example.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n\
Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n\
.leading dot\r\n\
..\r\n\
.\r\n\
trailing  spaces  \r\n\
last line\r\n"
        .to_vec()
}

/// Never the same port twice, and (nearly) always one that can be bound.
/// A port is only promised to be free when it was checked: on a shared
/// machine another process (another test suite) may take one in between,
/// so a few failed binds are tolerated; many mean free_port is broken.
#[test]
fn free_port_never_repeats() {
    let mut seen = std::collections::HashSet::new();
    let mut taken = Vec::new();
    for _ in 0..100 {
        let p = free_port();
        assert!(seen.insert(p), "port {p} handed out twice");
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", p)) {
            taken.push(format!("{p}: {e}"));
        }
    }
    assert!(
        taken.len() <= 3,
        "ports not bindable right after free_port: {taken:?}"
    );
}

#[test]
fn wait_helpers_time_out() {
    let port = free_port();
    let start = Instant::now();
    let err = wait_for_port(port, Duration::from_millis(300)).unwrap_err();
    assert!(err.contains(&port.to_string()), "{err}");
    assert!(start.elapsed() < Duration::from_secs(3));
    let err = wait_until(Duration::from_millis(100), "never", || false).unwrap_err();
    assert!(err.contains("never"), "{err}");
    assert!(wait_until(Duration::from_millis(100), "now", || true).is_ok());
}

#[test]
fn sink_stores_swaks_message_byte_exact() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.eml");
    let message = tricky_message();
    // swaks sends the file, then "\r\n.\r\n": leave off the final CRLF.
    std::fs::write(&file, &message[..message.len() - 2]).unwrap();
    let out = Command::new("swaks")
        .arg("--server")
        .arg(format!("127.0.0.1:{}", sink.port()))
        .args([
            "--from",
            "sender@example.test",
            "--to",
            "alice@example.org,bob@example.org",
        ])
        .arg("--data")
        .arg(format!("@{}", file.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "swaks failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let msgs = sink.wait_for(1, T).unwrap();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.mail_from, "sender@example.test");
    assert_eq!(m.rcpt_to, ["alice@example.org", "bob@example.org"]);
    assert_eq!(m.data, message, "got:\n{}", m.text());
    assert_eq!(m.header("subject"), ["Grüße"]);
    assert!(!m.tls);
}

#[test]
fn sink_records_mail_options_and_keeps_line_endings() {
    let sink = Sink::start();
    // Our own client: BODY=8BITMIME and SMTPUTF8 chosen automatically.
    smtp_send(
        sink.port(),
        "sénder@example.test",
        &["alice@example.org"],
        &tricky_message(),
    )
    .unwrap();
    // Explicit parameters.
    smtp_send_with_params(
        sink.port(),
        "s@example.test",
        &["bob@example.org"],
        b"x\r\n",
        &["BODY=7BIT"],
    )
    .unwrap();
    // A raw transaction with a bare LF and a bare CR inside lines: stored as sent.
    let raw_body = b"Subject: raw\r\n\r\nbare\nlf and bare\rcr\r\n..stuffed\r\n";
    let mut s = TcpStream::connect(("127.0.0.1", sink.port())).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut reply = || {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] == b' ' {
                return all;
            }
        }
    };
    reply();
    for cmd in [
        &b"EHLO raw.test\r\n"[..],
        b"MAIL FROM:<r@example.test>\r\n",
        b"RCPT TO:<c@example.org>\r\n",
        b"DATA\r\n",
    ] {
        s.write_all(cmd).unwrap();
        let rep = reply();
        assert!(rep.starts_with('2') || rep.starts_with('3'), "{rep}");
    }
    s.write_all(raw_body).unwrap();
    s.write_all(b".\r\n").unwrap();
    assert!(reply().starts_with("250"));

    let msgs = sink.wait_for(3, T).unwrap();
    assert_eq!(msgs[0].mail_from, "sénder@example.test");
    assert_eq!(msgs[0].mail_options, ["BODY=8BITMIME", "SMTPUTF8"]);
    assert_eq!(msgs[0].data, tricky_message());
    assert_eq!(msgs[0].helo, "client.localdomain");
    assert_eq!(msgs[1].mail_options, ["BODY=7BIT"]);
    assert_eq!(msgs[1].data, b"x\r\n");
    assert_eq!(
        msgs[2].data,
        b"Subject: raw\r\n\r\nbare\nlf and bare\rcr\r\n.stuffed\r\n"
    );
    assert_eq!(msgs[2].body(), b"bare\nlf and bare\rcr\r\n.stuffed\r\n");
}

#[test]
fn smtp_send_normalises_lf_and_reports_rejections() {
    let sink = Sink::start_with(SinkOptions {
        reject_rcpt: vec![("Nobody@Example.org".into(), "550 5.1.1 no such user".into())],
        ..Default::default()
    });
    smtp_send(
        sink.port(),
        "a@example.test",
        &["b@example.org"],
        b"Subject: lf\n\n.dot\nend",
    )
    .unwrap();
    let err = smtp_send(
        sink.port(),
        "a@example.test",
        &["nobody@example.org"],
        b"x\r\n",
    )
    .unwrap_err();
    assert!(err.contains("550 5.1.1 no such user"), "{err}");
    let msgs = sink.wait_for(1, T).unwrap();
    assert_eq!(msgs[0].data, b"Subject: lf\r\n\r\n.dot\r\nend\r\n");
    assert_eq!(msgs[0].mail_options, Vec::<String>::new());
}

#[test]
fn postfix_relays_to_sink() {
    let sink = Sink::start();
    let started = Instant::now();
    let postfix = Postfix::start(sink.port());
    eprintln!("postfix start took {:?}", started.elapsed());
    let message = tricky_message();
    postfix
        .send(
            "sender@example.test",
            &["alice@example.org", "bob@example.org"],
            &message,
        )
        .unwrap();
    let msgs = sink.wait_for(1, T).unwrap();
    postfix.wait_for_log("status=sent", T).unwrap();
    postfix.wait_for_queue_empty(T).unwrap();
    let m = &msgs[0];
    eprintln!(
        "options {:?} helo {:?} tls {}\n{}",
        m.mail_options,
        m.helo,
        m.tls,
        m.text()
    );
    assert_eq!(m.mail_from, "sender@example.test");
    assert_eq!(m.rcpt_to, ["alice@example.org", "bob@example.org"]);
    assert!(m.data.starts_with(b"Received: from "), "{}", m.text());
    assert!(m.data.ends_with(&message), "body changed:\n{}", m.text());
    assert_eq!(m.header("received").len(), 1);
    assert!(
        m.mail_options.contains(&"BODY=8BITMIME".to_string()),
        "{:?}",
        m.mail_options
    );
    assert_eq!(msgs.len(), 1);
}

#[test]
fn postfix_bounces_on_5xx_and_defers_on_4xx() {
    let sink = Sink::start_with(SinkOptions {
        reject_rcpt: vec![
            ("bob@example.org".into(), "550 5.1.1 no such user".into()),
            ("carol@example.org".into(), "450 4.2.0 try later".into()),
        ],
        ..Default::default()
    });
    let postfix = Postfix::start(sink.port());
    postfix
        .send(
            "sender@example.test",
            &["alice@example.org", "bob@example.org", "carol@example.org"],
            &tricky_message(),
        )
        .unwrap();
    let log = postfix.wait_for_log("status=bounced", T).unwrap();
    assert!(
        log.lines().any(|l| l.contains("to=<bob@example.org>")
            && l.contains("status=bounced")
            && l.contains("550 5.1.1 no such user")),
        "{log}"
    );
    postfix.wait_for_log("status=deferred", T).unwrap();
    // Alice's copy, then the bounce to the sender (null sender).
    let msgs = sink.wait_for(2, T).unwrap();
    assert_eq!(msgs[0].rcpt_to, ["alice@example.org"]);
    let bounce = msgs
        .iter()
        .find(|m| m.mail_from.is_empty())
        .unwrap_or_else(|| {
            let summary: Vec<_> = msgs.iter().map(|m| (&m.mail_from, &m.rcpt_to)).collect();
            panic!(
                "no bounce to the sender: {summary:?}\n{}",
                postfix.maillog()
            )
        });
    assert_eq!(bounce.rcpt_to, ["sender@example.test"]);
    // Carol stays deferred with the sink's reply as the reason.
    let queue = postfix.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    let r = &queue[0]["recipients"][0];
    assert_eq!(r["address"], "carol@example.org");
    assert!(
        r["delay_reason"]
            .as_str()
            .unwrap()
            .contains("450 4.2.0 try later"),
        "{r}"
    );
}

#[test]
fn postfix_retries_after_temp_fail_data() {
    let sink = Sink::start_with(SinkOptions {
        temp_fail_data: true,
        ..Default::default()
    });
    let postfix = Postfix::start(sink.port());
    postfix
        .send(
            "sender@example.test",
            &["alice@example.org"],
            b"Subject: t\r\n\r\nhi\r\n",
        )
        .unwrap();
    postfix.wait_for_log("status=deferred", T).unwrap();
    let queue = postfix.queue();
    let reason = queue[0]["recipients"][0]["delay_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("451 4.3.0"), "{reason}");
    assert!(sink.messages().is_empty());

    // A new sink on another port: point Postfix at it, flush, delivered.
    let good = Sink::start();
    postfix.set_config(&[("relayhost", &format!("[127.0.0.1]:{}", good.port()))]);
    let started = Instant::now();
    wait_until(T, "delivery after flush", || {
        postfix.flush();
        !good.messages().is_empty()
    })
    .unwrap();
    eprintln!("retry delivered after {:?}", started.elapsed());
    postfix.wait_for_queue_empty(T).unwrap();
}

#[test]
fn postfix_uses_starttls_when_sink_offers_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=sink.localdomain",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sink = Sink::start_with(SinkOptions {
        starttls: Some((cert, key)),
        ..Default::default()
    });
    let postfix = Postfix::start(sink.port());
    postfix
        .send(
            "sender@example.test",
            &["alice@example.org"],
            b"Subject: tls\r\n\r\nhi\r\n",
        )
        .unwrap();
    let msgs = sink.wait_for(1, T).unwrap();
    assert!(msgs[0].tls, "sink saw no STARTTLS");
    let log = postfix.wait_for_log("status=sent", T).unwrap();
    assert!(
        log.contains("TLS connection established to 127.0.0.1"),
        "{log}"
    );
}

#[test]
fn many_postfix_instances_run_at_once() {
    let sink = Sink::start();
    let a = Postfix::start(sink.port());
    let b = Postfix::start(sink.port());
    assert_ne!(a.port(), b.port());
    a.send(
        "a@example.test",
        &["x@example.org"],
        b"Subject: a\r\n\r\na\r\n",
    )
    .unwrap();
    b.send(
        "b@example.test",
        &["x@example.org"],
        b"Subject: b\r\n\r\nb\r\n",
    )
    .unwrap();
    let msgs = sink.wait_for(2, T).unwrap();
    let mut froms: Vec<&str> = msgs.iter().map(|m| m.mail_from.as_str()).collect();
    froms.sort();
    assert_eq!(froms, ["a@example.test", "b@example.test"]);
}

#[test]
fn drop_stops_the_peers() {
    let sink = Sink::start();
    let sink_pid = sink.pid();
    let postfix = Postfix::start(sink.port());
    let master = postfix.master_pid();
    let smtpd_port = postfix.port();
    assert!(pid_alive(sink_pid) && pid_alive(master));
    let started = Instant::now();
    drop(postfix);
    eprintln!("postfix stop took {:?}", started.elapsed());
    assert!(!pid_alive(master), "postfix master {master} still alive");
    assert!(TcpStream::connect(("127.0.0.1", smtpd_port)).is_err());
    drop(sink);
    assert!(!pid_alive(sink_pid), "sink {sink_pid} still alive");

    // A child that ignores SIGTERM is SIGKILLed after the grace period.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "trap '' TERM; echo up; while :; do sleep 1; done"]);
    let child = ChildGuard::spawn(cmd, "stubborn");
    child.wait_for_output("up", T).unwrap();
    let pid = child.pid();
    let started = Instant::now();
    drop(child);
    assert!(!pid_alive(pid));
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[test]
fn temp_database_is_created_and_dropped() {
    let db = TempDatabase::create().expect("PostgreSQL on 127.0.0.1:5432 must be reachable");
    let name = db.name().to_string();
    assert_eq!(
        db.url(),
        format!("postgres://postgres@127.0.0.1:5432/{name}")
    );
    let out = db
        .psql("CREATE TABLE t (x int); INSERT INTO t VALUES (41), (1); SELECT sum(x) FROM t;")
        .unwrap();
    assert_eq!(out.trim(), "42");
    let other = TempDatabase::create().unwrap();
    assert_ne!(other.name(), name);
    drop(db);
    let exists = other
        .psql(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        ))
        .unwrap();
    assert_eq!(exists.trim(), "0");
}

#[test]
fn postfix_header_and_parameter_behaviour() {
    let sink = Sink::start();
    let postfix = Postfix::start(sink.port());
    // 8-bit body without BODY=8BITMIME, no Date/Message-ID: what does Postfix do?
    let bare = b"From: a@example.test\r\nSubject: bare\r\n\r\nK\xc3\xb6ln\r\n";
    smtp_send_with_params(
        postfix.port(),
        "a@example.test",
        &["x@example.org"],
        bare,
        &[],
    )
    .unwrap();
    let msgs = sink.wait_for(1, T).unwrap();
    let m = &msgs[0];
    eprintln!("options {:?}\n{}", m.mail_options, m.text());
    // Postfix passes the undeclared 8-bit body on undeclared (no BODY=) and
    // appends the missing Message-Id and Date at the end of the header
    // (the client is local: local_header_rewrite_clients).
    assert!(m.mail_options.is_empty(), "{:?}", m.mail_options);
    assert_eq!(m.header("message-id").len(), 1, "{}", m.text());
    assert_eq!(m.header("date").len(), 1, "{}", m.text());
    let received = &m.header("received")[0];
    assert!(
        received.contains("with ESMTP") && received.contains("for <x@example.org>"),
        "{received}"
    );
    assert!(
        m.text().contains("Subject: bare\r\nMessage-Id: <"),
        "{}",
        m.text()
    );
    assert!(m.data.ends_with(b"\r\n\r\nK\xc3\xb6ln\r\n"));
}
