//! Whether a key may be used to encrypt to an address, and if not, why not.
//!
//! OpenPGP: valid under sequoia's StandardPolicy now, not revoked, not expired,
//! a non-revoked User ID carrying exactly the address, and at least one live
//! encryption-capable subkey (the same selection the encryptor uses).
//! X.509: a key type CMS can encrypt to (RSA of 2048 bits or more, EC
//! P-256/P-384/P-521), inside its validity period, KeyUsage (when present) allows
//! keyEncipherment or keyAgreement, ExtendedKeyUsage (when present) allows
//! emailProtection or anyExtendedKeyUsage, the certificate names the address
//! (SAN rfc822Name or subject emailAddress), and the trust policy accepts it.

use crate::key::x509_addresses;
use crate::trust::CertificateTrust;
use crate::RecipientKey;
use openssl::asn1::Asn1Time;
use openssl::x509::{X509ExtendedKeyUsage, X509KeyUsage, X509};
use sequoia_openpgp::cert::amalgamation::ValidAmalgamation;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::types::RevocationStatus;
use sequoia_openpgp::Cert;
use std::time::SystemTime;

/// `Ok(())` when `key` may be used for `address` at `now`, else the reason.
pub fn check(
    key: &RecipientKey,
    address: &str,
    now: SystemTime,
    trust: &dyn CertificateTrust,
) -> Result<(), String> {
    match key {
        RecipientKey::Pgp(cert) => check_pgp(cert, address, now),
        RecipientKey::Smime(x) => {
            check_x509(x, address, now)?;
            trust.check(x).map_err(|e| format!("not trusted: {e}"))
        }
    }
}

pub fn check_pgp(cert: &Cert, address: &str, now: SystemTime) -> Result<(), String> {
    let policy = StandardPolicy::new();
    let vc = cert
        .with_policy(&policy, now)
        .map_err(|e| format!("not valid under the standard policy: {e}"))?;
    if let RevocationStatus::Revoked(_) = vc.revocation_status() {
        return Err("certificate is revoked".into());
    }
    vc.alive()
        .map_err(|e| format!("certificate is expired or not yet valid: {e}"))?;
    let names_address = vc.userids().any(|u| {
        !matches!(u.revocation_status(), RevocationStatus::Revoked(_))
            && u.userid()
                .email()
                .ok()
                .flatten()
                .is_some_and(|e| e.eq_ignore_ascii_case(address))
    });
    if !names_address {
        return Err(format!("no valid User ID with the address {address}"));
    }
    if sealgate_crypto::pgp::encryption_subkeys(cert, now).is_empty() {
        return Err("no live, non-revoked encryption-capable subkey".into());
    }
    Ok(())
}

pub fn check_x509(x: &X509, address: &str, now: SystemTime) -> Result<(), String> {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    sealgate_crypto::smime::key_transport_support(x)?;
    let now = Asn1Time::from_unix(secs).map_err(|e| format!("time conversion: {e}"))?;
    if x.not_before() > now {
        return Err(format!("not valid before {}", x.not_before()));
    }
    if x.not_after() < now {
        return Err(format!("expired on {}", x.not_after()));
    }
    if let Some(ku) = x.key_usage() {
        if !ku.intersects(X509KeyUsage::KEY_ENCIPHERMENT | X509KeyUsage::KEY_AGREEMENT) {
            return Err("KeyUsage allows neither keyEncipherment nor keyAgreement".into());
        }
    }
    if let Some(eku) = x.extended_key_usage() {
        if !eku.intersects(X509ExtendedKeyUsage::SMIME | X509ExtendedKeyUsage::ANYEKU) {
            return Err(
                "ExtendedKeyUsage allows neither emailProtection nor anyExtendedKeyUsage".into(),
            );
        }
    }
    let address = address.to_lowercase();
    // The same addresses RecipientKey::names reads (SAN and subject).
    if !x509_addresses(x).contains(&address) {
        return Err(format!(
            "does not name {address} (neither SAN rfc822Name nor subject emailAddress)"
        ));
    }
    Ok(())
}
