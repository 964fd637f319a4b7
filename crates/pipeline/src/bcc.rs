//! Bcc header fields never leave the gateway.
//!
//! A submitting application may leave a `Bcc:` field in the header (RFC 5322
//! §3.6.3 leaves its removal to the sender's side, and not every submitter
//! does it). Every copy sealgate relays has its `Bcc:` fields removed, so Bcc
//! recipients never see each other (invariant 5). The field is an outer header,
//! never part of the encrypted inner entity, which stays byte for byte.

use sealgate_crypto::mime::{Header, Message};
use std::borrow::Cow;

/// Whether a header field is a `Bcc:` field (any case).
pub fn is_bcc(h: &Header<'_>) -> bool {
    h.name.eq_ignore_ascii_case("Bcc")
}

/// `raw` without its `Bcc:` header fields (borrowed when there are none).
pub fn strip<'a>(raw: &'a [u8], parsed: &Message<'_>) -> Cow<'a, [u8]> {
    let headers = parsed.headers();
    if !headers.iter().any(is_bcc) {
        return Cow::Borrowed(raw);
    }
    let base = raw.as_ptr() as usize;
    let mut out = Vec::with_capacity(raw.len());
    let mut end = 0;
    for h in headers {
        let start = h.raw.as_ptr() as usize - base;
        end = start + h.raw.len();
        if !is_bcc(h) {
            out.extend_from_slice(h.raw);
        }
    }
    out.extend_from_slice(&raw[end..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_every_bcc_field_and_nothing_else() {
        let raw = b"From: a@x\r\nBcc: secret1@x,\r\n  secret2@x\r\nTo: b@x\r\nBCC: secret3@x\r\n\r\nBcc: in the body stays\r\n";
        let out = strip(raw, &Message::parse(raw));
        assert_eq!(
            &out[..],
            b"From: a@x\r\nTo: b@x\r\n\r\nBcc: in the body stays\r\n"
        );
        let plain = b"From: a@x\r\nTo: b@x\r\n\r\nbody\r\n";
        assert!(matches!(
            strip(plain, &Message::parse(plain)),
            Cow::Borrowed(_)
        ));
    }
}
