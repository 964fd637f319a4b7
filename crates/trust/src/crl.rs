//! Certificate revocation lists: what the CRL store keeps of one, and
//! whether one is valid for a certificate's issuer.

use crate::cert::{name, to_hex, unix};
use crate::TrustError;
use openssl::hash::{hash, MessageDigest};
use openssl::x509::{CrlNumber, X509Crl, X509};
use serde::Serialize;

/// The fields of a CRL the store keeps and shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrlInfo {
    /// Upper-case hex of the SHA-256 of the DER.
    pub sha256: String,
    pub issuer: String,
    /// Hex of the DER of the issuer name: what certificates are matched by.
    pub issuer_key: String,
    /// Unix seconds.
    pub this_update: i64,
    pub next_update: Option<i64>,
    /// Upper-case hex; `None` without a CRLNumber extension.
    pub crl_number: Option<String>,
    /// How many certificates it lists.
    pub revoked: usize,
}

impl CrlInfo {
    pub fn of(crl: &X509Crl) -> Result<CrlInfo, TrustError> {
        let der = crl.to_der()?;
        let number = match crl.extension::<CrlNumber>()? {
            Some((_, n)) => Some(n.to_bn()?.to_hex_str()?.to_string()),
            None => None,
        };
        Ok(CrlInfo {
            sha256: to_hex(&hash(MessageDigest::sha256(), &der)?),
            issuer: name(crl.issuer_name()),
            issuer_key: to_hex(&crl.issuer_name().to_der()?),
            this_update: unix(crl.last_update())?,
            next_update: crl.next_update().map(unix).transpose()?,
            crl_number: number,
            revoked: crl.get_revoked().map_or(0, |r| r.len()),
        })
    }
}

/// A CRL in DER or PEM.
pub fn parse_crl(bytes: &[u8]) -> Result<X509Crl, TrustError> {
    if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        X509Crl::from_pem(bytes)
    } else {
        X509Crl::from_der(bytes)
    }
    .map_err(|e| TrustError::Format(format!("not a CRL (DER or PEM): {e}")))
}

/// Whether `crl` may be believed about certificates of `issuer` now: it
/// names `issuer` as its issuer, `issuer`'s key verifies its signature,
/// and it is not past its nextUpdate (nor before its thisUpdate). `Err`
/// says why not.
pub fn check_crl(crl: &X509Crl, issuer: &X509, now: i64) -> Result<(), String> {
    let same_name = crl.issuer_name().to_der().ok() == issuer.subject_name().to_der().ok();
    if !same_name {
        return Err(format!("not issued by {}", name(issuer.subject_name())));
    }
    let key = issuer
        .public_key()
        .map_err(|e| format!("the issuer's key is unreadable: {e}"))?;
    if !crl.verify(&key).unwrap_or(false) {
        return Err(format!(
            "its signature does not verify with the key of {}",
            name(issuer.subject_name())
        ));
    }
    let this = unix(crl.last_update()).map_err(|e| e.to_string())?;
    if this > now + 300 {
        return Err("its thisUpdate is in the future".into());
    }
    if let Some(next) = crl.next_update() {
        if unix(next).map_err(|e| e.to_string())? < now {
            return Err("expired (past its nextUpdate)".into());
        }
    }
    Ok(())
}

/// The http(s), ldap(s) URIs of the CRL distribution points of `x`.
pub fn distribution_points(x: &X509) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(dps) = x.crl_distribution_points() {
        for dp in dps.iter() {
            if let Some(names) = dp.distpoint().and_then(|d| d.fullname()) {
                for n in names.iter() {
                    if let Some(uri) = n.uri() {
                        let lower = uri.to_ascii_lowercase();
                        if ["http://", "https://", "ldap://", "ldaps://"]
                            .iter()
                            .any(|p| lower.starts_with(p))
                        {
                            out.push(uri.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}
