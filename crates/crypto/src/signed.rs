//! Reading S/MIME-signed mail: which certificates signed it, whether the
//! signatures verify over the exact signed bytes, and what the signers
//! announced in their signed attributes (SMIMECapabilities,
//! SMIMEEncryptionKeyPreference). Harvesting learns partners' certificates
//! from this; it is not a trust decision (the chain is judged at use).
//!
//! Two forms (RFC 8551 §3.5): `multipart/signed` with
//! `application/(x-)pkcs7-signature` (the first part's bytes, exactly as
//! received, are what was signed), and opaque `application/(x-)pkcs7-mime`
//! whose body is a CMS SignedData with the content inside. The signature
//! is checked by OpenSSL's `CMS_verify` without a chain
//! (`CMS_NO_SIGNER_CERT_VERIFY`) and in binary mode (no line-ending
//! conversion); the structure (certificates, signer identifiers, signed
//! attributes) is read by the bounded DER reader, never trusting a length.

use crate::inspect::der::{self, Tlv};
use crate::inspect::CmsRecipient;
use crate::mime::Message;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::x509::{X509Ref, X509};

/// Largest signature part (base64 decoded) read: certificates and a few
/// signatures fit easily; beyond it the message counts as malformed.
pub const MAX_SIGNATURE_BYTES: usize = 1 << 20;

const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_SMIME_CAPABILITIES: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0f];
const OID_ENCRYPTION_KEY_PREFERENCE: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x02, 0x0b,
];
/// id-aes256-GCM (2.16.840.1.101.3.4.1.46), what sealgate's GCM copies use.
const OID_AES256_GCM: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2e];

/// Why a message gave no verified signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedError {
    /// Not S/MIME-signed at all (the usual case: nothing to learn).
    #[error("not an S/MIME signed message")]
    NotSigned,
    /// Labelled as signed, but not readable as such.
    #[error("malformed S/MIME signature: {0}")]
    Malformed(String),
    /// The signature does not verify over the signed bytes.
    #[error("the signature does not verify: {0}")]
    BadSignature(String),
}

/// A signed attribute set's announcements of one signer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignerAttributes {
    /// The SMIMECapabilities attribute as sent (DER of the SEQUENCE), if any.
    pub capabilities: Option<Vec<u8>>,
    /// The capabilities list AES-256-GCM.
    pub aes256_gcm: bool,
    /// SMIMEEncryptionKeyPreference: the certificate to encrypt to.
    pub encryption_key_preference: Option<CmsRecipient>,
}

/// One signer of a verified message.
#[derive(Debug, Clone)]
pub struct Signer {
    /// Its certificate, from the signature's certificate bundle.
    pub cert: X509,
    pub attributes: SignerAttributes,
}

/// A verified S/MIME signature.
#[derive(Debug, Clone)]
pub struct Signed {
    /// Every signer (each signature verified).
    pub signers: Vec<Signer>,
    /// Every certificate the signature carried (signers, intermediates,
    /// other certificates of the signers).
    pub certificates: Vec<X509>,
}

impl CmsRecipient {
    /// True if this identifier names `cert` (issuer and serial number, or
    /// subject key identifier).
    pub fn names(&self, cert: &X509Ref) -> bool {
        match self {
            CmsRecipient::IssuerSerial { issuer, serial } => {
                cert.issuer_name().to_der().ok().as_deref() == Some(issuer.as_slice())
                    && cert
                        .serial_number()
                        .to_bn()
                        .ok()
                        .map(|bn| bn.to_vec())
                        .as_deref()
                        .map(crate::inspect::strip_leading_zeros)
                        == Some(serial.as_slice())
            }
            CmsRecipient::SubjectKeyId(k) => {
                cert.subject_key_id().map(|s| s.as_slice()) == Some(k.as_slice())
            }
        }
    }
}

/// The verified signature of `message`, or why there is none.
pub fn verify(message: &[u8]) -> Result<Signed, SignedError> {
    let parsed = Message::parse(message);
    let ct = parsed.content_type();
    let (der, detached) = match ct.mime_type.as_str() {
        "multipart/signed" => {
            let protocol = ct.param("protocol").unwrap_or("").to_ascii_lowercase();
            if protocol != "application/pkcs7-signature"
                && protocol != "application/x-pkcs7-signature"
            {
                return Err(SignedError::NotSigned);
            }
            let boundary = ct.param("boundary").ok_or_else(|| {
                SignedError::Malformed("multipart/signed without a boundary".into())
            })?;
            let parts = crate::mime::multipart::split(parsed.body(), boundary);
            if parts.parts.len() != 2 {
                return Err(SignedError::Malformed(format!(
                    "multipart/signed with {} parts (2 expected)",
                    parts.parts.len()
                )));
            }
            let sig = Message::parse(parts.parts[1]);
            (decode_body(&sig)?, Some(parts.parts[0]))
        }
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => {
            let labelled = ct
                .param("smime-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("signed-data"));
            let der = match decode_body(&parsed) {
                Ok(d) => d,
                Err(e) if labelled => return Err(e),
                Err(_) => return Err(SignedError::NotSigned),
            };
            match content_type_of(&der) {
                Some(oid) if oid == OID_SIGNED_DATA => {}
                // Enveloped data or anything else: not a signature.
                Some(_) => return Err(SignedError::NotSigned),
                None if labelled => {
                    return Err(SignedError::Malformed(
                        "labelled signed-data, but not a CMS structure".into(),
                    ))
                }
                None => return Err(SignedError::NotSigned),
            }
            (der, None)
        }
        _ => return Err(SignedError::NotSigned),
    };
    let structure = read_structure(&der)
        .map_err(|()| SignedError::Malformed("the CMS SignedData cannot be read".into()))?;
    let mut cms = CmsContentInfo::from_der(&der)
        .map_err(|e| SignedError::Malformed(format!("OpenSSL cannot read the CMS: {e}")))?;
    let mut content = Vec::new();
    cms.verify(
        None,
        None,
        detached,
        detached.is_none().then_some(&mut content),
        CMSOptions::NO_SIGNER_CERT_VERIFY | CMSOptions::BINARY,
    )
    .map_err(|e| SignedError::BadSignature(e.to_string()))?;
    let certificates: Vec<X509> = structure
        .certificates
        .iter()
        .filter_map(|c| X509::from_der(c).ok())
        .collect();
    let mut signers = Vec::new();
    for s in structure.signers {
        // CMS_verify found every signer's certificate (or failed above).
        if let Some(cert) = certificates.iter().find(|c| s.sid.names(c)) {
            signers.push(Signer {
                cert: cert.clone(),
                attributes: s.attributes,
            });
        }
    }
    if signers.is_empty() {
        return Err(SignedError::Malformed(
            "no signer's certificate is in the signature".into(),
        ));
    }
    Ok(Signed {
        signers,
        certificates,
    })
}

/// The base64 body of a part, decoded (bounded).
pub(crate) fn decode_body(part: &Message<'_>) -> Result<Vec<u8>, SignedError> {
    let body = part.body();
    if body.len() > MAX_SIGNATURE_BYTES / 3 * 4 + MAX_SIGNATURE_BYTES / 38 + 1024 {
        return Err(SignedError::Malformed("the signature is too large".into()));
    }
    let cte = part.header("Content-Transfer-Encoding").map(|h| {
        crate::mime::header_value_unfolded(h)
            .trim()
            .to_ascii_lowercase()
    });
    match cte.as_deref() {
        Some("base64") => crate::mime::decode_base64(body).map_err(SignedError::Malformed),
        Some("binary") | Some("8bit") | Some("7bit") | None if body.first() == Some(&0x30) => {
            Ok(body.to_vec())
        }
        _ => Err(SignedError::Malformed(
            "the signature is not base64 encoded".into(),
        )),
    }
}

/// The content type OID of a CMS ContentInfo, `None` when `der` is not one.
fn content_type_of(der: &[u8]) -> Option<&[u8]> {
    let ci = der::read_all(der).ok()?;
    if ci.tag != der::SEQUENCE {
        return None;
    }
    match ci.children().next_tlv() {
        Ok(Some(t)) if t.tag == der::OID => Some(t.contents),
        _ => None,
    }
}

struct SignerInfo {
    sid: CmsRecipient,
    attributes: SignerAttributes,
}

struct Structure {
    certificates: Vec<Vec<u8>>,
    signers: Vec<SignerInfo>,
}

/// `ContentInfo { signedData, [0] SignedData { version, digestAlgorithms,
/// encapContentInfo, [0] certificates OPTIONAL, [1] crls OPTIONAL,
/// signerInfos } }`.
fn read_structure(input: &[u8]) -> Result<Structure, ()> {
    let ci = der::read_all(input)?;
    if ci.tag != der::SEQUENCE {
        return Err(());
    }
    let mut f = ci.children();
    let oid = f.expect()?;
    if oid.tag != der::OID || oid.contents != OID_SIGNED_DATA {
        return Err(());
    }
    let wrapped = f.expect()?;
    if wrapped.tag != der::context_constructed(0) {
        return Err(());
    }
    let sd = wrapped.children().expect()?;
    if sd.tag != der::SEQUENCE {
        return Err(());
    }
    let mut f = sd.children();
    let _version = f.expect()?;
    let _digests = f.expect()?;
    let _encap = f.expect()?;
    let mut certificates = Vec::new();
    let mut signers = Vec::new();
    while let Some(t) = f.next_tlv()? {
        if t.tag == der::context_constructed(0) {
            let mut c = t.children();
            while let Some(cert) = c.next_tlv()? {
                // Only plain certificates (other choices are tagged).
                if cert.tag == der::SEQUENCE {
                    certificates.push(crate::inspect::cms::reencode(cert));
                }
            }
        } else if t.tag == der::SET {
            let mut s = t.children();
            while let Some(info) = s.next_tlv()? {
                signers.push(signer_info(info)?);
            }
        }
    }
    Ok(Structure {
        certificates,
        signers,
    })
}

/// `SignerInfo { version, sid, digestAlgorithm, [0] signedAttrs OPTIONAL, ... }`.
fn signer_info(info: Tlv<'_>) -> Result<SignerInfo, ()> {
    if info.tag != der::SEQUENCE {
        return Err(());
    }
    let mut f = info.children();
    let _version = f.expect()?;
    let sid = crate::inspect::cms::recipient_identifier(f.expect()?)?;
    let _digest = f.expect()?;
    let mut attributes = SignerAttributes::default();
    if let Some(t) = f.next_tlv()? {
        if t.tag == der::context_constructed(0) {
            let mut attrs = t.children();
            while let Some(a) = attrs.next_tlv()? {
                attribute(a, &mut attributes)?;
            }
        }
    }
    Ok(SignerInfo { sid, attributes })
}

/// `Attribute { attrType OID, attrValues SET OF value }`.
fn attribute(a: Tlv<'_>, out: &mut SignerAttributes) -> Result<(), ()> {
    let mut f = a.children();
    let oid = f.expect()?;
    let values = f.expect()?;
    if oid.tag != der::OID || values.tag != der::SET {
        return Err(());
    }
    let Some(value) = values.children().next_tlv()? else {
        return Ok(());
    };
    if oid.contents == OID_SMIME_CAPABILITIES {
        let mut caps = value.children();
        while let Some(cap) = caps.next_tlv()? {
            if let Ok(Some(id)) = cap.children().next_tlv() {
                if id.tag == der::OID && id.contents == OID_AES256_GCM {
                    out.aes256_gcm = true;
                }
            }
        }
        out.capabilities = Some(crate::inspect::cms::reencode(value));
    } else if oid.contents == OID_ENCRYPTION_KEY_PREFERENCE {
        // CHOICE { [0] IMPLICIT IssuerAndSerialNumber, [1] IMPLICIT
        // RecipientKeyIdentifier, [2] IMPLICIT SubjectKeyIdentifier }.
        out.encryption_key_preference = if value.tag == der::context_constructed(0) {
            let as_sequence = Tlv {
                tag: der::SEQUENCE,
                contents: value.contents,
            };
            crate::inspect::cms::recipient_identifier(as_sequence).ok()
        } else if value.tag == der::context_constructed(1) {
            value
                .children()
                .next_tlv()
                .ok()
                .flatten()
                .filter(|k| k.tag == der::OCTET_STRING)
                .map(|k| CmsRecipient::SubjectKeyId(k.contents.to_vec()))
        } else if value.tag == der::context_primitive(2) {
            Some(CmsRecipient::SubjectKeyId(value.contents.to_vec()))
        } else {
            None
        };
    }
    Ok(())
}
