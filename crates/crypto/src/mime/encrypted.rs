//! Recognising mail that is already encrypted, from its content.
//!
//! The label says where to look; the content decides ([`crate::inspect`]):
//! - `multipart/encrypted; protocol="application/pgp-encrypted"` (RFC 3156):
//!   exactly two parts, `application/pgp-encrypted` then
//!   `application/octet-stream`, whose body is one armored OpenPGP message
//!   made of session-key packets and an encrypted container;
//! - `application/pkcs7-mime` / `application/x-pkcs7-mime` (any `smime-type`
//!   or name): the decoded body is one CMS ContentInfo of type enveloped-data
//!   or authEnveloped-data;
//! - `text/plain` (or no Content-Type): the body is one armored encrypted
//!   OpenPGP message and nothing else but white space (inline PGP).
//!
//! Anything else, signed-only mail included, is plaintext. The preamble and
//! epilogue of a PGP/MIME message may hold at most [`MAX_PREAMBLE`] bytes
//! each (clients put a line such as "This is an OpenPGP/MIME encrypted
//! message" there); more would be readable text outside the encryption.

use super::{header_value_unfolded, multipart, Message};
use crate::inspect::{cms, openpgp, Encryption};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use std::borrow::Cow;

/// Longest preamble or epilogue of a PGP/MIME message that still counts as
/// encrypted.
pub const MAX_PREAMBLE: usize = 1024;

impl Message<'_> {
    /// What the content says about encryption; see the module documentation.
    pub fn encryption(&self) -> Encryption {
        let ct = self.content_type();
        let found = match ct.mime_type.as_str() {
            "multipart/encrypted" => {
                let pgp = ct
                    .param("protocol")
                    .is_some_and(|p| p.eq_ignore_ascii_case("application/pgp-encrypted"));
                match (pgp, ct.param("boundary")) {
                    (true, Some(b)) => pgp_mime(self.body(), b),
                    _ => None,
                }
            }
            "application/pkcs7-mime" | "application/x-pkcs7-mime" => transfer_decoded(self)
                .and_then(|der| cms::recipients(&der))
                .map(|recipients| Encryption::Cms { recipients }),
            "text/plain" => transfer_decoded(self)
                .and_then(|text| openpgp::armored_recipients(&text))
                .map(|recipients| Encryption::OpenPgp { recipients }),
            _ => None,
        };
        found.unwrap_or(Encryption::None)
    }

    /// The armored OpenPGP message of a PGP/MIME encrypted message (the
    /// `application/octet-stream` part, transfer-decoded), when
    /// [`Message::encryption`] finds one there; `None` otherwise (inline
    /// PGP included).
    pub fn pgp_mime_payload(&self) -> Option<Vec<u8>> {
        let ct = self.content_type();
        if ct.mime_type != "multipart/encrypted"
            || !ct
                .param("protocol")
                .is_some_and(|p| p.eq_ignore_ascii_case("application/pgp-encrypted"))
        {
            return None;
        }
        let text = pgp_mime_text(self.body(), ct.param("boundary")?)?;
        openpgp::armored_recipients(&text)?;
        Some(text.into_owned())
    }

    /// True if [`Message::encryption`] finds encrypted content.
    pub fn is_encrypted(&self) -> bool {
        self.encryption().is_encrypted()
    }
}

fn pgp_mime(body: &[u8], boundary: &str) -> Option<Encryption> {
    let text = pgp_mime_text(body, boundary)?;
    openpgp::armored_recipients(&text).map(|recipients| Encryption::OpenPgp { recipients })
}

/// The transfer-decoded payload part of a well-formed PGP/MIME body.
fn pgp_mime_text<'a>(body: &'a [u8], boundary: &str) -> Option<Cow<'a, [u8]>> {
    let m = multipart::split(body, boundary);
    if !m.closed
        || m.parts.len() != 2
        || m.preamble.len() > MAX_PREAMBLE
        || m.epilogue.len() > MAX_PREAMBLE
    {
        return None;
    }
    let control = Message::parse(m.parts[0]);
    let payload = Message::parse(m.parts[1]);
    if control.content_type().mime_type != "application/pgp-encrypted"
        || payload.content_type().mime_type != "application/octet-stream"
    {
        return None;
    }
    transfer_decoded(&payload)
}

/// The body with its Content-Transfer-Encoding undone: identity for 7bit,
/// 8bit, binary (or none), base64 decoded; `None` for anything else
/// (quoted-printable would have to be decoded, and encrypted payloads are
/// never sent that way) or for invalid base64.
fn transfer_decoded<'a>(m: &Message<'a>) -> Option<Cow<'a, [u8]>> {
    let cte = m
        .header("Content-Transfer-Encoding")
        .map(|h| header_value_unfolded(h).to_ascii_lowercase());
    match cte.as_deref() {
        None | Some("7bit") | Some("8bit") | Some("binary") => Some(Cow::Borrowed(m.body())),
        Some("base64") => {
            let clean: Vec<u8> = m
                .body()
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            const LENIENT: GeneralPurpose = GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                GeneralPurposeConfig::new()
                    .with_decode_padding_mode(DecodePaddingMode::Indifferent),
            );
            LENIENT.decode(clean).ok().map(Cow::Owned)
        }
        _ => None,
    }
}
