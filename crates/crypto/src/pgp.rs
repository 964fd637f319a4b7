//! PGP/MIME (RFC 3156) encryption with sequoia-openpgp.
//!
//! Two ideas live here because they must agree: which keys of a certificate
//! may be encrypted to ([`encryption_subkeys`], also used by the key stage to
//! decide whether a certificate is usable at all), and the encryption itself
//! ([`encrypt_pgp_mime`]), which encrypts to exactly those keys. The inner
//! entity goes into a binary literal data packet unchanged; no compression.
//! sequoia picks SEIPDv2 (AEAD) only when every recipient certificate
//! advertises support for it, else SEIPDv1, so GnuPG 2.2 keys stay readable.

use std::io::Write;
use std::time::SystemTime;

use sequoia_openpgp as openpgp;

use openpgp::cert::amalgamation::key::ValidErasedKeyAmalgamation;
use openpgp::cert::Preferences;
use openpgp::packet::key::PublicParts;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{Encryptor, Message as PgpMessage, Recipient};
use openpgp::types::{KeyFlags, RevocationStatus};
use openpgp::Cert;

use crate::base64_lines::armor_message;
use crate::boundary::new_boundary;
use crate::compose::assemble;
use crate::cpu::Cancel;
use crate::mime::Parts;
use crate::CryptoError;

/// The policy every OpenPGP decision of this crate is taken under.
static POLICY: StandardPolicy<'static> = StandardPolicy::new();

/// A key of a certificate that may be encrypted to now, bound to its (valid)
/// certificate. `.key()` is the public key, `.fingerprint()`/`.keyid()` its
/// identity; it converts into a sequoia encryption `Recipient`.
pub type EncryptionSubkey<'a> = ValidErasedKeyAmalgamation<'a, PublicParts>;

/// The encryption-capable keys of `cert` that are valid at `now` under
/// sequoia's `StandardPolicy`: the certificate has a valid self-signature,
/// is not expired and not revoked; each key is alive, not revoked, flagged
/// for transport or storage encryption, and of a supported algorithm.
///
/// Normally these are subkeys; a primary key that itself carries an
/// encryption flag is included too. An empty result means the certificate
/// cannot be encrypted to.
pub fn encryption_subkeys(cert: &Cert, now: SystemTime) -> Vec<EncryptionSubkey<'_>> {
    let Ok(vc) = cert.with_policy(&POLICY, now) else {
        return Vec::new();
    };
    if vc.alive().is_err() || matches!(vc.revocation_status(), RevocationStatus::Revoked(_)) {
        return Vec::new();
    }
    vc.keys()
        .supported()
        .alive()
        .revoked(false)
        .key_flags(
            KeyFlags::empty()
                .set_transport_encryption()
                .set_storage_encryption(),
        )
        .collect()
}

/// Encrypts `message` (a whole RFC 5322 message) as PGP/MIME to every
/// encryption subkey ([`encryption_subkeys`], valid now) of every cert.
///
/// The output keeps the original outer header fields byte for byte and
/// replaces the `Content-*` fields with a `multipart/encrypted` wrapper; the
/// encrypted payload is exactly [`crate::mime::Message::inner_entity`].
///
/// # Errors
/// [`CryptoError::NoRecipients`] for an empty `certs`;
/// [`CryptoError::NoEncryptionSubkey`] if any cert has no usable encryption
/// key (fail closed: never encrypt for fewer recipients than asked);
/// [`CryptoError::OpenPgp`] / [`CryptoError::OpenSsl`] from the libraries.
pub fn encrypt_pgp_mime(message: &[u8], certs: &[&Cert]) -> Result<Vec<u8>, CryptoError> {
    encrypt_pgp_mime_parts(&Parts::of(message), certs, &Cancel::never())
}

/// [`encrypt_pgp_mime`] of a message already split into its [`Parts`] (the
/// pipeline splits each message once, for all its copies). Stops with
/// [`CryptoError::Cancelled`] once `cancel` is set (checked every 64 KiB).
pub fn encrypt_pgp_mime_parts(
    parts: &Parts,
    certs: &[&Cert],
    cancel: &Cancel,
) -> Result<Vec<u8>, CryptoError> {
    let recipients = recipients(certs)?;

    // One buffer for the whole copy: the outer header, the PGP/MIME frame,
    // and the armored message written straight into it (with CRLF line
    // ends), so a large message is not copied again at each step. Room is
    // left in front for the trace field the pipeline puts on top.
    let boundary = new_boundary()?;
    let content_type = format!(
        "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n\tboundary=\"{boundary}\"\r\n"
    );
    let data = parts.inner_entity_slices();
    // Base64 (4/3) in lines of 64 characters plus CRLF (66/64), with room
    // for the packets around the data.
    let armored_len = (parts.inner_entity_len() + 1024) / 3 * 4 / 64 * 66 + 4096;
    let mut out = Vec::with_capacity(parts.outer_headers.len() + armored_len + 2048);
    out.extend_from_slice(&assemble(&parts.outer_headers, &[&content_type], b""));
    out.extend_from_slice(b"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n");
    write!(
        out,
        "--{boundary}\r\n\
         Content-Type: application/pgp-encrypted\r\n\
         Content-Description: PGP/MIME version identification\r\n\
         \r\n\
         Version: 1\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\
         Content-Description: OpenPGP encrypted message\r\n\
         Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\
         \r\n"
    )
    .expect("writing to a Vec cannot fail");
    encrypt_armored_into(data, recipients, cancel, &mut out)?;
    write!(out, "\r\n--{boundary}--\r\n").expect("writing to a Vec cannot fail");
    Ok(out)
}

/// Encrypts a text/plain message as inline PGP, for old clients: the
/// outer header fields byte for byte, a `text/plain` entity of the same
/// charset in 7bit, and as its body the ASCII-armored OpenPGP message of
/// the text decoded from its transfer encoding ([`Parts::plain_text`]).
///
/// # Errors
/// [`CryptoError::NotInlineable`] when the entity is not text/plain (or
/// does not decode): the caller sends PGP/MIME instead; otherwise as
/// [`encrypt_pgp_mime`].
pub fn encrypt_pgp_inline_parts(
    parts: &Parts,
    certs: &[&Cert],
    cancel: &Cancel,
) -> Result<Vec<u8>, CryptoError> {
    let recipients = recipients(certs)?;
    let (text, charset) = parts.plain_text().ok_or(CryptoError::NotInlineable)?;
    let fields = [
        format!("Content-Type: text/plain; charset=\"{charset}\"\r\n"),
        "Content-Transfer-Encoding: 7bit\r\n".to_string(),
    ];
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    let mut out = assemble(&parts.outer_headers, &fields, b"");
    out.reserve((text.len() + 1024) / 3 * 4 / 64 * 66 + 4096);
    encrypt_armored_into([&text, b""], recipients, cancel, &mut out)?;
    Ok(out)
}

/// Whether `cert` announces SEIPDv2 (RFC 9580 AEAD encryption) in its
/// Features (every v6 key; v4 keys made by current OpenPGP software). The
/// encryptor writes SEIPDv2 exactly when every recipient does.
pub fn supports_seipdv2(cert: &Cert, now: SystemTime) -> bool {
    cert.with_policy(&POLICY, now)
        .ok()
        .and_then(|vc| vc.features())
        .is_some_and(|f| f.supports_seipdv2())
}

/// The sequoia recipients for `certs`: every encryption subkey valid now.
/// No certificate, or one without such a key, is an error (never encrypt
/// for fewer recipients than asked).
fn recipients<'a>(certs: &[&'a Cert]) -> Result<Vec<Recipient<'a>>, CryptoError> {
    if certs.is_empty() {
        return Err(CryptoError::NoRecipients);
    }
    let now = SystemTime::now();
    let mut recipients: Vec<Recipient<'_>> = Vec::new();
    for cert in certs {
        let keys = encryption_subkeys(cert, now);
        if keys.is_empty() {
            return Err(CryptoError::NoEncryptionSubkey {
                fingerprint: cert.fingerprint().to_hex(),
            });
        }
        recipients.extend(keys.into_iter().map(Recipient::from));
    }
    Ok(recipients)
}

/// Appends the ASCII-armored OpenPGP message (PKESKs, SEIPD, binary literal
/// data packet with the two slices of `data`, one after the other) to
/// `out`, lines ending in CRLF, the last one included.
fn encrypt_armored_into(
    data: [&[u8]; 2],
    recipients: Vec<Recipient<'_>>,
    cancel: &Cancel,
    out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    let pgp_err = |e: openpgp::anyhow::Error| CryptoError::OpenPgp(format!("{e:#}"));
    // The armor is ours (streamed into `out` with CRLF); sequoia writes
    // the binary packets into it.
    armor_message(out, |sink| {
        let message = PgpMessage::new(sink);
        let message = Encryptor::for_recipients(message, recipients)
            .build()
            .map_err(pgp_err)?;
        // The literal data packet is written here with its full length
        // (known in advance) instead of by sequoia's LiteralWriter, whose
        // partial-body buffering holds 4 MiB chunks (and the encryptor as
        // much again); this way the encryptor sees 64 KiB at a time.
        let mut message = message;
        let write_err =
            |e: std::io::Error| CryptoError::OpenPgp(format!("writing literal data: {e}"));
        let len = data[0].len() + data[1].len();
        message
            .write_all(&literal_header(len)?)
            .map_err(write_err)?;
        for chunk in data.iter().flat_map(|d| d.chunks(64 * 1024)) {
            if cancel.is_cancelled() {
                return Err(CryptoError::Cancelled);
            }
            message.write_all(chunk).map_err(write_err)?;
        }
        message.finalize().map_err(pgp_err)
    })
}

/// The header of a binary literal data packet (RFC 9580 §5.9) whose data
/// is `len` bytes: a packet header with the full length (§4.2.1), format
/// `b`, no file name, date 0; the data follows it.
fn literal_header(len: usize) -> Result<Vec<u8>, CryptoError> {
    // Format, file name length, 4-octet date.
    let fields = [b'b', 0, 0, 0, 0, 0];
    let body = u32::try_from(len + fields.len())
        .map_err(|_| CryptoError::OpenPgp("message too large for one literal packet".into()))?;
    let mut out = vec![0xC0 | 11];
    match body {
        0..=191 => out.push(body as u8),
        192..=8383 => {
            let v = body - 192;
            out.extend_from_slice(&[(v >> 8) as u8 + 192, v as u8]);
        }
        _ => {
            out.push(0xFF);
            out.extend_from_slice(&body.to_be_bytes());
        }
    }
    out.extend_from_slice(&fields);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openpgp::parse::Parse;

    /// Our literal packet header is what sequoia itself parses as a binary
    /// literal data packet of the given data, at each length encoding.
    #[test]
    fn literal_header_parses_as_a_literal_packet() {
        for len in [0usize, 1, 185, 186, 187, 8377, 8378, 100_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut packet = literal_header(len).unwrap();
            packet.extend_from_slice(&data);
            let parsed = openpgp::Packet::from_bytes(&packet).unwrap();
            let openpgp::Packet::Literal(l) = parsed else {
                panic!("{len}: not a literal packet: {parsed:?}");
            };
            assert_eq!(l.format(), openpgp::types::DataFormat::Binary, "{len}");
            assert_eq!(l.body(), &data[..], "{len}");
            assert_eq!(l.filename(), None, "{len}");
        }
    }
}
