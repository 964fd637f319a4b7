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
use crate::trust::{CertificateTrust, TrustContext};
use crate::RecipientKey;
use openssl::asn1::Asn1Time;
use openssl::x509::{X509ExtendedKeyUsage, X509KeyUsage, X509};
use sequoia_openpgp::cert::amalgamation::ValidAmalgamation;
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::types::RevocationStatus;
use sequoia_openpgp::Cert;
use std::time::{Duration, SystemTime};

/// `Ok(())` when `key` may be used for `address` at `now`, else the reason.
/// A certificate is also put to `trust`, with what is known of its origin.
pub fn check(
    key: &RecipientKey,
    address: &str,
    now: SystemTime,
    trust: &dyn CertificateTrust,
    context: &TrustContext<'_>,
) -> Result<(), String> {
    match key {
        RecipientKey::Pgp(cert) => check_pgp(cert, address, now),
        RecipientKey::Smime(x) => {
            check_x509(x, address, now)?;
            trust.check(x, context)
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

/// Margin around every date in a key when deciding how long a verdict lasts
/// (wider than sequoia's 30-minute clock-skew tolerance).
const DATE_MARGIN: Duration = Duration::from_secs(3600);

/// Until when the verdict of [`check`] at `now` can be reused: the earliest
/// date in the key (a signature's creation or expiry, a key's creation or
/// expiry; an X.509 validity bound), less or plus an hour, that lies after
/// `now`, and never later than `now + max`. Only these dates make the
/// verdict change with time; `max` bounds everything else (the policy's
/// algorithm cut-off dates, the trust policy). `now` itself (no reuse) when
/// a date cannot be read.
pub fn verdict_lasts_until(key: &RecipientKey, now: SystemTime, max: Duration) -> SystemTime {
    let dates = match key {
        RecipientKey::Pgp(cert) => pgp_dates(cert),
        RecipientKey::Smime(x) => match x509_dates(x) {
            Some(d) => d,
            None => return now,
        },
    };
    let mut until = now + max;
    for d in dates {
        for c in [
            d.checked_sub(DATE_MARGIN),
            Some(d),
            d.checked_add(DATE_MARGIN),
        ] {
            if let Some(c) = c.filter(|c| *c > now && *c < until) {
                until = c;
            }
        }
    }
    until
}

/// Every date in the certificate that a check at some time could depend
/// on: signatures' creation and expiry times, keys' creation times, and each
/// key's creation time plus every key validity period in it (more dates than
/// needed only make the verdict be recomputed sooner).
fn pgp_dates(cert: &Cert) -> Vec<SystemTime> {
    use sequoia_openpgp::Packet;
    let mut dates = Vec::new();
    let mut created = Vec::new();
    let mut periods = Vec::new();
    for p in cert.clone().into_packets() {
        match p {
            Packet::PublicKey(k) => created.push(k.creation_time()),
            Packet::PublicSubkey(k) => created.push(k.creation_time()),
            Packet::SecretKey(k) => created.push(k.creation_time()),
            Packet::SecretSubkey(k) => created.push(k.creation_time()),
            Packet::Signature(s) => {
                dates.extend(s.signature_creation_time());
                dates.extend(s.signature_expiration_time());
                periods.extend(s.key_validity_period());
            }
            _ => {}
        }
    }
    for c in &created {
        dates.push(*c);
        dates.extend(periods.iter().filter_map(|p| c.checked_add(*p)));
    }
    dates
}

fn x509_dates(x: &X509) -> Option<Vec<SystemTime>> {
    let epoch = Asn1Time::from_unix(0).ok()?;
    let at = |t: &openssl::asn1::Asn1TimeRef| -> Option<SystemTime> {
        let d = epoch.diff(t).ok()?;
        let secs = i64::from(d.days) * 86_400 + i64::from(d.secs);
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
    };
    Some(vec![at(x.not_before())?, at(x.not_after())?])
}
