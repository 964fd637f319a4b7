//! Envelope addresses are data, never syntax: what the handler receives is the
//! RFC 5321 form of the path (quoted local parts stay quoted), and paths that
//! cannot be represented get 553 with 5.1.3 (recipient) or 5.1.7 (sender).

mod common;

use common::{Client, Server};
use tokio::net::TcpStream;

async fn greeted(server: &Server) -> Client<TcpStream> {
    let mut c = server.client().await;
    c.expect("EHLO client.test", "250-mx.test").await;
    c
}

/// Sends raw bytes (a line with its own ending) and returns the reply.
async fn raw(c: &mut Client<TcpStream>, bytes: &[u8]) -> String {
    c.send(bytes).await;
    c.reply().await
}

#[tokio::test]
async fn quoted_local_parts_reach_the_handler_quoted() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    c.expect(r#"MAIL FROM:<"app sender"@apps.example>"#, "250 2.1.0")
        .await;
    let injection = r#""victim@mandatory.example> ORCPT=rfc822;x"@open.example"#;
    c.expect(&format!("RCPT TO:<{injection}>"), "250 2.1.5")
        .await;
    c.expect(r#"RCPT TO:<"a\"b\\c"@example.org>"#, "250 2.1.5")
        .await;
    // Quotes around a dot-atom are dropped; a source route is ignored.
    c.expect(r#"RCPT TO:<"plain"@example.org>"#, "250 2.1.5")
        .await;
    c.expect("RCPT TO:<@relay.example:routed@example.org>", "250 2.1.5")
        .await;
    c.expect("RCPT TO:<u@[192.0.2.1]>", "250 2.1.5").await;
    c.expect("RCPT TO:<postmaster>", "250 2.1.5").await;
    c.expect("DATA", "354").await;
    c.send("Subject: q\r\n\r\nbody\r\n.\r\n").await;
    c.expect_reply("250").await;

    let expected = [
        injection,
        r#""a\"b\\c"@example.org"#,
        "plain@example.org",
        "routed@example.org",
        "u@[192.0.2.1]",
        "postmaster",
    ];
    assert_eq!(server.handler.rcpt_calls(), expected);
    let m = &server.handler.messages()[0];
    assert_eq!(m.sender, r#""app sender"@apps.example"#);
    assert_eq!(m.recipients, expected);
    assert_eq!(
        m.tokens[0],
        format!("token:\"app sender\"@apps.example:{injection}")
    );
}

#[tokio::test]
async fn unrepresentable_recipients_get_553_5_1_3() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<a@apps.example>", "250").await;
    let cases: [(&[u8], &str); 11] = [
        (b"RCPT TO:<a\rb@example.org>\r\n", "control character"),
        (b"RCPT TO:<\"a\rb\"@example.org>\r\n", "control character"),
        (b"RCPT TO:<\"a\0b\"@example.org>\r\n", "control character"),
        (b"RCPT TO:<a\0b@example.org>\r\n", "control character"),
        (
            b"RCPT TO:<\"victim@mandatory.example>\r\n",
            "unbalanced quote",
        ),
        (b"RCPT TO:<ab\"@example.org>\r\n", "unbalanced quote"),
        (b"RCPT TO:<ab@example.org\r\n", "angle brackets"),
        (b"RCPT TO:<ab@example.org>>\r\n", "angle brackets"),
        (b"RCPT TO:<a<b@example.org>\r\n", "angle brackets"),
        (b"RCPT TO:<>\r\n", "empty"),
        (b"RCPT TO:<root>\r\n", "no domain"),
    ];
    for (i, (line, why)) in cases.iter().enumerate() {
        let r = raw(&mut c, line).await;
        assert!(
            r.starts_with("553 5.1.3 ") && r.contains(why),
            "{}: {r}",
            line.escape_ascii()
        );
        if i % 5 == 4 {
            // Keep clear of the bad-command limit.
            c.expect("NOOP", "250").await;
        }
    }
    c.expect(r#"RCPT TO:<a"b"c@example.org>"#, "553 5.1.3")
        .await;
    c.expect("RCPT TO:<a@\"x@y\">", "553 5.1.3").await;
    assert!(
        server.handler.rcpt_calls().is_empty(),
        "{:?}",
        server.handler.rcpt_calls()
    );
    // The transaction goes on.
    c.expect("RCPT TO:<ok@example.org>", "250 2.1.5").await;
    assert_eq!(server.handler.rcpt_calls(), ["ok@example.org"]);
}

#[tokio::test]
async fn unrepresentable_senders_get_553_5_1_7() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    for line in [
        &b"MAIL FROM:<a\rb@apps.example>\r\n"[..],
        b"MAIL FROM:<\"a\0b\"@apps.example>\r\n",
        b"MAIL FROM:<\"ab@apps.example>\r\n",
        b"MAIL FROM:<ab@apps.example\r\n",
        b"MAIL FROM:<postmaster>\r\n",
    ] {
        let r = raw(&mut c, line).await;
        assert!(r.starts_with("553 5.1.7 "), "{}: {r}", line.escape_ascii());
    }
    // Sequencing errors come first; a good sender is still taken.
    c.expect("RCPT TO:<\"x@example.org>", "503 5.5.1").await;
    c.expect(r#"MAIL FROM:<"ok"@apps.example> SIZE=10"#, "250")
        .await;
    c.expect("MAIL FROM:<\"x@example.org>", "503 5.5.1").await;
}

#[tokio::test]
async fn postmaster_and_null_sender_stay_distinct() {
    let server = Server::start(|_| {}).await;
    let mut c = greeted(&server).await;
    c.expect("MAIL FROM:<>", "250").await;
    c.expect("RCPT TO:<PostMaster>", "250 2.1.5").await;
    c.expect("DATA", "354").await;
    c.send("Subject: bounce\r\n\r\nbody\r\n.\r\n").await;
    c.expect_reply("250").await;
    let m = &server.handler.messages()[0];
    assert_eq!(m.sender, "");
    assert_eq!(m.recipients, ["PostMaster"]);
}
