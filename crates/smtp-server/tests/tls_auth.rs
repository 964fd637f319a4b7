//! STARTTLS and AUTH, checked with the real `swaks` client and with a raw
//! OpenSSL client for the cases swaks cannot express.

mod common;

use std::pin::Pin;

use common::{Client, Server};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslVerifyMode};
use openssl::x509::{X509NameBuilder, X509};
use sealgate_smtp_server::{hash_password, AuthUser, ServerConfig};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// A TLS acceptor with a fresh self-signed P-256 certificate for mx.test.
fn acceptor() -> SslAcceptor {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "mx.test").unwrap();
    let name = name.build();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_serial_number(&BigNum::from_u32(1).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = cert.build();
    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor.set_private_key(&key).unwrap();
    acceptor.set_certificate(&cert).unwrap();
    acceptor.check_private_key().unwrap();
    acceptor.build()
}

/// TLS + one user alice/pw; 127.0.0.1 is NOT an allowed network, so relaying
/// works only after AUTH.
fn tls_auth_config(c: &mut ServerConfig) {
    c.tls = Some(acceptor());
    c.auth_users = vec![AuthUser {
        name: "alice".into(),
        password_hash: hash_password("pw"),
    }];
    c.allowed_networks = vec!["10.0.0.0/8".parse().unwrap()];
}

/// Runs swaks against the server; returns (exit success, transcript).
async fn swaks(server: &Server, extra: &[&str]) -> (bool, String) {
    let port = server.addr.port().to_string();
    let mut args = vec![
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--helo",
        "client.test",
        "--from",
        "y@example.org",
        "--to",
        "x@example.org",
        "--header",
        "Subject: swaks test",
        "--body",
        "hello from swaks",
        "--timeout",
        "20",
    ];
    args.extend_from_slice(extra);
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new("swaks").args(&args).output(),
    )
    .await
    .expect("swaks finishes")
    .expect("swaks runs");
    let transcript = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), transcript)
}

#[tokio::test]
async fn swaks_starttls_auth_plain_delivers_with_identity() {
    let server = Server::start(tls_auth_config).await;
    let (ok, t) = swaks(
        &server,
        &[
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "pw",
        ],
    )
    .await;
    assert!(ok, "{t}");
    assert!(t.contains("250-STARTTLS"), "{t}");
    assert!(t.contains("250-AUTH PLAIN LOGIN"), "{t}");
    assert!(t.contains("235 2.7.0 Authentication successful"), "{t}");
    let msgs = server.handler.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.client.authenticated_as.as_deref(), Some("alice"));
    assert!(m.client.tls);
    assert_eq!(m.client.helo, "client.test");
    assert_eq!(m.recipients, ["x@example.org"]);
    let data = String::from_utf8_lossy(&m.data);
    assert!(data.contains("Subject: swaks test\r\n"), "{data}");
    assert!(data.contains("hello from swaks"), "{data}");
}

#[tokio::test]
async fn swaks_starttls_auth_login() {
    let server = Server::start(tls_auth_config).await;
    let (ok, t) = swaks(
        &server,
        &[
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "pw",
        ],
    )
    .await;
    assert!(ok, "{t}");
    assert!(t.contains("334 VXNlcm5hbWU6"), "{t}");
    assert!(t.contains("235 2.7.0"), "{t}");
    let msgs = server.handler.messages();
    assert_eq!(msgs[0].client.authenticated_as.as_deref(), Some("alice"));
}

#[tokio::test]
async fn swaks_wrong_password_gets_535() {
    let server = Server::start(tls_auth_config).await;
    let (ok, t) = swaks(
        &server,
        &[
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "wrong",
        ],
    )
    .await;
    assert!(!ok, "{t}");
    assert!(
        t.contains("535 5.7.8 Authentication credentials invalid"),
        "{t}"
    );
    let (ok, t) = swaks(
        &server,
        &[
            "--tls",
            "--auth",
            "PLAIN",
            "--auth-user",
            "mallory",
            "--auth-password",
            "pw",
        ],
    )
    .await;
    assert!(!ok, "{t}");
    assert!(t.contains("535 5.7.8"), "{t}");
    assert!(server.handler.messages().is_empty());
    assert!(server.handler.rcpt_calls().is_empty());
}

#[tokio::test]
async fn swaks_tls_without_auth_outside_networks_is_denied() {
    let server = Server::start(tls_auth_config).await;
    let (ok, t) = swaks(&server, &["--tls"]).await;
    assert!(!ok, "{t}");
    assert!(
        t.contains("554 5.7.1 <x@example.org>: Relay access denied"),
        "{t}"
    );
    assert!(server.handler.rcpt_calls().is_empty());
    assert!(server.handler.messages().is_empty());
}

#[tokio::test]
async fn swaks_pipeline_plain_and_tls() {
    let server = Server::start(|c| c.tls = Some(acceptor())).await;
    let (ok, t) = swaks(&server, &["--pipeline"]).await;
    assert!(ok, "{t}");
    assert!(t.contains("250-PIPELINING"), "{t}");
    let (ok, t) = swaks(&server, &["--pipeline", "--tls"]).await;
    assert!(ok, "{t}");
    let msgs = server.handler.messages();
    assert_eq!(msgs.len(), 2);
    assert!(!msgs[0].client.tls && msgs[1].client.tls);
    assert!(msgs[1].client.authenticated_as.is_none());
}

#[tokio::test]
async fn auth_not_offered_and_refused_before_tls() {
    let server = Server::start(tls_auth_config).await;
    let mut c = server.client().await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("250-STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    c.expect(
        "AUTH PLAIN AGFsaWNlAHB3",
        "538 5.7.11 Encryption required for requested authentication mechanism",
    )
    .await;
    c.expect("AUTH LOGIN", "538 5.7.11").await;
    c.expect("MAIL FROM:<y@example.org>", "250").await;
    c.expect("RCPT TO:<x@example.org>", "554 5.7.1").await;
}

async fn tls_connect(tcp: TcpStream) -> SslStream<TcpStream> {
    let mut builder = SslConnector::builder(SslMethod::tls()).unwrap();
    builder.set_verify(SslVerifyMode::NONE);
    let ssl = builder
        .build()
        .configure()
        .unwrap()
        .verify_hostname(false)
        .into_ssl("mx.test")
        .unwrap();
    let mut tls = SslStream::new(ssl, tcp).unwrap();
    Pin::new(&mut tls).connect().await.expect("TLS handshake");
    tls
}

#[tokio::test]
async fn starttls_discards_pipelined_plaintext_and_resets_session() {
    let server = Server::start(tls_auth_config).await;
    let mut c = server.client().await;
    c.expect("EHLO client.test", "250-mx.test").await;
    // Plaintext injected behind STARTTLS must never be executed inside TLS.
    c.send("STARTTLS\r\nNOOP\r\n").await;
    c.expect_reply("220 2.0.0 Ready to start TLS").await;
    let tls = tls_connect(c.into_stream()).await;
    let mut c = Client::new(tls);
    // First reply under TLS answers our command (not the injected NOOP), and
    // the session is back to "not greeted".
    c.expect("MAIL FROM:<y@example.org>", "503 5.5.1").await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.contains("250-AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    c.expect("STARTTLS", "503 5.5.1").await;

    // AUTH PLAIN without initial response, cancelled.
    c.expect("AUTH PLAIN", "334 ").await;
    c.expect("*", "501 5.0.0").await;
    // AUTH LOGIN with a wrong password, then bad base64.
    c.expect("AUTH LOGIN", "334 VXNlcm5hbWU6").await;
    c.expect("YWxpY2U=", "334 UGFzc3dvcmQ6").await;
    c.expect("d3Jvbmc=", "535 5.7.8").await;
    c.expect("AUTH PLAIN !!!", "501 5.5.2").await;
    // AUTH PLAIN in two steps, correct.
    c.expect("AUTH PLAIN", "334 ").await;
    c.expect("AGFsaWNlAHB3", "235 2.7.0 Authentication successful")
        .await;
    c.expect("AUTH PLAIN AGFsaWNlAHB3", "503 5.5.1").await;
    // Authenticated: relaying from a non-allowed network is permitted.
    c.expect("MAIL FROM:<y@example.org>", "250").await;
    c.expect("AUTH LOGIN", "503 5.5.1").await;
    c.expect("RCPT TO:<x@example.org>", "250 2.1.5").await;
    c.expect("DATA", "354").await;
    c.send("over tls\r\n.\r\n").await;
    c.expect_reply("250").await;
    c.expect("QUIT", "221").await;
    let m = &server.handler.messages()[0];
    assert_eq!(m.client.authenticated_as.as_deref(), Some("alice"));
    assert!(m.client.tls);
    assert_eq!(m.data, b"over tls\r\n");
}

#[tokio::test]
async fn too_many_auth_failures_close_the_session() {
    let server = Server::start(tls_auth_config).await;
    let mut c = server.client().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("STARTTLS", "220").await;
    let mut c = Client::new(tls_connect(c.into_stream()).await);
    c.expect("EHLO client.test", "250").await;
    // \0alice\0bad
    c.expect("AUTH PLAIN AGFsaWNlAGJhZA==", "535 5.7.8").await;
    c.expect("AUTH PLAIN AGFsaWNlAGJhZA==", "535 5.7.8").await;
    c.expect("AUTH PLAIN AGFsaWNlAGJhZA==", "421 4.7.0").await;
}

#[tokio::test]
async fn failed_handshake_closes_quietly() {
    let server = Server::start(tls_auth_config).await;
    let mut c = server.client().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("STARTTLS", "220").await;
    c.send("this is not a TLS ClientHello\r\n").await;
    assert!(c.closed().await);
    // The listener carries on.
    let mut d = server.client().await;
    d.expect("EHLO client.test", "250-mx.test").await;
}

/// A TLS session from `from` (127.0.0.1 or 127.0.0.2), greeted under TLS.
async fn tls_session(server: &Server, from: &str) -> Client<SslStream<TcpStream>> {
    tls_session_with(server, from, None).await
}

/// [`tls_session`] with the client's socket receive buffer set.
async fn tls_session_with(
    server: &Server,
    from: &str,
    recv_buffer: Option<u32>,
) -> Client<SslStream<TcpStream>> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let mut c = Client::new(socket.connect(server.addr).await.unwrap());
    c.expect_reply("220 mx.test").await;
    c.expect("EHLO client.test", "250").await;
    c.expect("STARTTLS", "220").await;
    let mut c = Client::new(tls_connect(c.into_stream()).await);
    c.expect("EHLO client.test", "250").await;
    c
}

/// `\0alice\0bad` and `\0alice\0pw`.
const WRONG: &str = "AUTH PLAIN AGFsaWNlAGJhZA==";
const RIGHT: &str = "AUTH PLAIN AGFsaWNlAHB3";
/// Only the per-client failure budget produces this reply.
const RATE_LIMITED: &str =
    "454 4.7.0 Too many failed authentications from your address, try again later";

#[tokio::test]
async fn max_auth_failures_is_configurable() {
    let server = Server::start(|c| {
        tls_auth_config(c);
        c.max_auth_failures = 1;
    })
    .await;
    let mut c = tls_session(&server, "127.0.0.1").await;
    c.expect(
        WRONG,
        "421 4.7.0 mx.test Error: too many authentication failures",
    )
    .await;
    assert!(c.closed().await);
}

#[tokio::test]
async fn auth_failures_per_client_are_rate_limited() {
    let server = Server::start(|c| {
        tls_auth_config(c);
        c.max_auth_failures = 10;
        c.auth_failure_limit = 2;
    })
    .await;
    let mut c = tls_session(&server, "127.0.0.1").await;
    c.expect(WRONG, "535 5.7.8").await;
    c.expect(WRONG, "535 5.7.8").await;
    // Budget used up: refused before the SASL exchange, and no password
    // check runs, not even for the right password.
    c.expect(WRONG, RATE_LIMITED).await;
    c.expect("AUTH LOGIN", RATE_LIMITED).await;
    c.expect(RIGHT, RATE_LIMITED).await;
    // The session itself goes on.
    c.expect("NOOP", "250").await;
    // The budget is the client's, not the session's.
    let mut again = tls_session(&server, "127.0.0.1").await;
    again.expect(RIGHT, RATE_LIMITED).await;
    // Another client address is not affected.
    let mut other = tls_session(&server, "127.0.0.2").await;
    other.expect(RIGHT, "235 2.7.0").await;
}

#[tokio::test]
async fn parallel_sessions_cannot_overdraw_the_auth_budget() {
    let server = Server::start(|c| {
        tls_auth_config(c);
        c.auth_failure_limit = 2;
    })
    .await;
    let mut sessions = Vec::new();
    for _ in 0..6 {
        sessions.push(tls_session(&server, "127.0.0.1").await);
    }
    // All six ask at once: checks in progress count against the budget, so
    // only two password checks run.
    for c in &mut sessions {
        c.send(format!("{WRONG}\r\n")).await;
    }
    let mut replies = Vec::new();
    for c in &mut sessions {
        replies.push(c.reply().await);
    }
    let checked = replies
        .iter()
        .filter(|r| r.starts_with("535 5.7.8"))
        .count();
    let limited = replies.iter().filter(|r| *r == RATE_LIMITED).count();
    assert_eq!((checked, limited), (2, 4), "{replies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_pipelining_under_tls_is_answered_in_order() {
    // Replies the socket does not take at once stay queued and are retried
    // (a TLS write must be retried with the same bytes): all arrive, in order.
    let server = Server::start(tls_auth_config).await;
    // A small receive buffer, so the server's writes often cannot finish.
    let c = tls_session_with(&server, "127.0.0.1", Some(4096)).await;
    let (mut rd, mut wr) = tokio::io::split(c.into_stream());
    const N: usize = 6_000;
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let batch = format!("{}QUIT\r\n", "NOOP\r\n".repeat(N));
        wr.write_all(batch.as_bytes()).await.unwrap();
        wr
    });
    let mut all = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        use tokio::io::AsyncReadExt;
        // The server closes without a TLS close_notify; what came is enough.
        let _ = rd.read_to_end(&mut all).await;
    })
    .await
    .expect("all replies within 60 s");
    let _wr = writer.await.unwrap();
    let text = String::from_utf8(all).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), N + 1);
    assert!(lines[..N].iter().all(|l| *l == "250 2.0.0 Ok"));
    assert!(lines[N].starts_with("221 2.0.0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_read_late_under_tls_arrive_complete_and_in_order() {
    // The client pipelines a batch whose replies (about 84 KB) are more than
    // the sockets take, and reads only after a pause: the server keeps the
    // rest queued (under the unread bound), retries the interrupted TLS
    // writes with the grown queue, and everything arrives in order.
    let server = Server::start(tls_auth_config).await;
    let mut c = tls_session_with(&server, "127.0.0.1", Some(4096)).await;
    const N: usize = 6_000;
    c.send(format!("{}QUIT\r\n", "NOOP\r\n".repeat(N))).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let mut all = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(60), async {
        use tokio::io::AsyncReadExt;
        let _ = c.stream.read_to_end(&mut all).await;
    })
    .await
    .expect("all replies within 60 s");
    let text = String::from_utf8(all).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), N + 1);
    assert!(lines[..N].iter().all(|l| *l == "250 2.0.0 Ok"));
    assert!(lines[N].starts_with("221 2.0.0"));
}
