//! Splitting the header section of a raw message into fields.
//!
//! This is the one place that decides where a header field starts and ends,
//! and where the header section ends. It works on bytes and slices of the
//! input only, so that the encrypted inner entity and the outer headers can
//! be re-assembled from the original bytes exactly, whatever they contain.

/// One header field, as written in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The field name as written (ASCII, case preserved, without the colon
    /// and without any white space before the colon).
    pub name: &'a str,
    /// The whole field: name, colon, value, folded continuation lines, and
    /// its final line ending (absent only if the message ends inside it).
    pub raw: &'a [u8],
}

/// The result of splitting: header fields, the separator line (the empty
/// line, with its line ending, or empty if there was none) and the body.
pub(crate) struct Split<'a> {
    pub headers: Vec<Header<'a>>,
    pub separator: &'a [u8],
    pub body: &'a [u8],
}

/// Bounds on the header section ([`split_limited`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Most bytes of header fields (up to the empty line).
    pub max_bytes: usize,
    /// Most header fields.
    pub max_fields: usize,
}

impl HeaderLimits {
    /// No bounds (for messages sealgate made itself or already accepted).
    pub const NONE: HeaderLimits = HeaderLimits {
        max_bytes: usize::MAX,
        max_fields: usize::MAX,
    };
}

/// Which bound a header section passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderLimitExceeded {
    #[error("the header section is larger than {0} bytes")]
    Bytes(usize),
    #[error("the header section has more than {0} fields")]
    Fields(usize),
}

/// Splits `raw` into header fields, separator and body (no bounds).
pub(crate) fn split(raw: &[u8]) -> Split<'_> {
    match split_limited(raw, HeaderLimits::NONE) {
        Ok(s) => s,
        Err(_) => unreachable!("no limit can be exceeded"),
    }
}

/// Splits `raw` into header fields, separator and body, and stops as soon
/// as the header section passes `limits` (so a header bomb costs at most
/// `max_fields` entries of memory). One pass, linear in the input.
///
/// - The header section ends at the first empty line (`CRLF` or `LF`); that
///   line is the separator and the body follows it.
/// - A line starting with space or tab continues the previous field.
/// - A line that is neither a field, a continuation nor empty ends the header
///   section without a separator; the body starts at that line. If the very
///   first line is such a line, there are no headers and everything is body.
/// - Without an empty line, everything is headers and the body is empty.
pub(crate) fn split_limited(
    raw: &[u8],
    limits: HeaderLimits,
) -> Result<Split<'_>, HeaderLimitExceeded> {
    let mut headers: Vec<Header<'_>> = Vec::new();
    // Start of the field being collected, and its name.
    let mut current: Option<(usize, &str)> = None;
    let mut pos = 0;
    while pos < raw.len() {
        let end = line_end(raw, pos);
        if end > limits.max_bytes && !is_empty_line(&raw[pos..end]) {
            return Err(HeaderLimitExceeded::Bytes(limits.max_bytes));
        }
        let line = &raw[pos..end];
        if is_empty_line(line) {
            if let Some((start, name)) = current.take() {
                headers.push(Header {
                    name,
                    raw: &raw[start..pos],
                });
            }
            return Ok(Split {
                headers,
                separator: line,
                body: &raw[end..],
            });
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if current.is_some() {
                pos = end;
                continue;
            }
            // A continuation with nothing to continue: not a header section.
            return Ok(Split {
                headers,
                separator: &[],
                body: &raw[pos..],
            });
        }
        match field_name(line) {
            Some(name) => {
                if let Some((start, prev)) = current.take() {
                    headers.push(Header {
                        name: prev,
                        raw: &raw[start..pos],
                    });
                }
                if headers.len() >= limits.max_fields {
                    return Err(HeaderLimitExceeded::Fields(limits.max_fields));
                }
                current = Some((pos, name));
            }
            None => {
                if let Some((start, name)) = current.take() {
                    headers.push(Header {
                        name,
                        raw: &raw[start..pos],
                    });
                }
                return Ok(Split {
                    headers,
                    separator: &[],
                    body: &raw[pos..],
                });
            }
        }
        pos = end;
    }
    if let Some((start, name)) = current.take() {
        headers.push(Header {
            name,
            raw: &raw[start..],
        });
    }
    Ok(Split {
        headers,
        separator: &[],
        body: &raw[raw.len()..],
    })
}

/// Index just past the line that starts at `pos` (past its `\n`, or the end).
pub(crate) fn line_end(raw: &[u8], pos: usize) -> usize {
    match raw[pos..].iter().position(|&b| b == b'\n') {
        Some(i) => pos + i + 1,
        None => raw.len(),
    }
}

/// `\n`, `\r\n` (a lone `\r` at the very end of input counts too).
fn is_empty_line(line: &[u8]) -> bool {
    matches!(line, b"\n" | b"\r\n" | b"\r")
}

/// The field name of a line that starts a header field: one or more printable
/// US-ASCII characters other than colon, optionally followed by spaces or tabs
/// (obsolete syntax), then a colon.
fn field_name(line: &[u8]) -> Option<&str> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name_part = &line[..colon];
    let name_len = name_part
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    let name = &name_part[..name_len];
    if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
        return None;
    }
    // All bytes are printable ASCII, hence valid UTF-8.
    std::str::from_utf8(name).ok()
}

/// The value of a header field: everything after the first colon, unfolded
/// (line breaks removed), trimmed, as lossy UTF-8.
pub fn header_value_unfolded(h: &Header<'_>) -> String {
    let value = match h.raw.iter().position(|&b| b == b':') {
        Some(i) => &h.raw[i + 1..],
        None => &[][..],
    };
    let unfolded: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    String::from_utf8_lossy(&unfolded).trim().to_string()
}
