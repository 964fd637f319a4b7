//! Recognising mail that is already encrypted.
//!
//! Such mail passes the gateway unchanged (design invariant 6): encrypting it
//! again would only make it unreadable. The rules cover PGP/MIME, S/MIME
//! enveloped and authEnveloped data (also the old `x-pkcs7-mime` type and
//! `.p7m` attachments without `smime-type`), and inline PGP. Signed-only mail
//! is not encrypted.

use super::content_type::parse_value;
use super::{header_value_unfolded, Message};

impl Message<'_> {
    /// True if the message is already encrypted:
    /// - `multipart/encrypted` (PGP/MIME, RFC 3156/1847);
    /// - `application/pkcs7-mime` or `application/x-pkcs7-mime` with
    ///   `smime-type=enveloped-data` or `authEnveloped-data`, or without
    ///   `smime-type` and a `name` (or Content-Disposition `filename`)
    ///   ending in `.p7m`;
    /// - inline PGP: `text/plain` (or no Content-Type) whose body's first
    ///   non-blank line starts with `-----BEGIN PGP MESSAGE-----`.
    pub fn is_encrypted(&self) -> bool {
        let ct = self.content_type();
        match ct.mime_type.as_str() {
            "multipart/encrypted" => true,
            "application/pkcs7-mime" | "application/x-pkcs7-mime" => match ct.param("smime-type") {
                Some(t) => {
                    t.eq_ignore_ascii_case("enveloped-data")
                        || t.eq_ignore_ascii_case("authenveloped-data")
                }
                None => {
                    let filename = self.header("Content-Disposition").and_then(|h| {
                        let (_, params) = parse_value(&header_value_unfolded(h));
                        params
                            .into_iter()
                            .find(|(n, _)| n == "filename")
                            .map(|(_, v)| v)
                    });
                    [ct.param("name").map(str::to_string), filename]
                        .into_iter()
                        .flatten()
                        .any(|n| n.to_ascii_lowercase().trim_end().ends_with(".p7m"))
                }
            },
            "text/plain" => starts_with_pgp_message(self.body()),
            _ => false,
        }
    }
}

/// Whether the first line of `body` that is not blank starts with the
/// OpenPGP armor header line of an encrypted message.
fn starts_with_pgp_message(body: &[u8]) -> bool {
    body.split(|&b| b == b'\n')
        .find(|line| !line.iter().all(|&b| b == b' ' || b == b'\t' || b == b'\r'))
        .is_some_and(|line| line.starts_with(b"-----BEGIN PGP MESSAGE-----"))
}
