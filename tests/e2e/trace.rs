//! The `Received:` field sealgate adds (issue 6 item 9): an IPv6 client is
//! written `[IPv6:...]`, a HELO session says `SMTP` and an EHLO session
//! `ESMTP`, and the HELO text goes in reduced to printable ASCII without
//! comment characters. Before, the field said `([::1])`, `ESMTP` after HELO,
//! and carried the client's HELO text with non-ASCII and parentheses.

use crate::gateway::Gateway;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::Sink;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HELO (not EHLO) session over IPv6 loopback.
fn helo_session(port: u16, helo: &str, message: &[u8]) {
    let stream = TcpStream::connect(("::1", port)).expect("connect over IPv6");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut expect = |code: &str| {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
    };
    expect("220");
    for (cmd, code) in [
        (format!("HELO {helo}\r\n"), "250"),
        ("MAIL FROM:<app@apps.test>\r\n".into(), "250"),
        ("RCPT TO:<plain@open.test>\r\n".into(), "250"),
        ("DATA\r\n".into(), "354"),
    ] {
        w.write_all(cmd.as_bytes()).unwrap();
        expect(code);
    }
    w.write_all(message).unwrap();
    w.write_all(b".\r\n").unwrap();
    expect("250");
    w.write_all(b"QUIT\r\n").unwrap();
    expect("221");
}

fn received(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let end = text.find("\r\nSubject:").expect("Received field first");
    text[..end].replace("\r\n\t", " ")
}

#[test]
fn received_field_ipv6_literal_protocol_and_clean_helo() {
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"[::]:{{port}}\"\nhostname = \"sealgate.test\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n[store]\nurl = \"sqlite://data/s.db\"\n",
        sink.port()
    ));
    let msg = b"Subject: trace\r\n\r\nhello\r\n";
    helo_session(gw.port, "\u{e9}vil(by.trusted.example);x", msg);
    let got = sink.wait_for(1, Duration::from_secs(30)).unwrap();
    // relay.helo_name defaults to smtp.hostname (issue 6 item 14).
    assert_eq!(got[0].helo, "sealgate.test");
    let r = received(&got[0].data);
    assert!(
        r.starts_with("Received: from vilby.trusted.examplex ([IPv6:::1]) by sealgate.test (sealgate) with SMTP id "),
        "{r}"
    );

    // A Message-ID with terminal escapes and 3000 characters (issue 6 item
    // 14): the log and the audit row get it bounded and without controls.
    let hostile_id = format!(
        "<\u{1b}[2J\u{1b}]0;owned\u{7}{}@evil.test>",
        "m".repeat(3000)
    );
    let with_id = [
        b"Subject: trace\r\nMessage-ID: ".as_slice(),
        hostile_id.as_bytes(),
        b"\r\n\r\nhello\r\n",
    ]
    .concat();
    smtp_send(gw.port, "app@apps.test", &["plain@open.test"], &with_id).unwrap();
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    let r = received(&got[1].data);
    assert!(r.contains(" ([127.0.0.1]) by sealgate.test"), "{r}");
    assert!(r.contains(" with ESMTP id "), "{r}");
    // The relayed copy itself is unchanged.
    assert!(got[1].data.ends_with(&with_id));
    let log = gw.log();
    assert!(
        !log.contains('\u{1b}') && !log.contains('\u{7}'),
        "control characters in the log"
    );
    assert!(
        !log.contains(&"m".repeat(300)),
        "an unbounded Message-ID in the log"
    );
    assert!(
        log.contains("[2J]0;owned"),
        "the Message-ID is logged, cleaned:\n{log}"
    );
    let url = format!("sqlite://{}/data/s.db", gw.dir.path().display());
    let rows = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = sealgate_store::Store::open(&url).await.unwrap();
        let mut rows = Vec::new();
        for _ in 0..100 {
            rows = store.recent_audit(10).await.unwrap();
            if rows.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.close().await;
        rows
    });
    let id = rows
        .iter()
        .find_map(|r| r.message_id.clone())
        .expect("the audit row has the Message-ID");
    assert!(id.len() <= 260 && !id.contains('\u{1b}'), "{id:?}");
}
