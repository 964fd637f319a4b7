//! S/MIME signing (RFC 8551 §3.5.3, RFC 1847): `multipart/signed` with a
//! detached CMS SignedData.
//!
//! The first part is the inner entity byte for byte (its `Content-*`
//! fields, the separator and the body: what a verifier hashes), the second
//! the signature (`application/pkcs7-signature`), made by OpenSSL's
//! `CMS_sign` with SHA-256, the signer's certificate and the chain given,
//! and the SMIMECapabilities attribute (OpenSSL adds it unless told not to),
//! which tells recipients what the signer's client can decrypt. The outer
//! header fields stay as they are. The result is itself a message: it can be
//! sent, or encrypted (sign, then encrypt).

use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::pkey::{PKeyRef, Private};
use openssl::stack::Stack;
use openssl::x509::X509;
use std::io::Write;

use crate::base64_lines::Base64Lines;
use crate::boundary::new_boundary;
use crate::compose::assemble;
use crate::mime::Parts;
use crate::CryptoError;

/// `parts` signed by `signer` with `key`; `chain` (the signer's
/// intermediates, not the root) goes into the signature so that recipients
/// can build the path.
///
/// # Errors
/// [`CryptoError::OpenSsl`] when OpenSSL cannot sign (for one, a key that is
/// not the certificate's).
pub fn sign_smime_parts(
    parts: &Parts,
    signer: &X509,
    key: &PKeyRef<Private>,
    chain: &[X509],
) -> Result<Vec<u8>, CryptoError> {
    if !signer.public_key()?.public_eq(key) {
        return Err(CryptoError::UnusableSigner {
            subject: crate::smime::subject_line(signer),
            reason: "the key is not this certificate's".into(),
        });
    }
    let mut certs = Stack::new()?;
    for c in chain {
        certs.push(c.clone())?;
    }
    let inner = parts.inner_entity();
    // BINARY: the entity is signed as it is (it already has CRLF lines);
    // DETACHED: the content travels as the first part, not inside the CMS.
    let cms = CmsContentInfo::sign(
        Some(signer),
        Some(key),
        Some(&certs),
        Some(&inner),
        CMSOptions::DETACHED | CMSOptions::BINARY,
    )?;
    let der = cms.to_der()?;
    let boundary = new_boundary()?;
    let content_type = format!(
        "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\";\r\n\tmicalg=sha-256; boundary=\"{boundary}\"\r\n"
    );
    let mut out = assemble(&parts.outer_headers, &[&content_type], b"");
    out.reserve(inner.len() + der.len() / 57 * 78 + 1024);
    out.extend_from_slice(b"This is an S/MIME signed message\r\n\r\n");
    write!(out, "--{boundary}\r\n").expect("writing to a Vec cannot fail");
    out.extend_from_slice(&inner);
    // The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1):
    // what is signed is exactly `inner`.
    write!(
        out,
        "\r\n--{boundary}\r\n\
         Content-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\
         Content-Description: S/MIME Cryptographic Signature\r\n\
         \r\n"
    )
    .expect("writing to a Vec cannot fail");
    let mut b64 = Base64Lines::mime(&mut out);
    b64.write_all(&der).expect("writing to a Vec cannot fail");
    b64.finish();
    write!(out, "\r\n--{boundary}--\r\n").expect("writing to a Vec cannot fail");
    Ok(out)
}
