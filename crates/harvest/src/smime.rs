//! S/MIME harvesting: the gates a signed message passes before its
//! signer's encryption certificate is learned.
//!
//! 1. The signature verifies over the exact signed bytes
//!    ([`sealgate_crypto::signed`]); the chain is not judged here but at
//!    use, by the trust stage's rules.
//! 2. The message has one author (`From:` with exactly one address), and a
//!    signer's certificate names that address.
//! 3. The certificate to learn may encrypt: the one the signer's
//!    SMIMEEncryptionKeyPreference attribute names, else the signer's own
//!    certificate, else a certificate of the signature's bundle for the
//!    same address; each must name the address and have the encryption
//!    usages (keyEncipherment for RSA, keyAgreement for EC, and
//!    emailProtection when ExtendedKeyUsage is present).
//!
//! The intermediates of the bundle are kept too (they help chains), and
//! the signer's SMIMECapabilities are remembered for the address.

use openssl::x509::X509;
use sealgate_crypto::mime::Message;
use sealgate_crypto::signed::{self, SignedError};
use sealgate_trust::{encryption_usage, CertInfo};

/// What a signed message teaches.
#[derive(Debug, Clone)]
pub struct Found {
    /// The author (lower case), whose certificate this is.
    pub address: String,
    /// The certificate to encrypt to.
    pub cert: X509,
    /// How it was chosen, for the log.
    pub how: &'static str,
    /// CA certificates that came with the signature.
    pub intermediates: Vec<X509>,
    /// The signer's SMIMECapabilities (DER), if sent.
    pub capabilities: Option<Vec<u8>>,
    pub aes256_gcm: bool,
}

/// Longest issuer path taken from a signature's bundle.
const MAX_PATH: usize = 8;

/// The CA certificates of `bundle` on the path above `cert`, nearest first:
/// each one issued the one before (names and signature), and no others
/// (a bundle full of unrelated CA certificates adds nothing to the store).
fn issuers_of(cert: &X509, bundle: &[X509]) -> Vec<X509> {
    let mut out: Vec<X509> = Vec::new();
    let mut current = cert.clone();
    while out.len() < MAX_PATH {
        let Some(issuer) = bundle.iter().find(|c| {
            CertInfo::of(c).is_ok_and(|i| i.is_ca)
                && c.issued(&current) == openssl::x509::X509VerifyResult::OK
                && c.public_key()
                    .and_then(|k| current.verify(&k))
                    .unwrap_or(false)
                && !out.iter().any(|o| o.to_der().ok() == c.to_der().ok())
        }) else {
            break;
        };
        out.push(issuer.clone());
        if issuer.issued(issuer) == openssl::x509::X509VerifyResult::OK {
            // Self-signed: the top (a root the admin may or may not trust).
            break;
        }
        current = issuer.clone();
    }
    out
}

/// Why a gate refused, and about whom (the one From address, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub address: Option<String>,
    pub reason: String,
}

/// `Ok(None)`: not S/MIME-signed (nothing to learn, not a refusal).
/// `Err`: a gate refused, with the reason.
pub fn examine(message: &[u8]) -> Result<Option<Found>, Refused> {
    let parsed = Message::parse(message);
    let from = parsed.addresses(&["From"]);
    let author = match from.as_slice() {
        [one] if one.len() <= 254 && !one.chars().any(|c| c.is_control()) => Some(one.clone()),
        _ => None,
    };
    let refuse = |reason: String| Refused {
        address: author.clone(),
        reason,
    };
    let signed = match signed::verify(message) {
        Ok(s) => s,
        Err(SignedError::NotSigned) => return Ok(None),
        Err(e) => return Err(refuse(e.to_string())),
    };
    let Some(address) = author.as_ref() else {
        return Err(refuse(format!(
            "the message has {} From: address(es); a certificate is learned only for a single author",
            from.len()
        )));
    };
    let names = |x: &X509| {
        CertInfo::of(x)
            .map(|i| i.emails.iter().any(|e| e.eq_ignore_ascii_case(address)))
            .unwrap_or(false)
    };
    let Some(signer) = signed.signers.iter().find(|s| names(&s.cert)) else {
        let named: Vec<String> = signed
            .signers
            .iter()
            .filter_map(|s| CertInfo::of(&s.cert).ok())
            .flat_map(|i| i.emails)
            .collect();
        return Err(refuse(format!(
            "no signer's certificate names the From address <{address}> (they name: {})",
            if named.is_empty() {
                "no address".to_string()
            } else {
                named.join(", ")
            }
        )));
    };
    let usable = |x: &X509| names(x) && encryption_usage(x).is_ok();
    let preferred = signer
        .attributes
        .encryption_key_preference
        .as_ref()
        .and_then(|p| signed.certificates.iter().find(|c| p.names(c)));
    let (cert, how) = if let Some(p) = preferred {
        if !usable(p) {
            return Err(refuse(format!(
                "the certificate SMIMEEncryptionKeyPreference names cannot be used for <{address}>: {}",
                if names(p) {
                    encryption_usage(p).err().unwrap_or_default()
                } else {
                    "it does not name the address".into()
                }
            )));
        }
        (p.clone(), "SMIMEEncryptionKeyPreference")
    } else if usable(&signer.cert) {
        (signer.cert.clone(), "signer")
    } else if let Some(c) = signed
        .certificates
        .iter()
        .find(|c| CertInfo::of(c).is_ok_and(|i| !i.is_ca) && usable(c))
    {
        (c.clone(), "bundle")
    } else {
        return Err(refuse(format!(
            "the signer's certificate may not encrypt ({}) and the signature carries no encryption certificate for <{address}>",
            encryption_usage(&signer.cert).err().unwrap_or_default()
        )));
    };
    let intermediates = issuers_of(&cert, &signed.certificates);
    Ok(Some(Found {
        address: address.clone(),
        cert,
        how,
        intermediates,
        capabilities: signer.attributes.capabilities.clone(),
        aes256_gcm: signer.attributes.aes256_gcm,
    }))
}
