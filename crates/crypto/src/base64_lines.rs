//! Base64 in CRLF lines, written as it is produced.
//!
//! Both encrypted formats end in a long base64 text: the ASCII armor of a
//! PGP/MIME copy (RFC 9580 §6.2: 64 characters a line and a CRC-24 line) and
//! the body of an S/MIME copy (RFC 2045: 76 characters a line). Encoding it
//! line by line straight into the copy's buffer means a large message is not
//! held once more as one base64 string (or, for the armor, in the 4 MiB-plus
//! scratch buffers of sequoia's armor writer), and the lines come out with
//! CRLF, as mail needs them, without a conversion pass.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::io::Write;

/// Bytes per line of an OpenPGP armor (64 characters).
const ARMOR_LINE: usize = 48;
/// Bytes per line of a MIME base64 body (76 characters).
const MIME_LINE: usize = 57;

/// An `io::Write` that appends the base64 of everything written to it to a
/// buffer, in lines of one length, each ending in CRLF. [`finish`] writes
/// the last, shorter line (and the armor checksum, when asked for).
///
/// [`finish`]: Base64Lines::finish
pub(crate) struct Base64Lines<'a> {
    out: &'a mut Vec<u8>,
    line: usize,
    /// Fewer than `line` bytes not encoded yet.
    pending: Vec<u8>,
    crc: Option<Crc24>,
}

impl<'a> Base64Lines<'a> {
    /// Lines of 76 characters (a MIME body part).
    pub(crate) fn mime(out: &'a mut Vec<u8>) -> Self {
        Self::new(out, MIME_LINE, None)
    }

    /// Lines of 64 characters with a CRC-24 over the data (an armor body).
    fn armor(out: &'a mut Vec<u8>) -> Self {
        Self::new(out, ARMOR_LINE, Some(Crc24::new()))
    }

    fn new(out: &'a mut Vec<u8>, line: usize, crc: Option<Crc24>) -> Self {
        Base64Lines {
            out,
            line,
            pending: Vec::with_capacity(line),
            crc,
        }
    }

    /// Writes what is left: the last line, then `=` and the checksum for an
    /// armor body.
    pub(crate) fn finish(self) {
        if !self.pending.is_empty() {
            encode_line(self.out, &self.pending);
        }
        if let Some(crc) = self.crc {
            self.out.push(b'=');
            encode_line(self.out, &crc.value().to_be_bytes()[1..]);
        }
    }
}

/// The base64 of `bytes` and CRLF, appended to `out`.
fn encode_line(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    STANDARD
        .encode_slice(bytes, &mut out[start..])
        .expect("the buffer was sized for the base64 of the line");
    out.extend_from_slice(b"\r\n");
}

impl Write for Base64Lines<'_> {
    fn write(&mut self, mut buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len();
        if let Some(crc) = &mut self.crc {
            crc.update(buf);
        }
        if !self.pending.is_empty() {
            let take = (self.line - self.pending.len()).min(buf.len());
            self.pending.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.pending.len() < self.line {
                return Ok(n);
            }
            encode_line(self.out, &self.pending);
            self.pending.clear();
        }
        let mut lines = buf.chunks_exact(self.line);
        for l in &mut lines {
            encode_line(self.out, l);
        }
        self.pending.extend_from_slice(lines.remainder());
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An OpenPGP ASCII armor of kind MESSAGE around what `write` writes into
/// the `io::Write` it is given, appended to `out` with CRLF line ends: the
/// header line, an empty line, the base64 lines, the CRC-24 line (RFC 4880
/// requires it; RFC 9580 readers ignore it) and the footer line.
pub(crate) fn armor_message<E>(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Base64Lines<'_>) -> Result<(), E>,
) -> Result<(), E> {
    out.extend_from_slice(b"-----BEGIN PGP MESSAGE-----\r\n\r\n");
    let mut lines = Base64Lines::armor(out);
    write(&mut lines)?;
    lines.finish();
    out.extend_from_slice(b"-----END PGP MESSAGE-----\r\n");
    Ok(())
}

/// The CRC-24 of RFC 4880 §6.1 (RFC 9580 §6.1.1), a byte at a time from
/// a table built at compile time.
struct Crc24(u32);

const CRC24_POLY: u32 = 0x0186_4CFB;

/// `TABLE[b]`: the register after shifting the byte `b` through it.
const CRC24_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut b = 0;
    while b < 256 {
        let mut r = (b as u32) << 16;
        let mut i = 0;
        while i < 8 {
            r <<= 1;
            if r & 0x0100_0000 != 0 {
                r ^= CRC24_POLY;
            }
            i += 1;
        }
        t[b] = r & 0x00FF_FFFF;
        b += 1;
    }
    t
};

impl Crc24 {
    const INIT: u32 = 0x00B7_04CE;

    fn new() -> Self {
        Crc24(Self::INIT)
    }

    fn update(&mut self, data: &[u8]) {
        for &b in data {
            let i = ((self.0 >> 16) as u8 ^ b) as usize;
            self.0 = ((self.0 << 8) & 0x00FF_FFFF) ^ CRC24_TABLE[i];
        }
    }

    fn value(&self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written_in_pieces(data: &[u8], pieces: &[usize], mime: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = if mime {
            Base64Lines::mime(&mut out)
        } else {
            Base64Lines::armor(&mut out)
        };
        let mut rest = data;
        for &p in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (a, b) = rest.split_at(p.min(rest.len()));
            w.write_all(a).unwrap();
            rest = b;
        }
        w.finish();
        out
    }

    /// Whatever the pieces, the lines are the base64 of the data, 76
    /// characters each but the last, each ending in CRLF.
    #[test]
    fn mime_lines_do_not_depend_on_how_the_data_arrives() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = written_in_pieces(&data, &[data.len()], true);
        for pieces in [&[1][..], &[56, 58], &[57], &[3, 200, 11]] {
            assert_eq!(written_in_pieces(&data, pieces, true), whole, "{pieces:?}");
        }
        let text = std::str::from_utf8(&whole).unwrap();
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        assert!(lines[..lines.len() - 1].iter().all(|l| l.len() == 76));
        assert!(!text.replace("\r\n", "").contains('\n'));
        assert_eq!(STANDARD.decode(lines.concat()).unwrap(), data);
    }

    #[test]
    fn empty_input_writes_no_line() {
        assert!(written_in_pieces(b"", &[1], true).is_empty());
    }

    /// The armor is exactly what sequoia's own armor writer makes (its CRC
    /// line included), but with CRLF line ends.
    #[test]
    fn armor_matches_sequoia_armor() {
        use sequoia_openpgp::armor::{Kind, Writer};
        for len in [0usize, 1, 2, 3, 47, 48, 49, 96, 1000, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 % 256) as u8).collect();
            let mut ours = Vec::new();
            armor_message(&mut ours, |w| w.write_all(&data)).unwrap();
            let mut theirs = Writer::new(Vec::new(), Kind::Message).unwrap();
            theirs.write_all(&data).unwrap();
            let theirs = theirs.finalize().unwrap();
            let theirs = String::from_utf8(theirs).unwrap().replace('\n', "\r\n");
            if len == 0 {
                // sequoia writes nothing at all for no data.
                assert!(theirs.is_empty());
                continue;
            }
            assert_eq!(String::from_utf8(ours).unwrap(), theirs, "{len} bytes");
        }
    }

    /// RFC 4880 §6.1: the CRC of no data is the initial value.
    #[test]
    fn crc24_of_nothing_is_its_init() {
        assert_eq!(Crc24::new().value(), 0xB704CE);
    }
}
