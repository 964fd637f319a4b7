//! CRLs of the built-in CA (`sealgate ca crl create`).
//!
//! A version 2 CRL signed by the CA's intermediate, with an authority key
//! identifier and a CRL number that grows by one with each CRL. The openssl
//! crate's builder cannot set reason codes, so entries carry the serial and
//! the revocation date only (RFC 5280 makes the reason optional).

use crate::params::SigAlg;
use crate::CaError;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::pkey::{PKeyRef, Private};
use openssl::x509::extension::AuthorityKeyIdentifier;
use openssl::x509::{CrlNumber, X509Crl, X509CrlBuilder, X509Ref, X509RevokedBuilder, X509};

/// A serial number as typed: hex, any case, optional `0x` and `:`
/// separators; returned upper-case without them.
pub fn parse_serial(text: &str) -> Result<String, CaError> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    let hex: String = t.chars().filter(|c| *c != ':').collect();
    if hex.is_empty() || hex.len() > 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CaError::Invalid(format!(
            "serial {text:?}: give the serial number in hex (at most 20 bytes), as `openssl x509 -serial` prints it"
        )));
    }
    let trimmed = hex.trim_start_matches('0');
    Ok(if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.to_ascii_uppercase()
    })
}

/// The CRL of `issuer` listing `serials` (hex, with their revocation
/// times), numbered `number`, valid for `next_update_days`.
pub fn build(
    issuer: &X509Ref,
    key: &PKeyRef<Private>,
    serials: &[(String, i64)],
    number: i64,
    next_update_days: u32,
    sig: SigAlg,
) -> Result<X509Crl, CaError> {
    let mut b = X509CrlBuilder::new()?;
    b.set_issuer_name(issuer.subject_name())?;
    b.set_last_update(&*Asn1Time::days_from_now(0)?)?;
    b.set_next_update(&*Asn1Time::days_from_now(next_update_days)?)?;
    let dummy = X509::builder()?;
    let aki = AuthorityKeyIdentifier::new()
        .keyid(true)
        .build(&dummy.x509v3_context(Some(issuer), None))?;
    b.append_extension(aki)?;
    let n = u32::try_from(number)
        .map_err(|_| CaError::Invalid(format!("CRL number {number} is out of range")))?;
    b.append_extension(CrlNumber::new(BigNum::from_u32(n)?)?.build()?)?;
    for (serial, at) in serials {
        let mut r = X509RevokedBuilder::new()?;
        r.set_serial_number(&*BigNum::from_hex_str(serial)?.to_asn1_integer()?)?;
        r.set_revocation_date(&*Asn1Time::from_unix(*at)?)?;
        b.add_revoked(r.build())?;
    }
    b.sign(key, sig.digest())?;
    Ok(b.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_read_as_openssl_prints_them() {
        assert_eq!(parse_serial("0x00ab:CD").unwrap(), "ABCD");
        assert_eq!(parse_serial("1f").unwrap(), "1F");
        assert!(parse_serial("xyz").is_err());
        assert!(parse_serial("").is_err());
        assert!(parse_serial(&"a".repeat(41)).is_err());
    }
}
