//! Making the certificates, requests and their extensions with OpenSSL.
//!
//! - A root: self-signed, `basicConstraints` CA:TRUE (critical), KeyUsage
//!   keyCertSign + cRLSign (critical), a subject key identifier.
//! - An intermediate, signed by the root: CA:TRUE with pathlen 0, the same
//!   usages, subject and authority key identifiers.
//! - An end-user certificate, signed by the intermediate: CA:FALSE,
//!   KeyUsage digitalSignature + keyEncipherment (RSA) or digitalSignature +
//!   keyAgreement (EC, which cannot encipher), ExtendedKeyUsage
//!   emailProtection, SAN rfc822Name, and the CRL distribution point when
//!   asked. Its validity ends no later than its issuer's.
//!
//! Serial numbers are 128 random bits, positive.

use crate::params::SigAlg;
use crate::CaError;
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::pkey::{HasPublic, PKeyRef, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{
    X509Builder, X509Name, X509NameBuilder, X509Ref, X509Req, X509ReqBuilder, X509,
};

/// The subject of a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Subject {
    pub common_name: String,
    pub email: Option<String>,
    pub organisation: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
}

impl Subject {
    fn name(&self) -> Result<X509Name, CaError> {
        let mut b = X509NameBuilder::new()?;
        b.append_entry_by_text("CN", &self.common_name)?;
        if let Some(o) = &self.organisation {
            b.append_entry_by_text("O", o)?;
        }
        if let Some(g) = &self.given_name {
            b.append_entry_by_text("GN", g)?;
        }
        if let Some(s) = &self.surname {
            b.append_entry_by_text("SN", s)?;
        }
        if let Some(e) = &self.email {
            b.append_entry_by_text("emailAddress", e)?;
        }
        Ok(b.build())
    }
}

fn serial() -> Result<Asn1Integer, CaError> {
    let mut bn = BigNum::new()?;
    // 128 bits with the top bit set, so every serial has the same length.
    bn.rand(128, MsbOption::ONE, false)?;
    Ok(bn.to_asn1_integer()?)
}

fn base(
    subject: &Subject,
    public: &PKeyRef<impl HasPublic>,
    days: u32,
    not_after_cap: Option<&openssl::asn1::Asn1TimeRef>,
) -> Result<X509Builder, CaError> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    b.set_serial_number(&*serial()?)?;
    b.set_subject_name(&*subject.name()?)?;
    b.set_pubkey(public)?;
    // A minute back, for clocks a little behind.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    b.set_not_before(&*Asn1Time::from_unix(now - 60)?)?;
    let mut end = now + i64::from(days) * 86_400;
    if let Some(cap) = not_after_cap {
        // Never beyond the issuer's own end.
        let left = Asn1Time::from_unix(now)?.diff(cap)?;
        end = end.min(now + i64::from(left.days) * 86_400 + i64::from(left.secs));
    }
    b.set_not_after(&*Asn1Time::from_unix(end)?)?;
    Ok(b)
}

/// KeyUsage of a CA: keyCertSign and cRLSign, critical.
fn ca_usage() -> Result<openssl::x509::X509Extension, CaError> {
    Ok(KeyUsage::new()
        .critical()
        .key_cert_sign()
        .crl_sign()
        .build()?)
}

/// The subject key identifier, and the authority key identifier of
/// `issuer`.
fn key_identifiers(b: &mut X509Builder, issuer: &X509Ref) -> Result<(), CaError> {
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(issuer), None))?;
    b.append_extension(ski)?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&b.x509v3_context(Some(issuer), None))?;
    b.append_extension(aki)?;
    Ok(())
}

/// A self-signed root.
pub fn root(
    subject: &Subject,
    key: &PKeyRef<Private>,
    days: u32,
    sig: SigAlg,
) -> Result<X509, CaError> {
    let mut b = base(subject, key, days, None)?;
    b.set_issuer_name(&*subject.name()?)?;
    b.append_extension(BasicConstraints::new().critical().ca().build()?)?;
    b.append_extension(ca_usage()?)?;
    let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
    b.append_extension(ski)?;
    b.sign(key, sig.digest())?;
    Ok(b.build())
}

/// An intermediate signed by `issuer` (the root) with `issuer_key`.
pub fn intermediate(
    subject: &Subject,
    public: &PKeyRef<impl HasPublic>,
    days: u32,
    sig: SigAlg,
    issuer: &X509Ref,
    issuer_key: &PKeyRef<Private>,
) -> Result<X509, CaError> {
    let mut b = base(subject, public, days, Some(issuer.not_after()))?;
    b.set_issuer_name(issuer.subject_name())?;
    b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
    b.append_extension(ca_usage()?)?;
    key_identifiers(&mut b, issuer)?;
    b.sign(issuer_key, sig.digest())?;
    Ok(b.build())
}

/// An end-user S/MIME certificate for `subject` (whose email is required)
/// and `public`, signed by `issuer` with `issuer_key`.
pub fn end_user(
    subject: &Subject,
    public: &PKeyRef<impl HasPublic>,
    days: u32,
    sig: SigAlg,
    issuer: &X509Ref,
    issuer_key: &PKeyRef<Private>,
    crl_url: Option<&str>,
) -> Result<X509, CaError> {
    let email = subject
        .email
        .as_deref()
        .ok_or_else(|| CaError::Invalid("an end-user certificate needs an email".into()))?;
    let mut b = base(subject, public, days, Some(issuer.not_after()))?;
    b.set_issuer_name(issuer.subject_name())?;
    b.append_extension(BasicConstraints::new().critical().build()?)?;
    let mut ku = KeyUsage::new();
    ku.critical().digital_signature();
    if public.id() == openssl::pkey::Id::RSA {
        ku.key_encipherment();
    } else {
        ku.key_agreement();
    }
    b.append_extension(ku.build()?)?;
    b.append_extension(ExtendedKeyUsage::new().email_protection().build()?)?;
    let san = SubjectAlternativeName::new()
        .email(email)
        .build(&b.x509v3_context(Some(issuer), None))?;
    b.append_extension(san)?;
    key_identifiers(&mut b, issuer)?;
    if let Some(url) = crl_url {
        check_url(url)?;
        #[allow(deprecated)]
        let dp = openssl::x509::X509Extension::new_nid(
            None,
            Some(&b.x509v3_context(Some(issuer), None)),
            openssl::nid::Nid::CRL_DISTRIBUTION_POINTS,
            &format!("URI:{url}"),
        )?;
        b.append_extension(dp)?;
    }
    b.sign(issuer_key, sig.digest())?;
    Ok(b.build())
}

/// A PKCS#10 request for `subject` with `key`, for an external CA.
pub fn request(subject: &Subject, key: &PKeyRef<Private>, sig: SigAlg) -> Result<X509Req, CaError> {
    let mut b = X509ReqBuilder::new()?;
    b.set_version(0)?;
    b.set_subject_name(&*subject.name()?)?;
    b.set_pubkey(key)?;
    if let Some(email) = &subject.email {
        let mut exts = openssl::stack::Stack::new()?;
        exts.push(
            SubjectAlternativeName::new()
                .email(email)
                .build(&b.x509v3_context(None))?,
        )?;
        exts.push(ExtendedKeyUsage::new().email_protection().build()?)?;
        b.add_extensions(&exts)?;
    }
    b.sign(key, sig.digest())?;
    Ok(b.build())
}

/// A CRL distribution point URL: http or https, no spaces or commas (the
/// extension's syntax would split it).
pub fn check_url(url: &str) -> Result<(), CaError> {
    let ok = (url.starts_with("http://") || url.starts_with("https://"))
        && url.len() <= 1024
        && url.len() > "https://".len()
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',' || !c.is_ascii());
    if !ok {
        return Err(CaError::Invalid(format!(
            "CRL distribution point {url:?}: give an http:// or https:// URL without spaces or commas"
        )));
    }
    Ok(())
}

/// Upper-case hex SHA-256 of a certificate's DER (the store's thumbprint).
pub fn thumbprint(x: &X509Ref) -> Result<String, CaError> {
    Ok(x.digest(openssl::hash::MessageDigest::sha256())?
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect())
}

/// Upper-case hex of a certificate's serial number.
pub fn serial_hex(x: &X509Ref) -> Result<String, CaError> {
    Ok(x.serial_number().to_bn()?.to_hex_str()?.to_string())
}
