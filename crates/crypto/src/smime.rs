//! S/MIME encryption (RFC 8551) with OpenSSL's CMS.
//!
//! The inner entity is encrypted unchanged (`CMS_BINARY`: no text-mode
//! canonicalisation) to every given certificate: RSA certificates get a
//! KeyTransRecipientInfo (PKCS#1 v1.5, or RSA-OAEP with [`RsaPadding::Oaep`]
//! through `cms_ffi`), EC certificates a
//! KeyAgreeRecipientInfo (ECDH). AES-256-CBC gives `EnvelopedData`
//! (readable everywhere); AES-256-GCM gives `AuthEnvelopedData` (RFC 5083),
//! which OpenSSL 3's `CMS_encrypt` produces by itself for an AEAD cipher, so
//! the safe `CmsContentInfo::encrypt` suffices. The policy stage must only
//! choose GCM for recipients known to read it (gpgsm 2.2, for one, cannot).

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::nid::Nid;
use openssl::pkey::Id;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::X509;
use std::io::Write;

use crate::base64_lines::Base64Lines;
use crate::compose::assemble;
use crate::cpu::Cancel;
use crate::mime::Parts;
use crate::CryptoError;

/// The content-encryption algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmimeCipher {
    /// AES-256-CBC in `EnvelopedData` (`smime-type=enveloped-data`).
    Aes256Cbc,
    /// AES-256-GCM in `AuthEnvelopedData` (`smime-type=authEnveloped-data`).
    Aes256Gcm,
}

/// RSA key transport (RFC 8551 §2.3): PKCS#1 v1.5, which every S/MIME
/// client reads, or RSAES-OAEP (RFC 8017; SHA-256 and MGF1-SHA-256), the
/// modern choice. EC recipients always use ECDH key agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RsaPadding {
    #[default]
    Pkcs1,
    Oaep,
}

impl SmimeCipher {
    /// The `smime-type` parameter value for this cipher's CMS content type.
    pub fn smime_type(self) -> &'static str {
        match self {
            SmimeCipher::Aes256Cbc => "enveloped-data",
            SmimeCipher::Aes256Gcm => "authEnveloped-data",
        }
    }

    fn openssl(self) -> Cipher {
        match self {
            SmimeCipher::Aes256Cbc => Cipher::aes_256_cbc(),
            SmimeCipher::Aes256Gcm => Cipher::aes_256_gcm(),
        }
    }
}

/// Encrypts `message` (a whole RFC 5322 message) as S/MIME to every cert in
/// `certs`: `EnvelopedData` for [`SmimeCipher::Aes256Cbc`],
/// `AuthEnvelopedData` for [`SmimeCipher::Aes256Gcm`].
///
/// The output keeps the original outer header fields byte for byte; the new
/// body is the DER `ContentInfo` in base64 (76-character CRLF lines); the
/// encrypted content is exactly [`crate::mime::Message::inner_entity`]. The certificates
/// are not validated here (the key stage did that); each one becomes one
/// RecipientInfo, and no other.
///
/// # Errors
/// [`CryptoError::NoRecipients`] for an empty `certs`,
/// [`CryptoError::UnusableCertificate`] for a certificate whose key type CMS
/// cannot encrypt to ([`key_transport_support`]; both are permanent), and
/// [`CryptoError::OpenSsl`] if OpenSSL fails otherwise.
pub fn encrypt_smime(
    message: &[u8],
    certs: &[X509],
    cipher: SmimeCipher,
) -> Result<Vec<u8>, CryptoError> {
    encrypt_smime_parts(
        &Parts::of(message),
        certs,
        cipher,
        RsaPadding::Pkcs1,
        &Cancel::never(),
    )
}

/// [`encrypt_smime`] of a message already split into its [`Parts`] (the
/// pipeline splits each message once, for all its copies). OpenSSL encrypts
/// in one call, so `cancel` is checked before it starts.
pub fn encrypt_smime_parts(
    parts: &Parts,
    certs: &[X509],
    cipher: SmimeCipher,
    padding: RsaPadding,
    cancel: &Cancel,
) -> Result<Vec<u8>, CryptoError> {
    if certs.is_empty() {
        return Err(CryptoError::NoRecipients);
    }
    if cancel.is_cancelled() {
        return Err(CryptoError::Cancelled);
    }

    let mut stack = Stack::new()?;
    for cert in certs {
        key_transport_support(cert).map_err(|reason| CryptoError::UnusableCertificate {
            subject: subject_line(cert),
            reason,
        })?;
        stack.push(cert.clone())?;
    }
    // OpenSSL's CMS wants its input in one piece; each large buffer goes
    // as soon as the next step has what it needs.
    let inner = parts.inner_entity();
    let der = match padding {
        RsaPadding::Oaep => crate::cms_ffi::encrypt_rsa_oaep(certs, &inner, cipher.openssl())?,
        RsaPadding::Pkcs1 => {
            let cms =
                CmsContentInfo::encrypt(&stack, &inner, cipher.openssl(), CMSOptions::BINARY)?;
            drop(inner);
            cms.to_der()?
        }
    };

    let content_type = format!(
        "Content-Type: application/pkcs7-mime; smime-type={};\r\n\tname=\"smime.p7m\"\r\n",
        cipher.smime_type()
    );
    let fields = [
        content_type.as_str(),
        "Content-Transfer-Encoding: base64\r\n",
        "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n",
        "Content-Description: S/MIME Encrypted Message\r\n",
    ];
    let mut out = assemble(&parts.outer_headers, &fields, b"");
    out.reserve(der.len().div_ceil(57) * 78);
    let mut body = Base64Lines::mime(&mut out);
    body.write_all(&der).expect("writing to a Vec cannot fail");
    body.finish();
    Ok(out)
}

/// Whether CMS can encrypt to this certificate's key: RSA (`rsaEncryption`)
/// of 2048 bits or more through key transport, or EC on P-256, P-384 or P-521
/// through ECDH key agreement. Everything else (Ed25519, Ed448, DSA, RSA-PSS,
/// RSA under 2048 bits, other curves) is refused with the reason.
pub fn key_transport_support(cert: &X509) -> Result<(), String> {
    let key = cert
        .public_key()
        .map_err(|e| format!("the public key cannot be read: {e}"))?;
    match key.id() {
        Id::RSA => {
            let bits = key.bits();
            if bits < 2048 {
                return Err(format!(
                    "RSA key of {bits} bits is too short to encrypt to (at least 2048)"
                ));
            }
            Ok(())
        }
        Id::EC => {
            let curve = key
                .ec_key()
                .ok()
                .and_then(|k| k.group().curve_name());
            match curve {
                Some(Nid::X9_62_PRIME256V1 | Nid::SECP384R1 | Nid::SECP521R1) => Ok(()),
                Some(nid) => Err(format!(
                    "EC key on curve {} cannot be encrypted to (only P-256, P-384, P-521)",
                    nid.short_name().unwrap_or("unknown")
                )),
                None => Err("EC key with explicit curve parameters cannot be encrypted to".into()),
            }
        }
        id => Err(format!(
            "{} key cannot be encrypted to with CMS (only RSA of 2048 bits or more, and EC P-256/P-384/P-521)",
            key_type_name(id)
        )),
    }
}

fn key_type_name(id: Id) -> String {
    match id {
        Id::ED25519 => "Ed25519".into(),
        Id::ED448 => "Ed448".into(),
        Id::X25519 => "X25519".into(),
        Id::X448 => "X448".into(),
        Id::DSA => "DSA".into(),
        Id::DH => "DH".into(),
        Id::RSA_PSS => "RSA-PSS (signature only)".into(),
        other => Nid::from_raw(other.as_raw())
            .short_name()
            .map(str::to_string)
            .unwrap_or_else(|_| format!("key type {}", other.as_raw())),
    }
}

/// The subject DN in one line, for error texts (no key material).
pub(crate) fn subject_line(cert: &X509) -> String {
    cert.subject_name()
        .entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let value = String::from_utf8_lossy(e.data().as_slice());
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_certs_is_an_error() {
        assert!(matches!(
            encrypt_smime(b"Subject: x\r\n\r\nhi\r\n", &[], SmimeCipher::Aes256Cbc),
            Err(CryptoError::NoRecipients)
        ));
    }
}
