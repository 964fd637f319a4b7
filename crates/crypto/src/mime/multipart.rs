//! Splitting a multipart body at its boundary (RFC 2046 §5.1.1), in one pass.
//!
//! Only the already-encrypted check needs this (PGP/MIME is a two-part
//! `multipart/encrypted`); the encryptors never look inside parts.

/// A multipart body: preamble, the parts' raw bytes (headers and body, without
/// the line ending that belongs to the next delimiter), epilogue.
pub(crate) struct Multipart<'a> {
    pub preamble: &'a [u8],
    pub parts: Vec<&'a [u8]>,
    pub epilogue: &'a [u8],
    /// Whether the close delimiter (`--boundary--`) was seen.
    pub closed: bool,
}

/// Splits `body` at delimiter lines `--boundary` (trailing white space
/// allowed). Linear in the body's length.
pub(crate) fn split<'a>(body: &'a [u8], boundary: &str) -> Multipart<'a> {
    let dash: Vec<u8> = [b"--".as_slice(), boundary.as_bytes()].concat();
    let mut out = Multipart {
        preamble: body,
        parts: Vec::new(),
        epilogue: &[],
        closed: false,
    };
    // Start of the current part's content; None while in the preamble.
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let end = match body[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => pos + i + 1,
            None => body.len(),
        };
        let line = trim_end(&body[pos..end]);
        if let Some(rest) = line.strip_prefix(dash.as_slice()) {
            let close = rest == b"--";
            if rest.is_empty() || close {
                // The line ending before the delimiter belongs to it.
                let content_end = strip_eol(&body[..pos]).len();
                match start {
                    None => out.preamble = &body[..content_end],
                    Some(s) => out.parts.push(&body[s..content_end.max(s)]),
                }
                if close {
                    out.closed = true;
                    out.epilogue = &body[end..];
                    return out;
                }
                start = Some(end);
            }
        }
        pos = end;
    }
    if let Some(s) = start {
        out.parts.push(&body[s..]);
    }
    out
}

fn trim_end(line: &[u8]) -> &[u8] {
    let n = line
        .iter()
        .rposition(|&b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .map_or(0, |i| i + 1);
    &line[..n]
}

fn strip_eol(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_preamble_and_epilogue() {
        let body = b"pre\r\n--b\r\nA: 1\r\n\r\none\r\n--b  \r\n\r\ntwo\r\n--b--\r\nepi\r\n";
        let m = split(body, "b");
        assert_eq!(m.preamble, b"pre");
        assert_eq!(m.parts, vec![&b"A: 1\r\n\r\none"[..], &b"\r\ntwo"[..]]);
        assert_eq!(m.epilogue, b"epi\r\n");
        assert!(m.closed);
        // A line that merely starts with the boundary is content.
        let m = split(b"--b\r\nx\r\n--bx\r\n--b--", "b");
        assert_eq!(m.parts, vec![&b"x\r\n--bx"[..]]);
        let m = split(b"--b\r\nunterminated", "b");
        assert!(!m.closed);
        assert_eq!(m.parts.len(), 1);
    }
}
