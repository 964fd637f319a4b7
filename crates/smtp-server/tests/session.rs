//! Scripted SMTP conversations against the real listener over TCP.

mod common;

use std::time::Duration;

use common::{Client, Server, REFUSED};
use sealgate_smtp_server::BareLf;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn greeted(server: &Server) -> Client<TcpStream> {
    let mut c = server.client().await;
    c.expect("EHLO client.test", "250-mx.test").await;
    c
}

#[tokio::test]
async fn full_transaction() {
    let server = Server::start(|_| {}).await;
    let mut c = server.client().await;
    let ehlo = c.cmd("EHLO client.test").await;
    let lines: Vec<&str> = ehlo.lines().collect();
    assert_eq!(
        lines,
        [
            "250-mx.test",
            "250-PIPELINING",
            &format!("250-SIZE {}", 52_428_800),
            "250-8BITMIME",
            "250-SMTPUTF8",
            "250-ENHANCEDSTATUSCODES",
            "250-DSN",
            "250-CHUNKING",
            "250 HELP"
        ]
    );
    c.expect("MAIL FROM:<app@example.com> BODY=8BITMIME", "250 2.1.0")
        .await;
    c.expect("RCPT TO:<alice@example.org>", "250 2.1.5").await;
    c.expect("RCPT TO:<bob@example.org>", "250 2.1.5").await;
    c.expect("DATA", "354 ").await;
    c.send("Subject: hi\r\n\r\n..dotted\r\nbody\r\n.\r\n").await;
    c.expect_reply("250 2.0.0 Ok: queued as 1").await;
    c.expect("QUIT", "221 2.0.0").await;
    assert!(c.closed().await);

    let msgs = server.handler.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.sender, "app@example.com");
    assert_eq!(m.recipients, ["alice@example.org", "bob@example.org"]);
    assert_eq!(
        m.tokens,
        [
            "token:app@example.com:alice@example.org",
            "token:app@example.com:bob@example.org"
        ]
    );
    assert!(m.body_8bitmime && !m.smtputf8);
    assert_eq!(m.data, b"Subject: hi\r\n\r\n.dotted\r\nbody\r\n");
    assert_eq!(m.client.helo, "client.test");
    assert!(!m.client.tls && m.client.authenticated_as.is_none());
    assert_eq!(m.client.peer.ip().to_string(), "127.0.0.1");
}

#[tokio::test]
async fn null_sender_and_two_transactions_in_one_session() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    for i in 1..=2 {
        c.expect("MAIL FROM:<>", "250 2.1.0").await;
        c.expect("RCPT TO:<alice@example.org>", "250").await;
        c.expect("DATA", "354").await;
        c.send(format!("message {i}\r\n.\r\n")).await;
        c.expect_reply("250 2.0.0").await;
    }
    let msgs = server.handler.messages();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].sender, "");
    assert_eq!(msgs[1].data, b"message 2\r\n");
}

#[tokio::test]
async fn pipelined_commands_in_one_write() {
    let server = Server::start(|_| {}).await;
    let mut c = server.client().await;
    c.send(
        "EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<x@example.org>\r\n\
         RCPT TO:<refused@example.org>\r\nRCPT TO:<y@example.org>\r\nDATA\r\n",
    )
    .await;
    c.expect_reply("250-mx.test").await;
    c.expect_reply("250 2.1.0").await;
    c.expect_reply("250 2.1.5").await;
    c.expect_reply("550 5.1.1 <refused@example.org>: no such user")
        .await;
    c.expect_reply("250 2.1.5").await;
    c.expect_reply("354").await;
    // The message, the end of data and the next commands in one write.
    c.send("pipelined\r\n.\r\nRSET\r\nQUIT\r\n").await;
    c.expect_reply("250 2.0.0 Ok: queued").await;
    c.expect_reply("250 2.0.0").await;
    c.expect_reply("221").await;
    let msgs = server.handler.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].recipients, ["x@example.org", "y@example.org"]);
    assert_eq!(msgs[0].data, b"pipelined\r\n");
    assert!(server.handler.rcpt_calls().contains(&REFUSED.to_string()));
}

#[tokio::test]
async fn rset_noop_vrfy_help() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    c.expect("NOOP", "250 2.0.0").await;
    c.expect(
        "VRFY alice",
        "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery",
    )
    .await;
    c.expect("HELP", "214 2.0.0").await;
    c.expect("EXPN list", "502 5.5.1").await;
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect("RCPT TO:<x@example.org>", "250").await;
    c.expect("RSET", "250 2.0.0").await;
    // The transaction is gone, the greeting is not.
    c.expect("RCPT TO:<x@example.org>", "503 5.5.1").await;
    c.expect("DATA", "503 5.5.1").await;
    c.expect("MAIL FROM:<b@example.com>", "250 2.1.0").await;
    c.expect("QUIT", "221").await;
    assert!(server.handler.messages().is_empty());
}

#[tokio::test]
async fn out_of_order_commands() {
    let server = Server::start(|_| {}).await;
    let mut c = server.client().await;
    c.expect("MAIL FROM:<a@example.com>", "503 5.5.1").await;
    c.expect("RCPT TO:<x@example.org>", "503 5.5.1").await;
    c.expect("DATA", "503 5.5.1").await;
    c.expect("HELO client.test", "250 mx.test").await;
    c.expect("RCPT TO:<x@example.org>", "503 5.5.1").await;
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect("MAIL FROM:<a@example.com>", "503 5.5.1").await;
    c.expect("DATA", "554 5.5.1 No valid recipients").await;
    c.expect("RCPT TO:<refused@example.org>", "550 5.1.1").await;
    c.expect("DATA", "554 5.5.1 No valid recipients").await;
    c.send("BDAT 10 LAST\r\n0123456789").await;
    c.expect_reply("554 5.5.1 No valid recipients").await;
    c.expect("MAIL FROM:a@example.com", "501 5.5.4").await;
    c.expect("QUIT", "221").await;
    assert!(server.handler.messages().is_empty());
}

#[tokio::test]
async fn garbage_bytes_and_too_many_errors() {
    let server = Server::start(|_| {}).await;
    let mut c = server.client().await;
    c.send(b"\x00\xff\xfe\x16\x03\x01garbage\r\n").await;
    c.expect_reply("500 5.5.2").await;
    c.expect("FOO bar", "500 5.5.2").await;
    // A good command resets the counter.
    c.expect("NOOP", "250").await;
    for _ in 0..9 {
        c.expect("XYZZY", "500 5.5.2").await;
    }
    c.expect("XYZZY", "421 4.7.0").await;
    assert!(c.closed().await);
    // Other clients are unaffected.
    let mut d = greeted(&server).await;
    d.expect("NOOP", "250").await;
}

#[tokio::test]
async fn unsupported_parameters_and_commands() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<a@example.com> BODY=BINARYMIME", "555 5.5.4")
        .await;
    c.expect("MAIL FROM:<a@example.com> FOO=BAR", "555 5.5.4")
        .await;
    c.expect("MAIL FROM:<a@example.com> SIZE=100", "250").await;
    c.expect(
        "RCPT TO:<x@example.org> RRVS=2030-01-01T00:00:00Z",
        "555 5.5.4",
    )
    .await;
    c.expect("STARTTLS", "502 5.5.1").await;
    // No users configured: AUTH is not offered at all.
    c.expect("AUTH PLAIN AGEAYg==", "502 5.5.1").await;
}

#[tokio::test]
async fn smtputf8_addresses() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<jörg@example.com>", "553 5.6.7").await;
    c.expect("MAIL FROM:<jörg@example.com> SMTPUTF8", "250")
        .await;
    c.expect("RCPT TO:<zoë@example.org>", "250 2.1.5").await;
    c.expect("DATA", "354").await;
    c.send("Subject: grüße\r\n\r\nhä\r\n.\r\n").await;
    c.expect_reply("250").await;
    let m = &server.handler.messages()[0];
    assert!(m.smtputf8);
    assert_eq!(m.sender, "jörg@example.com");
    assert_eq!(m.recipients, ["zoë@example.org"]);
    assert_eq!(m.data, "Subject: grüße\r\n\r\nhä\r\n".as_bytes());
}

#[tokio::test]
async fn declared_size_over_limit() {
    let server = Server::start(|c| c.max_message_size = 1000).await;
    let mut c = server.client().await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("250-SIZE 1000"), "{ehlo}");
    c.expect(
        "MAIL FROM:<a@example.com> SIZE=1001",
        "552 5.3.4 Message size exceeds fixed maximum message size",
    )
    .await;
    c.expect("MAIL FROM:<a@example.com> SIZE=1000", "250").await;
}

#[tokio::test]
async fn actual_size_over_limit() {
    let server = Server::start(|c| c.max_message_size = 1000).await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect("RCPT TO:<x@example.org>", "250").await;
    c.expect("DATA", "354").await;
    let line = format!("{}\r\n", "x".repeat(98));
    for _ in 0..50 {
        c.send(&line).await;
    }
    c.send(".\r\n").await;
    c.expect_reply("552 5.3.4 Message size exceeds fixed maximum message size")
        .await;
    // The session is still in sync and usable; the transaction is over.
    c.expect("NOOP", "250").await;
    c.expect("RCPT TO:<x@example.org>", "503").await;
    assert!(server.handler.messages().is_empty());
}

#[tokio::test]
async fn too_many_recipients() {
    // Refused recipients count too: a client cannot make one transaction run
    // unlimited handler (key) lookups by sending refused addresses.
    let server = Server::start(|c| c.max_recipients = 3).await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect("RCPT TO:<r1@example.org>", "250").await;
    c.expect("RCPT TO:<refused@example.org>", "550").await;
    c.expect("RCPT TO:<r2@example.org>", "250").await;
    c.expect("RCPT TO:<r3@example.org>", "452 4.5.3 Too many recipients")
        .await;
    c.expect("RCPT TO:<refused@example.org>", "452 4.5.3").await;
    c.expect("DATA", "354").await;
    c.send("hi\r\n.\r\n").await;
    c.expect_reply("250").await;
    assert_eq!(
        server.handler.messages()[0].recipients,
        ["r1@example.org", "r2@example.org"]
    );
    assert_eq!(
        server.handler.rcpt_calls().len(),
        3,
        "no handler call past the limit"
    );
    assert!(!server
        .handler
        .rcpt_calls()
        .contains(&"r3@example.org".into()));
    // The next transaction starts counting afresh.
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect("RCPT TO:<r4@example.org>", "250").await;
}

#[tokio::test]
async fn overlong_command_line() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    c.expect(
        &format!("NOOP {}", "a".repeat(5000)),
        "500 5.5.2 Line too long",
    )
    .await;
    // Exactly at the limit (4096 bytes with CRLF) is accepted.
    c.expect(&format!("NOOP {}", "a".repeat(4096 - 7)), "250")
        .await;
    c.expect(&format!("NOOP {}", "a".repeat(4096 - 6)), "500 5.5.2")
        .await;
    c.expect("MAIL FROM:<a@example.com>", "250").await;
}

#[tokio::test]
async fn overlong_data_line() {
    let server = Server::start(|c| c.max_line_length = 100).await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect("RCPT TO:<x@example.org>", "250").await;
    c.expect("DATA", "354").await;
    c.send(format!("ok\r\n{}\r\nafter\r\n.\r\n", "y".repeat(150)))
        .await;
    c.expect_reply("554 5.6.0 Message has a line longer than 100 octets")
        .await;
    c.expect("NOOP", "250").await;
    assert!(server.handler.messages().is_empty());
}

async fn send_message(c: &mut Client<TcpStream>, data: &[u8]) -> String {
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect("RCPT TO:<x@example.org>", "250").await;
    c.expect("DATA", "354").await;
    c.send(data).await;
    c.reply().await
}

#[tokio::test]
async fn bare_lf_normalized() {
    let server = Server::start(|c| c.bare_lf = BareLf::Normalize).await;
    let mut c = greeted(&server).await;
    let r = send_message(&mut c, b"Subject: lf\n\nline\nline2\r\n.\r\n").await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(
        server.handler.messages()[0].data,
        b"Subject: lf\r\n\r\nline\r\nline2\r\n"
    );
}

#[tokio::test]
async fn bare_lf_rejected() {
    let server = Server::start(|c| c.bare_lf = BareLf::Reject).await;
    let mut c = greeted(&server).await;
    let r = send_message(&mut c, b"Subject: lf\n\nline\r\n.\r\n").await;
    assert_eq!(r, "550 5.6.0 Message contains bare CR or LF line endings");
    assert!(server.handler.messages().is_empty());
    // A clean message afterwards goes through.
    let r = send_message(&mut c, b"Subject: crlf\r\n\r\nline\r\n.\r\n").await;
    assert!(r.starts_with("250"), "{r}");
}

#[tokio::test]
async fn nul_rejected() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    let r = send_message(&mut c, b"Subject: x\r\n\r\na\0b\r\n.\r\n").await;
    assert_eq!(r, "554 5.6.0 Message contains NUL characters");
    assert!(server.handler.messages().is_empty());
}

#[tokio::test]
async fn smuggling_attempt_stays_inside_the_message() {
    let server = Server::start(|c| c.bare_lf = BareLf::Normalize).await;
    let mut c = greeted(&server).await;
    let r = send_message(
        &mut c,
        b"Subject: outer\r\n\r\nhello\n.\nMAIL FROM:<evil@example.com>\r\n\
          RCPT TO:<victim@example.org>\r\nDATA\r\nFrom: ceo\r\n\r\nsmuggled\r\n\
          x\r\n.\n\r\n.\r\n",
    )
    .await;
    assert!(r.starts_with("250 2.0.0 Ok: queued as 1"), "{r}");
    c.expect("QUIT", "221").await;
    let msgs = server.handler.messages();
    assert_eq!(msgs.len(), 1, "exactly one message");
    let text = String::from_utf8(msgs[0].data.clone()).unwrap();
    assert!(text.contains("MAIL FROM:<evil@example.com>\r\n"));
    assert!(text.ends_with("x\r\n.\r\n\r\n"), "{text:?}");
    assert_eq!(server.handler.rcpt_calls(), ["x@example.org"]);
}

#[tokio::test]
async fn client_outside_allowed_networks_is_denied() {
    let server = Server::start(|c| c.allowed_networks = vec!["10.0.0.0/8".parse().unwrap()]).await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect(
        "RCPT TO:<alice@example.org>",
        "554 5.7.1 <alice@example.org>: Relay access denied",
    )
    .await;
    c.expect("DATA", "554 5.5.1").await;
    assert!(server.handler.rcpt_calls().is_empty(), "handler not called");
    assert!(server.handler.messages().is_empty());
}

#[tokio::test]
async fn stalled_client_times_out_and_others_are_served() {
    let server = Server::start(|c| c.command_timeout = Duration::from_secs(1)).await;
    let mut stalled = server.client().await;
    stalled.send("EHLO half-a-comm").await; // no CRLF: never complete
    let started = std::time::Instant::now();
    stalled
        .expect_reply("421 4.4.2 mx.test Error: timeout exceeded")
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(stalled.closed().await);

    let mut c = greeted(&server).await;
    let r = send_message(&mut c, b"after the stall\r\n.\r\n").await;
    assert!(r.starts_with("250"), "{r}");
}

#[tokio::test]
async fn stalled_data_times_out() {
    let server = Server::start(|c| c.data_timeout = Duration::from_secs(1)).await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect("RCPT TO:<x@example.org>", "250").await;
    c.expect("DATA", "354").await;
    c.send("partial message\r\n").await;
    c.expect_reply("421 4.4.2").await;
    assert!(c.closed().await);
    assert!(server.handler.messages().is_empty());
}

#[tokio::test]
async fn slow_drip_data_hits_the_deadline() {
    // Each read comes well within data_timeout, but the whole DATA phase may
    // not outlast data_deadline.
    let server = Server::start(|c| {
        c.data_timeout = Duration::from_secs(2);
        c.data_deadline = Duration::from_secs(2);
    })
    .await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect("RCPT TO:<x@example.org>", "250").await;
    c.expect("DATA", "354").await;
    let started = std::time::Instant::now();
    for _ in 0..12 {
        // The server closes after the deadline; later writes may fail.
        if c.stream.write_all(b"drip\r\n").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    c.expect_reply("421 4.4.2").await;
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(server.handler.messages().is_empty());
}

#[tokio::test]
async fn connection_limit() {
    let server = Server::start(|c| c.max_connections = 1).await;
    let mut first = server.client().await;
    let mut second = Client::connect(server.addr).await;
    second
        .expect_reply("421 4.3.2 Too many connections, try again later")
        .await;
    assert!(second.closed().await);
    first.expect("QUIT", "221").await;
    assert!(first.closed().await);
    // Once the first session is gone, the slot is free again.
    let mut served = false;
    for _ in 0..50 {
        let mut c = Client::connect(server.addr).await;
        if c.reply().await.starts_with("220") {
            c.expect("QUIT", "221").await;
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "a new client is served after the first left");
}

#[tokio::test]
async fn shutdown_says_goodbye_to_idle_sessions() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    let stop = tokio::spawn(server.stop());
    c.expect_reply("421 4.3.2").await;
    assert!(c.closed().await);
    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .expect("serve returns promptly")
        .unwrap();
}

#[tokio::test]
async fn handler_reply_is_passed_through_and_session_resets() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect(
        "RCPT TO:<refused@example.org>",
        "550 5.1.1 <refused@example.org>: no such user",
    )
    .await;
    c.expect("RCPT TO:<ok@example.org>", "250").await;
    c.expect("DATA", "354").await;
    c.send(".\r\n").await;
    c.expect_reply("250 2.0.0 Ok: queued as 1").await;
    // After DATA: no transaction, still greeted.
    c.expect("RCPT TO:<ok@example.org>", "503 5.5.1").await;
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    assert_eq!(server.handler.messages()[0].data, b"");
}

#[tokio::test]
async fn heavy_pipelining_is_answered_in_order() {
    let server = Server::start(|_| {}).await;
    let c = greeted(&server).await;
    let (mut rd, mut wr) = tokio::io::split(c.into_stream());
    const N: usize = 20_000;
    // The client keeps writing while the server answers; replies must come
    // back complete and in order (output is flushed as it piles up).
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut batch = String::new();
        for i in 0..N {
            batch.push_str(if i % 2 == 0 { "NOOP\r\n" } else { "RSET\r\n" });
        }
        batch.push_str("QUIT\r\n");
        wr.write_all(batch.as_bytes()).await.unwrap();
        wr
    });
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::AsyncReadExt;
        rd.read_to_end(&mut all).await.unwrap();
    })
    .await
    .expect("all replies within 30 s");
    let _wr = writer.await.unwrap();
    let text = String::from_utf8(all).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), N + 1);
    assert!(lines[..N].iter().all(|l| *l == "250 2.0.0 Ok"));
    assert!(lines[N].starts_with("221 2.0.0"));
}

#[tokio::test]
async fn mail_auth_parameter_is_accepted() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<a@example.com> AUTH=<>", "250 2.1.0")
        .await;
}

/// Issue 7 item 5: RET, ENVID, NOTIFY and ORCPT (RFC 3461) reach the
/// handler, decoded; a decoded control character (it would end up in a DSN
/// or the upstream dialogue) and NOTIFY=NEVER with others are refused.
/// Before, every DSN parameter got 555.
#[tokio::test]
async fn dsn_parameters_reach_the_handler() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    c.expect(
        "MAIL FROM:<a@example.com> ENVID=QQ+2B1+0D RET=HDRS",
        "501 5.5.4",
    )
    .await;
    c.expect("MAIL FROM:<a@example.com> RET=HDRS ENVID=QQ+2B1", "250")
        .await;
    c.expect("RCPT TO:<x@example.org> NOTIFY=NEVER,SUCCESS", "501 5.5.4")
        .await;
    c.expect(
        "RCPT TO:<x@example.org> ORCPT=rfc822;x+0D+0AEVIL@example.org",
        "501 5.5.4",
    )
    .await;
    c.expect(
        "RCPT TO:<x@example.org> NOTIFY=DELAY,SUCCESS ORCPT=rfc822;Old+2BX@Example.org",
        "250",
    )
    .await;
    c.expect("RCPT TO:<y@example.org> NOTIFY=NEVER", "250")
        .await;
    c.expect("RCPT TO:<z@example.org>", "250").await;
    c.expect("DATA", "354").await;
    c.send("x\r\n.\r\n").await;
    c.expect_reply("250").await;
    let m = &server.handler.messages()[0];
    assert_eq!(m.ret, Some(sealgate_smtp_server::DsnRet::Hdrs));
    assert_eq!(m.envid.as_deref(), Some("QQ+1"));
    assert_eq!(
        m.dsn,
        vec![
            (
                Some("SUCCESS,DELAY".to_string()),
                Some("rfc822;Old+X@Example.org".to_string())
            ),
            (Some("NEVER".to_string()), None),
            (None, None),
        ]
    );
}

/// Issue 7 item 5: BDAT (RFC 3030 CHUNKING): chunks are joined byte for
/// byte (no dot-unstuffing), a last line without CRLF gets one, refused
/// chunks are still read so the session stays in step, DATA cannot follow
/// BDAT, and the size limit holds. Before, BDAT got 502.
#[tokio::test]
async fn bdat_chunks_make_one_message() {
    let server = Server::start(|c| c.max_message_size = 2000).await;
    let mut c = greeted(&server).await;
    // Without a transaction: refused, and its 5 bytes are not a command.
    c.send("BDAT 5\r\nRSET\n").await;
    c.expect_reply("503 5.5.1").await;
    c.expect("NOOP", "250").await;
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect("RCPT TO:<x@example.org>", "250").await;
    c.send("BDAT 14\r\nSubject: a\r\n\r\n").await;
    c.expect_reply("250 2.0.0 14 octets received").await;
    c.expect("DATA", "503 5.5.1").await;
    c.send("BDAT 10 LAST\r\n.dot\r\nlast").await;
    c.expect_reply("250 2.0.0").await;
    let m = &server.handler.messages()[0];
    assert_eq!(m.data, b"Subject: a\r\n\r\n.dot\r\nlast\r\n");
    // Over the size limit: refused at the chunk, the session goes on.
    c.expect("MAIL FROM:<a@example.com>", "250").await;
    c.expect("RCPT TO:<x@example.org>", "250").await;
    let big = format!("BDAT 3000\r\n{}", "a\r\n".repeat(1000));
    c.send(big).await;
    c.expect_reply("552 5.3.4").await;
    c.expect("NOOP", "250").await;
    assert_eq!(server.handler.messages().len(), 1);
}

/// Issue 7 item 7: `max_inflight_bytes` is one budget for all sessions: a
/// message that does not fit beside the ones in flight gets 452 4.3.1 (read
/// to its end, the session goes on); the oldest message in flight always
/// goes on, so one gets through; the bytes come back after.
#[tokio::test]
async fn inflight_budget_refuses_with_452() {
    let server = Server::start(|c| c.max_inflight_bytes = 4000).await;
    let mut a = greeted(&server).await;
    let mut b = greeted(&server).await;
    for c in [&mut a, &mut b] {
        c.expect("MAIL FROM:<a@example.com>", "250").await;
        c.expect("RCPT TO:<x@example.org>", "250").await;
        c.expect("DATA", "354").await;
    }
    let lines = |n: usize| "aaaaaaaa\r\n".repeat(n / 10);
    // a holds 3000 bytes and is the oldest in flight.
    a.send(lines(3000)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // b does not fit beside it.
    b.send(format!("{}.\r\n", lines(2000))).await;
    b.expect_reply("452 4.3.1").await;
    // a goes on past the budget: the oldest always does.
    a.send(format!("{}.\r\n", lines(3000))).await;
    a.expect_reply("250").await;
    // The bytes came back: b is taken now, also over BDAT.
    b.expect("MAIL FROM:<a@example.com>", "250").await;
    b.expect("RCPT TO:<x@example.org>", "250").await;
    b.send(format!("BDAT 3500 LAST\r\n{}", lines(3500))).await;
    b.expect_reply("250").await;
    assert_eq!(server.handler.messages().len(), 2);
}
