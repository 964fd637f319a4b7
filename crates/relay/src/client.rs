//! One SMTP client connection to the upstream, written for the relay alone.
//!
//! Why not lettre: after `220` to STARTTLS, lettre upgrades the stream under
//! its read buffer, so reply bytes an attacker on the path pipelined into the
//! plaintext phase are read as if they had come over TLS (the STARTTLS
//! injection class of bugs). Here the read buffer is ours: bytes waiting in
//! it when the handshake starts are a protocol error and the connection is
//! dropped. Every read and write is bounded by a timeout, replies are bounded
//! in size, and after any failure that is not a well-formed reply (a timeout,
//! an I/O, TLS or protocol error) the connection is [`Broken`] and must not be
//! used again, so a late reply can never be taken for the next command's.

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// Longest reply line accepted (RFC 5321 allows 512 octets).
const MAX_REPLY_LINE: usize = 2048;
/// Most lines in one reply (an EHLO answer has one per extension).
const MAX_REPLY_LINES: usize = 100;

/// A complete reply: its code and the text of every line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// `550 5.1.1 no such user` (lines joined with spaces).
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }
}

/// Why a step failed.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// A well-formed negative reply; the dialogue is still in step.
    Refused(Reply),
    /// Timeout, I/O, TLS or protocol error: the connection is out of step
    /// and is dropped.
    Broken(String),
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

enum Stream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
    /// Between taking the plain stream and storing the TLS one.
    Gone,
}

impl Stream {
    fn io(&mut self) -> Option<&mut dyn Io> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(s) => Some(s.as_mut()),
            Stream::Gone => None,
        }
    }
}

/// How TLS to the upstream is checked.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    pub connector: SslConnector,
    pub verify: bool,
}

impl TlsSettings {
    /// The system roots plus `ca_file` (PEM); no verification at all when
    /// `verify` is false.
    pub fn new(verify: bool, ca_file: Option<&std::path::Path>) -> Result<TlsSettings, String> {
        let mut b = SslConnector::builder(SslMethod::tls_client())
            .map_err(|e| format!("relay TLS setup: {e}"))?;
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("relay.tls_ca_file: {}: {e}", path.display()))?;
            let certs = openssl::x509::X509::stack_from_pem(&pem)
                .map_err(|e| format!("relay.tls_ca_file: {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "relay.tls_ca_file: {}: no certificate in it",
                    path.display()
                ));
            }
            for c in certs {
                b.cert_store_mut()
                    .add_cert(c)
                    .map_err(|e| format!("relay.tls_ca_file: {}: {e}", path.display()))?;
            }
        }
        if !verify {
            b.set_verify(SslVerifyMode::NONE);
        }
        Ok(TlsSettings {
            connector: b.build(),
            verify,
        })
    }
}

/// An open connection in step with the server.
pub(crate) struct Client {
    stream: Stream,
    buf: Vec<u8>,
    /// Bound for each read or write of a command and its reply.
    timeout: Duration,
    /// What the peer is, for error texts.
    peer: String,
}

impl Client {
    /// Connects (with implicit TLS when `tls` is given) and reads the
    /// greeting, which must be 220.
    pub async fn connect(
        host: &str,
        port: u16,
        timeout: Duration,
        implicit_tls: Option<&TlsSettings>,
    ) -> Result<Client, Failure> {
        let peer = format!("{host}:{port}");
        let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| {
                Failure::Broken(format!("connect to {peer}: timed out after {timeout:?}"))
            })?
            .map_err(|e| Failure::Broken(format!("connect to {peer}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut c = Client {
            stream: Stream::Plain(tcp),
            buf: Vec::new(),
            timeout,
            peer,
        };
        if let Some(tls) = implicit_tls {
            c.handshake(host, tls).await?;
        }
        let greeting = c.read_reply(timeout).await?;
        if greeting.code != 220 {
            return Err(Failure::Refused(greeting));
        }
        Ok(c)
    }

    /// Sends one command line (without CRLF) and reads its reply; a reply
    /// of a class other than `expect` (2 for 2xx, 3 for 3xx) is `Refused`.
    pub async fn command(&mut self, line: &str, expect: u16) -> Result<Reply, Failure> {
        self.write(format!("{line}\r\n").as_bytes(), self.timeout)
            .await?;
        let reply = self.read_reply(self.timeout).await?;
        if reply.code / 100 != expect {
            return Err(Failure::Refused(reply));
        }
        Ok(reply)
    }

    /// STARTTLS: the `220` must be the last thing the server sent in clear.
    pub async fn starttls(&mut self, host: &str, tls: &TlsSettings) -> Result<(), Failure> {
        self.command("STARTTLS", 2).await?;
        if !self.buf.is_empty() {
            return Err(Failure::Broken(format!(
                "{}: {} byte(s) arrived after the 220 to STARTTLS, before the TLS handshake (reply injection?)",
                self.peer,
                self.buf.len()
            )));
        }
        self.handshake(host, tls).await
    }

    async fn handshake(&mut self, host: &str, tls: &TlsSettings) -> Result<(), Failure> {
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(Failure::Broken("TLS is already on".into()));
        };
        let mut config = tls
            .connector
            .configure()
            .map_err(|e| Failure::Broken(format!("TLS setup: {e}")))?;
        if !tls.verify {
            config.set_verify_hostname(false);
            config.set_verify(SslVerifyMode::NONE);
        }
        let ssl = config
            .into_ssl(host)
            .map_err(|e| Failure::Broken(format!("TLS setup: {e}")))?;
        let mut stream =
            SslStream::new(ssl, tcp).map_err(|e| Failure::Broken(format!("TLS setup: {e}")))?;
        tokio::time::timeout(self.timeout, Pin::new(&mut stream).connect())
            .await
            .map_err(|_| Failure::Broken(format!("{}: TLS handshake timed out", self.peer)))?
            .map_err(|e| Failure::Broken(format!("{}: TLS handshake: {e}", self.peer)))?;
        self.stream = Stream::Tls(Box::new(stream));
        Ok(())
    }

    /// Whether the connection is under TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Sends the message content, dot-stuffed, and the final `.`; reads the
    /// reply within `timeout`. The bytes arrive as given: a line (after
    /// CRLF) that starts with `.` gets one more (RFC 5321 4.5.2), and a final
    /// CRLF is added only if the content lacks one. The caller never hands
    /// over a bare LF ([`has_bare_lf`]), so no peer can find an end of data
    /// inside the content.
    pub async fn data(&mut self, content: &[u8], timeout: Duration) -> Result<Reply, Failure> {
        self.command("DATA", 3).await?;
        // Written in pieces: a large copy is not doubled in memory.
        const PIECE: usize = 64 << 10;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut out = Vec::with_capacity(PIECE + PIECE / 32 + 8);
        let mut stuffer = DotStuffer::default();
        for piece in content.chunks(PIECE) {
            stuffer.stuff(piece, &mut out);
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.write(&out, left).await?;
            out.clear();
        }
        if !content.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.write(&out, left).await?;
        let reply = self.read_reply(left).await?;
        if reply.code / 100 != 2 {
            return Err(Failure::Refused(reply));
        }
        Ok(reply)
    }

    /// RFC 2920 PIPELINING: sends every line in one write, then reads one
    /// reply per line, in order. A reply that does not arrive, or a line
    /// that is not a reply, breaks the connection for all of them.
    pub async fn pipeline(&mut self, lines: &[String]) -> Result<Vec<Reply>, Failure> {
        let mut out = String::new();
        for l in lines {
            out.push_str(l);
            out.push_str("\r\n");
        }
        self.write(out.as_bytes(), self.timeout).await?;
        let mut replies = Vec::with_capacity(lines.len());
        for _ in lines {
            replies.push(self.read_reply(self.timeout).await?);
        }
        Ok(replies)
    }

    /// QUIT, best effort and briefly; the connection is closed either way.
    pub async fn quit(mut self) {
        let short = self.timeout.min(Duration::from_secs(5));
        if self.write(b"QUIT\r\n", short).await.is_ok() {
            let _ = self.read_reply(short).await;
        }
        if let Some(io) = self.stream.io() {
            let _ = tokio::time::timeout(short, io.shutdown()).await;
        }
    }

    async fn write(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), Failure> {
        let peer = self.peer.clone();
        let io = self
            .stream
            .io()
            .ok_or_else(|| Failure::Broken("connection closed".into()))?;
        tokio::time::timeout(timeout, async {
            io.write_all(bytes).await?;
            io.flush().await
        })
        .await
        .map_err(|_| Failure::Broken(format!("{peer}: write timed out after {timeout:?}")))?
        .map_err(|e| Failure::Broken(format!("{peer}: write: {e}")))
    }

    /// Reads one reply: lines `NNN-text` then `NNN text` (or `NNN`), all
    /// with the same code. Bounded in line length and line count.
    async fn read_reply(&mut self, timeout: Duration) -> Result<Reply, Failure> {
        let peer = self.peer.clone();
        let work = async {
            let mut lines = Vec::new();
            let mut code: Option<u16> = None;
            loop {
                let line = self.read_line().await?;
                let bytes = line.as_bytes();
                let parsed: Option<u16> = line.get(..3).and_then(|c| c.parse().ok());
                let sep = bytes.get(3).copied();
                let (Some(c), true) = (parsed, matches!(sep, None | Some(b' ') | Some(b'-')))
                else {
                    return Err(Failure::Broken(format!(
                        "{peer}: not an SMTP reply line: {:?}",
                        line.chars().take(80).collect::<String>()
                    )));
                };
                if !(200..600).contains(&c) || code.is_some_and(|first| first != c) {
                    return Err(Failure::Broken(format!(
                        "{peer}: bad reply code in {line:?}"
                    )));
                }
                code = Some(c);
                lines.push(line.get(4..).unwrap_or("").to_string());
                if sep != Some(b'-') {
                    return Ok(Reply { code: c, lines });
                }
                if lines.len() >= MAX_REPLY_LINES {
                    return Err(Failure::Broken(format!(
                        "{peer}: reply of more than {MAX_REPLY_LINES} lines"
                    )));
                }
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| Failure::Broken(format!("{peer}: no reply within {timeout:?}")))?
    }

    /// One line without its CRLF (a bare LF ends a line too).
    async fn read_line(&mut self) -> Result<String, Failure> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buf.len() > MAX_REPLY_LINE {
                return Err(Failure::Broken(format!(
                    "{}: reply line longer than {MAX_REPLY_LINE} bytes",
                    self.peer
                )));
            }
            let peer = self.peer.clone();
            let io = self
                .stream
                .io()
                .ok_or_else(|| Failure::Broken("connection closed".into()))?;
            let mut chunk = [0u8; 4096];
            let n = io
                .read(&mut chunk)
                .await
                .map_err(|e| Failure::Broken(format!("{peer}: read: {e}")))?;
            if n == 0 {
                return Err(Failure::Broken(format!("{peer}: connection closed")));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Whether `data` holds an LF not preceded by CR. SMTP content has CRLF line
/// endings only; the listener normalises or refuses bare LF, so this never
/// holds for what it accepted.
pub(crate) fn has_bare_lf(data: &[u8]) -> bool {
    data.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || data[i - 1] != b'\r'))
}

/// The EHLO keywords (upper case) and their parameters.
#[derive(Debug, Clone, Default)]
pub(crate) struct Extensions(Vec<(String, String)>);

impl Extensions {
    /// From an EHLO reply: every line after the first.
    pub fn from_ehlo(reply: &Reply) -> Extensions {
        Extensions(
            reply
                .lines
                .iter()
                .skip(1)
                .map(|l| {
                    let (k, v) = l.split_once(' ').unwrap_or((l, ""));
                    (k.to_ascii_uppercase(), v.trim().to_string())
                })
                .collect(),
        )
    }

    pub fn has(&self, keyword: &str) -> bool {
        self.0.iter().any(|(k, _)| k == keyword)
    }

    pub fn param(&self, keyword: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == keyword)
            .map(|(_, v)| v.as_str())
    }

    /// The SIZE limit, when SIZE is offered with a non-zero number.
    pub fn size_limit(&self) -> Option<u64> {
        self.param("SIZE")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&n| n > 0)
    }

    /// The AUTH mechanisms offered.
    pub fn auth_mechanisms(&self) -> Vec<String> {
        self.param("AUTH")
            .map(|v| {
                v.split_whitespace()
                    .map(|m| m.to_ascii_uppercase())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// RFC 5321 4.5.2 transparency, across pieces of one message: a line
/// (after CRLF, or at the start) that begins with `.` gets one more.
struct DotStuffer {
    at_line_start: bool,
    prev: u8,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            prev: 0,
        }
    }
}

impl DotStuffer {
    /// Appends `piece`, stuffed, to `out`; a line at a time (memchr finds
    /// its end).
    fn stuff(&mut self, piece: &[u8], out: &mut Vec<u8>) {
        let mut rest = piece;
        while let Some(&first) = rest.first() {
            if self.at_line_start && first == b'.' {
                out.push(b'.');
            }
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    out.extend_from_slice(&rest[..=i]);
                    let before = if i > 0 { rest[i - 1] } else { self.prev };
                    self.at_line_start = before == b'\r';
                    self.prev = b'\n';
                    rest = &rest[i + 1..];
                }
                None => {
                    out.extend_from_slice(rest);
                    self.at_line_start = false;
                    self.prev = rest[rest.len() - 1];
                    rest = &[];
                }
            }
        }
    }
}

#[cfg(test)]
mod stuffing_tests {
    use super::DotStuffer;

    /// The rule byte by byte, as the reference.
    fn reference(content: &[u8]) -> Vec<u8> {
        let (mut out, mut at_line_start, mut prev) = (Vec::new(), true, 0u8);
        for &b in content {
            if at_line_start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            at_line_start = b == b'\n' && prev == b'\r';
            prev = b;
        }
        out
    }

    /// Whatever the pieces (CRLF or a leading dot split across them), the
    /// result is the byte-by-byte rule's.
    #[test]
    fn stuffing_matches_the_rule_across_any_pieces() {
        let content: &[u8] = b".a\r\n..b\r\n.\r\nc\n.d\r\r\n.e\r\n\r\n.\r\nend.";
        let expected = reference(content);
        for size in 1..=content.len() {
            let mut s = DotStuffer::default();
            let mut out = Vec::new();
            for piece in content.chunks(size) {
                s.stuff(piece, &mut out);
            }
            assert_eq!(out, expected, "pieces of {size}");
        }
        assert!(expected.starts_with(b"..a\r\n...b\r\n..\r\nc\n.d"));
    }
}
