//! What the store keeps of a certificate, read from it once, and the file
//! formats certificates arrive in (PEM, DER, PKCS#7 `p7b`).

use crate::TrustError;
use openssl::asn1::{Asn1Time, Asn1TimeRef};
use openssl::hash::MessageDigest;
use openssl::pkcs7::Pkcs7;
use openssl::x509::{X509ExtendedKeyUsage, X509KeyUsage, X509NameRef, X509};
use serde::Serialize;

/// The fields of a certificate the store keeps and shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Upper-case hex of the SHA-256 of the DER: the certificate's id.
    pub sha256: String,
    /// Upper-case hex of the SHA-512 of the DER: the CTL's key.
    pub sha512: String,
    pub subject: String,
    pub issuer: String,
    /// Upper-case hex.
    pub serial: String,
    /// Every address it names (SAN rfc822Name, subject emailAddress), lower case.
    pub emails: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// KeyUsage names; `None` when the extension is absent (any usage).
    pub key_usage: Option<Vec<String>>,
    /// ExtendedKeyUsage names; `None` when the extension is absent.
    pub ext_key_usage: Option<Vec<String>>,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// Issuer and subject are the same name.
    pub self_issued: bool,
}

impl CertInfo {
    pub fn of(x: &X509) -> Result<CertInfo, TrustError> {
        let hex = |md| -> Result<String, TrustError> { Ok(to_hex(&x.digest(md)?)) };
        Ok(CertInfo {
            sha256: hex(MessageDigest::sha256())?,
            sha512: hex(MessageDigest::sha512())?,
            subject: name(x.subject_name()),
            issuer: name(x.issuer_name()),
            serial: x.serial_number().to_bn()?.to_hex_str()?.to_string(),
            emails: sealgate_keys::key::x509_addresses(x),
            not_before: unix(x.not_before())?,
            not_after: unix(x.not_after())?,
            key_usage: x.key_usage().map(key_usage_names),
            ext_key_usage: x.extended_key_usage().map(ext_key_usage_names),
            is_ca: is_ca(x),
            self_issued: x.subject_name().to_der()? == x.issuer_name().to_der()?,
        })
    }
}

/// Upper-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A name on one line, its entries in certificate order: `CN=Alice, O=Example`.
pub fn name(n: &X509NameRef) -> String {
    n.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?").to_string();
            // A name is whatever the certificate's maker wrote: no control
            // characters reach a terminal or a log line.
            let value: String = e
                .data()
                .to_string()
                .unwrap_or_else(|_| "?".into())
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            format!("{key}={value}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Unix seconds of an ASN.1 time.
pub fn unix(t: &Asn1TimeRef) -> Result<i64, TrustError> {
    let epoch = Asn1Time::from_unix(0)?;
    let d = epoch.diff(t)?;
    Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// basicConstraints CA:TRUE (OpenSSL's own reading of the extension).
fn is_ca(x: &X509) -> bool {
    // A path length is only readable on a CA; a CA without one still has
    // the CA flag, which `check_ca` style reading needs ffi for, so the
    // keyCertSign bit (required on CAs by RFC 5280) is the fallback.
    x.pathlen().is_some()
        || x.key_usage()
            .is_some_and(|ku| ku.contains(X509KeyUsage::KEY_CERT_SIGN))
}

fn key_usage_names(ku: X509KeyUsage) -> Vec<String> {
    [
        (X509KeyUsage::DIGITAL_SIGNATURE, "digitalSignature"),
        (X509KeyUsage::NON_REPUDIATION, "nonRepudiation"),
        (X509KeyUsage::KEY_ENCIPHERMENT, "keyEncipherment"),
        (X509KeyUsage::DATA_ENCIPHERMENT, "dataEncipherment"),
        (X509KeyUsage::KEY_AGREEMENT, "keyAgreement"),
        (X509KeyUsage::KEY_CERT_SIGN, "keyCertSign"),
        (X509KeyUsage::CRL_SIGN, "cRLSign"),
        (X509KeyUsage::ENCIPHER_ONLY, "encipherOnly"),
        (X509KeyUsage::DECIPHER_ONLY, "decipherOnly"),
    ]
    .iter()
    .filter(|(bit, _)| ku.contains(*bit))
    .map(|(_, n)| n.to_string())
    .collect()
}

fn ext_key_usage_names(eku: X509ExtendedKeyUsage) -> Vec<String> {
    [
        (X509ExtendedKeyUsage::ANYEKU, "anyExtendedKeyUsage"),
        (X509ExtendedKeyUsage::SSL_SERVER, "serverAuth"),
        (X509ExtendedKeyUsage::SSL_CLIENT, "clientAuth"),
        (X509ExtendedKeyUsage::CODE_SIGN, "codeSigning"),
        (X509ExtendedKeyUsage::SMIME, "emailProtection"),
        (X509ExtendedKeyUsage::TIMESTAMP, "timeStamping"),
        (X509ExtendedKeyUsage::OCSP_SIGN, "OCSPSigning"),
    ]
    .iter()
    .filter(|(bit, _)| eku.contains(*bit))
    .map(|(_, n)| n.to_string())
    .collect()
}

/// Every certificate in a file: PEM (any number of `CERTIFICATE` blocks, or
/// a `PKCS7` block), DER, or a DER PKCS#7 bundle (`.p7b`). Private keys are
/// not read here.
///
/// # Errors
/// [`TrustError::Format`] when the bytes are none of these, or hold no
/// certificate.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<X509>, TrustError> {
    let text = bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ");
    let certs = if text {
        if bytes.windows(17).any(|w| w == b"BEGIN PKCS7-----") {
            pkcs7_certs(&Pkcs7::from_pem(bytes)?)
        } else {
            X509::stack_from_pem(bytes)?
        }
    } else if let Ok(x) = X509::from_der(bytes) {
        vec![x]
    } else if let Ok(p7) = Pkcs7::from_der(bytes) {
        pkcs7_certs(&p7)
    } else {
        return Err(TrustError::Format(
            "neither a PEM file, a DER certificate nor a PKCS#7 (p7b) bundle".into(),
        ));
    };
    if certs.is_empty() {
        return Err(TrustError::Format("no certificate in it".into()));
    }
    Ok(certs)
}

fn pkcs7_certs(p7: &Pkcs7) -> Vec<X509> {
    p7.signed()
        .and_then(|s| s.certificates())
        .map(|st| st.iter().map(|c| c.to_owned()).collect())
        .unwrap_or_default()
}
