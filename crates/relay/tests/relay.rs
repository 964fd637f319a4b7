//! The relay against a real SMTP server (aiosmtpd, via the testkit sink):
//! MAIL parameters and bytes arrive as given, each recipient gets its verdict,
//! TLS is required and verified as configured, and every network failure or
//! timeout is a temporary failure.

use sealgate_relay::{Delivery, Outbound, Relay, RelayConfig, SmtpRelay, TlsMode};
use sealgate_testkit::hostile_upstream::{HostileUpstream, Misbehaviour};
use sealgate_testkit::pki::{server_cert, ServerCert, TestCa};
use sealgate_testkit::ports::free_port;
use sealgate_testkit::sink::{Sink, SinkOptions};
use std::time::Duration;

fn config(port: u16) -> RelayConfig {
    RelayConfig {
        upstream: format!("127.0.0.1:{port}"),
        tls: TlsMode::None,
        timeout_secs: 5,
        ..Default::default()
    }
}

/// A test CA and a server certificate for `localhost`, for a STARTTLS sink.
fn localhost_cert() -> (TestCa, ServerCert) {
    let ca = TestCa::new("relay test CA");
    let cert = server_cert(&ca, &["localhost"]);
    (ca, cert)
}

fn out<'a>(recipients: &'a [String], data: &'a [u8]) -> Outbound<'a> {
    Outbound {
        dsn: None,
        sender: "sender@apps.test",
        recipients,
        body_8bitmime: false,
        smtputf8: false,
        data,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bytes_envelope_and_mail_parameters_arrive_as_given() {
    let sink = Sink::start_with(SinkOptions {
        size_limit: Some(10_000),
        ..Default::default()
    });
    let relay = SmtpRelay::new(config(sink.port())).unwrap();
    let rcpts = vec!["jörg@example.org".to_string(), "b@example.org".to_string()];
    let data = "Subject: Grüße\r\n\r\n.leading dot\r\nÜmlaut body\r\n".as_bytes();
    let mut msg = out(&rcpts, data);
    msg.body_8bitmime = true;
    msg.smtputf8 = true;
    assert_eq!(
        relay.send(msg).await,
        vec![Delivery::Accepted, Delivery::Accepted]
    );
    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    assert_eq!(
        got[0].data, data,
        "byte for byte, dot-stuffing undone by the peer"
    );
    assert_eq!(got[0].rcpt_to, rcpts);
    assert_eq!(got[0].mail_from, "sender@apps.test");
    assert!(
        got[0]
            .mail_options
            .iter()
            .any(|o| o.eq_ignore_ascii_case("BODY=8BITMIME")),
        "{:?}",
        got[0].mail_options
    );
    assert!(
        got[0]
            .mail_options
            .iter()
            .any(|o| o.eq_ignore_ascii_case("SMTPUTF8")),
        "{:?}",
        got[0].mail_options
    );

    // SIZE= goes upstream because the sink offers SIZE (issue 6 item 12).
    assert!(
        got[0]
            .mail_options
            .contains(&format!("SIZE={}", data.len())),
        "{:?}",
        got[0].mail_options
    );

    // 7-bit mail without the flags gets SIZE only; the null sender stays null.
    let ascii = b"Subject: plain\r\n\r\nbody\r\n";
    let mut msg = out(&rcpts[1..], ascii);
    msg.sender = "";
    assert_eq!(relay.send(msg).await, vec![Delivery::Accepted]);
    let got = sink.wait_for(2, Duration::from_secs(20)).unwrap();
    assert_eq!(got[1].mail_from, "");
    assert_eq!(got[1].mail_options, [format!("SIZE={}", ascii.len())]);
    // Lines starting with a dot and a copy without a final CRLF arrive as
    // given; a bare LF is never sent.
    let dots = b"Subject: d\r\n\r\n.\r\n..two\r\n.\r\nx\r\nend";
    assert_eq!(
        relay.send(out(&rcpts[1..], dots)).await,
        vec![Delivery::Accepted]
    );
    let got = sink.wait_for(3, Duration::from_secs(20)).unwrap();
    assert_eq!(got[2].data, [dots.as_slice(), b"\r\n"].concat());
    let d = relay
        .send(out(&rcpts[1..], b"Subject: x\r\n\r\na\n.\r\nb\r\n"))
        .await;
    assert!(
        matches!(&d[0], Delivery::Permanent(r) if r.contains("bare LF")),
        "{d:?}"
    );
    // Larger than the upstream's SIZE: refused before MAIL, permanently.
    let big = [
        b"Subject: big\r\n\r\n".as_slice(),
        &b"0123456789\r\n".repeat(1000),
    ]
    .concat();
    let d = relay.send(out(&rcpts[1..], &big)).await;
    assert!(
        matches!(&d[0], Delivery::Permanent(r) if r.starts_with("552 5.3.4")),
        "{d:?}"
    );
    assert_eq!(sink.messages().len(), 3);
}

/// Issue 6 item 12: bytes an upstream (or anyone on the path) sends after its
/// `220` to STARTTLS and before the handshake are a protocol error: the copy
/// is deferred and nothing more is said. lettre read such bytes as the reply
/// to the EHLO after TLS.
#[tokio::test(flavor = "multi_thread")]
async fn a_reply_forged_before_the_tls_handshake_drops_the_connection() {
    let hostile = HostileUpstream::start(Misbehaviour::ForgeAfterStarttls);
    let relay = SmtpRelay::new(RelayConfig {
        upstream: format!("127.0.0.1:{}", hostile.port()),
        tls: TlsMode::Starttls,
        tls_verify: false,
        timeout_secs: 5,
        ..Default::default()
    })
    .unwrap();
    let rcpts = vec!["a@example.org".to_string()];
    let d = relay
        .send(out(&rcpts, b"Subject: s\r\n\r\nsecret\r\n"))
        .await;
    assert!(
        matches!(&d[0], Delivery::Transient(r) if r.contains("before the TLS handshake")),
        "{d:?}"
    );
    let log = hostile.wait_closed(Duration::from_secs(10));
    assert_eq!(log[1], "STARTTLS", "{log:?}");
    assert!(
        !log.iter()
            .any(|l| l == "<binary>" || l.starts_with("MAIL") || l.starts_with("AUTH")),
        "nothing after the forged reply: {log:?}"
    );
    assert_eq!(log.last().map(String::as_str), Some("<closed>"), "{log:?}");
}

/// Issue 6 item 12: after a timeout the connection is dropped, never used on
/// out of step. Before, the next RCPT was sent and got the late reply to the
/// first one, and DATA followed.
#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_command_drops_the_connection() {
    let hostile = HostileUpstream::start(Misbehaviour::SlowFirstRcpt {
        delay: Duration::from_secs(3),
    });
    let mut c = config(hostile.port());
    c.timeout_secs = 1;
    let rcpts = vec!["a@example.org".to_string(), "b@example.org".to_string()];
    let d = SmtpRelay::new(c)
        .unwrap()
        .send(out(&rcpts, b"Subject: s\r\n\r\nx\r\n"))
        .await;
    assert!(
        d.iter().all(|d| matches!(d, Delivery::Transient(_))),
        "{d:?}"
    );
    let log = hostile.wait_closed(Duration::from_secs(10));
    let rcpt_lines = log.iter().filter(|l| l.starts_with("RCPT")).count();
    assert_eq!(rcpt_lines, 1, "{log:?}");
    assert!(!log.iter().any(|l| l == "DATA"), "{log:?}");
    assert_eq!(log.last().map(String::as_str), Some("<closed>"), "{log:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_recipient_gets_its_verdict() {
    let sink = Sink::start_with(SinkOptions {
        reject_rcpt: vec![
            ("gone@example.org".into(), "550 5.1.1 no such user".into()),
            ("full@example.org".into(), "452 4.2.2 mailbox full".into()),
        ],
        ..Default::default()
    });
    let relay = SmtpRelay::new(config(sink.port())).unwrap();
    let rcpts: Vec<String> = ["gone@example.org", "ok@example.org", "full@example.org"]
        .map(String::from)
        .to_vec();
    let d = relay.send(out(&rcpts, b"Subject: x\r\n\r\nx\r\n")).await;
    assert!(
        matches!(&d[0], Delivery::Permanent(r) if r.contains("5.1.1")),
        "{d:?}"
    );
    assert_eq!(d[1], Delivery::Accepted);
    assert!(
        matches!(&d[2], Delivery::Transient(r) if r.contains("4.2.2")),
        "{d:?}"
    );
    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    assert_eq!(got[0].rcpt_to, vec!["ok@example.org".to_string()]);

    // Nobody accepted: no DATA at all.
    let d = relay.send(out(&rcpts[..1], b"x\r\n")).await;
    assert!(matches!(&d[0], Delivery::Permanent(_)));
}

#[tokio::test(flavor = "multi_thread")]
async fn failure_at_data_applies_to_accepted_recipients_only() {
    let sink = Sink::start_with(SinkOptions {
        temp_fail_data: true,
        reject_rcpt: vec![("gone@example.org".into(), "550 5.1.1 no such user".into())],
        ..Default::default()
    });
    let relay = SmtpRelay::new(config(sink.port())).unwrap();
    let rcpts: Vec<String> = ["gone@example.org", "ok@example.org"]
        .map(String::from)
        .to_vec();
    let d = relay.send(out(&rcpts, b"x\r\n")).await;
    assert!(
        matches!(&d[0], Delivery::Permanent(r) if r.contains("5.1.1")),
        "{d:?}"
    );
    assert!(
        matches!(&d[1], Delivery::Transient(r) if r.contains("4.3.0")),
        "{d:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn starttls_is_required_and_verified() {
    let (ca, cert) = localhost_cert();
    let sink = Sink::start_with(SinkOptions {
        starttls: Some(cert.pair()),
        ..Default::default()
    });
    let rcpts = vec!["a@example.org".to_string()];
    let tls_config = |verify: bool, ca_file: Option<std::path::PathBuf>| RelayConfig {
        upstream: format!("localhost:{}", sink.port()),
        tls: TlsMode::Starttls,
        tls_verify: verify,
        tls_ca_file: ca_file,
        timeout_secs: 5,
        ..Default::default()
    };

    // Trusted through relay.tls_ca_file: delivered over TLS.
    let relay = SmtpRelay::new(tls_config(true, Some(ca.cert_pem_path.clone()))).unwrap();
    assert_eq!(
        relay.send(out(&rcpts, b"x\r\n")).await,
        vec![Delivery::Accepted]
    );
    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    assert!(got[0].tls, "the transaction ran over STARTTLS");

    // Unknown CA with verification on: temporary failure, nothing sent.
    let relay = SmtpRelay::new(tls_config(true, None)).unwrap();
    let d = relay.send(out(&rcpts, b"x\r\n")).await;
    assert!(matches!(&d[0], Delivery::Transient(_)), "{d:?}");

    // tls_verify = false accepts it.
    let relay = SmtpRelay::new(tls_config(false, None)).unwrap();
    assert_eq!(
        relay.send(out(&rcpts, b"x\r\n")).await,
        vec![Delivery::Accepted]
    );
    assert_eq!(sink.wait_for(2, Duration::from_secs(20)).unwrap().len(), 2);

    // An upstream without STARTTLS when it is required: temporary failure.
    let plain = Sink::start();
    let mut c = config(plain.port());
    c.tls = TlsMode::Starttls;
    let d = SmtpRelay::new(c).unwrap().send(out(&rcpts, b"x\r\n")).await;
    assert!(
        matches!(&d[0], Delivery::Transient(r) if r.contains("STARTTLS")),
        "{d:?}"
    );
    assert!(plain.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_or_absent_upstream_is_a_temporary_failure() {
    // A listener that accepts and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut c = config(port);
    c.timeout_secs = 1;
    let rcpts = vec!["a@example.org".to_string()];
    let started = std::time::Instant::now();
    let d = SmtpRelay::new(c).unwrap().send(out(&rcpts, b"x\r\n")).await;
    assert!(matches!(&d[0], Delivery::Transient(_)), "{d:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the timeout"
    );
    drop(silent);

    let d = SmtpRelay::new(config(free_port()))
        .unwrap()
        .send(out(&rcpts, b"x\r\n"))
        .await;
    assert!(matches!(&d[0], Delivery::Transient(_)), "{d:?}");
}

#[test]
fn bad_relay_config_names_the_key() {
    let mut c = RelayConfig {
        auth_user: Some("u".into()),
        ..Default::default()
    };
    assert!(SmtpRelay::new(c.clone())
        .err()
        .unwrap()
        .contains("relay.auth_"));
    c.auth_password = Some("p".into());
    c.tls = TlsMode::None;
    assert!(SmtpRelay::new(c).err().unwrap().contains("relay.auth_user"));
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_over_starttls() {
    let (ca, cert) = localhost_cert();
    let sink = Sink::start_with(SinkOptions {
        starttls: Some(cert.pair()),
        auth: Some(("gw".into(), "s3cret".into())),
        ..Default::default()
    });
    let config = |password: &str| RelayConfig {
        upstream: format!("localhost:{}", sink.port()),
        tls: TlsMode::Starttls,
        tls_ca_file: Some(ca.cert_pem_path.clone()),
        auth_user: Some("gw".into()),
        auth_password: Some(password.into()),
        timeout_secs: 5,
        ..Default::default()
    };
    let rcpts = vec!["a@example.org".to_string()];
    let relay = SmtpRelay::new(config("s3cret")).unwrap();
    assert_eq!(
        relay.send(out(&rcpts, b"x\r\n")).await,
        vec![Delivery::Accepted]
    );
    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    assert_eq!(got[0].auth_user.as_deref(), Some("gw"));
    assert!(got[0].tls);

    // Wrong password: the upstream's 535 is a permanent verdict, nothing sent.
    let d = SmtpRelay::new(config("wrong"))
        .unwrap()
        .send(out(&rcpts, b"x\r\n"))
        .await;
    assert!(
        matches!(&d[0], Delivery::Permanent(r) if r.contains("535")),
        "{d:?}"
    );
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn addresses_are_written_as_one_path_never_as_syntax() {
    let sink = Sink::start();
    let relay = SmtpRelay::new(config(sink.port())).unwrap();
    let quoted = r#""victim@mandatory.example> ORCPT=rfc822;x"@open.example"#;
    let rcpts: Vec<String> = [
        quoted,
        r#""a\"b\\c"@example.org"#,
        "postmaster",
        // Not in RFC 5321 form (what the listener handed over before it kept
        // local parts quoted): refused, never written.
        "victim@mandatory.example> ORCPT=rfc822;x@open.example",
        "x@example.org>\r\nRCPT TO:<y@example.org",
    ]
    .map(String::from)
    .to_vec();
    let mut msg = out(&rcpts, b"Subject: q\r\n\r\nx\r\n");
    msg.sender = r#""app sender"@apps.test"#;
    let d = relay.send(msg).await;
    assert_eq!(
        d[..3],
        [Delivery::Accepted, Delivery::Accepted, Delivery::Accepted]
    );
    for refused in &d[3..] {
        assert!(
            matches!(refused, Delivery::Permanent(r) if r.starts_with("553 5.1.3")),
            "{d:?}"
        );
    }
    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    assert_eq!(
        got[0].commands,
        [
            r#"MAIL FROM:<"app sender"@apps.test>"#.to_string(),
            format!("RCPT TO:<{quoted}>"),
            r#"RCPT TO:<"a\"b\\c"@example.org>"#.to_string(),
            "RCPT TO:<postmaster>".to_string(),
        ],
        "exactly these lines, one path each"
    );
    // aiosmtpd (Python's address parser) reads each as one address, no
    // parameters.
    assert_eq!(got[0].rcpt_to, rcpts[..3]);
    assert!(got[0].rcpt_options.is_empty(), "{:?}", got[0].rcpt_options);
    assert_eq!(got[0].mail_from, r#""app sender"@apps.test"#);

    // A sender that is not one path: nothing is sent at all.
    let mut msg = out(&rcpts[..1], b"x\r\n");
    msg.sender = "a@apps.test> SIZE=1";
    let d = relay.send(msg).await;
    assert!(
        matches!(&d[0], Delivery::Permanent(r) if r.starts_with("553 5.1.7")),
        "{d:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.messages().len(), 1);
}

/// Issue 7 item 3: copies for the same upstream share one SMTP session (RSET
/// in between): three copies, one connection at the sink.
#[tokio::test(flavor = "multi_thread")]
async fn copies_share_one_connection() {
    let sink = Sink::start();
    // Sessions are counted by their EHLO (the sink's own readiness probe
    // connects without one).
    let connections = || sink.log_tail(10_000).matches(">> b'EHLO").count();
    let before = connections();
    let relay = SmtpRelay::new(config(sink.port())).unwrap();
    let rcpts = vec!["a@example.org".to_string()];
    for n in 0..3 {
        let data = format!("Subject: {n}\r\n\r\nbody\r\n");
        assert_eq!(
            relay.send(out(&rcpts, data.as_bytes())).await,
            vec![Delivery::Accepted]
        );
    }
    assert_eq!(sink.wait_for(3, Duration::from_secs(20)).unwrap().len(), 3);
    assert_eq!(
        connections() - before,
        1,
        "one connection for three copies:\n{}",
        sink.log_tail(60)
    );
}

/// Issue 7 item 3: with an upstream that offers PIPELINING (Postfix), the
/// RCPT commands go in one write and each recipient still gets its own
/// verdict.
#[tokio::test(flavor = "multi_thread")]
async fn pipelined_recipients_get_their_own_verdicts() {
    use sealgate_testkit::postfix::Postfix;
    let sink = Sink::start();
    let postfix = Postfix::start_with_config(
        sink.port(),
        &[(
            "smtpd_recipient_restrictions",
            "check_recipient_access inline:{gone@example.org=REJECT}, permit_mynetworks, reject",
        )],
    );
    let relay = SmtpRelay::new(config(postfix.port())).unwrap();
    let rcpts: Vec<String> = ["a@example.org", "gone@example.org", "b@example.org"]
        .map(String::from)
        .to_vec();
    let d = relay.send(out(&rcpts, b"Subject: p\r\n\r\nx\r\n")).await;
    assert_eq!(d[0], Delivery::Accepted);
    assert!(
        matches!(&d[1], Delivery::Permanent(t) if t.contains("554") || t.contains("5.7.1")),
        "{d:?}"
    );
    assert_eq!(d[2], Delivery::Accepted);
    let got = sink.wait_for(1, Duration::from_secs(60)).unwrap();
    let mut to = got
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect::<Vec<_>>();
    to.sort();
    assert_eq!(
        to,
        vec!["a@example.org".to_string(), "b@example.org".to_string()]
    );
}
