//! Certificate trust: whether an X.509 certificate may be believed at all.
//!
//! The resolver calls [`CertificateTrust::check`] for every certificate it
//! is about to use, with what it knows about where the certificate came
//! from ([`TrustContext`]). `crates/trust` implements it with the
//! certificate store, the root store, the CTL and CRLs (CipherMail's
//! model); [`AcceptAllTrust`] trusts everything (tests and tools that check
//! keys without a store).

use openssl::x509::X509;

/// What the resolver knows about a certificate's origin.
#[derive(Debug, Clone, Copy)]
pub struct TrustContext<'a> {
    /// The source is not declared authoritative (`require_chain = true`,
    /// the default): the certificate needs a path to a root (or a CTL
    /// white-listing). `false`: the source's word stands in for the path;
    /// validity, revocation, the CTL's black list and usages still apply.
    pub require_chain: bool,
    /// The other certificates of the same answer (an LDAP entry's
    /// `userSMIMECertificate` chain, a p7b file): intermediates to build
    /// the path through.
    pub bundle: &'a [X509],
    /// The source's name (`files`, `ldap:corp`, `import`, ...), for the
    /// certificate store's record of where a certificate came from; empty
    /// when unknown.
    pub source: &'a str,
}

impl TrustContext<'_> {
    /// A certificate from nowhere in particular: chain required, no bundle.
    pub const STRICT: TrustContext<'static> = TrustContext {
        require_chain: true,
        bundle: &[],
        source: "",
    };
}

/// Decides whether a certificate is trusted; `Err` carries the reason shown by
/// `sealgate verify`.
pub trait CertificateTrust: Send + Sync {
    fn check(&self, cert: &X509, context: &TrustContext<'_>) -> Result<(), String>;
}

/// Trusts every certificate.
#[derive(Debug, Default, Clone, Copy)]
pub struct AcceptAllTrust;

impl CertificateTrust for AcceptAllTrust {
    fn check(&self, _cert: &X509, _context: &TrustContext<'_>) -> Result<(), String> {
        Ok(())
    }
}
