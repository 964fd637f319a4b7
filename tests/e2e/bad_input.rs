//! Bad input against the real binary: each violation gets its RFC 5321 reply
//! with an enhanced status code, nothing panics, the next client is served.

use crate::gateway::Gateway;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::Sink;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    fn connect(port: u16) -> (Client, String) {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut c = Client {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let greeting = c.reply();
        (c, greeting)
    }

    /// Reads one (possibly multi-line) reply; empty string on EOF.
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        self.w.write_all(line.as_bytes()).unwrap();
        self.w.write_all(b"\r\n").unwrap();
        self.reply()
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }
}

fn config(sink: u16, networks: &str) -> String {
    format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\nallowed_networks = [{networks}]\nmax_message_size = 4096\nmax_recipients = 3\nmax_line_length = 1000\ncommand_timeout_secs = 2\ndata_timeout_secs = 2\n[relay]\nupstream = \"127.0.0.1:{sink}\"\ntls = \"none\"\n[store]\nurl = \"sqlite://data/s.db\"\n"
    )
}

#[test]
fn limits_and_garbage_get_clear_replies() {
    let sink = Sink::start();
    let gw = Gateway::start(&config(sink.port(), "\"127.0.0.0/8\""));
    let (mut c, greeting) = Client::connect(gw.port);
    assert!(greeting.starts_with("220 "), "{greeting}");
    let ehlo = c.cmd("EHLO client.test");
    for ext in [
        "PIPELINING",
        "SIZE 4096",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(ehlo.contains(ext), "EHLO lacks {ext}: {ehlo}");
    }
    assert!(c.cmd("RCPT TO:<x@open.test>").starts_with("503 5.5.1"));
    assert!(c.cmd("FROB the widget").starts_with("500 5.5.2"));
    let r = c.cmd("\u{1}\u{2}garbage\u{7f}");
    assert!(r.starts_with("500") || r.starts_with("501"), "{r}");
    assert!(c
        .cmd("MAIL FROM:<a@apps.test> SIZE=999999")
        .starts_with("552 5.3.4"));
    assert!(c.cmd("VRFY root").starts_with("252"));
    assert!(c.cmd("MAIL FROM:<a@apps.test>").starts_with("250"));
    for i in 0..3 {
        assert!(c
            .cmd(&format!("RCPT TO:<r{i}@open.test>"))
            .starts_with("250"));
    }
    assert!(c.cmd("RCPT TO:<r4@open.test>").starts_with("452 4.5.3"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.raw(&b"x".repeat(3000));
    c.raw(b"\r\n");
    c.raw(&b"y".repeat(3000));
    c.raw(b"\r\n.\r\n");
    let r = c.reply();
    assert!(
        r.starts_with("552 5.3.4") || r.starts_with("554 5.6.0"),
        "oversize message: {r}"
    );
    assert!(c.cmd("RSET").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@apps.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<r@open.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    c.raw(&b"z".repeat(1500));
    c.raw(b"\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("554 5.6.0"), "overlong line: {r}");
    let long_cmd = format!("NOOP {}", "n".repeat(5000));
    assert!(c.cmd(&long_cmd).starts_with("500 5.5.2"));
    assert!(c.cmd("QUIT").starts_with("221"));

    // Actual size over the limit with no SIZE declared, lines short.
    let big: Vec<u8> = [
        b"Subject: big\r\n\r\n".to_vec(),
        b"0123456789\r\n".repeat(500),
    ]
    .concat();
    let err = smtp_send(gw.port, "a@apps.test", &["x@open.test"], &big).unwrap_err();
    assert!(err.contains("552") && err.contains("5.3.4"), "{err}");

    // A stalled client is dropped with 421 after the command timeout...
    let (mut stalled, _) = Client::connect(gw.port);
    let t = Instant::now();
    let r = stalled.reply();
    assert!(r.starts_with("421 4.4.2"), "{r}");
    assert!(t.elapsed() < Duration::from_secs(15));
    // ...and the next client is served normally.
    smtp_send(
        gw.port,
        "a@apps.test",
        &["ok@open.test"],
        b"Subject: ok\r\n\r\nfine\r\n",
    )
    .unwrap();
    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, vec!["ok@open.test".to_string()]);
    assert!(gw.child.try_wait().is_none(), "gateway died");
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
}

#[test]
fn mail_loops_are_cut_by_the_hop_limit() {
    let sink = Sink::start();
    let gw = Gateway::start(&config(sink.port(), "\"127.0.0.0/8\""));
    let looped: Vec<u8> = [
        b"Received: from a by b; Sun, 22 Nov 2026 05:00:00 +0000\r\n".repeat(51),
        b"Subject: loop\r\n\r\nbody\r\n".to_vec(),
    ]
    .concat();
    let err = smtp_send(gw.port, "a@apps.test", &["x@open.test"], &looped).unwrap_err();
    assert!(err.contains("554") && err.contains("5.4.6"), "{err}");
    // 50 are still fine, and the relayed copy carries one more: ours.
    let ok: Vec<u8> = [
        b"Received: from a by b; Sun, 22 Nov 2026 05:00:00 +0000\r\n".repeat(50),
        b"Subject: fine\r\n\r\nbody\r\n".to_vec(),
    ]
    .concat();
    smtp_send(gw.port, "a@apps.test", &["x@open.test"], &ok).unwrap();
    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    assert!(got[0].data.ends_with(&ok));
    let ours = String::from_utf8_lossy(&got[0].data[..got[0].data.len() - ok.len()]).into_owned();
    assert!(
        ours.starts_with("Received: from ")
            && ours.contains("(sealgate) with ESMTP id ")
            && ours.contains("for <x@open.test>;"),
        "{ours}"
    );
}

/// Issue 6 item 10: a header section over `smtp.max_header_fields` or
/// `smtp.max_header_size` gets 552 5.3.4 and nothing is relayed; at the
/// limits the message goes through. Before, any header was parsed whole.
#[test]
fn header_bombs_get_552() {
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\nmax_header_fields = 100\nmax_header_size = 4000\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n[store]\nurl = \"sqlite://data/s.db\"\n",
        sink.port()
    ));
    let message = |fields: usize, field: &[u8]| -> Vec<u8> {
        [field.repeat(fields), b"\r\nbody\r\n".to_vec()].concat()
    };
    // 101 tiny fields, 606 bytes: too many fields.
    let err = smtp_send(
        gw.port,
        "a@apps.test",
        &["x@open.test"],
        &message(101, b"a: b\r\n"),
    )
    .unwrap_err();
    assert!(err.contains("552") && err.contains("5.3.4"), "{err}");
    // 20 fields of 250 bytes: too many bytes.
    let wide = [b"X-Wide: ".to_vec(), b"w".repeat(240), b"\r\n".to_vec()].concat();
    let err = smtp_send(
        gw.port,
        "a@apps.test",
        &["x@open.test"],
        &message(20, &wide),
    )
    .unwrap_err();
    assert!(err.contains("552") && err.contains("5.3.4"), "{err}");
    // No empty line at all: everything is header, and counts.
    let err = smtp_send(
        gw.port,
        "a@apps.test",
        &["x@open.test"],
        &b"a: b\r\n".repeat(200),
    )
    .unwrap_err();
    assert!(err.contains("552") && err.contains("5.3.4"), "{err}");
    // At the limits it is relayed unchanged.
    let ok = message(100, b"a: b\r\n");
    smtp_send(gw.port, "a@apps.test", &["x@open.test"], &ok).unwrap();
    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0].data.ends_with(&ok));
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
}

/// Issue 6 item 14: lines over RFC 5322's 998 octets (up to
/// `smtp.max_line_length`, 4096 by default) are passed unchanged to plain and
/// pass-through copies; the policy is documented in docs/configuration.md.
#[test]
fn long_lines_pass_unchanged_to_plain_copies() {
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n[store]\nurl = \"sqlite://data/s.db\"\n",
        sink.port()
    ));
    let long = [
        b"Subject: long\r\nX-Long: ".to_vec(),
        b"h".repeat(2000),
        b"\r\n\r\n".to_vec(),
        b"b".repeat(4000),
        b"\r\n".to_vec(),
    ]
    .concat();
    smtp_send(gw.port, "a@apps.test", &["x@open.test"], &long).unwrap();
    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    assert!(got[0].data.ends_with(&long), "relayed byte for byte");
}

#[test]
fn client_outside_allowed_networks_is_refused() {
    let sink = Sink::start();
    let gw = Gateway::start(&config(sink.port(), "\"10.0.0.0/8\""));
    let (mut c, _) = Client::connect(gw.port);
    assert!(c.cmd("EHLO outside.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@apps.test>").starts_with("250"));
    let r = c.cmd("RCPT TO:<victim@elsewhere.test>");
    assert!(
        r.starts_with("554 5.7.1") && r.to_lowercase().contains("relay access denied"),
        "{r}"
    );
    assert!(c.cmd("DATA").starts_with("554"), "no recipients, no DATA");
    assert!(c.cmd("QUIT").starts_with("221"));
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.messages().is_empty());
}

#[test]
fn envelope_addresses_are_data_never_syntax() {
    let sink = Sink::start();
    let config = format!(
        "{}[policy.domains.\"mandatory.example\"]\nmode = \"mandatory\"\n",
        config(sink.port(), "\"127.0.0.0/8\"")
    );
    let gw = Gateway::start(&config);
    let (mut c, _) = Client::connect(gw.port);
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<a@apps.test>").starts_with("250"));
    // mandatory.example is mandatory (and has no key)...
    let r = c.cmd("RCPT TO:<victim@mandatory.example>");
    assert!(r.starts_with("550 5.7.1"), "{r}");
    // ...a quoted local part that names it is a local part at open.example,
    // and stays one address upstream: no ORCPT parameter, no policy bypass.
    let injection = r#""victim@mandatory.example> ORCPT=rfc822;x"@open.example"#;
    let r = c.cmd(&format!("RCPT TO:<{injection}>"));
    assert!(r.starts_with("250 2.1.5"), "{r}");
    c.raw(b"RCPT TO:<\"victim@mandatory.example\rx\"@open.example>\r\n");
    let r = c.reply();
    assert!(r.starts_with("553 5.1.3"), "{r}");
    let r = c.cmd("RCPT TO:<postmaster>");
    assert!(r.starts_with("250 2.1.5"), "{r}");
    assert!(c.cmd("DATA").starts_with("354"));
    c.raw(b"Subject: quoted\r\n\r\nbody\r\n.\r\n");
    let r = c.reply();
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd("QUIT").starts_with("221"));

    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    assert_eq!(got[0].rcpt_to, [injection, "postmaster"]);
    assert_eq!(
        got[0].commands[1..],
        [
            format!("RCPT TO:<{injection}>"),
            "RCPT TO:<postmaster>".to_string()
        ]
    );
    assert!(got[0].rcpt_options.is_empty(), "{:?}", got[0].rcpt_options);
    assert!(!gw.log().contains("panicked"), "{}", gw.log());
}
