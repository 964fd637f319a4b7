//! Test harness: a recording [`Handler`], a server on 127.0.0.1:0 and a raw
//! scripted SMTP client. Nothing here imitates what the tests check: the
//! listener under test is the real one, driven over real sockets.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealgate_smtp_server::{serve, ClientInfo, Envelope, Handler, Reply, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Address the test handler refuses at RCPT time.
pub const REFUSED: &str = "refused@example.org";

/// A message as the handler received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub client: ClientInfo,
    pub sender: String,
    pub recipients: Vec<String>,
    pub tokens: Vec<String>,
    pub body_8bitmime: bool,
    pub smtputf8: bool,
    pub data: Vec<u8>,
    /// `(NOTIFY, ORCPT)` per recipient.
    pub dsn: Vec<(Option<String>, Option<String>)>,
    pub ret: Option<sealgate_smtp_server::DsnRet>,
    pub envid: Option<String>,
}

#[derive(Default)]
pub struct TestHandler {
    pub rcpt_calls: Mutex<Vec<String>>,
    pub messages: Mutex<Vec<Received>>,
}

impl TestHandler {
    pub fn messages(&self) -> Vec<Received> {
        self.messages.lock().unwrap().clone()
    }
    pub fn rcpt_calls(&self) -> Vec<String> {
        self.rcpt_calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Handler for TestHandler {
    type Token = String;

    async fn recipient(
        &self,
        _client: &ClientInfo,
        sender: &str,
        address: &str,
    ) -> Result<String, Reply> {
        self.rcpt_calls.lock().unwrap().push(address.to_string());
        if address == REFUSED {
            return Err(Reply::new(
                550,
                (5, 1, 1),
                format!("<{address}>: no such user"),
            ));
        }
        Ok(format!("token:{sender}:{address}"))
    }

    async fn message(&self, envelope: Envelope<String>, data: Vec<u8>) -> Reply {
        let mut messages = self.messages.lock().unwrap();
        messages.push(Received {
            client: envelope.client,
            sender: envelope.sender,
            recipients: envelope
                .recipients
                .iter()
                .map(|r| r.address.clone())
                .collect(),
            dsn: envelope
                .recipients
                .iter()
                .map(|r| (r.notify.clone(), r.orcpt.clone()))
                .collect(),
            ret: envelope.ret,
            envid: envelope.envid.clone(),
            tokens: envelope.recipients.into_iter().map(|r| r.token).collect(),
            body_8bitmime: envelope.body_8bitmime,
            smtputf8: envelope.smtputf8,
            data,
        });
        Reply::new(250, (2, 0, 0), format!("Ok: queued as {}", messages.len()))
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub handler: Arc<TestHandler>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Starts `serve` with a test configuration adjusted by `adjust`.
    pub async fn start(adjust: impl FnOnce(&mut ServerConfig)) -> Server {
        let mut config = ServerConfig::new("mx.test");
        config.command_timeout = Duration::from_secs(20);
        config.data_timeout = Duration::from_secs(20);
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handler = Arc::new(TestHandler::default());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, Arc::new(config), handler.clone(), async {
            let _ = rx.await;
        }));
        Server {
            addr,
            handler,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> Client<TcpStream> {
        let mut c = Client::connect(self.addr).await;
        let greeting = c.reply().await;
        assert_eq!(greeting, "220 mx.test ESMTP sealgate");
        c
    }

    /// Requests shutdown and waits for `serve` to return.
    pub async fn stop(mut self) {
        let _ = self.shutdown.take().unwrap().send(());
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(35), task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A raw SMTP client: writes exactly what the test says, reads whole replies.
pub struct Client<S> {
    pub stream: S,
    buf: Vec<u8>,
}

impl Client<TcpStream> {
    pub async fn connect(addr: SocketAddr) -> Self {
        Client::new(TcpStream::connect(addr).await.unwrap())
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Gives the stream back (e.g. for a TLS handshake); no reply may be pending.
    pub fn into_stream(self) -> S {
        assert!(self.buf.is_empty(), "unread bytes: {:?}", self.buf);
        self.stream
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).await.unwrap();
    }

    /// Reads one complete (possibly multi-line) reply; lines joined by `\n`.
    pub async fn reply(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(15), self.reply_inner())
            .await
            .expect("reply within 15 s")
    }

    async fn reply_inner(&mut self) -> String {
        loop {
            let mut pos = 0;
            let mut lines = Vec::new();
            while let Some(i) = self.buf[pos..].windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[pos..pos + i]).to_string();
                pos += i + 2;
                let last = line.len() == 3 || line.as_bytes().get(3) == Some(&b' ');
                lines.push(line);
                if last {
                    self.buf.drain(..pos);
                    return lines.join("\n");
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "connection closed while waiting for a reply; got {:?}",
                lines
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a command line (CRLF appended) and returns the reply.
    pub async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n")).await;
        self.reply().await
    }

    /// Sends a command and asserts the reply starts with `expected`.
    pub async fn expect(&mut self, line: &str, expected: &str) -> String {
        let r = self.cmd(line).await;
        assert!(
            r.starts_with(expected),
            "{line:?}: expected {expected:?}, got {r:?}"
        );
        r
    }

    /// Asserts the next reply starts with `expected`.
    pub async fn expect_reply(&mut self, expected: &str) -> String {
        let r = self.reply().await;
        assert!(r.starts_with(expected), "expected {expected:?}, got {r:?}");
        r
    }

    /// True if the server closes the connection (within 10 s) without sending more.
    pub async fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => self.buf.is_empty(),
            _ => false,
        }
    }
}
