//! The built-in certificate authority: where S/MIME certificates come from
//! when an organisation has no PKI of its own.
//!
//! It stands beside the flow, feeding the trust stage: a CA is a root (put
//! in the root store) and an intermediate (in the certificate store), whose
//! private keys are sealed under the key-encryption key like every key
//! sealgate holds. Certificates it issues go into the certificate store with
//! their keys, so that the very next message to their address is encrypted
//! to them, and its CRLs go into the CRL store, so that a revocation stops
//! their use at once. The CA's state (authorities, configuration, revoked
//! serials, CRLs, pending requests) lives in the store, shared by every
//! instance. This is the seed's "Certificate Authority" half of
//! ../shared/seeds/ciphermail-certificates-and-ca.txt.
//!
//! Every operation is a call on [`Ca`]: the CLI (`sealgate ca`) is a thin
//! face over it, as the admin HTTP API will be. Files: [`params`] (key,
//! hash, validity, names; what is refused), [`build`] (certificates and
//! requests), [`config`] (the CA configuration), [`crl`], [`pkcs12`],
//! `db.rs` (the tables).

pub mod build;
pub mod bulk;
pub mod config;
pub mod crl;
mod db;
pub mod handler;
pub mod mail;
pub mod params;
pub mod pending;
pub mod pkcs12;

pub use build::Subject;
pub use config::CaConfig;
pub use db::{Authority, StoredCrl};
pub use params::{KeySpec, SigAlg};

use openssl::x509::X509;
use sealgate_store::Store;
use sealgate_trust::{Kek, TrustStore};

/// What went wrong, for the CLI and the API.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A bad value: names the field and the valid choices.
    #[error("{0}")]
    Invalid(String),
    /// A weak parameter the seed warns against (1024-bit keys, SHA-1).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    /// Something that needs the key-encryption key, without one.
    #[error("the CA's private keys are sealed under the key-encryption key: set store.key_encryption_key_file or {}", sealgate_trust::kek::KEK_ENV)]
    NoKek,
    #[error("OpenSSL: {0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("{0}")]
    Trust(#[from] sealgate_trust::TrustError),
}

/// `sealgate ca create`: a root and an intermediate in one step.
#[derive(Debug, Clone)]
pub struct NewCa {
    pub root_name: String,
    pub intermediate_name: String,
    pub email: Option<String>,
    pub validity_days: u32,
    pub key: KeySpec,
    pub signature_algorithm: SigAlg,
    /// Make it the default CA (the first CA is the default anyway).
    pub make_default: bool,
}

/// A CA with its certificates' names and dates, for listing.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaView {
    #[serde(flatten)]
    pub authority: Authority,
    pub root_subject: String,
    pub intermediate_subject: String,
    pub not_after: String,
    /// Where its CRL is published (`/crl/<sha256>.crl`), and its number.
    pub crl_number: Option<i64>,
}

/// A certificate request, for the built-in handler.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub email: String,
    /// `None`: the configuration's `default_common_name`.
    pub common_name: Option<String>,
    pub organisation: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    /// `None`: the configuration's.
    pub validity_days: Option<u32>,
    pub key: Option<KeySpec>,
    pub signature_algorithm: Option<SigAlg>,
    /// `None`: the configuration's `add_crl_distribution_point`.
    pub crl_distribution_point: Option<bool>,
    /// The CA to sign with (a thumbprint); `None`: the default CA.
    pub ca: Option<String>,
}

/// An issued certificate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Issued {
    pub sha256: String,
    pub serial: String,
    pub email: String,
    pub subject: String,
    pub not_after: String,
    /// The CA that signed it.
    pub ca: String,
    #[serde(skip)]
    pub cert: X509,
}

/// `sealgate ca crl create`.
#[derive(Debug, Clone)]
pub struct NewCrl {
    /// `None`: the default CA.
    pub ca: Option<String>,
    /// Hex serial numbers to list.
    pub serials: Vec<String>,
    pub next_update_days: u32,
    /// Keep the serials of the CA's earlier CRLs (the default the seed
    /// advises).
    pub update_existing: bool,
    /// `None`: the configuration's.
    pub signature_algorithm: Option<SigAlg>,
}

/// What `send` queued.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sent {
    pub queue_id: String,
    pub to: String,
    /// The thumbprints of the certificates in the mail.
    pub certificates: Vec<String>,
    /// For the admin only: never in the mail, never logged.
    #[serde(skip)]
    pub password: String,
}

/// The built-in CA, over the store and the trust stores.
#[derive(Clone)]
pub struct Ca {
    store: Store,
    trust: TrustStore,
    kek: Option<Kek>,
}

impl Ca {
    pub fn new(store: Store, trust: TrustStore, kek: Option<Kek>) -> Ca {
        Ca { store, trust, kek }
    }

    pub(crate) fn kek(&self) -> Result<&Kek, CaError> {
        self.kek.as_ref().ok_or(CaError::NoKek)
    }

    /// Makes a root and an intermediate signed by it, stores both (the root
    /// in the root store) with their keys sealed, and records the CA.
    ///
    /// # Errors
    /// [`CaError::Invalid`] for equal or bad names; [`CaError::NoKek`]
    /// without a key-encryption key.
    pub async fn create(&self, p: &NewCa) -> Result<CaView, CaError> {
        let kek = self.kek()?;
        let root_name = params::subject_text("root common name", &p.root_name)?;
        let inter_name = params::subject_text("intermediate common name", &p.intermediate_name)?;
        if root_name.eq_ignore_ascii_case(&inter_name) {
            return Err(CaError::Invalid(format!(
                "the root and the intermediate must have different common names (both {root_name:?})"
            )));
        }
        params::validity_days(p.validity_days)?;
        let email = p.email.as_deref().map(params::email).transpose()?;
        let (key, sig, days) = (p.key, p.signature_algorithm, p.validity_days);
        let (root, root_key, inter, inter_key) = tokio::task::spawn_blocking(move || {
            let subject = |cn: &str| Subject {
                common_name: cn.to_string(),
                email: email.clone(),
                ..Default::default()
            };
            let root_key = key.generate()?;
            let root = build::root(&subject(&root_name), &root_key, days, sig)?;
            let inter_key = key.generate()?;
            let inter = build::intermediate(
                &subject(&inter_name),
                &inter_key,
                days,
                sig,
                &root,
                &root_key,
            )?;
            Ok::<_, CaError>((root, root_key, inter, inter_key))
        })
        .await
        .map_err(|e| CaError::Invalid(format!("key generation failed: {e}")))??;
        let roots = self.trust.import_roots(&root.to_der()?, "ca").await?;
        let root_sha = roots[0].sha256.clone();
        self.trust
            .put_private_key(&root_sha, &root_key, kek)
            .await?;
        let inter_sha = self
            .trust
            .add_cert_with_key(&inter, &inter_key, kek, "ca")
            .await?
            .sha256;
        let first = db::authorities(self.store.pool()).await?.is_empty();
        let authority = Authority {
            sha256: inter_sha,
            name: p.intermediate_name.trim().to_string(),
            root_sha256: root_sha,
            is_default: p.make_default || first,
            created_at: sealgate_store::now_unix(),
        };
        db::insert_authority(self.store.pool(), &authority).await?;
        tracing::info!(ca = %authority.sha256, name = %authority.name, default = authority.is_default, "ca: created");
        self.view(authority).await
    }

    async fn view(&self, authority: Authority) -> Result<CaView, CaError> {
        let inter = self.trust.cert(&authority.sha256).await?;
        let crl = db::crl(self.store.pool(), &authority.sha256).await?;
        let root_subject = self
            .trust
            .list_roots()
            .await?
            .into_iter()
            .find(|r| r.sha256 == authority.root_sha256)
            .map(|r| r.subject)
            .unwrap_or_else(|| "(the root is no longer in the root store)".into());
        Ok(CaView {
            root_subject,
            intermediate_subject: inter.info.subject.clone(),
            not_after: openssl::asn1::Asn1Time::from_unix(inter.info.not_after)?.to_string(),
            crl_number: crl.map(|c| c.number),
            authority,
        })
    }

    /// Every CA, oldest first.
    pub async fn list(&self) -> Result<Vec<CaView>, CaError> {
        let mut out = Vec::new();
        for a in db::authorities(self.store.pool()).await? {
            out.push(self.view(a).await?);
        }
        Ok(out)
    }

    /// The CA `thumbprint` names (the intermediate's SHA-256, or at least
    /// its first 8 hex digits); `None`: the default CA.
    pub async fn authority(&self, thumbprint: Option<&str>) -> Result<Authority, CaError> {
        let all = db::authorities(self.store.pool()).await?;
        let Some(t) = thumbprint else {
            return all.into_iter().find(|a| a.is_default).ok_or_else(|| {
                CaError::NotFound("there is no CA yet: create one with `sealgate ca create`".into())
            });
        };
        let t = t.trim().replace(':', "").to_ascii_uppercase();
        if t.len() < 8 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CaError::Invalid(format!(
                "{t:?} is not a CA thumbprint (the intermediate's SHA-256 hex, at least 8 digits, as `sealgate ca list` shows)"
            )));
        }
        let mut found: Vec<Authority> = all
            .into_iter()
            .filter(|a| a.sha256.starts_with(&t))
            .collect();
        match found.len() {
            0 => Err(CaError::NotFound(format!("no CA with the thumbprint {t}"))),
            1 => Ok(found.remove(0)),
            n => Err(CaError::Invalid(format!(
                "{t} is the start of {n} CA thumbprints; give more of it"
            ))),
        }
    }

    /// Makes the CA `thumbprint` names the default (the seed's "Select
    /// default CA").
    pub async fn set_default(&self, thumbprint: &str) -> Result<CaView, CaError> {
        let a = self.authority(Some(thumbprint)).await?;
        db::set_default(self.store.pool(), &a.sha256).await?;
        let a = self.authority(Some(&a.sha256)).await?;
        self.view(a).await
    }

    /// The CA configuration (defaults where nothing is stored).
    pub async fn config(&self) -> Result<CaConfig, CaError> {
        CaConfig::from_rows(&db::settings(self.store.pool()).await?)
    }

    /// Sets one CA setting, checked; the new configuration.
    pub async fn set_config(&self, name: &str, value: &str) -> Result<CaConfig, CaError> {
        let mut c = self.config().await?;
        let json = c.set(name, value)?;
        db::put_setting(self.store.pool(), name, &json.to_string()).await?;
        Ok(c)
    }

    /// The CA's certificate and opened key.
    async fn signer(
        &self,
        a: &Authority,
    ) -> Result<(X509, openssl::pkey::PKey<openssl::pkey::Private>), CaError> {
        let kek = self.kek()?;
        let inter = self.trust.cert(&a.sha256).await?;
        let cert = X509::from_der(&inter.der)?;
        let key = self.trust.private_key(&a.sha256, kek).await?;
        Ok((cert, key))
    }

    /// The built-in handler: issues a certificate for `r` at once, signed by
    /// the chosen (or default) CA, and stores it with its new key.
    pub async fn issue(&self, r: &Request) -> Result<Issued, CaError> {
        let kek = self.kek()?;
        let config = self.config().await?;
        let subject = subject_of(r, &config)?;
        let a = self.authority(r.ca.as_deref()).await?;
        let (issuer, issuer_key) = self.signer(&a).await?;
        let days = params::validity_days(r.validity_days.unwrap_or(config.validity_days))?;
        let key_spec = r.key.unwrap_or(config.key);
        let sig = r.signature_algorithm.unwrap_or(config.signature_algorithm);
        let crl_url = match r.crl_distribution_point {
            Some(false) => None,
            Some(true) => Some(config.crl_distribution_point_url.clone().map(|u| u.replace("{ca}", &a.sha256)).ok_or_else(|| {
                CaError::Invalid("a CRL distribution point was asked for, but crl_distribution_point_url is not set (sealgate ca config set crl_distribution_point_url URL)".into())
            })?),
            None => config.crl_url_for(&a.sha256),
        };
        let s = subject.clone();
        let (cert, key) = tokio::task::spawn_blocking(move || {
            let key = key_spec.generate()?;
            let cert = build::end_user(
                &s,
                &key,
                days,
                sig,
                &issuer,
                &issuer_key,
                crl_url.as_deref(),
            )?;
            Ok::<_, CaError>((cert, key))
        })
        .await
        .map_err(|e| CaError::Invalid(format!("key generation failed: {e}")))??;
        let serial = build::serial_hex(&cert)?;
        let email = subject.email.clone().unwrap_or_default();
        let sha256 = self
            .keep(
                &cert,
                &key,
                kek,
                &format!("ca:{}", a.name),
                Some((&a.sha256, &serial, &email)),
            )
            .await?;
        tracing::info!(ca = %a.sha256, certificate = %sha256, serial = %serial, email = %email, "ca: certificate issued");
        Ok(Issued {
            subject: sealgate_trust::CertInfo::of(&cert)?.subject,
            not_after: cert.not_after().to_string(),
            sha256,
            serial,
            email,
            ca: a.sha256,
            cert,
        })
    }

    /// The PKCS#12 of the stored certificate `thumbprint` with its key and
    /// the chain up to the root, under `password` (`legacy`: 3DES/SHA-1).
    pub async fn pkcs12(
        &self,
        thumbprint: &str,
        password: &str,
        legacy: bool,
    ) -> Result<Vec<u8>, CaError> {
        let kek = self.kek()?;
        let stored = self.trust.cert(thumbprint).await?;
        if !stored.has_key {
            return Err(CaError::NotFound(format!(
                "sealgate holds no private key of {}",
                stored.info.sha256
            )));
        }
        let cert = X509::from_der(&stored.der)?;
        let key = self.trust.private_key(&stored.info.sha256, kek).await?;
        let mut chain = Vec::new();
        // The issuing CA's intermediate and root, when sealgate made them.
        for a in db::authorities(self.store.pool()).await? {
            let inter = self.trust.cert(&a.sha256).await?;
            if inter.info.subject == stored.info.issuer {
                chain.push(X509::from_der(&inter.der)?);
                if let Some(r) = self
                    .trust
                    .list_roots()
                    .await?
                    .into_iter()
                    .find(|r| r.sha256 == a.root_sha256)
                {
                    chain.push(X509::from_der(&r.der)?);
                }
                break;
            }
        }
        let name = stored
            .info
            .emails
            .first()
            .cloned()
            .unwrap_or_else(|| stored.info.subject.clone());
        pkcs12::export(&name, &cert, &key, &chain, password, legacy)
    }

    /// Mails `address` the PKCS#12 of its certificates with their keys
    /// (`certificates`: thumbprints; none: every unexpired certificate
    /// sealgate holds a key for that names the address), through the queue,
    /// as a clear message from the CA email. Each certificate must name the
    /// address unless `allow_mismatch`. The password (`password`, else a
    /// generated one) is in [`Sent::password`], never in the mail.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        schedule: &sealgate_queue::Schedule,
        hostname: &str,
        address: &str,
        certificates: &[String],
        allow_mismatch: bool,
        password: Option<String>,
        legacy: bool,
    ) -> Result<Sent, CaError> {
        let config = self.config().await?;
        let from = config.ca_email.clone().ok_or_else(|| {
            CaError::Invalid(
                "certificate mail comes from the CA email: set it first (sealgate ca config set ca_email ca@example.com)".into(),
            )
        })?;
        let to = params::email(address)?;
        let now = sealgate_store::now_unix();
        let mut chosen = Vec::new();
        if certificates.is_empty() {
            for c in self.trust.keyed_certs_for(&to).await? {
                if c.info.not_after > now && !c.info.is_ca {
                    chosen.push(c);
                }
            }
            if chosen.is_empty() {
                return Err(CaError::NotFound(format!(
                    "sealgate holds no unexpired certificate with its key for {to}"
                )));
            }
        } else {
            for t in certificates {
                let c = self.trust.cert(t).await?;
                if !c.has_key {
                    return Err(CaError::NotFound(format!(
                        "sealgate holds no private key of {}",
                        c.info.sha256
                    )));
                }
                if !allow_mismatch && !c.info.emails.iter().any(|e| e.eq_ignore_ascii_case(&to)) {
                    return Err(CaError::Invalid(format!(
                        "certificate {} names {} and not {to}; give --allow-mismatch to send it all the same",
                        c.info.sha256,
                        if c.info.emails.is_empty() {
                            "no address".to_string()
                        } else {
                            c.info.emails.join(", ")
                        }
                    )));
                }
                chosen.push(c);
            }
        }
        let password = match password {
            Some(p) => p,
            None => self.new_password(&chosen[0].info.sha256).await?,
        };
        let mut files = Vec::new();
        for (n, c) in chosen.iter().enumerate() {
            files.push(mail::KeyFile {
                name: mail::file_name(&to, n),
                p12: self.pkcs12(&c.info.sha256, &password, legacy).await?,
            });
        }
        let id = sealgate_queue::next_id();
        let data = mail::certificate_mail(&from, &to, &files, &format!("{id}.ca@{hostname}"));
        let message = sealgate_queue::NewMessage {
            id,
            received_at: sealgate_queue::now_ms(),
            sender: from,
            envid: None,
            ret: None,
            body_8bitmime: false,
            smtputf8: false,
            client: "sealgate ca".into(),
            kind: sealgate_queue::MessageKind::Mail,
        };
        let copy = sealgate_queue::NewCopy {
            method: "plain".into(),
            recipients: vec![sealgate_queue::NewRecipient {
                seq: 0,
                address: to.clone(),
                orcpt: None,
                notify: None,
            }],
            data,
        };
        let queue_id = sealgate_queue::admin::submit(&self.store, schedule, message, copy)
            .await
            .map_err(|e| {
                CaError::Invalid(format!("the certificate mail could not be queued: {e}"))
            })?;
        let certificates: Vec<String> = chosen.iter().map(|c| c.info.sha256.clone()).collect();
        tracing::info!(queue_id = %queue_id, to = %to, certificates = ?certificates, "ca: certificate mail queued");
        Ok(Sent {
            queue_id,
            to,
            certificates,
            password,
        })
    }

    /// A generated PKCS#12 password of the configured length; kept sealed
    /// for the certificate `sha256` when `store_password` is set.
    pub async fn new_password(&self, sha256: &str) -> Result<String, CaError> {
        let config = self.config().await?;
        let password = pkcs12::password(config.password_length)?;
        if config.store_password {
            let kek = self.kek()?;
            let sealed = kek.seal(password.as_bytes(), format!("p12:{sha256}").as_bytes())?;
            db::put_password(
                self.store.pool(),
                sha256,
                &sealed,
                sealgate_store::now_unix(),
            )
            .await?;
        }
        Ok(password)
    }

    /// A new CRL for a CA: the given serials (and, with `update_existing`,
    /// those of its earlier CRLs), the next CRL number. It replaces the
    /// CA's published CRL and goes into the CRL store, so that sealgate
    /// stops using the revoked certificates at once.
    pub async fn create_crl(&self, p: &NewCrl) -> Result<(StoredCrl, Vec<String>), CaError> {
        let config = self.config().await?;
        let a = self.authority(p.ca.as_deref()).await?;
        if p.next_update_days == 0 || p.next_update_days > 3650 {
            return Err(CaError::Invalid(format!(
                "next update in {} days: give 1 to 3650",
                p.next_update_days
            )));
        }
        let now = sealgate_store::now_unix();
        let mut serials: Vec<(String, i64)> = if p.update_existing {
            db::revoked(self.store.pool(), &a.sha256).await?
        } else {
            Vec::new()
        };
        for s in &p.serials {
            let s = crl::parse_serial(s)?;
            if !serials.iter().any(|(have, _)| *have == s) {
                serials.push((s, now));
            }
        }
        let number = db::crl(self.store.pool(), &a.sha256)
            .await?
            .map_or(1, |c| c.number + 1);
        let (issuer, key) = self.signer(&a).await?;
        let sig = p.signature_algorithm.unwrap_or(config.signature_algorithm);
        let crl = crl::build(&issuer, &key, &serials, number, p.next_update_days, sig)?;
        let der = crl.to_der()?;
        let stored = StoredCrl {
            number,
            this_update: now,
            next_update: now + i64::from(p.next_update_days) * 86_400,
            der: der.clone(),
        };
        db::put_crl(self.store.pool(), &a.sha256, &serials, &stored).await?;
        self.trust
            .import_crl(&der, &format!("ca:{}", a.name))
            .await?;
        tracing::info!(ca = %a.sha256, number, revoked = serials.len(), "ca: CRL created");
        Ok((stored, serials.into_iter().map(|(s, _)| s).collect()))
    }

    /// The published CRL (DER) of the CA whose full thumbprint is `sha256`.
    pub async fn published_crl(&self, sha256: &str) -> Result<Option<Vec<u8>>, CaError> {
        Ok(db::crl(self.store.pool(), &sha256.to_ascii_uppercase())
            .await?
            .map(|c| c.der))
    }
}

/// The subject of a request, checked, with the configuration's defaults.
pub(crate) fn subject_of(r: &Request, config: &CaConfig) -> Result<Subject, CaError> {
    let email = params::email(&r.email)?;
    let cn = match &r.common_name {
        Some(cn) => params::subject_text("common name", cn)?,
        None => params::subject_text(
            "common name",
            &config.default_common_name.replace("{email}", &email),
        )?,
    };
    let opt = |what: &str, v: &Option<String>| -> Result<Option<String>, CaError> {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| params::subject_text(what, s))
            .transpose()
    };
    Ok(Subject {
        common_name: cn,
        email: Some(email),
        organisation: opt("organisation", &r.organisation)?,
        given_name: opt("first name", &r.given_name)?,
        surname: opt("last name", &r.surname)?,
    })
}
