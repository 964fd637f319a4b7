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
