//! X.509 trust: which S/MIME certificates may be believed.
//!
//! The key stage finds certificates that name a recipient (key-store files,
//! LDAP, imports); this stage decides whether one may be used, by the PKI
//! rules of CipherMail's certificate pages (DESIGN.md invariant 4): a path
//! to a root the admin trusts, inside its validity, the right usages. It
//! keeps, in the SQL store (so every instance sees the same state), the
//! **certificate store** (end-user and intermediate certificates, with what
//! sealgate read from them and where they came from) and the **root store**
//! (trust anchors; empty by default), and the **CTL** (certificates white-
//! or black-listed by SHA-512 thumbprint). [`Verifier`] is a snapshot of all
//! three that answers "valid, or why not" without touching the database.
//!
//! It also keeps the private keys sealgate holds for internal users, sealed
//! under the key-encryption key ([`kek`]): those of stored certificates
//! (from PKCS#12) and OpenPGP secret keys ([`held_pgp`]), which
//! `incoming.decrypt` opens mail with.
//!
//! Every operation is a call on [`TrustStore`]: the CLI (`sealgate certs`,
//! `sealgate roots`) is a thin face over it, as the admin HTTP API will be.

pub mod cert;
pub mod config;
pub mod crl;
mod db;
pub mod fetch;
pub mod held_pgp;
pub mod kek;
pub mod verify;

pub use cert::{parse_certificates, CertInfo};
pub use config::{CrlMissing, TrustConfig};
pub use crl::CrlInfo;
pub use db::{CtlEntry, StoredCert, StoredCrl, StoredRoot};
pub use fetch::Fetcher;
pub use kek::Kek;
pub use verify::{
    encryption_usage, signing_usage, Listed, Purpose, Snapshot, Status, Verdict, Verifier,
};

use openssl::x509::X509;
use sealgate_store::Store;

/// Errors of the trust stage; each names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{0}")]
    Format(String),
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadThumbprint(String),
}

/// What an import did with one certificate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Imported {
    pub sha256: String,
    pub subject: String,
    /// False when it was already in the store.
    pub added: bool,
    /// An intermediate (CA) certificate rather than an end-user one.
    pub is_ca: bool,
}

/// Which certificates [`TrustStore::list_certs`] returns.
#[derive(Debug, Clone, Default)]
pub struct CertFilter {
    /// Only those naming this address.
    pub email: Option<String>,
    /// `Some(true)`: only expired ones; `Some(false)`: only unexpired ones.
    pub expired: Option<bool>,
    /// Only those whose private key sealgate holds.
    pub with_key: bool,
}

/// What [`TrustStore::selected`] finds for an address.
#[derive(Debug, Clone)]
pub struct Selected {
    /// (target: the address or `@domain`, certificate).
    pub manual: Vec<(String, CertView)>,
    /// Certificates of the store that name the address.
    pub automatic: Vec<CertView>,
}

/// `alice@example.org` or `@example.org`, lower case; an error names a
/// target that is neither.
pub fn selection_target(t: &str) -> Result<String, TrustError> {
    let t = t.trim().to_lowercase();
    let ok = match t.strip_prefix('@') {
        Some(domain) => !domain.is_empty() && !domain.contains('@'),
        None => t
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !d.contains('@')),
    };
    if !ok || t.chars().any(char::is_whitespace) {
        return Err(TrustError::BadThumbprint(format!(
            "{t:?} is neither a mail address nor @domain"
        )));
    }
    Ok(t)
}

/// A certificate with its status now.
#[derive(Debug, Clone)]
pub struct CertView {
    pub stored: StoredCert,
    pub verdict: Verdict,
}

/// A CRL with whether it may be believed now.
#[derive(Debug, Clone)]
pub struct CrlView {
    pub stored: StoredCrl,
    /// `Ok`: valid; `Err`: why it is kept but not used.
    pub validity: Result<(), String>,
    /// The CA that signed it, when it is known.
    pub issuer_sha256: Option<String>,
}

impl CrlView {
    /// As the CLI (`crl list --json`) and the admin API show it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "crl": self.stored.info,
            "source": self.stored.source,
            "fetched_at": self.stored.fetched_at,
            "valid": self.validity.is_ok(),
            "reason": self.validity.as_ref().err(),
            "issuer_sha256": self.issuer_sha256,
        })
    }
}

/// What `crl update` did with one distribution point.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CrlFetch {
    pub url: String,
    /// The CRL's issuer, when one was stored.
    pub issuer: Option<String>,
    /// `None` when stored; else why not.
    pub error: Option<String>,
    /// False when the store already had a newer CRL from there.
    pub replaced: bool,
}

/// `[trust]` settings the stage needs.
#[derive(Debug, Clone, Default)]
pub struct TrustOptions {
    /// `trust.crl_missing = "deny"`.
    pub crl_missing_deny: bool,
    /// `trust.system_roots`.
    pub system_roots: bool,
}

/// The trust stage's operations on the store.
#[derive(Clone)]
pub struct TrustStore {
    store: Store,
    options: TrustOptions,
}

impl TrustStore {
    pub fn new(store: Store) -> TrustStore {
        TrustStore::with_options(store, TrustOptions::default())
    }

    pub fn with_options(store: Store, options: TrustOptions) -> TrustStore {
        TrustStore { store, options }
    }

    /// Adds every certificate in `bytes` (PEM, DER, p7b) to the certificate
    /// store, recording `source` ("import", "file:<path>", ...).
    pub async fn import_certs(
        &self,
        bytes: &[u8],
        source: &str,
    ) -> Result<Vec<Imported>, TrustError> {
        let mut out = Vec::new();
        for x in parse_certificates(bytes)? {
            out.push(self.add_cert(&x, source, false).await?);
        }
        Ok(out)
    }

    /// Adds one certificate.
    pub async fn add_cert(
        &self,
        x: &X509,
        source: &str,
        has_key: bool,
    ) -> Result<Imported, TrustError> {
        let info = CertInfo::of(x)?;
        let added =
            db::insert_cert(self.store.pool(), &info, &x.to_der()?, source, has_key).await?;
        Ok(Imported {
            sha256: info.sha256,
            subject: info.subject,
            added,
            is_ca: info.is_ca,
        })
    }

    /// The certificates `filter` lets through, each with its status now.
    pub async fn list_certs(&self, filter: &CertFilter) -> Result<Vec<CertView>, TrustError> {
        let verifier = self.verifier().await?;
        let now = sealgate_store::now_unix();
        let mut out = Vec::new();
        for c in db::list_certs(self.store.pool(), filter.email.as_deref()).await? {
            if filter.with_key && !c.has_key {
                continue;
            }
            if let Some(expired) = filter.expired {
                if (c.info.not_after < now) != expired {
                    continue;
                }
            }
            out.push(view(&verifier, c)?);
        }
        Ok(out)
    }

    /// The one certificate `thumbprint` names (SHA-256 or SHA-512 hex, or
    /// the start of a SHA-256 of at least 8 digits), with its status and
    /// chain.
    pub async fn show_cert(&self, thumbprint: &str) -> Result<CertView, TrustError> {
        let stored = self.find_cert(thumbprint).await?;
        view(&self.verifier().await?, stored)
    }

    /// The stored certificate `thumbprint` names (as [`TrustStore::show_cert`]),
    /// without judging it.
    pub async fn cert(&self, thumbprint: &str) -> Result<StoredCert, TrustError> {
        self.find_cert(thumbprint).await
    }

    /// Removes the certificate `thumbprint` names; its subject.
    pub async fn remove_cert(&self, thumbprint: &str) -> Result<StoredCert, TrustError> {
        let stored = self.find_cert(thumbprint).await?;
        db::remove_cert(self.store.pool(), &stored.info.sha256).await?;
        Ok(stored)
    }

    async fn find_cert(&self, thumbprint: &str) -> Result<StoredCert, TrustError> {
        let t = normalize_thumbprint(thumbprint)?;
        let mut found = db::find_certs(self.store.pool(), &t).await?;
        match found.len() {
            0 => Err(TrustError::NotFound(format!(
                "no certificate with the thumbprint {t} in the certificate store"
            ))),
            1 => Ok(found.remove(0)),
            n => Err(TrustError::BadThumbprint(format!(
                "{t} is the start of {n} thumbprints; give more of it"
            ))),
        }
    }

    /// Imports a PKCS#12 file (`.p12`, `.pfx`): its certificate with its
    /// private key, which is stored sealed under `kek` (never in the
    /// clear), and the CA certificates that came with it.
    pub async fn import_pkcs12(
        &self,
        bytes: &[u8],
        password: &str,
        kek: &Kek,
        source: &str,
    ) -> Result<Vec<Imported>, TrustError> {
        let p12 = openssl::pkcs12::Pkcs12::from_der(bytes)
            .map_err(|e| TrustError::Format(format!("not a PKCS#12 file: {e}")))?;
        let parsed = p12.parse2(password).map_err(|_| {
            TrustError::Format(
                "the PKCS#12 file does not open with this password (or uses an algorithm OpenSSL 3 does not load)"
                    .into(),
            )
        })?;
        let (Some(cert), Some(key)) = (parsed.cert, parsed.pkey) else {
            return Err(TrustError::Format(
                "the PKCS#12 file holds no certificate with its private key".into(),
            ));
        };
        if !cert.public_key()?.public_eq(&key) {
            return Err(TrustError::Format(
                "the private key in the PKCS#12 file is not the certificate's".into(),
            ));
        }
        let mut out = vec![self.add_cert_with_key(&cert, &key, kek, source).await?];
        for ca in parsed.ca.into_iter().flatten() {
            out.push(self.add_cert(&ca, source, false).await?);
        }
        Ok(out)
    }

    /// Adds `cert` to the certificate store with its private key `key`,
    /// sealed under `kek` (never stored in the clear).
    pub async fn add_cert_with_key(
        &self,
        cert: &X509,
        key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
        kek: &Kek,
        source: &str,
    ) -> Result<Imported, TrustError> {
        if !cert.public_key()?.public_eq(key) {
            return Err(TrustError::Format(
                "the private key is not the certificate's".into(),
            ));
        }
        let imported = self.add_cert(cert, source, true).await?;
        self.put_private_key(&imported.sha256, key, kek).await?;
        Ok(imported)
    }

    /// Stores `key` sealed under `kek` for the certificate (or root)
    /// `sha256`, replacing any key stored for it.
    pub async fn put_private_key(
        &self,
        sha256: &str,
        key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
        kek: &Kek,
    ) -> Result<(), TrustError> {
        let sealed = kek.seal(&key.private_key_to_pkcs8()?, sha256.as_bytes())?;
        db::put_private_key(self.store.pool(), sha256, &sealed).await
    }

    /// The private key of the stored certificate `sha256`, opened with `kek`.
    pub async fn private_key(
        &self,
        sha256: &str,
        kek: &Kek,
    ) -> Result<openssl::pkey::PKey<openssl::pkey::Private>, TrustError> {
        let sealed = db::private_key(self.store.pool(), sha256)
            .await?
            .ok_or_else(|| {
                TrustError::NotFound(format!("sealgate holds no private key of {sha256}"))
            })?;
        let der = kek.open(&sealed, sha256.as_bytes())?;
        Ok(openssl::pkey::PKey::private_key_from_pkcs8(&der)?)
    }

    /// Selects the stored certificate `thumbprint` names for `target` (an
    /// address, or `@domain` for everyone there): it is used for them while
    /// it is valid, whether or not it names them. False when it already was.
    pub async fn select(
        &self,
        target: &str,
        thumbprint: &str,
    ) -> Result<(StoredCert, bool), TrustError> {
        let target = selection_target(target)?;
        let c = self.find_cert(thumbprint).await?;
        let added = db::select(self.store.pool(), &target, &c.info.sha256).await?;
        Ok((c, added))
    }

    /// Undoes [`TrustStore::select`]. A certificate that is selected
    /// automatically (it names the address) cannot be deselected: the error
    /// says to turn `auto_select` off instead.
    pub async fn deselect(&self, target: &str, thumbprint: &str) -> Result<StoredCert, TrustError> {
        let target = selection_target(target)?;
        let c = self.find_cert(thumbprint).await?;
        if db::deselect(self.store.pool(), &target, &c.info.sha256).await? {
            return Ok(c);
        }
        if c.info.emails.contains(&target) {
            return Err(TrustError::NotFound(format!(
                "{} is selected for {target} automatically (it names the address); automatic selections cannot be deselected: set auto_select = false for {target} or its domain instead",
                c.info.sha256
            )));
        }
        Err(TrustError::NotFound(format!(
            "{} is not selected for {target}",
            c.info.sha256
        )))
    }

    /// What is selected for `address`: its own manual selections and its
    /// domain's (each with its status now), and the certificates of the
    /// store that name it (the automatic ones, when auto_select is on).
    pub async fn selected(&self, address: &str) -> Result<Selected, TrustError> {
        let address = selection_target(address)?;
        if address.starts_with('@') {
            return Err(TrustError::BadThumbprint(format!(
                "{address}: give an address; a domain's selections show under each address"
            )));
        }
        let domain = format!("@{}", address.rsplit_once('@').map_or("", |(_, d)| d));
        let verifier = self.verifier().await?;
        let mut manual = Vec::new();
        for (target, sha) in db::selections(self.store.pool()).await? {
            if target == address || target == domain {
                if let Ok(c) = self.find_cert(&sha).await {
                    manual.push((target, view(&verifier, c)?));
                }
            }
        }
        let mut automatic = Vec::new();
        for c in db::list_certs(self.store.pool(), Some(&address)).await? {
            if !c.info.is_ca {
                automatic.push(view(&verifier, c)?);
            }
        }
        Ok(Selected { manual, automatic })
    }

    /// Chooses by hand the signing certificate of `target` (an address or
    /// `@domain`): a stored certificate whose private key sealgate holds.
    /// Replaces the previous choice.
    pub async fn sign_select(
        &self,
        target: &str,
        thumbprint: &str,
    ) -> Result<StoredCert, TrustError> {
        let target = selection_target(target)?;
        let c = self.find_cert(thumbprint).await?;
        if !c.has_key {
            return Err(TrustError::NotFound(format!(
                "{}: sealgate holds no private key of this certificate; only certificates imported with their key (PKCS#12) can sign",
                c.info.sha256
            )));
        }
        db::set_sign_selection(self.store.pool(), &target, Some(&c.info.sha256)).await?;
        Ok(c)
    }

    /// Goes back to the automatic signing certificate for `target`; false
    /// when none was chosen by hand.
    pub async fn sign_auto(&self, target: &str) -> Result<bool, TrustError> {
        let target = selection_target(target)?;
        db::set_sign_selection(self.store.pool(), &target, None).await
    }

    /// The certificate `sender` signs with, and how it was chosen: the one
    /// chosen by hand for the address, else for its domain, while it is
    /// valid for signing; else automatically the first valid one (oldest
    /// first) with a private key that names the sender and may sign. `None`
    /// when there is none.
    pub async fn signing_certificate(
        &self,
        sender: &str,
    ) -> Result<Option<(StoredCert, String)>, TrustError> {
        let verifier = self.verifier().await?;
        self.signing_certificate_judged(sender, &verifier).await
    }

    /// [`TrustStore::signing_certificate`], judged with `verifier` (a
    /// running gateway's snapshot of the trust stores) instead of one built
    /// from the store for this call.
    pub async fn signing_certificate_judged(
        &self,
        sender: &str,
        verifier: &Verifier,
    ) -> Result<Option<(StoredCert, String)>, TrustError> {
        let sender = selection_target(sender)?;
        let domain = format!("@{}", sender.rsplit_once('@').map_or("", |(_, d)| d));
        let valid = |c: &StoredCert| -> bool {
            X509::from_der(&c.der).is_ok_and(|x| {
                verifier
                    .verify_for(&x, &[], true, Purpose::Sign)
                    .status
                    .is_valid()
            })
        };
        for target in [&sender, &domain] {
            if let Some(sha) = db::sign_selection(self.store.pool(), target).await? {
                if let Ok(c) = self.find_cert(&sha).await {
                    if c.has_key && valid(&c) {
                        return Ok(Some((c, format!("chosen for {target}"))));
                    }
                    tracing::warn!(sender = %sender, certificate = %sha, "the signing certificate chosen for {target} is not valid now; choosing automatically");
                }
            }
        }
        let mut candidates: Vec<StoredCert> = db::list_certs(self.store.pool(), Some(&sender))
            .await?
            .into_iter()
            .filter(|c| c.has_key && !c.info.is_ca)
            .collect();
        // The earliest imported; the same second: by thumbprint, so that
        // every instance picks the same one.
        candidates.sort_by(|a, b| (a.added_at, &a.info.sha256).cmp(&(b.added_at, &b.info.sha256)));
        Ok(candidates
            .into_iter()
            .find(|c| valid(c))
            .map(|c| (c, "automatic".to_string())))
    }

    /// The stored certificates that name `email` and whose private key
    /// sealgate holds, unjudged (decrypting with one's own key needs no
    /// trust decision).
    pub async fn keyed_certs_for(&self, email: &str) -> Result<Vec<StoredCert>, TrustError> {
        Ok(
            db::list_certs(self.store.pool(), Some(&email.to_lowercase()))
                .await?
                .into_iter()
                .filter(|c| c.has_key)
                .collect(),
        )
    }

    /// Every manual selection: (target, certificate).
    pub async fn manual_selections(&self) -> Result<Vec<(String, StoredCert)>, TrustError> {
        let mut out = Vec::new();
        for (target, sha) in db::selections(self.store.pool()).await? {
            if let Ok(c) = self.find_cert(&sha).await {
                out.push((target, c));
            }
        }
        Ok(out)
    }

    /// Adds every certificate in `bytes` to the root store.
    pub async fn import_roots(
        &self,
        bytes: &[u8],
        source: &str,
    ) -> Result<Vec<Imported>, TrustError> {
        let mut out = Vec::new();
        for x in parse_certificates(bytes)? {
            let info = CertInfo::of(&x)?;
            if !info.self_issued {
                tracing::warn!(subject = %info.subject, "root store: this certificate is not self-signed; it is trusted as an anchor all the same");
            }
            let added = db::insert_root(self.store.pool(), &info, &x.to_der()?, source).await?;
            out.push(Imported {
                sha256: info.sha256,
                subject: info.subject,
                added,
                is_ca: info.is_ca,
            });
        }
        Ok(out)
    }

    pub async fn list_roots(&self) -> Result<Vec<StoredRoot>, TrustError> {
        db::list_roots(self.store.pool()).await
    }

    /// Removes the root `thumbprint` names.
    pub async fn remove_root(&self, thumbprint: &str) -> Result<StoredRoot, TrustError> {
        let t = normalize_thumbprint(thumbprint)?;
        let mut found: Vec<StoredRoot> = self
            .list_roots()
            .await?
            .into_iter()
            .filter(|r| r.sha256 == t || r.sha512 == t || r.sha256.starts_with(&t))
            .collect();
        match found.len() {
            0 => Err(TrustError::NotFound(format!(
                "no root with the thumbprint {t} in the root store"
            ))),
            1 => {
                let r = found.remove(0);
                db::remove_root(self.store.pool(), &r.sha256).await?;
                Ok(r)
            }
            n => Err(TrustError::BadThumbprint(format!(
                "{t} is the start of {n} root thumbprints; give more of it"
            ))),
        }
    }

    /// A snapshot of the root store and the intermediates of the
    /// certificate store.
    pub async fn verifier(&self) -> Result<Verifier, TrustError> {
        let roots = self
            .list_roots()
            .await?
            .iter()
            .map(|r| X509::from_der(&r.der))
            .collect::<Result<Vec<_>, _>>()?;
        let intermediates = db::intermediates(self.store.pool())
            .await?
            .iter()
            .map(|d| X509::from_der(d))
            .collect::<Result<Vec<_>, _>>()?;
        let ctl = db::list_ctl(self.store.pool())
            .await?
            .into_iter()
            .map(|e| {
                let listed = if e.status == "white" {
                    Listed::White {
                        allow_expired: e.allow_expired,
                    }
                } else {
                    Listed::Black
                };
                (e.sha512, listed)
            })
            .collect();
        let crls = db::list_crls(self.store.pool())
            .await?
            .iter()
            .filter_map(|c| openssl::x509::X509Crl::from_der(&c.der).ok())
            .collect();
        Verifier::new(Snapshot {
            roots,
            intermediates,
            ctl,
            crls,
            crl_missing_deny: self.options.crl_missing_deny,
            system_roots: self.options.system_roots,
        })
    }

    /// Stores the CRL in `bytes` (DER or PEM) as coming from `source`.
    pub async fn import_crl(
        &self,
        bytes: &[u8],
        source: &str,
    ) -> Result<(CrlInfo, bool), TrustError> {
        let crl = crl::parse_crl(bytes)?;
        let info = CrlInfo::of(&crl)?;
        let replaced = db::put_crl(self.store.pool(), &info, &crl.to_der()?, source).await?;
        Ok((info, replaced))
    }

    /// Every stored CRL with its validity now: signed by a known CA (a root,
    /// or an intermediate with a path to one), not past its nextUpdate.
    pub async fn list_crls(&self) -> Result<Vec<CrlView>, TrustError> {
        let verifier = self.verifier().await?;
        let roots: Vec<X509> = self
            .list_roots()
            .await?
            .iter()
            .filter_map(|r| X509::from_der(&r.der).ok())
            .collect();
        let cas: Vec<X509> = db::intermediates(self.store.pool())
            .await?
            .iter()
            .filter_map(|d| X509::from_der(d).ok())
            .collect();
        let now = sealgate_store::now_unix();
        let mut out = Vec::new();
        for stored in db::list_crls(self.store.pool()).await? {
            let crl = openssl::x509::X509Crl::from_der(&stored.der)?;
            let mut validity =
                Err("no known CA (root or intermediate) has its issuer's name".to_string());
            let mut issuer_sha256 = None;
            let same_name = roots
                .iter()
                .map(|r| (r, true))
                .chain(cas.iter().map(|c| (c, false)))
                .filter(|(ca, _)| {
                    ca.subject_name().to_der().ok() == crl.issuer_name().to_der().ok()
                });
            for (ca, is_root) in same_name {
                let signed = ca
                    .public_key()
                    .is_ok_and(|k| crl.verify(&k).unwrap_or(false));
                if !signed {
                    validity = Err(format!(
                        "its signature does not verify with the key of {}",
                        cert::name(ca.subject_name())
                    ));
                    continue;
                }
                issuer_sha256 = Some(CertInfo::of(ca)?.sha256);
                validity = crl::check_crl(&crl, ca, now).and_then(|()| {
                    if is_root || verifier.verify_ca(ca) {
                        Ok(())
                    } else {
                        Err(format!(
                            "its issuer {} has no path to a root",
                            cert::name(ca.subject_name())
                        ))
                    }
                });
                break;
            }
            out.push(CrlView {
                stored,
                validity,
                issuer_sha256,
            });
        }
        Ok(out)
    }

    /// The CRL whose SHA-256 is `id` (or starts with it, at least 8 digits).
    pub async fn show_crl(&self, id: &str) -> Result<CrlView, TrustError> {
        let t = normalize_thumbprint(id)?;
        let mut hits: Vec<CrlView> = self
            .list_crls()
            .await?
            .into_iter()
            .filter(|c| c.stored.info.sha256.starts_with(&t))
            .collect();
        match hits.len() {
            0 => Err(TrustError::NotFound(format!("no CRL {t} in the CRL store"))),
            1 => Ok(hits.remove(0)),
            n => Err(TrustError::BadThumbprint(format!(
                "{t} is the start of {n} CRL ids; give more of it"
            ))),
        }
    }

    /// Downloads the CRL of every distribution point named by a certificate
    /// of the certificate store or the root store, and stores each one that
    /// parses (valid or not: validity is judged when it is used). One
    /// failing point does not stop the others; each is reported.
    pub async fn update_crls(&self, fetcher: &Fetcher) -> Result<Vec<CrlFetch>, TrustError> {
        let mut urls: Vec<String> = Vec::new();
        for der in db::all_der(self.store.pool()).await? {
            if let Ok(x) = X509::from_der(&der) {
                for u in crl::distribution_points(&x) {
                    if !urls.contains(&u) {
                        urls.push(u);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(urls.len());
        for url in urls {
            let got = match fetcher.get(&url).await {
                Ok(bytes) => self
                    .import_crl(&bytes, &url)
                    .await
                    .map_err(|e| format!("{url}: {e}")),
                Err(e) => Err(e),
            };
            out.push(match got {
                Ok((info, replaced)) => CrlFetch {
                    url,
                    issuer: Some(info.issuer),
                    error: None,
                    replaced,
                },
                Err(e) => {
                    tracing::warn!("CRL download failed: {e}");
                    CrlFetch {
                        url,
                        issuer: None,
                        error: Some(e),
                        replaced: false,
                    }
                }
            });
        }
        Ok(out)
    }

    /// Puts a certificate on the CTL: white-listed (valid without a path to
    /// a root; with `allow_expired`, also outside its validity) or
    /// black-listed (never valid, nor anything it issued). `thumbprint` is
    /// a SHA-512 (the certificate need not be in the store), or names a
    /// certificate of the store as [`TrustStore::show_cert`] does. Returns
    /// the SHA-512 listed.
    pub async fn ctl_add(
        &self,
        thumbprint: &str,
        white: bool,
        allow_expired: bool,
    ) -> Result<String, TrustError> {
        if allow_expired && !white {
            return Err(TrustError::BadThumbprint(
                "--allow-expired applies to white-listing only".into(),
            ));
        }
        let sha512 = self.ctl_key(thumbprint).await?;
        db::put_ctl(self.store.pool(), &sha512, white, allow_expired).await?;
        Ok(sha512)
    }

    pub async fn ctl_list(&self) -> Result<Vec<CtlEntry>, TrustError> {
        db::list_ctl(self.store.pool()).await
    }

    /// Removes the CTL entry `thumbprint` names; the SHA-512 removed.
    pub async fn ctl_remove(&self, thumbprint: &str) -> Result<String, TrustError> {
        let t = normalize_thumbprint(thumbprint)?;
        let listed = self.ctl_list().await?;
        let hits: Vec<&CtlEntry> = listed.iter().filter(|e| e.sha512.starts_with(&t)).collect();
        let sha512 = match hits.as_slice() {
            [one] => one.sha512.clone(),
            [] => self.ctl_key(thumbprint).await?,
            _ => {
                return Err(TrustError::BadThumbprint(format!(
                    "{t} is the start of several CTL entries; give more of it"
                )))
            }
        };
        if !db::remove_ctl(self.store.pool(), &sha512).await? {
            return Err(TrustError::NotFound(format!("{sha512} is not on the CTL")));
        }
        Ok(sha512)
    }

    /// The CTL key for `thumbprint`: itself when it is a whole SHA-512,
    /// else the SHA-512 of the stored certificate it names.
    async fn ctl_key(&self, thumbprint: &str) -> Result<String, TrustError> {
        let t = normalize_thumbprint(thumbprint)?;
        if t.len() == 128 {
            return Ok(t);
        }
        Ok(self.find_cert(&t).await?.info.sha512)
    }
}

fn view(verifier: &Verifier, stored: StoredCert) -> Result<CertView, TrustError> {
    let x = X509::from_der(&stored.der)?;
    Ok(CertView {
        verdict: verifier.verify(&x, &[]),
        stored,
    })
}

/// A thumbprint as the admin may type it (any case, with `:` or spaces
/// between the bytes), as the store spells it (upper-case hex). At least 8
/// digits.
pub fn normalize_thumbprint(t: &str) -> Result<String, TrustError> {
    let hex: String = t
        .chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .collect::<String>()
        .to_uppercase();
    if hex.len() < 8 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(TrustError::BadThumbprint(format!(
            "{t:?} is not a thumbprint: give the SHA-256 or SHA-512 in hex (at least its first 8 digits)"
        )));
    }
    Ok(hex)
}

/// The trust stage as the key resolver asks it: a certificate is trusted
/// when this snapshot finds it valid (or, from an authoritative source,
/// valid without a path).
impl sealgate_keys::trust::CertificateTrust for Verifier {
    fn check(
        &self,
        cert: &X509,
        context: &sealgate_keys::trust::TrustContext<'_>,
    ) -> Result<(), String> {
        let v = self.verify_with(cert, context.bundle, context.require_chain);
        if v.status.is_valid() {
            Ok(())
        } else {
            Err(v.status.to_string())
        }
    }
}

/// The snapshot a running gateway judges by, replaced by [`LiveTrust::refresh`]
/// (every few seconds, and at SIGHUP), so that `sealgate roots import`, `ctl`
/// and `crl` reach every instance without a restart. With a recorder
/// ([`LiveTrust::record_into`]) every certificate it is asked about, and
/// the certificates that came with it, are added to the certificate store
/// with the name of their source (key-store files, LDAP answers), so that
/// the admin sees them in `sealgate certs list` and their intermediates
/// serve later paths.
pub struct LiveTrust {
    current: std::sync::RwLock<std::sync::Arc<Verifier>>,
    recorder: Option<Recorder>,
}

/// Hands certificates to a task that stores them, without waiting: a full
/// queue drops (the next lookup offers them again).
struct Recorder {
    tx: tokio::sync::mpsc::Sender<(X509, String)>,
    /// Thumbprints already handed over (bounded: emptied when full).
    seen: std::sync::Mutex<std::collections::HashSet<Vec<u8>>>,
}

/// Certificates remembered as recorded before the set starts over.
const RECORDED_MAX: usize = 100_000;

impl LiveTrust {
    /// Loads the first snapshot.
    pub async fn load(trust: &TrustStore) -> Result<LiveTrust, TrustError> {
        Ok(LiveTrust {
            current: std::sync::RwLock::new(std::sync::Arc::new(trust.verifier().await?)),
            recorder: None,
        })
    }

    /// Records every certificate seen into `trust`'s certificate store, from
    /// a background task (must be called within a tokio runtime).
    pub fn record_into(mut self, trust: TrustStore) -> LiveTrust {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(X509, String)>(1024);
        tokio::spawn(async move {
            while let Some((x, source)) = rx.recv().await {
                let source = if source.is_empty() {
                    "lookup".to_string()
                } else {
                    source
                };
                if let Err(e) = trust.add_cert(&x, &source, false).await {
                    tracing::debug!("certificate not recorded in the certificate store: {e}");
                }
            }
        });
        self.recorder = Some(Recorder {
            tx,
            seen: Default::default(),
        });
        self
    }

    /// Builds a new snapshot from the store and uses it from now on; on
    /// error the previous one stays. Returns whether the stores' content
    /// changed since the last snapshot (the digest differs): verdicts
    /// cached meanwhile are stale then.
    pub async fn refresh(&self, trust: &TrustStore) -> Result<bool, TrustError> {
        let fresh = std::sync::Arc::new(trust.verifier().await?);
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let changed = current.digest() != fresh.digest();
        *current = fresh;
        Ok(changed)
    }

    /// The snapshot in use now (what the last refresh built).
    pub fn snapshot(&self) -> std::sync::Arc<Verifier> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn record(&self, certs: &[&X509], source: &str) {
        let Some(r) = &self.recorder else {
            return;
        };
        for x in certs {
            let Ok(d) = x.digest(openssl::hash::MessageDigest::sha256()) else {
                continue;
            };
            {
                let mut seen = r.seen.lock().unwrap_or_else(|e| e.into_inner());
                if seen.len() >= RECORDED_MAX {
                    seen.clear();
                }
                if !seen.insert(d.to_vec()) {
                    continue;
                }
            }
            if r.tx.try_send(((*x).clone(), source.to_string())).is_err() {
                // Full: offered again at the next lookup.
                r.seen
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&d.to_vec());
            }
        }
    }
}

impl sealgate_keys::trust::CertificateTrust for LiveTrust {
    fn check(
        &self,
        cert: &X509,
        context: &sealgate_keys::trust::TrustContext<'_>,
    ) -> Result<(), String> {
        let mut all: Vec<&X509> = vec![cert];
        all.extend(context.bundle.iter());
        self.record(&all, context.source);
        self.snapshot().check(cert, context)
    }
}
