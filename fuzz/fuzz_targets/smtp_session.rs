//! A whole SMTP session through the public listener (`serve`): the bounded
//! line reader, command parsing (smtp-proto plus `address.rs`), the state
//! machine and the DATA decoder, over a loopback TCP connection.
//!
//! Input: byte 0 picks the listener (bare LF normalized or refused); the
//! rest is what the client sends, after which it closes its side and reads
//! every reply.
//!
//! Checks: no panic (a panicking session task aborts the process under
//! libFuzzer); the session ends once the client has closed (no hang); every
//! reply line is `NNN` + space or dash and ends in CRLF; what reaches the
//! handler holds no control character in addresses, and messages within the
//! limits with CRLF line endings and no NUL.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealgate_smtp_server::{serve, BareLf, ClientInfo, Envelope, Handler, Reply, ServerConfig};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

const MAX_MESSAGE: usize = 8 * 1024;
const MAX_LINE: usize = 1000;

struct Sink;

#[async_trait::async_trait]
impl Handler for Sink {
    type Token = ();

    async fn recipient(&self, _: &ClientInfo, sender: &str, address: &str) -> Result<(), Reply> {
        assert!(!sender.chars().any(char::is_control), "{sender:?}");
        assert!(!address.chars().any(char::is_control), "{address:?}");
        if address.starts_with("refuse") {
            return Err(Reply::new(550, (5, 1, 1), "No such user"));
        }
        Ok(())
    }

    async fn message(&self, envelope: Envelope<()>, data: Vec<u8>) -> Reply {
        assert!(!envelope.recipients.is_empty());
        assert!(data.len() <= MAX_MESSAGE, "message over the size limit");
        assert!(!data.contains(&0), "NUL in a message");
        for line in data.split_inclusive(|&b| b == b'\n') {
            assert!(line.ends_with(b"\r\n"), "line without CRLF");
            assert!(line.len() <= MAX_LINE, "line over the limit");
        }
        Reply::new(250, (2, 0, 0), "Ok: queued")
    }
}

fn config(bare_lf: BareLf) -> ServerConfig {
    let mut c = ServerConfig::new("fuzz.example");
    c.max_message_size = MAX_MESSAGE;
    c.max_line_length = MAX_LINE;
    c.max_recipients = 5;
    c.max_connections_per_client = 1000;
    c.command_timeout = Duration::from_secs(20);
    c.data_timeout = Duration::from_secs(20);
    c.bare_lf = bare_lf;
    c
}

/// Two listeners (bare LF normalized, refused) on one current-thread runtime.
fn listeners() -> &'static [SocketAddr; 2] {
    static ADDRS: OnceLock<[SocketAddr; 2]> = OnceLock::new();
    ADDRS.get_or_init(|| {
        // No std runtime start-up under libFuzzer: ignore SIGPIPE ourselves.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut addrs = Vec::new();
                let mut servers = Vec::new();
                for bare_lf in [BareLf::Normalize, BareLf::Reject] {
                    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    addrs.push(l.local_addr().unwrap());
                    servers.push(tokio::spawn(serve(
                        l,
                        Arc::new(config(bare_lf)),
                        Arc::new(Sink),
                        std::future::pending(),
                    )));
                }
                tx.send([addrs[0], addrs[1]]).unwrap();
                for s in servers {
                    let _ = s.await;
                }
            });
        });
        rx.recv().unwrap()
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((&which, sent)) = input.split_first() else {
        return;
    };
    let addr = listeners()[usize::from(which & 1)];
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut writer = conn.try_clone().unwrap();
    let mut replies = Vec::new();
    let mut complete = true;
    std::thread::scope(|s| {
        s.spawn(move || {
            // The server may close first (QUIT, too many errors): ignore
            // write errors.
            let _ = writer.write_all(sent);
            let _ = writer.shutdown(Shutdown::Write);
        });
        if let Err(e) = conn.read_to_end(&mut replies) {
            assert!(
                e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut,
                "the session did not end after the client closed"
            );
            // A reset (the server closed with input unread) may cut the
            // last reply line short.
            complete = false;
        }
    });
    // No TIME_WAIT left behind: close with a reset.
    let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
    drop(conn);

    let mut rest = &replies[..];
    while !rest.is_empty() {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            assert!(!complete, "reply line without CRLF");
            break;
        };
        let line = &rest[..end];
        assert!(
            line.len() >= 4
                && line[..3].iter().all(u8::is_ascii_digit)
                && (line[3] == b' ' || line[3] == b'-'),
            "malformed reply line {:?}",
            String::from_utf8_lossy(line)
        );
        assert!(
            !line.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0),
            "control byte in a reply line"
        );
        rest = &rest[end + 2..];
    }
});
