//! The accept loop: connection limit and graceful shutdown.
//!
//! Each accepted connection becomes a session task holding a permit of a
//! semaphore sized `max_connections`; a client arriving when none is left gets
//! `421 4.3.2` and is closed (invariant 7, "Bounded"). The session also holds
//! a slot of its client address in the listener's [`Anvil`]: a client that
//! already has `max_connections_per_client` sessions gets `421 4.7.0` and is
//! closed, while other clients are served. On shutdown the listener
//! stops accepting, tells idle sessions to say goodbye, and waits up to 30 s
//! for running ones before aborting them.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing::{error, info, warn, Instrument};

use crate::anvil::Anvil;
use crate::budget::Budget;
use crate::{session, Handler, ServerConfig};

/// How long running sessions may take to finish after shutdown was requested.
/// How long we spend telling an over-limit client to go away.
const BUSY_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// The kernel send buffer of a session (Linux doubles it for bookkeeping).
/// Replies are small; a fixed size keeps the replies a client does not read
/// bounded in the kernel too, where autotuning would let them grow to
/// `net.ipv4.tcp_wmem`'s maximum (4 MiB by default). See `line.rs`.
const SEND_BUFFER: u32 = 32 * 1024;

/// Runs the listener until `shutdown` resolves; then stops accepting, lets
/// running sessions finish (up to 30 s), and returns.
///
/// Sessions waiting for a command when shutdown starts are answered
/// `421 4.3.2 Service shutting down`; sessions inside DATA or the handler run
/// to the end of that message first.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let sessions_limit = Arc::new(Semaphore::new(config.max_connections));
    // Busy replies are tasks too; bound them so a flood cannot pile them up.
    let busy_limit = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let anvil = Anvil::new(&config);
    let budget = Budget::new(config.max_inflight_bytes, config.metrics.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "SMTP listener started");
    }
    tokio::pin!(shutdown);

    loop {
        while let Some(done) = tasks.try_join_next() {
            if let Err(e) = done {
                if e.is_panic() {
                    error!("session task panicked");
                }
            }
        }
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Typically EMFILE or a connection reset before accept:
                    // keep serving, but do not spin.
                    error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = anvil.connect(peer.ip()) else {
            warn!(%peer, "connection limit per client reached");
            if let Ok(permit) = busy_limit.clone().try_acquire_owned() {
                tasks.spawn(async move {
                    reject(tcp, peer, CLIENT_BUSY).await;
                    drop(permit);
                });
            }
            continue;
        };
        match sessions_limit.clone().try_acquire_owned() {
            Ok(permit) => {
                // Replies are written in whole batches; don't let Nagle delay them.
                let _ = tcp.set_nodelay(true);
                if let Err(e) = cap_send_buffer(&tcp) {
                    tracing::debug!(%peer, error = %e, "could not set the send buffer size");
                }
                let config = config.clone();
                let handler = handler.clone();
                let stop = stop_rx.clone();
                let anvil = anvil.clone();
                let budget = budget.clone();
                let span = tracing::info_span!("smtp", %peer);
                tasks.spawn(
                    async move {
                        session::run(tcp, peer, config, handler, anvil, budget, stop).await;
                        drop(slot);
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            Err(_) => {
                drop(slot);
                warn!(%peer, "connection limit reached");
                if let Ok(permit) = busy_limit.clone().try_acquire_owned() {
                    tasks.spawn(async move {
                        reject(tcp, peer, SERVER_BUSY).await;
                        drop(permit);
                    });
                }
            }
        }
    }

    drop(listener);
    info!("SMTP listener stopping");
    let _ = stop_tx.send(true);
    let drain = async { while tasks.join_next().await.is_some() {} };
    if timeout(config.shutdown_grace, drain).await.is_err() {
        warn!(
            "sessions still running after {} s (smtp.shutdown_grace_secs); cutting them off",
            config.shutdown_grace.as_secs()
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    info!("SMTP listener stopped");
    Ok(())
}

/// The answer when `max_connections` sessions are running.
const SERVER_BUSY: &[u8] = b"421 4.3.2 Too many connections, try again later\r\n";
/// The answer when this client already has `max_connections_per_client`.
const CLIENT_BUSY: &[u8] = b"421 4.7.0 Too many connections from your address, try again later\r\n";

async fn reject(mut tcp: TcpStream, peer: SocketAddr, answer: &'static [u8]) {
    let answer = async {
        tcp.write_all(answer).await?;
        tcp.shutdown().await
    };
    if let Ok(Err(e)) = timeout(BUSY_REPLY_TIMEOUT, answer).await {
        tracing::debug!(%peer, error = %e, "could not send busy reply");
    }
}

/// Sets `SEND_BUFFER` on an accepted connection, through a duplicate of its
/// descriptor (tokio's `TcpStream` has no setter; the duplicate shares the
/// socket and is closed again at once).
#[cfg(unix)]
fn cap_send_buffer(tcp: &TcpStream) -> io::Result<()> {
    use std::os::fd::AsFd;
    let duplicate = tcp.as_fd().try_clone_to_owned()?;
    tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(duplicate))
        .set_send_buffer_size(SEND_BUFFER)
}

#[cfg(not(unix))]
fn cap_send_buffer(_tcp: &TcpStream) -> io::Result<()> {
    Ok(())
}
