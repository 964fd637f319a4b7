//! Certificate trust: whether an X.509 certificate may be believed at all.
//!
//! This is the home of chain building to the root store, CRL and CTL checks
//! (CipherMail's model, a later issue). Today the only policy is
//! [`AcceptAllTrust`]: every certificate that passed [`crate::usable`] is
//! trusted, which is the behaviour of a key-store file the admin put in place.
//! The resolver calls [`CertificateTrust::check`] for every certificate it is
//! about to use, so a real trust store slots in without touching the flow.

use openssl::x509::X509;

/// Decides whether a certificate is trusted; `Err` carries the reason shown by
/// `sealgate verify`.
pub trait CertificateTrust: Send + Sync {
    fn check(&self, cert: &X509) -> Result<(), String>;
}

/// Trusts every certificate (the admin chose the key-store files).
#[derive(Debug, Default, Clone, Copy)]
pub struct AcceptAllTrust;

impl CertificateTrust for AcceptAllTrust {
    fn check(&self, _cert: &X509) -> Result<(), String> {
        Ok(())
    }
}
