//! Whether a certificate is valid now, and if not, exactly why: the rules of
//! CipherMail's certificate pages, checked in this order (the first that
//! fails is the reason shown):
//!
//! 0. the CTL: a certificate that is black-listed, or issued (directly or
//!    not) by a black-listed CA, is never valid; a white-listed one is valid
//!    without a path to a root (and, with "allow expired", outside its
//!    validity), rules 3 and 4 still apply to it; white-listing a CA does
//!    nothing for the certificates below it;
//! 1. inside its validity (not before, not after);
//! 2. a path to a certificate of the root store, through intermediates of
//!    the certificate store or of the bundle the certificate came with
//!    (OpenSSL's `X509_verify_cert` at the current time; every certificate
//!    of the path inside its validity, correctly signed, CA where it must
//!    be); an intermediate whose ExtendedKeyUsage excludes e-mail breaks the
//!    path too;
//! 3. not revoked: for each certificate of the path (the root excepted), a
//!    valid CRL of its issuer (signed by it, not past its nextUpdate) does
//!    not list it; without one, a certificate that names a distribution
//!    point is refused only under `trust.crl_missing = "deny"`;
//! 4. usable for S/MIME encryption: KeyUsage, when present, has
//!    keyEncipherment for an RSA key (key transport) or keyAgreement for an
//!    EC key (ECDH); ExtendedKeyUsage, when present, has emailProtection or
//!    anyExtendedKeyUsage.
//!
//! A [`Verifier`] is a snapshot of the root store and the intermediates,
//! built once and asked many times (it is `Send + Sync`).

use crate::cert::{name, CertInfo};
use crate::TrustError;
use openssl::pkey::Id;
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{
    CrlStatus, X509Crl, X509ExtendedKeyUsage, X509KeyUsage, X509StoreContext, X509,
};
use serde::Serialize;
use std::collections::HashMap;

/// A certificate's state now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "kebab-case")]
pub enum Status {
    /// May be used.
    Valid,
    /// Not inside its validity yet.
    NotYetValid,
    Expired,
    /// No path to a root: what is missing or wrong on the way.
    NotTrusted(String),
    /// Not usable for S/MIME encryption: which usage is missing.
    WrongUsage(String),
    /// On a valid CRL, itself or a CA above it: which one.
    Revoked(String),
    /// On the CTL's black list, itself or a CA above it: which one.
    BlackListed(String),
    /// On the CTL's white list: valid without a path to a root.
    WhiteListed,
}

impl Status {
    /// Whether the certificate may be used.
    pub fn is_valid(&self) -> bool {
        matches!(self, Status::Valid | Status::WhiteListed)
    }

    /// One word for lists: `valid`, `expired`, `not-trusted`, ...
    pub fn label(&self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::NotYetValid => "not-yet-valid",
            Status::Expired => "expired",
            Status::NotTrusted(_) => "not-trusted",
            Status::WrongUsage(_) => "wrong-usage",
            Status::Revoked(_) => "revoked",
            Status::BlackListed(_) => "black-listed",
            Status::WhiteListed => "white-listed",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Valid => write!(f, "valid"),
            Status::NotYetValid => write!(f, "not yet valid"),
            Status::Expired => write!(f, "expired"),
            Status::NotTrusted(why) => write!(f, "not trusted: {why}"),
            Status::WrongUsage(why) => write!(f, "wrong usage: {why}"),
            Status::Revoked(which) => write!(f, "revoked: {which}"),
            Status::BlackListed(which) => write!(f, "black-listed: {which}"),
            Status::WhiteListed => write!(f, "white-listed"),
        }
    }
}

/// The status and, when a path was found, the chain from the certificate
/// up to its root.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub status: Status,
    pub chain: Vec<X509>,
}

/// What a certificate is judged for: the usages differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Encrypt,
    Sign,
}

/// A CTL entry as the verifier uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listed {
    White { allow_expired: bool },
    Black,
}

/// What a [`Verifier`] is a snapshot of.
#[derive(Default)]
pub struct Snapshot {
    pub roots: Vec<X509>,
    pub intermediates: Vec<X509>,
    /// SHA-512 thumbprint (upper-case hex) -> entry.
    pub ctl: HashMap<String, Listed>,
    pub crls: Vec<X509Crl>,
    /// `trust.crl_missing = "deny"`: a certificate naming a CRL
    /// distribution point is not valid until a valid CRL of its issuer is
    /// in the store.
    pub crl_missing_deny: bool,
    /// Also trust the operating system's root bundle.
    pub system_roots: bool,
}

/// A snapshot of the root store, the known intermediates, the CTL and the CRLs.
pub struct Verifier {
    store: X509Store,
    intermediates: Vec<X509>,
    /// Roots and intermediates, for finding the CAs above a certificate
    /// that has no path (black-list inheritance).
    issuers: Vec<X509>,
    roots: usize,
    ctl: HashMap<String, Listed>,
    crls: Vec<X509Crl>,
    crl_missing_deny: bool,
    /// SHA-256 over everything it judges with: two verifiers with the same
    /// digest give the same verdicts.
    digest: Vec<u8>,
}

impl Verifier {
    /// What it judges with, as a digest: when a reload gives another one,
    /// verdicts made with the old snapshot (cached by the key stage) are
    /// stale.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// A verifier trusting `s.roots`, building paths through
    /// `s.intermediates`, with the CTL and the CRLs of `s`.
    pub fn new(s: Snapshot) -> Result<Verifier, TrustError> {
        let Snapshot {
            roots,
            intermediates,
            ctl,
            crls,
            crl_missing_deny,
            system_roots,
        } = s;
        let mut b = X509StoreBuilder::new()?;
        if system_roots {
            b.set_default_paths()?;
        }
        for r in &roots {
            // A root given twice is one anchor.
            if let Err(e) = b.add_cert(r.clone()) {
                tracing::debug!("root not added twice: {e}");
            }
        }
        let issuers = roots.iter().chain(&intermediates).cloned().collect();
        let mut h = openssl::sha::Sha256::new();
        for x in roots.iter().chain(&intermediates) {
            h.update(&x.to_der()?);
        }
        for c in &crls {
            h.update(&c.to_der()?);
        }
        let mut listed: Vec<String> = ctl.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        listed.sort();
        h.update(listed.join(",").as_bytes());
        h.update(&[u8::from(crl_missing_deny), u8::from(system_roots)]);
        let digest = h.finish().to_vec();
        Ok(Verifier {
            digest,
            store: b.build(),
            intermediates,
            issuers,
            roots: roots.len() + usize::from(system_roots),
            ctl,
            crls,
            crl_missing_deny,
        })
    }

    /// How many roots it trusts.
    pub fn root_count(&self) -> usize {
        self.roots
    }

    /// The state of `cert` now, with `bundle` (certificates that came with
    /// it) as extra intermediates.
    pub fn verify(&self, cert: &X509, bundle: &[X509]) -> Verdict {
        self.verify_with(cert, bundle, true)
    }

    /// [`Verifier::verify`]; with `require_chain = false` (a source the
    /// admin declared authoritative) no path to a root is needed, as for a
    /// white-listed certificate, but validity, revocation, the black list
    /// and the usages still are.
    pub fn verify_with(&self, cert: &X509, bundle: &[X509], require_chain: bool) -> Verdict {
        self.verify_for(cert, bundle, require_chain, Purpose::Encrypt)
    }

    /// [`Verifier::verify_with`] for `purpose`: the usages checked are
    /// those of encryption or of signing.
    pub fn verify_for(
        &self,
        cert: &X509,
        bundle: &[X509],
        require_chain: bool,
        purpose: Purpose,
    ) -> Verdict {
        let usage = |c: &X509| match purpose {
            Purpose::Encrypt => encryption_usage(c),
            Purpose::Sign => signing_usage(c),
        };
        let verdict = |status, chain| Verdict { status, chain };
        let info = match CertInfo::of(cert) {
            Ok(i) => i,
            Err(e) => return verdict(Status::NotTrusted(format!("unreadable: {e}")), Vec::new()),
        };
        // Rule 0: the black list, for the certificate and every CA above it
        // (found by name and signature, whether or not a root is known).
        let above = self.ancestors(cert, bundle);
        for (i, c) in std::iter::once(cert).chain(above.iter()).enumerate() {
            if let Some(Listed::Black) = self.listed(c) {
                let which = if i == 0 {
                    "this certificate".to_string()
                } else {
                    format!("its issuing CA {}", name(c.subject_name()))
                };
                return verdict(Status::BlackListed(which), Vec::new());
            }
        }
        let white = match self.listed(cert) {
            Some(Listed::White { allow_expired }) => Some(allow_expired),
            _ => None,
        };
        let now = sealgate_store::now_unix();
        if white != Some(true) {
            if now < info.not_before {
                return verdict(Status::NotYetValid, Vec::new());
            }
            if now > info.not_after {
                return verdict(Status::Expired, Vec::new());
            }
        }
        if white.is_some() || !require_chain {
            let mut chain = vec![cert.clone()];
            chain.extend(above);
            if let Err(status) = self.revocation(&chain, now) {
                return verdict(status, chain);
            }
            let ok = if white.is_some() {
                Status::WhiteListed
            } else {
                Status::Valid
            };
            return match usage(cert) {
                Ok(()) => verdict(ok, chain),
                Err(why) => verdict(Status::WrongUsage(why), chain),
            };
        }
        let chain = match self.path(cert, bundle) {
            Ok(c) => c,
            Err(why) => return verdict(Status::NotTrusted(why), Vec::new()),
        };
        for ca in chain.iter().skip(1) {
            if let Some(eku) = ca.extended_key_usage() {
                if !eku.intersects(X509ExtendedKeyUsage::SMIME | X509ExtendedKeyUsage::ANYEKU) {
                    let why = format!(
                        "the CA {} is not allowed to issue e-mail certificates (ExtendedKeyUsage)",
                        name(ca.subject_name())
                    );
                    return verdict(Status::NotTrusted(why), chain);
                }
            }
        }
        if let Err(status) = self.revocation(&chain, now) {
            return verdict(status, chain);
        }
        match usage(cert) {
            Ok(()) => verdict(Status::Valid, chain),
            Err(why) => verdict(Status::WrongUsage(why), chain),
        }
    }

    /// Rule 3 along `chain` (leaf first; each certificate's issuer follows
    /// it). The last one (the root, or the highest CA known) is not checked.
    fn revocation(&self, chain: &[X509], now: i64) -> Result<(), Status> {
        for (i, pair) in chain.windows(2).enumerate() {
            let (c, issuer) = (&pair[0], &pair[1]);
            let mut valid = self
                .crls
                .iter()
                .filter(|crl| crate::crl::check_crl(crl, issuer, now).is_ok())
                .peekable();
            if valid.peek().is_none() {
                if self.crl_missing_deny && !crate::crl::distribution_points(c).is_empty() {
                    return Err(Status::NotTrusted(format!(
                        "no valid CRL of {} yet, and trust.crl_missing is \"deny\"",
                        name(issuer.subject_name())
                    )));
                }
                continue;
            }
            if valid.any(|crl| matches!(crl.get_by_cert(c), CrlStatus::Revoked(_))) {
                let which = if i == 0 {
                    "this certificate".to_string()
                } else {
                    format!("its issuing CA {}", name(c.subject_name()))
                };
                return Err(Status::Revoked(which));
            }
        }
        Ok(())
    }

    fn listed(&self, x: &X509) -> Option<Listed> {
        let d = x.digest(openssl::hash::MessageDigest::sha512()).ok()?;
        self.ctl.get(&crate::cert::to_hex(&d)).copied()
    }

    /// The CAs above `cert` among the known roots, intermediates and
    /// `bundle`, nearest first: each the certificate whose subject is the
    /// issuer of the one before and whose key verifies its signature. Stops
    /// at a self-issued one, after 16, or where no issuer is known.
    fn ancestors(&self, cert: &X509, bundle: &[X509]) -> Vec<X509> {
        let mut out: Vec<X509> = Vec::new();
        let mut cur = cert.clone();
        while out.len() < 16 {
            let Ok(issuer) = cur.issuer_name().to_der() else {
                break;
            };
            if cur.subject_name().to_der().ok().as_deref() == Some(&issuer[..]) {
                break;
            }
            let next = self.issuers.iter().chain(bundle).find(|c| {
                c.subject_name().to_der().ok().as_deref() == Some(&issuer[..])
                    && c.public_key()
                        .is_ok_and(|k| cur.verify(&k).unwrap_or(false))
            });
            match next {
                Some(n) => {
                    out.push(n.clone());
                    cur = n.clone();
                }
                None => break,
            }
        }
        out
    }

    /// Whether the CA certificate `ca` has a path to a root (for judging
    /// the CRLs it signed).
    pub fn verify_ca(&self, ca: &X509) -> bool {
        self.path(ca, &[]).is_ok()
    }

    /// OpenSSL's path building and checks; the chain, leaf first.
    fn path(&self, cert: &X509, bundle: &[X509]) -> Result<Vec<X509>, String> {
        let mut untrusted = Stack::new().map_err(|e| e.to_string())?;
        for c in self.intermediates.iter().chain(bundle) {
            untrusted.push(c.clone()).map_err(|e| e.to_string())?;
        }
        let mut ctx = X509StoreContext::new().map_err(|e| e.to_string())?;
        let roots = self.roots;
        ctx.init(&self.store, cert, &untrusted, |c| {
            let ok = c.verify_cert()?;
            let chain: Vec<X509> = c
                .chain()
                .map(|s| s.iter().map(|x| x.to_owned()).collect())
                .unwrap_or_default();
            if ok {
                return Ok(Ok(chain));
            }
            let at = c
                .current_cert()
                .map(|x| name(x.subject_name()))
                .unwrap_or_else(|| "?".into());
            let e = c.error();
            let why = match e.as_raw() {
                // X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT(_LOCALLY),
                // DEPTH_ZERO_SELF_SIGNED_CERT, SELF_SIGNED_CERT_IN_CHAIN
                2 | 20 | 18 | 19 if roots == 0 => {
                    "no path to a root (the root store is empty)".to_string()
                }
                2 | 20 => format!(
                    "no path to a root: the issuer of {at} is neither in the root store nor a known intermediate"
                ),
                18 | 19 => format!("no path to a root: {at} is self-signed and not in the root store"),
                _ => format!("{} (at {at})", e.error_string()),
            };
            Ok(Err(why))
        })
        .map_err(|e| e.to_string())?
    }
}

/// Whether `cert` may sign S/MIME mail: KeyUsage, when present, has
/// digitalSignature or nonRepudiation; ExtendedKeyUsage, when present, has
/// emailProtection or anyExtendedKeyUsage.
pub fn signing_usage(cert: &X509) -> Result<(), String> {
    if let Some(ku) = cert.key_usage() {
        if !ku.intersects(X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::NON_REPUDIATION) {
            return Err("KeyUsage has neither digitalSignature nor nonRepudiation".into());
        }
    }
    if let Some(eku) = cert.extended_key_usage() {
        if !eku.intersects(X509ExtendedKeyUsage::SMIME | X509ExtendedKeyUsage::ANYEKU) {
            return Err(
                "ExtendedKeyUsage has neither emailProtection nor anyExtendedKeyUsage".into(),
            );
        }
    }
    Ok(())
}

/// Rule 4: whether the key of `cert` may be used for S/MIME encryption.
pub fn encryption_usage(cert: &X509) -> Result<(), String> {
    let key = cert
        .public_key()
        .map_err(|e| format!("unreadable public key: {e}"))?;
    if let Some(ku) = cert.key_usage() {
        match key.id() {
            Id::RSA if !ku.contains(X509KeyUsage::KEY_ENCIPHERMENT) => {
                return Err("an RSA key whose KeyUsage lacks keyEncipherment".into())
            }
            Id::EC if !ku.contains(X509KeyUsage::KEY_AGREEMENT) => {
                return Err("an EC key whose KeyUsage lacks keyAgreement".into())
            }
            _ => {}
        }
    }
    if let Some(eku) = cert.extended_key_usage() {
        if !eku.intersects(X509ExtendedKeyUsage::SMIME | X509ExtendedKeyUsage::ANYEKU) {
            return Err(
                "ExtendedKeyUsage has neither emailProtection nor anyExtendedKeyUsage".into(),
            );
        }
    }
    Ok(())
}
