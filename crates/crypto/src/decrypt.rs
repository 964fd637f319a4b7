//! Decrypting S/MIME mail for an internal recipient whose private key
//! sealgate holds (`incoming.decrypt`, on the incoming path only).
//!
//! The result is the message as the sender wrote it before encrypting: the
//! outer header fields of the encrypted message (without its `Content-*`
//! fields, `MIME-Version` and the DKIM/ARC signatures, which covered the
//! encrypted body), the marking fields the caller gives, `MIME-Version:
//! 1.0`, then the decrypted entity byte for byte (its own `Content-*`
//! fields, separator and body). EnvelopedData and AuthEnvelopedData (GCM)
//! both decrypt, with RSA or EC keys.

use crate::mime::Message;
use crate::CryptoError;
use openssl::cms::CmsContentInfo;
use openssl::pkey::{PKeyRef, Private};
use openssl::x509::X509;

/// The decrypted entity of an S/MIME-encrypted `message` (its body, a
/// base64 CMS structure), opened with `cert`'s `key`.
///
/// # Errors
/// [`CryptoError::OpenSsl`] when the body is not a CMS structure this key
/// opens (another recipient's, a damaged message, a wrong key).
pub fn decrypt_entity(
    message: &[u8],
    cert: &X509,
    key: &PKeyRef<Private>,
) -> Result<Vec<u8>, CryptoError> {
    let parsed = Message::parse(message);
    let der =
        crate::signed::decode_body(&parsed).map_err(|e| CryptoError::OpenSsl(e.to_string()))?;
    let cms = CmsContentInfo::from_der(&der)?;
    Ok(cms.decrypt(key, cert)?)
}

/// The message rebuilt around the decrypted `entity`: the outer fields of
/// `message`, then `marks` (complete lines ending in CRLF), then
/// `MIME-Version: 1.0` and the entity.
pub fn rebuild(message: &[u8], marks: &[String], entity: &[u8]) -> Vec<u8> {
    let outer = Message::parse(message).outer_headers();
    let mut out = Vec::with_capacity(outer.len() + entity.len() + 256);
    out.extend_from_slice(&outer);
    for m in marks {
        out.extend_from_slice(m.as_bytes());
    }
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    out.extend_from_slice(entity);
    out
}
