//! The DATA reader: from dot-stuffed wire bytes to the message.
//!
//! This is where most of the message-level defences live, as a pure state
//! machine fed with whatever slices the socket delivers (so it is testable
//! without a socket and independent of how CRLF falls across reads):
//!
//! * end of data is only `CRLF . CRLF` (the start of DATA counts as a CRLF);
//!   a `.` line next to a bare LF never ends it: SMTP smuggling defence;
//! * leading-dot unstuffing (RFC 5321 §4.5.2);
//! * bare LF, and bare CR (a CR not followed by LF), are normalized to CRLF
//!   or make the message fail, as configured (`bare_lf` covers both);
//! * NUL bytes, lines over the line limit and messages over the size limit
//!   make the message fail, but the data is still read to its end so the
//!   session stays in sync. Memory stays bounded: at most one line plus
//!   `max_size` bytes are held, and nothing once the message is known bad.

use crate::{BareLf, Reply};

/// Incremental DATA decoder. Feed it bytes until it reports the end of data,
/// then call [`finish`](DataReader::finish).
pub(crate) struct DataReader {
    max_size: usize,
    max_line: usize,
    bare_lf: BareLf,
    body: Vec<u8>,
    /// Unstuffed size so far, counted even after the body is dropped.
    size: usize,
    /// Current partial line (bounded by `max_line`).
    line: Vec<u8>,
    /// Raw length of the current line so far.
    line_len: usize,
    /// Last two bytes seen of the current line, to spot CR before LF.
    last: [u8; 2],
    /// The previous line ended with CRLF (true at the start of data).
    prev_crlf: bool,
    oversize: bool,
    too_long: bool,
    nul: bool,
    saw_bare_lf: bool,
    /// BDAT content (RFC 3030): no dot-stuffing and no end line; the end
    /// is where the last chunk ends.
    raw: bool,
    /// `smtp.max_inflight_bytes` had no room for it (452 4.3.1).
    over_budget: bool,
}

impl DataReader {
    pub(crate) fn new(max_size: usize, max_line: usize, bare_lf: BareLf) -> Self {
        DataReader {
            max_size,
            max_line,
            bare_lf,
            body: Vec::new(),
            size: 0,
            line: Vec::new(),
            line_len: 0,
            last: [0; 2],
            prev_crlf: true,
            oversize: false,
            too_long: false,
            nul: false,
            saw_bare_lf: false,
            raw: false,
            over_budget: false,
        }
    }

    /// The in-flight budget has no room for this message: keep nothing
    /// more, read on to its end, answer 452 4.3.1.
    pub(crate) fn over_budget(&mut self) {
        self.over_budget = true;
        self.body = Vec::new();
    }

    /// A reader for BDAT chunks: the same checks (size, line length, NUL,
    /// bare CR/LF), but the bytes are taken as they are.
    pub(crate) fn raw(max_size: usize, max_line: usize, bare_lf: BareLf) -> Self {
        DataReader {
            raw: true,
            ..DataReader::new(max_size, max_line, bare_lf)
        }
    }

    /// Whether the message is already known to be refused.
    pub(crate) fn is_failed(&self) -> bool {
        self.failed()
    }

    /// BDAT: the last chunk ended; a last line without its line end gets
    /// one (the message goes on as CRLF lines).
    pub(crate) fn end_raw(&mut self) {
        if self.line_len > 0 {
            self.push(b"\r\n");
            self.end_line();
        }
    }

    /// Consumes bytes from `input`. Returns how many were used and whether the
    /// end-of-data line was reached (bytes after it belong to the next command).
    pub(crate) fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut used = 0;
        while used < input.len() {
            let rest = &input[used..];
            match rest.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    self.push(&rest[..=pos]);
                    used += pos + 1;
                    if self.end_line() {
                        return (used, true);
                    }
                }
                None => {
                    self.push(rest);
                    used = input.len();
                }
            }
        }
        (used, false)
    }

    fn push(&mut self, bytes: &[u8]) {
        match bytes.len() {
            0 => return,
            1 => self.last = [self.last[1], bytes[0]],
            n => self.last = [bytes[n - 2], bytes[n - 1]],
        }
        self.line_len += bytes.len();
        if self.line_len <= self.max_line {
            self.line.extend_from_slice(bytes);
        } else {
            self.line = Vec::new();
        }
    }

    /// Handles the complete line just pushed; true if it ends the data.
    fn end_line(&mut self) -> bool {
        let crlf = self.last[0] == b'\r';
        // The limit is on the line as handed on: a bare LF becomes CRLF.
        let too_long = self.line_len + usize::from(!crlf) > self.max_line;
        let raw = std::mem::take(&mut self.line);
        self.line_len = 0;
        self.last = [0; 2];
        let was_crlf = std::mem::replace(&mut self.prev_crlf, crlf);

        if !self.raw && !too_long && was_crlf && raw == b".\r\n" {
            return true;
        }
        if too_long {
            self.too_long = true;
        }
        if !crlf {
            self.saw_bare_lf = true;
        }
        if self.failed() {
            self.body = Vec::new();
            return false;
        }

        let content = &raw[..raw.len() - if crlf { 2 } else { 1 }];
        if content.contains(&0) {
            self.nul = true;
        }
        // RFC 5321 §4.5.2: drop the first dot if other characters follow it.
        let content = if !self.raw && content.len() > 1 && content[0] == b'.' {
            &content[1..]
        } else {
            content
        };
        // A CR inside the line is a bare CR (the line's own CRLF is gone).
        let bare_crs = content.iter().filter(|&&b| b == b'\r').count();
        if bare_crs > 0 {
            self.saw_bare_lf = true;
        }
        self.size = self.size.saturating_add(content.len() + 2 + bare_crs);
        if self.size > self.max_size {
            self.oversize = true;
        }
        if self.failed() {
            self.body = Vec::new();
        } else if bare_crs == 0 {
            self.body.extend_from_slice(content);
            self.body.extend_from_slice(b"\r\n");
        } else {
            for &b in content {
                self.body.push(b);
                if b == b'\r' {
                    self.body.push(b'\n');
                }
            }
            self.body.extend_from_slice(b"\r\n");
        }
        false
    }

    fn failed(&self) -> bool {
        self.over_budget
            || self.oversize
            || self.too_long
            || self.nul
            || (self.saw_bare_lf && self.bare_lf == BareLf::Reject)
    }

    /// The message (CRLF line endings, unstuffed) or the reply refusing it.
    pub(crate) fn finish(self) -> Result<Vec<u8>, Reply> {
        if self.over_budget {
            Err(Reply::new(
                452,
                (4, 3, 1),
                "Too much mail in flight, try again later",
            ))
        } else if self.oversize {
            Err(Reply::new(
                552,
                (5, 3, 4),
                "Message size exceeds fixed maximum message size",
            ))
        } else if self.too_long {
            Err(Reply::new(
                554,
                (5, 6, 0),
                format!("Message has a line longer than {} octets", self.max_line),
            ))
        } else if self.nul {
            Err(Reply::new(
                554,
                (5, 6, 0),
                "Message contains NUL characters",
            ))
        } else if self.saw_bare_lf && self.bare_lf == BareLf::Reject {
            Err(Reply::new(
                550,
                (5, 6, 0),
                "Message contains bare CR or LF line endings",
            ))
        } else {
            Ok(self.body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after another; returns the result and the bytes left
    /// over after the end of data (None if the end was not reached).
    fn run(
        chunks: &[&[u8]],
        max_size: usize,
        max_line: usize,
        mode: BareLf,
    ) -> (Option<Result<Vec<u8>, Reply>>, Vec<u8>) {
        let mut r = DataReader::new(max_size, max_line, mode);
        let mut rest = Vec::new();
        let mut done = false;
        for chunk in chunks {
            if done {
                rest.extend_from_slice(chunk);
                continue;
            }
            let (n, end) = r.feed(chunk);
            if end {
                done = true;
                rest.extend_from_slice(&chunk[n..]);
            } else {
                assert_eq!(n, chunk.len());
            }
        }
        (done.then(|| r.finish()), rest)
    }

    fn ok(chunks: &[&[u8]]) -> Vec<u8> {
        run(chunks, 1 << 20, 1000, BareLf::Normalize)
            .0
            .expect("end of data")
            .expect("accepted")
    }

    #[test]
    fn simple_message_and_trailing_bytes() {
        let (res, rest) = run(
            &[b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n"],
            1 << 20,
            1000,
            BareLf::Reject,
        );
        assert_eq!(res.unwrap().unwrap(), b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn empty_message() {
        assert_eq!(ok(&[b".\r\n"]), b"");
    }

    #[test]
    fn unstuffing() {
        assert_eq!(
            ok(&[b"..leading\r\n...\r\n.x\r\n..\r\n.\r\n"]),
            b".leading\r\n..\r\nx\r\n.\r\n"
        );
    }

    #[test]
    fn crlf_split_across_reads() {
        let body = ok(&[b"line one\r", b"\n.", b"\r", b"\n"]);
        assert_eq!(body, b"line one\r\n");
        // The terminator split byte by byte, after a message split at CR.
        let body = ok(&[b"a\r", b"\n", b".", b"\r", b"\n"]);
        assert_eq!(body, b"a\r\n");
    }

    #[test]
    fn dot_lf_does_not_end_data() {
        // Smuggling attempt: `\n.\n`, `\r\n.\n` and `\n.\r\n` are not the end.
        let (res, _) = run(
            &[b"a\n.\nMAIL FROM:<x@y>\r\n.\nb\n.\r\nc\r\n"],
            1 << 20,
            1000,
            BareLf::Normalize,
        );
        assert!(res.is_none(), "data must not end at a bare-LF dot line");
        let body = ok(&[b"a\n.\nb\r\n.\n\r\n.\r\n"]);
        assert_eq!(body, b"a\r\n.\r\nb\r\n.\r\n\r\n");
        let body = ok(&[b"a\n.\r\nb\r\n.\r\n"]);
        assert_eq!(body, b"a\r\n.\r\nb\r\n");
    }

    #[test]
    fn bare_lf_normalize_and_reject() {
        assert_eq!(ok(&[b"a\nb\r\n.\r\n"]), b"a\r\nb\r\n");
        let (res, _) = run(&[b"a\nb\r\n.\r\n"], 1 << 20, 1000, BareLf::Reject);
        let reply = res.unwrap().unwrap_err();
        assert_eq!((reply.code, reply.status), (550, (5, 6, 0)));
    }

    #[test]
    fn nul_rejected() {
        let (res, _) = run(&[b"a\0b\r\n.\r\n"], 1 << 20, 1000, BareLf::Normalize);
        let reply = res.unwrap().unwrap_err();
        assert_eq!((reply.code, reply.status), (554, (5, 6, 0)));
        assert!(reply.text.contains("NUL"));
    }

    #[test]
    fn size_limit_counts_unstuffed_bytes_and_reads_to_end() {
        // Exactly at the limit: 8 + 2 bytes.
        let (res, _) = run(&[b"12345678\r\n.\r\n"], 10, 1000, BareLf::Normalize);
        assert_eq!(res.unwrap().unwrap(), b"12345678\r\n");
        let (res, rest) = run(
            &[b"123456789\r\n", b"more\r\n", b".\r\nNOOP\r\n"],
            10,
            1000,
            BareLf::Normalize,
        );
        let reply = res.unwrap().unwrap_err();
        assert_eq!((reply.code, reply.status), (552, (5, 3, 4)));
        assert_eq!(rest, b"NOOP\r\n");
    }

    #[test]
    fn long_line_rejected_after_end() {
        let long = vec![b'x'; 50];
        let (res, rest) = run(
            &[&long, &long, b"\r\nshort\r\n.\r\nQUIT\r\n"],
            1 << 20,
            20,
            BareLf::Normalize,
        );
        let reply = res.unwrap().unwrap_err();
        assert_eq!((reply.code, reply.status), (554, (5, 6, 0)));
        assert!(reply.text.contains("20 octets"));
        assert_eq!(rest, b"QUIT\r\n");
        // A line of exactly the limit (CRLF included) is fine.
        let (res, _) = run(&[b"123\r\n.\r\n"], 1 << 20, 5, BareLf::Normalize);
        assert_eq!(res.unwrap().unwrap(), b"123\r\n");
    }

    #[test]
    fn bare_lf_line_at_the_limit_counts_its_added_cr() {
        // Found by fuzzing (smtp_decode): the 3 raw bytes `zz\n` passed a
        // limit of 3 and were handed on as the 4-byte line `zz\r\n`.
        let (res, _) = run(&[b"zz\n\r\n.\r\n"], 1 << 20, 3, BareLf::Normalize);
        let reply = res.unwrap().unwrap_err();
        assert_eq!((reply.code, reply.status), (554, (5, 6, 0)));
        let (res, _) = run(&[b"zz\n\r\n.\r\n"], 1 << 20, 4, BareLf::Normalize);
        assert_eq!(res.unwrap().unwrap(), b"zz\r\n\r\n");
    }

    /// Issue 6 item 14: a bare CR is handled like a bare LF. Before, it
    /// passed into the message as is, where a peer that ends lines at CR
    /// could read a different message (or an end of data) than we did.
    #[test]
    fn bare_cr_is_normalized_or_refused_like_bare_lf() {
        assert_eq!(
            ok(&[b"a\rb\r\n\r.\r\nc\r\r\n.\r\n"]),
            b"a\r\nb\r\n\r\n.\r\nc\r\n\r\n"
        );
        let (res, _) = run(&[b"a\rb\r\n.\r\n"], 1 << 20, 1000, BareLf::Reject);
        let reply = res.unwrap().unwrap_err();
        assert_eq!((reply.code, reply.status), (550, (5, 6, 0)));
        // A bare CR before the dot does not end the data.
        let (res, rest) = run(
            &[b"x\r.\r\ny\r\n.\r\nNOOP\r\n"],
            1 << 20,
            1000,
            BareLf::Normalize,
        );
        assert_eq!(res.unwrap().unwrap(), b"x\r\n.\r\ny\r\n");
        assert_eq!(rest, b"NOOP\r\n");
    }

    #[test]
    fn memory_is_dropped_once_failed() {
        let mut r = DataReader::new(10, 1000, BareLf::Normalize);
        let (_, done) = r.feed(b"0123456789abcdef\r\nmore\r\n");
        assert!(!done);
        assert!(r.body.capacity() == 0 && r.oversize);
    }
}
