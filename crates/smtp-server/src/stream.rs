//! One byte stream type for plain TCP and TLS.
//!
//! STARTTLS changes the transport in the middle of a session. Wrapping both
//! cases in [`Stream`] lets the session logic be written once against
//! `AsyncRead + AsyncWrite`, and keeps the upgrade in one place.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use openssl::ssl::{Ssl, SslAcceptor};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// The connection's transport.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
    /// Left behind while the stream is moved out for the TLS handshake, or after
    /// a failed one.
    Closed,
}

impl Stream {
    /// Runs the server side of a TLS handshake on a plain stream.
    /// Returns the TLS stream and a "version cipher" description for the log.
    pub(crate) async fn start_tls(self, acceptor: &SslAcceptor) -> io::Result<(Stream, String)> {
        let tcp = match self {
            Stream::Plain(tcp) => tcp,
            _ => return Err(io::Error::other("TLS already active or stream closed")),
        };
        let ssl = Ssl::new(acceptor.context()).map_err(io::Error::other)?;
        let mut tls = SslStream::new(ssl, tcp).map_err(io::Error::other)?;
        Pin::new(&mut tls)
            .accept()
            .await
            .map_err(io::Error::other)?;
        let info = format!(
            "{} {}",
            tls.ssl().version_str(),
            tls.ssl().current_cipher().map(|c| c.name()).unwrap_or("?")
        );
        Ok((Stream::Tls(Box::new(tls)), info))
    }
}

fn closed() -> io::Error {
    io::Error::from(io::ErrorKind::NotConnected)
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
            Stream::Closed => Poll::Ready(Err(closed())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
            Stream::Closed => Poll::Ready(Ok(())),
        }
    }
}
