//! Limits per client (invariant 7, "Bounded"): sessions per client address,
//! and a client that pipelines commands without ever reading the replies.
//! (The AUTH failure limits are in tls_auth.rs, as AUTH needs TLS.)

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Client, Server};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection to `server` from the loopback address `from`
/// (127.0.0.2 is a second client address on Linux loopback).
async fn connect_from(from: &str, server: SocketAddr, recv_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket.connect(server).await.unwrap()
}

#[tokio::test]
async fn connection_limit_per_client() {
    let server = Server::start(|c| c.max_connections_per_client = 2).await;
    let mut first = server.client().await;
    let _second = server.client().await;
    let mut third = Client::connect(server.addr).await;
    third
        .expect_reply("421 4.7.0 Too many connections from your address, try again later")
        .await;
    assert!(third.closed().await);
    // Another client address is still served, and so are the first two.
    let mut other = Client::new(connect_from("127.0.0.2", server.addr, None).await);
    other.expect_reply("220 mx.test ESMTP sealgate").await;
    other.expect("EHLO other.test", "250-mx.test").await;
    first.expect("NOOP", "250 2.0.0").await;
    // Once a session of the first client ends, it may open another.
    first.expect("QUIT", "221").await;
    assert!(first.closed().await);
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
    assert!(
        served,
        "the first client is served again after one session left"
    );
    other.expect("QUIT", "221").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_reads_its_replies_is_disconnected() {
    // A long command timeout: the old code waited this long on the blocked
    // write before giving up on the client.
    let server = Server::start(|c| c.command_timeout = Duration::from_secs(300)).await;
    let tcp = connect_from("127.0.0.1", server.addr, Some(4096)).await;
    let (_unread, mut wr) = tokio::io::split(tcp);
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    // Pipelines NOOPs and never reads a reply; ends when the server hangs up.
    let flood = tokio::spawn(async move {
        let batch = "NOOP\r\n".repeat(10_000);
        loop {
            if let Err(e) = wr.write_all(batch.as_bytes()).await {
                return e;
            }
            counter.fetch_add(batch.len(), Ordering::Relaxed);
        }
    });
    // Meanwhile, once the flood is well under way, another client is served.
    tokio::time::timeout(Duration::from_secs(30), async {
        while written.load(Ordering::Relaxed) < 200_000 && !flood.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the flood gets going");
    let mut other = Client::new(connect_from("127.0.0.2", server.addr, None).await);
    other.expect_reply("220 mx.test ESMTP sealgate").await;
    other.expect("EHLO other.test", "250-mx.test").await;
    other.expect("QUIT", "221").await;

    let error = tokio::time::timeout(Duration::from_secs(60), flood)
        .await
        .expect("the non-reading client is disconnected")
        .unwrap();
    assert!(
        matches!(
            error.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{error}"
    );
    // The listener carries on.
    let mut c = server.client().await;
    c.expect("QUIT", "221").await;
}
