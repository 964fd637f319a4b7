//! Buffered connection I/O with bounded lines.
//!
//! `read_line` on a plain `BufReader` grows without limit, so a client could
//! exhaust memory with one endless line. [`Connection`] keeps a fixed read
//! buffer, hands out command lines of bounded length (discarding the rest of
//! an overlong line), exposes the raw buffer to the DATA reader, and queues
//! replies so pipelined commands are answered in one write (RFC 2920).
//!
//! Replies are bounded too: while pipelined commands wait, queued replies are
//! handed to the socket without waiting ([`Connection::write_ready`]), and
//! when all input is used up the replies are written while more input is
//! taken in ([`Connection::flush_or_read`]), so a client that keeps writing
//! is never stuck behind its own unread replies. What the socket does not
//! take stays queued, and a client that lets [`MAX_UNREAD_REPLIES`] pile up
//! that way is not reading (the session gives it a short grace to catch up,
//! then closes).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::stream::Stream;
use crate::Reply;

const READ_BUFFER: usize = 16 * 1024;
/// Queued reply bytes that are handed to the socket even while pipelined
/// input is waiting.
const MAX_PENDING_OUTPUT: usize = 16 * 1024;
/// Queued reply bytes the socket would not take (its buffers being full of
/// replies already) beyond which the client counts as not reading them.
pub(crate) const MAX_UNREAD_REPLIES: usize = 64 * 1024;

/// Result of reading one line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line including its LF (and CR, if any).
    Complete(Vec<u8>),
    /// The line exceeded the limit; it has been read and thrown away.
    TooLong,
    /// The peer closed the connection (a partial last line is dropped).
    Eof,
}

/// What [`Connection::flush_or_read`] got done first.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// All queued output is written.
    Flushed,
    /// This many bytes arrived (0: the peer closed its side) while output is
    /// still queued.
    Received(usize),
}

/// A stream plus its read buffer and pending output.
pub(crate) struct Connection {
    stream: Stream,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    out: Vec<u8>,
}

impl Connection {
    pub(crate) fn new(stream: Stream) -> Self {
        Connection {
            stream,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            out: Vec::new(),
        }
    }

    /// Bytes received but not consumed yet.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub(crate) fn has_buffered(&self) -> bool {
        self.start < self.end
    }

    /// Whether queued replies must be written out now: when the next command
    /// read would have to wait for the network (RFC 2920 §3.2).
    pub(crate) fn should_flush(&self) -> bool {
        !self.buffered().contains(&b'\n')
    }

    /// Whether a client pipelining on has enough replies queued that they
    /// should go to the socket (without waiting: [`write_ready`](Self::write_ready)).
    pub(crate) fn output_piled_up(&self) -> bool {
        self.out.len() >= MAX_PENDING_OUTPUT
    }

    /// Queued reply bytes not yet taken by the socket.
    pub(crate) fn unread_replies(&self) -> usize {
        self.out.len()
    }

    /// Marks `n` buffered bytes as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// Throws away everything received but not consumed (STARTTLS: input
    /// pipelined before the handshake must not be acted upon).
    pub(crate) fn discard_buffered(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Moves the unconsumed bytes to the front when the buffer's end is reached.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Reads more bytes into the buffer; returns how many (0 = end of stream).
    pub(crate) async fn fill(&mut self) -> io::Result<usize> {
        self.make_room();
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Reads one LF-terminated line of at most `max` bytes (LF included).
    pub(crate) async fn read_line(&mut self, max: usize) -> io::Result<Line> {
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            let avail = &self.buf[self.start..self.end];
            if let Some(pos) = avail.iter().position(|&b| b == b'\n') {
                let take = pos + 1;
                self.start += take;
                if too_long || line.len() + take > max {
                    return Ok(Line::TooLong);
                }
                line.extend_from_slice(&avail[..take]);
                return Ok(Line::Complete(line));
            }
            if !too_long {
                if line.len() + avail.len() > max {
                    too_long = true;
                    line = Vec::new();
                } else {
                    line.extend_from_slice(avail);
                }
            }
            self.start = self.end;
            if self.fill().await? == 0 {
                return Ok(Line::Eof);
            }
        }
    }

    /// Queues a reply (sent by the next [`flush`](Self::flush)).
    pub(crate) fn queue(&mut self, reply: &Reply) {
        self.out.extend_from_slice(reply.to_string().as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Queues a line that is not a [`Reply`] (greeting, EHLO, 334, 354); the
    /// caller supplies everything but the CRLF.
    pub(crate) fn queue_raw(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Writes all queued output.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        self.stream.flush().await
    }

    /// Writes as much queued output as the socket takes right now, without
    /// waiting for the peer to read; the rest stays queued (in order) for the
    /// next write. The queue only ever grows at its end between writes, as a
    /// TLS write that could not finish must be retried with the same bytes.
    pub(crate) async fn write_ready(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            let stream = &mut self.stream;
            let out = &self.out;
            let written = poll_fn(|cx| match Pin::new(&mut *stream).poll_write(cx, out) {
                Poll::Pending => Poll::Ready(None),
                Poll::Ready(result) => Poll::Ready(Some(result)),
            })
            .await;
            match written {
                None => break,
                Some(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Some(Ok(n)) => {
                    self.out.drain(..n.min(self.out.len()));
                }
                Some(Err(e)) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes queued output, but returns early if input arrives first (it is
    /// added to the buffer): a client still pipelining gets its commands
    /// read while its replies wait for it. With no room left in the read
    /// buffer this is a plain [`flush`](Self::flush).
    pub(crate) async fn flush_or_read(&mut self) -> io::Result<Progress> {
        self.make_room();
        if self.end == self.buf.len() {
            self.flush().await?;
            return Ok(Progress::Flushed);
        }
        poll_fn(|cx| {
            while !self.out.is_empty() {
                match Pin::new(&mut self.stream).poll_write(cx, &self.out) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => {
                        self.out.drain(..n.min(self.out.len()));
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => break,
                }
            }
            if self.out.is_empty() {
                return Pin::new(&mut self.stream)
                    .poll_flush(cx)
                    .map_ok(|()| Progress::Flushed);
            }
            let mut read = ReadBuf::new(&mut self.buf[self.end..]);
            match Pin::new(&mut self.stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    self.end += n;
                    Poll::Ready(Ok(Progress::Received(n)))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await
    }

    /// Moves the stream out (for the TLS upgrade), leaving `Stream::Closed`.
    pub(crate) fn take_stream(&mut self) -> Stream {
        std::mem::replace(&mut self.stream, Stream::Closed)
    }

    pub(crate) fn set_stream(&mut self, stream: Stream) {
        self.stream = stream;
    }

    /// Best-effort orderly close.
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}
