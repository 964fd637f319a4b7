//! Buffered connection I/O with bounded lines.
//!
//! `read_line` on a plain `BufReader` grows without limit, so a client could
//! exhaust memory with one endless line. [`Connection`] keeps a fixed read
//! buffer, hands out command lines of bounded length (discarding the rest of
//! an overlong line), exposes the raw buffer to the DATA reader, and queues
//! replies so pipelined commands are answered in one write (RFC 2920).

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::stream::Stream;
use crate::Reply;

const READ_BUFFER: usize = 16 * 1024;
/// Queued reply bytes that force a flush even while pipelined input is waiting.
const MAX_PENDING_OUTPUT: usize = 16 * 1024;

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

    /// Whether queued replies should be written now: when the next command
    /// read would have to wait for the network (RFC 2920 §3.2), or when a
    /// client keeps pipelining without reading and the output piles up.
    pub(crate) fn should_flush(&self) -> bool {
        !self.buffered().contains(&b'\n') || self.out.len() >= MAX_PENDING_OUTPUT
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

    /// Reads more bytes into the buffer; returns how many (0 = end of stream).
    pub(crate) async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
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
