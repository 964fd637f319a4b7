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
use openpgp::packet::key::PublicParts;
use openpgp::policy::StandardPolicy;
use openpgp::serialize::stream::{
    Armorer, Encryptor, LiteralWriter, Message as PgpMessage, Recipient,
};
use openpgp::types::{DataFormat, KeyFlags, RevocationStatus};
use openpgp::Cert;

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

    // One buffer for the whole copy: the outer header, the PGP/MIME frame,
    // and the armored message written straight into it (with CRLF line
    // ends), so a large message is not copied again at each step. Room is
    // left in front for the trace field the pipeline puts on top.
    let boundary = new_boundary()?;
    let content_type = format!(
        "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n\tboundary=\"{boundary}\"\r\n"
    );
    let data = &parts.inner_entity;
    // Base64 (4/3) in lines of 64 characters plus CRLF (66/64), with room
    // for the packets around the data.
    let armored_len = (data.len() + 1024) / 3 * 4 / 64 * 66 + 4096;
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

/// Appends the ASCII-armored OpenPGP message (PKESKs, SEIPD, binary literal
/// data packet with `data`) to `out`, lines ending in CRLF, the last one
/// included.
fn encrypt_armored_into(
    data: &[u8],
    recipients: Vec<Recipient<'_>>,
    cancel: &Cancel,
    out: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    let pgp_err = |e: openpgp::anyhow::Error| CryptoError::OpenPgp(format!("{e:#}"));
    let mut sink = Crlf { out, prev: 0 };
    {
        let message = PgpMessage::new(&mut sink);
        let message = Armorer::new(message).build().map_err(pgp_err)?;
        let message = Encryptor::for_recipients(message, recipients)
            .build()
            .map_err(pgp_err)?;
        let mut literal = LiteralWriter::new(message)
            .format(DataFormat::Binary)
            .build()
            .map_err(pgp_err)?;
        for chunk in data.chunks(64 * 1024) {
            if cancel.is_cancelled() {
                return Err(CryptoError::Cancelled);
            }
            literal
                .write_all(chunk)
                .map_err(|e| CryptoError::OpenPgp(format!("writing literal data: {e}")))?;
        }
        literal.finalize().map_err(pgp_err)?;
    }
    if !sink.out.ends_with(b"\r\n") {
        sink.out.extend_from_slice(b"\r\n");
    }
    Ok(())
}

/// Writes into a Vec, turning bare LF line endings into CRLF on the way
/// (armor output is pure ASCII lines).
struct Crlf<'a> {
    out: &'a mut Vec<u8>,
    prev: u8,
}

impl std::io::Write for Crlf<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            if b == b'\n' && self.prev != b'\r' {
                self.out.push(b'\r');
            }
            self.out.push(b);
            self.prev = b;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_writer_converts_bare_lf_only() {
        use std::io::Write;
        let mut out = Vec::new();
        let mut w = Crlf {
            out: &mut out,
            prev: 0,
        };
        w.write_all(b"a\nb\r").unwrap();
        w.write_all(b"\nc\n").unwrap();
        assert_eq!(out, b"a\r\nb\r\nc\r\n");
    }
}
