//! Assembling the encrypted output message.
//!
//! Both methods produce the same layout: the original outer header fields
//! (unchanged bytes), then `MIME-Version: 1.0` and the new `Content-*`
//! fields, an empty line, and the new body. Keeping this in one place keeps
//! PGP/MIME and S/MIME from drifting apart on what they preserve.

/// Writes `outer headers + MIME-Version + content_fields + CRLF + body`.
/// `content_fields` are complete lines, each ending in CRLF.
pub(crate) fn assemble(outer: &[u8], content_fields: &[&str], body: &[u8]) -> Vec<u8> {
    let fields_len: usize = content_fields.iter().map(|f| f.len()).sum();
    let mut out = Vec::with_capacity(outer.len() + fields_len + body.len() + 32);
    out.extend_from_slice(outer);
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    for f in content_fields {
        out.extend_from_slice(f.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}
