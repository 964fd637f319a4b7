//! The durable queue seen from outside: the client gets 250 once a message
//! is on disk, sealgate retries while the upstream is away, and the sender
//! gets a DSN (parsed here with mail-parser, not our own code) for what fails
//! for good. Postfix sends, the real binary queues, a sink receives.

use crate::gateway::Gateway;
use mail_parser::{MessageParser, MimeHeaders};
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::{smtp_send, Postfix};
use sealgate_testkit::sink::{Sink, SinkMessage, SinkOptions};
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn config(upstream_port: u16, queue: &str) -> String {
    format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\nhostname = \"gw.test\"\n\
         [relay]\nupstream = \"127.0.0.1:{upstream_port}\"\ntls = \"none\"\ntimeout_secs = 5\n\
         [store]\nurl = \"sqlite://data/s.db\"\n[queue]\n{queue}\n"
    )
}

fn msg(n: usize) -> Vec<u8> {
    format!(
        "From: a@apps.test\r\nTo: x@open.test\r\nMessage-ID: <m{n}@apps.test>\r\nSubject: t{n}\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

/// The report parts of a DSN the sink received: (delivery-status text,
/// returned header text, whether any part is a whole message).
fn dsn_parts(m: &SinkMessage) -> (String, String, bool) {
    let parsed = MessageParser::default().parse(&m.data).expect("DSN parses");
    let ct = parsed.content_type().expect("DSN has a Content-Type");
    assert_eq!(ct.ctype(), "multipart");
    assert_eq!(ct.subtype(), Some("report"));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let mut status = String::new();
    let mut headers = String::new();
    let mut full = false;
    for part in parsed.parts.iter() {
        let Some(t) = part.content_type() else {
            continue;
        };
        match (t.ctype(), t.subtype().unwrap_or("")) {
            ("message", "delivery-status") => {
                status = String::from_utf8_lossy(part.contents()).into_owned()
            }
            ("text", "rfc822-headers") => {
                headers = String::from_utf8_lossy(part.contents()).into_owned()
            }
            ("message", "rfc822") => full = true,
            _ => {}
        }
    }
    (status, headers, full)
}

/// The fields of the per-recipient blocks of a delivery-status text.
fn recipient_blocks(status: &str) -> Vec<HashMap<String, String>> {
    let text = status.replace("\r\n", "\n");
    text.split("\n\n")
        .skip(1)
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            b.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect()
        })
        .collect()
}

/// Issue 7: the sink is down for about a minute while 500 messages arrive
/// through Postfix; every one got 250 from sealgate (Postfix's queue
/// empties), and once the sink is back each is delivered exactly once.
#[test]
fn upstream_outage_loses_nothing_and_duplicates_nothing() {
    let upstream = free_port();
    let gw = Gateway::start(&config(upstream, "retry_schedule = [\"5s\"]"));
    let postfix = Postfix::start(gw.port);
    let started = Instant::now();
    for n in 0..500 {
        postfix
            .send("a@apps.test", &["x@open.test"], &msg(n))
            .unwrap();
        // About a minute of arrivals.
        std::thread::sleep(Duration::from_millis(110));
    }
    // Everything left Postfix: sealgate said 250 to all of it.
    postfix
        .wait_for_queue_empty(Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    assert!(started.elapsed() >= Duration::from_secs(50));
    assert_eq!(
        gw.log().matches("upstream not accepting mail").count(),
        1,
        "one log line for the outage, not one per message"
    );
    let sink = Sink::start_with(SinkOptions {
        port: Some(upstream),
        ..Default::default()
    });
    let got = sink
        .wait_for(500, Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    // A little longer: nothing more may come.
    std::thread::sleep(Duration::from_secs(8));
    let got = sink.messages().len().max(got.len());
    assert_eq!(got, 500, "no duplicates");
    let mut seen = HashMap::new();
    for m in sink.messages() {
        let id = m.header("Message-ID").pop().unwrap_or_default();
        *seen.entry(id).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 500, "every message once");
    assert!(seen.values().all(|&c| c == 1));
    assert!(gw.log().contains("upstream accepting mail again"));
}

/// Issue 7: an upstream 550 for one recipient: the client still got 250,
/// the other recipient is delivered, and the sender gets a failure DSN from
/// MAILER-DAEMON with the null sender, whose fields say what happened and
/// which carries no body.
#[test]
fn a_permanent_failure_gives_one_dsn_without_the_body() {
    let sink = Sink::start_with(SinkOptions {
        reject_rcpt: vec![("gone@open.test".into(), "550 5.1.1 no such user".into())],
        ..Default::default()
    });
    let gw = Gateway::start(&config(sink.port(), ""));
    let body = b"From: a@apps.test\r\nTo: x@open.test, gone@open.test\r\nSubject: report me\r\n\r\nSECRET BODY TEXT\r\n";
    smtp_send(
        gw.port,
        "a@apps.test",
        &["x@open.test", "gone@open.test"],
        body,
    )
    .unwrap();
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    let (dsn, delivered): (Vec<_>, Vec<_>) = got.into_iter().partition(|m| m.mail_from.is_empty());
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].rcpt_to, vec!["x@open.test".to_string()]);
    assert_eq!(dsn.len(), 1, "one DSN");
    let d = &dsn[0];
    assert_eq!(d.rcpt_to, vec!["a@apps.test".to_string()]);
    assert!(d.header("From")[0].contains("MAILER-DAEMON@gw.test"));
    assert_eq!(d.header("Auto-Submitted"), vec!["auto-replied".to_string()]);
    let (status, headers, full) = dsn_parts(d);
    assert!(status.contains("Reporting-MTA: dns; gw.test"), "{status}");
    assert!(status.contains("Arrival-Date: "), "{status}");
    let blocks = recipient_blocks(&status);
    assert_eq!(blocks.len(), 1, "{status}");
    let b = &blocks[0];
    assert_eq!(b["final-recipient"], "rfc822; gone@open.test");
    assert_eq!(b["action"], "failed");
    assert_eq!(b["status"], "5.1.1");
    assert!(b["diagnostic-code"].starts_with("smtp;"), "{b:?}");
    assert!(b["diagnostic-code"].contains("550"), "{b:?}");
    assert!(b.contains_key("remote-mta") && b.contains_key("last-attempt-date"));
    assert!(headers.contains("Subject: report me"), "{headers}");
    assert!(!full, "no whole message without RET=FULL");
    assert!(
        !String::from_utf8_lossy(&d.data).contains("SECRET BODY TEXT"),
        "the DSN carries no body"
    );
    // The report itself gets no report, and nothing else arrives.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.messages().len(), 2);
}

/// Issue 7: `queue.max_age` in seconds: a recipient whose upstream keeps
/// answering 4xx fails with 4.4.7 and a failure DSN; a short
/// `delay_warning_after` sends one delay DSN before that.
#[test]
fn time_limits_give_one_delay_dsn_then_a_failure_dsn() {
    let sink = Sink::start_with(SinkOptions {
        reject_rcpt: vec![("slow@open.test".into(), "451 4.3.2 try later".into())],
        ..Default::default()
    });
    let gw = Gateway::start(&config(
        sink.port(),
        "retry_schedule = [\"1s\"]\nmax_age = \"8s\"\ndelay_warning_after = \"2s\"",
    ));
    smtp_send(gw.port, "a@apps.test", &["slow@open.test"], &msg(1)).unwrap();
    let got = sink
        .wait_for(2, Duration::from_secs(40))
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    std::thread::sleep(Duration::from_secs(4));
    let all = sink.messages();
    assert_eq!(all.len(), 2, "one delay DSN, one failure DSN: {got:?}");
    let blocks: Vec<_> = all
        .iter()
        .map(|m| {
            assert!(m.mail_from.is_empty());
            let (status, _, _) = dsn_parts(m);
            recipient_blocks(&status).remove(0)
        })
        .collect();
    assert_eq!(blocks[0]["action"], "delayed", "{blocks:?}");
    assert_eq!(blocks[0]["status"], "4.3.2");
    assert!(blocks[0].contains_key("will-retry-until"));
    assert_eq!(blocks[1]["action"], "failed", "{blocks:?}");
    assert_eq!(blocks[1]["status"], "4.4.7");
}

/// A message from the null sender that fails gets no DSN (no bounce loops).
#[test]
fn a_bounce_that_fails_is_not_reported() {
    let sink = Sink::start_with(SinkOptions {
        reject_rcpt: vec![("gone@open.test".into(), "550 5.1.1 no such user".into())],
        ..Default::default()
    });
    let gw = Gateway::start(&config(sink.port(), ""));
    smtp_send(gw.port, "", &["gone@open.test", "x@open.test"], &msg(2)).unwrap();
    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.messages().len(), 1, "{got:?}");
    assert_eq!(sink.messages()[0].rcpt_to, vec!["x@open.test".to_string()]);
    assert!(gw.log().contains("failed"));
}

/// One SMTP transaction with exactly these MAIL and RCPT lines; the DATA
/// reply.
fn raw_transaction(port: u16, mail: &str, rcpts: &[&str], data: &str) -> String {
    use std::io::{BufRead, BufReader, Write};
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let read = |r: &mut BufReader<std::net::TcpStream>| {
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
    read(&mut r);
    for cmd in ["EHLO c.test".to_string(), mail.to_string()]
        .into_iter()
        .chain(rcpts.iter().map(|s| s.to_string()))
        .chain(["DATA".to_string()])
    {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let reply = read(&mut r);
        assert!(
            reply.starts_with('2') || reply.starts_with('3'),
            "{cmd}: {reply}"
        );
    }
    w.write_all(format!("{data}\r\n.\r\n").as_bytes()).unwrap();
    let reply = read(&mut r);
    w.write_all(b"QUIT\r\n").unwrap();
    reply
}

/// Issue 7 item 5: NOTIFY=NEVER gives no DSN; ORCPT comes back as
/// Original-Recipient and ENVID as Original-Envelope-Id; NOTIFY=SUCCESS
/// through an upstream without DSN gives a "relayed" notice.
#[test]
fn dsn_parameters_are_honoured() {
    let sink = Sink::start_with(SinkOptions {
        reject_rcpt: vec![
            ("gone@open.test".into(), "550 5.1.1 no such user".into()),
            ("quiet@open.test".into(), "550 5.1.1 no such user".into()),
        ],
        ..Default::default()
    });
    let gw = Gateway::start(&config(sink.port(), ""));
    let reply = raw_transaction(
        gw.port,
        "MAIL FROM:<a@apps.test> ENVID=env+2B42 RET=HDRS",
        &[
            "RCPT TO:<gone@open.test> ORCPT=rfc822;Original+2BName@apps.test",
            "RCPT TO:<quiet@open.test> NOTIFY=NEVER",
            "RCPT TO:<ok@open.test> NOTIFY=SUCCESS",
        ],
        "Subject: dsn\r\n\r\nbody",
    );
    assert!(reply.starts_with("250"), "{reply}");
    // The mail to ok@, one failure DSN (gone@ only), one relayed notice.
    let got = sink
        .wait_for(3, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    std::thread::sleep(Duration::from_secs(3));
    let all = sink.messages();
    assert_eq!(all.len(), 3, "{got:?}");
    let mut actions = Vec::new();
    for m in all.iter().filter(|m| m.mail_from.is_empty()) {
        let (status, _, _) = dsn_parts(m);
        assert!(status.contains("Original-Envelope-Id: env+42"), "{status}");
        for b in recipient_blocks(&status) {
            actions.push((
                b["final-recipient"].clone(),
                b["action"].clone(),
                b.get("original-recipient").cloned(),
            ));
        }
    }
    actions.sort();
    assert_eq!(
        actions,
        vec![
            (
                "rfc822; gone@open.test".to_string(),
                "failed".to_string(),
                Some("rfc822;Original+Name@apps.test".to_string())
            ),
            (
                "rfc822; ok@open.test".to_string(),
                "relayed".to_string(),
                None
            ),
        ],
        "no report for NOTIFY=NEVER"
    );
}

/// Issue 7 item 5: when the upstream offers DSN (Postfix here), the
/// parameters are passed on and the notices are left to it: Postfix's own
/// notice carries the ENVID and the ORCPT sealgate passed, and sealgate
/// itself sends no "relayed" notice.
#[test]
fn dsn_parameters_are_passed_to_an_upstream_that_offers_dsn() {
    let sink = Sink::start();
    let postfix = Postfix::start(sink.port());
    let gw = Gateway::start(&config(postfix.port(), ""));
    let reply = raw_transaction(
        gw.port,
        "MAIL FROM:<a@apps.test> RET=HDRS ENVID=e1",
        &["RCPT TO:<x@open.test> NOTIFY=SUCCESS ORCPT=rfc822;first@apps.test"],
        "Subject: passed\r\n\r\nbody",
    );
    assert!(reply.starts_with("250"), "{reply}");
    // Postfix, not sealgate, reports the relay (its sink has no DSN).
    let got = sink.wait_for(2, Duration::from_secs(60)).unwrap();
    let reports: Vec<_> = got.iter().filter(|m| m.mail_from.is_empty()).collect();
    assert_eq!(reports.len(), 1, "{got:?}");
    assert!(
        !reports[0].header("From")[0].contains("gw.test"),
        "the notice is Postfix's: {:?}",
        reports[0].header("From")
    );
    let (status, _, _) = dsn_parts(reports[0]);
    assert!(status.contains("Original-Envelope-Id: e1"), "{status}");
    let b = recipient_blocks(&status).remove(0);
    assert_eq!(b["action"], "relayed", "{status}");
    assert_eq!(
        b["original-recipient"], "rfc822;first@apps.test",
        "{status}"
    );
}
