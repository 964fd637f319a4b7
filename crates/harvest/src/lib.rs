//! Harvesting: learning partners' keys from the mail they send.
//!
//! In the flow it sits on the incoming path, after the queue's commit: the
//! incoming listener hands each queued message over, and the harvester
//! looks for what it can learn: S/MIME signer certificates ([`smime`]) and
//! OpenPGP keys attached to PGP/MIME signed mail ([`pgp`]) and the keys an
//! `OpenPGP: url=` header points to in the sender's own domain
//! ([`openpgp_header`]), and, when asked, Autocrypt headers a DKIM signature
//! of the sender's domain vouches for ([`autocrypt`], [`dkim`]). Every gate is a must, since this is the easiest place to
//! slip an attacker's key in; every decision, kept or refused and why, goes
//! to the log, to `harvest_log` (`sealgate harvest log`) and to `/metrics`.
//! Harvesting never delays, refuses or changes mail: it runs after the 250,
//! its errors are logged and counted, and the mail goes on.
//!
//! What it learns is used through the key source [`source::Harvested`]
//! (`harvested` in `keys.smime_sources`), and only while the trust stage
//! finds the certificate valid (a chain to a root, or the CTL; not revoked;
//! the usages; the address).

pub mod autocrypt;
pub mod db;
pub mod dkim;
pub mod fetcher;
pub mod fields;
pub mod openpgp_header;
pub mod pgp;
pub mod smime;
pub mod source;

use sealgate_metrics::{HarvestKind, HarvestOutcome, Metrics};
use sealgate_store::{Level, NewBinding, Store};
use sealgate_trust::TrustStore;

pub use db::LogEntry;

/// The validation level of a harvested key (Bitmask's weakest useful one).
pub const HARVESTED_LEVEL: Level = Level::WeakChain;

/// The source of keys attached to signed mail, in the store.
pub const PGP_SOURCE: &str = "harvest:pgp";
/// The source of keys an `OpenPGP: url=` header pointed to.
pub const HEADER_SOURCE: &str = "harvest:openpgp-header";
/// The source of keys from Autocrypt headers.
pub const AUTOCRYPT_SOURCE: &str = "harvest:autocrypt";

/// `[harvest]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HarvestConfig {
    /// Also harvest on the outbound listener (internal users' own
    /// certificates from their signed mail, as the client sent it).
    pub outgoing: bool,
    /// Valid harvested certificates come right after uploads in
    /// `keys.smime_sources` (as in S/Notify); `false`: last.
    pub smime_override: bool,
    /// Messages waiting to be harvested at most; beyond, a message is not
    /// looked at (counted as skipped).
    pub max_pending: usize,
    /// Bytes of messages waiting to be harvested at most (they are held in
    /// memory until harvested); beyond, a message is skipped too.
    pub max_pending_bytes: usize,
    /// Follow `OpenPGP: url=` header fields (https, in the sender's domain).
    pub openpgp_header: bool,
    /// Learn keys from Autocrypt headers (DKIM-vouched); off by default, as
    /// the e2e-mail guidance calls MTA-side Autocrypt a dangerous choice.
    pub autocrypt: bool,
}

impl Default for HarvestConfig {
    fn default() -> Self {
        HarvestConfig {
            outgoing: false,
            smime_override: true,
            max_pending: 256,
            max_pending_bytes: 64 << 20,
            openpgp_header: true,
            autocrypt: false,
        }
    }
}

impl HarvestConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_pending == 0 {
            return Err("harvest.max_pending: must be at least 1".into());
        }
        if self.max_pending_bytes == 0 {
            return Err("harvest.max_pending_bytes: must be at least 1".into());
        }
        Ok(())
    }
}

/// Where a message came from, for the log.
#[derive(Debug, Clone)]
pub struct Origin {
    pub queue_id: String,
    pub message_id: Option<String>,
}

impl Origin {
    /// Makes the decisions of `kind` about this message at `at`: `(address,
    /// outcome, fingerprint, reason)`.
    fn entries(
        &self,
        at: i64,
        kind: HarvestKind,
    ) -> impl Fn(Option<&str>, &str, Option<String>, String) -> LogEntry + '_ {
        move |address, outcome, fingerprint, reason| {
            self.entry(
                at,
                kind.as_str(),
                address.map(str::to_string),
                outcome,
                fingerprint,
                reason,
            )
        }
    }

    /// One harvest decision about this message.
    fn entry(
        &self,
        at: i64,
        kind: &str,
        address: Option<String>,
        outcome: &str,
        fingerprint: Option<String>,
        reason: String,
    ) -> LogEntry {
        LogEntry {
            at,
            queue_id: self.queue_id.clone(),
            message_id: self.message_id.clone(),
            address,
            kind: kind.into(),
            outcome: outcome.into(),
            fingerprint,
            reason,
        }
    }
}

/// Learns from messages into the stores.
#[derive(Clone)]
pub struct Harvester {
    trust: TrustStore,
    store: Store,
    metrics: Metrics,
    /// Follows `OpenPGP: url=` fields when set.
    fetcher: Option<std::sync::Arc<fetcher::Fetcher>>,
    /// Reads Autocrypt headers, vouched for by DKIM, when set.
    dkim: Option<std::sync::Arc<dkim::Dkim>>,
}

impl Harvester {
    pub fn new(trust: TrustStore, store: Store, metrics: Metrics) -> Harvester {
        Harvester {
            trust,
            store,
            metrics,
            fetcher: None,
            dkim: None,
        }
    }

    /// Learns keys from Autocrypt headers that `dkim` finds vouched for.
    pub fn with_autocrypt(mut self, dkim: dkim::Dkim) -> Harvester {
        self.dkim = Some(std::sync::Arc::new(dkim));
        self
    }

    /// Follows `OpenPGP: url=` header fields through `fetcher`.
    pub fn with_openpgp_header(mut self, fetcher: fetcher::Fetcher) -> Harvester {
        self.fetcher = Some(std::sync::Arc::new(fetcher));
        self
    }

    /// Looks at one message; what it decided is logged, stored and counted
    /// (never an error for the caller). True when the certificate store
    /// gained a certificate (the caller refreshes its trust snapshot, so
    /// that a new intermediate serves chains at once).
    pub async fn harvest(&self, origin: &Origin, message: std::sync::Arc<Vec<u8>>) -> bool {
        let message_for_pgp = message.clone();
        let examined = sealgate_crypto::cpu::run(move |_| smime::examine(&message)).await;
        let now = sealgate_store::now_unix();
        let entry = |address, outcome: &str, fingerprint, reason| {
            origin.entry(now, "smime", address, outcome, fingerprint, reason)
        };
        let mut added = false;
        let (e, outcome) = match examined {
            Ok(Ok(None)) => {
                self.harvest_pgp(origin, &message_for_pgp).await;
                self.harvest_openpgp_header(origin, &message_for_pgp).await;
                self.harvest_autocrypt(origin, &message_for_pgp).await;
                return false;
            }
            Ok(Ok(Some(found))) => match self.keep(&found, now).await {
                Ok((sha, new)) => {
                    added = new;
                    (
                        entry(
                            Some(found.address.clone()),
                            "kept",
                            Some(sha),
                            format!(
                                "certificate learned ({}){}",
                                found.how,
                                if found.aes256_gcm {
                                    "; its capabilities list AES-256-GCM"
                                } else {
                                    ""
                                }
                            ),
                        ),
                        HarvestOutcome::Kept,
                    )
                }
                Err(why) => (
                    entry(Some(found.address.clone()), "error", None, why),
                    HarvestOutcome::Error,
                ),
            },
            Ok(Err(r)) => (
                entry(r.address, "refused", None, r.reason),
                HarvestOutcome::Refused,
            ),
            Err(e) => (entry(None, "error", None, e), HarvestOutcome::Error),
        };
        self.record(&e, HarvestKind::Smime, outcome).await;
        self.harvest_pgp(origin, &message_for_pgp).await;
        self.harvest_openpgp_header(origin, &message_for_pgp).await;
        self.harvest_autocrypt(origin, &message_for_pgp).await;
        added
    }

    /// Logs, stores and counts one decision.
    async fn record(&self, e: &LogEntry, kind: HarvestKind, outcome: HarvestOutcome) {
        self.metrics.harvest(kind, outcome);
        tracing::info!(
            queue_id = %e.queue_id,
            message_id = e.message_id.as_deref().unwrap_or("-"),
            address = e.address.as_deref().unwrap_or("-"),
            fingerprint = e.fingerprint.as_deref().unwrap_or("-"),
            kind = %e.kind,
            outcome = %e.outcome,
            reason = %e.reason,
            "harvest"
        );
        if let Err(err) = db::log(self.store.pool(), e).await {
            tracing::warn!("harvest log not written: {err}");
        }
    }

    /// The OpenPGP gates ([`pgp`]) and what passes them: stored, bound at
    /// `weak_chain` and offered against the address's active key.
    async fn harvest_pgp(&self, origin: &Origin, message: &std::sync::Arc<Vec<u8>>) {
        let current = match pgp::author(message) {
            Some(a) if pgp::is_pgp_signed(message) => self.current_key(&a).await,
            _ => None,
        };
        let m = message.clone();
        let examined = sealgate_crypto::cpu::run(move |_| pgp::examine(&m, current.as_ref())).await;
        let now = sealgate_store::now_unix();
        let entry = |address, outcome: &str, fingerprint, reason| {
            origin.entry(now, "pgp", address, outcome, fingerprint, reason)
        };
        match examined {
            Ok(Ok(None)) => {}
            Ok(Ok(Some(found))) => {
                for cert in &found.keys {
                    let fpr = cert.fingerprint().to_hex();
                    let kept = self
                        .keep_pgp(&found.address, cert, PGP_SOURCE, Some(&found.signer), now)
                        .await;
                    let (e, outcome) = match kept {
                        Ok(what) => (
                            entry(
                                Some(found.address.clone()),
                                "kept",
                                Some(fpr),
                                format!("{}; {what}", found.how),
                            ),
                            HarvestOutcome::Kept,
                        ),
                        Err(why) => (
                            entry(Some(found.address.clone()), "error", Some(fpr), why),
                            HarvestOutcome::Error,
                        ),
                    };
                    self.record(&e, HarvestKind::Pgp, outcome).await;
                }
            }
            Ok(Err(r)) => {
                let e = entry(r.address, "refused", None, r.reason);
                self.record(&e, HarvestKind::Pgp, HarvestOutcome::Refused)
                    .await;
            }
            Err(err) => {
                let e = entry(None, "error", None, err);
                self.record(&e, HarvestKind::Pgp, HarvestOutcome::Error)
                    .await;
            }
        }
    }

    /// The address's active OpenPGP key, if the store has one.
    async fn current_key(&self, address: &str) -> Option<sequoia_openpgp::Cert> {
        let bindings = self.store.bindings(address).await.ok()?;
        let active = bindings.iter().find(|b| b.active && b.kind == "pgp")?;
        let key = self.store.key(&active.fingerprint).await.ok()??;
        use sequoia_openpgp::parse::Parse;
        sequoia_openpgp::Cert::from_bytes(key.data.as_bytes()).ok()
    }

    /// The `OpenPGP: url=` gates ([`openpgp_header`]) and, for a URL that
    /// passes them, the fetch and the keys in the answer that name From.
    async fn harvest_openpgp_header(&self, origin: &Origin, message: &std::sync::Arc<Vec<u8>>) {
        let Some(fetcher) = &self.fetcher else {
            return;
        };
        if sealgate_crypto::mime::Message::parse(message)
            .header("OpenPGP")
            .is_none()
        {
            return;
        }
        let now = sealgate_store::now_unix();
        let kind = HarvestKind::OpenPgpHeader;
        let entry = origin.entries(now, kind);
        let Some(author) = pgp::author(message) else {
            let e = entry(
                None,
                "refused",
                None,
                "the message has no single From: address; a key is learned only for a single author".into(),
            );
            return self.record(&e, kind, HarvestOutcome::Refused).await;
        };
        let url = match openpgp_header::pointer(message, &author) {
            Ok(Some(url)) => url,
            Ok(None) => return,
            Err(why) => {
                let e = entry(Some(&author), "refused", None, why);
                return self.record(&e, kind, HarvestOutcome::Refused).await;
            }
        };
        let shown = sealgate_store::redact(url.as_str());
        let body = match fetcher.get(&url).await {
            Ok(fetcher::Fetched::Body(body)) => body,
            Ok(fetcher::Fetched::NotFound) => {
                let e = entry(
                    Some(&author),
                    "refused",
                    None,
                    format!("{shown}: nothing there (404)"),
                );
                return self.record(&e, kind, HarvestOutcome::Refused).await;
            }
            Ok(fetcher::Fetched::NotNow(why)) => {
                tracing::debug!(url = %shown, "OpenPGP header not followed: {why}");
                return self.metrics.harvest(kind, HarvestOutcome::Skipped);
            }
            Err(why) => {
                let e = entry(Some(&author), "error", None, why);
                return self.record(&e, kind, HarvestOutcome::Error).await;
            }
        };
        let a = author.clone();
        let parsed = sealgate_crypto::cpu::run(move |_| pgp::keys_naming(&body, &a)).await;
        let keys = match parsed {
            Ok(Ok((keys, _))) if !keys.is_empty() => keys,
            Ok(Ok((_, total))) => {
                let e = entry(
                    Some(&author),
                    "refused",
                    None,
                    format!("{shown}: none of its {total} key(s) has a valid User ID equal to the From address"),
                );
                return self.record(&e, kind, HarvestOutcome::Refused).await;
            }
            Ok(Err(why)) => {
                let e = entry(Some(&author), "refused", None, format!("{shown}: {why}"));
                return self.record(&e, kind, HarvestOutcome::Refused).await;
            }
            Err(why) => {
                let e = entry(Some(&author), "error", None, why);
                return self.record(&e, kind, HarvestOutcome::Error).await;
            }
        };
        for cert in &keys {
            let fpr = cert.fingerprint().to_hex();
            let (e, outcome) = match self.keep_pgp(&author, cert, HEADER_SOURCE, None, now).await {
                Ok(what) => (
                    entry(
                        Some(&author),
                        "kept",
                        Some(fpr),
                        format!("fetched from {shown}; {what}"),
                    ),
                    HarvestOutcome::Kept,
                ),
                Err(why) => (
                    entry(Some(&author), "error", Some(fpr), why),
                    HarvestOutcome::Error,
                ),
            };
            self.record(&e, kind, outcome).await;
        }
    }

    /// The Autocrypt gates ([`autocrypt`], then [`dkim`], then the date
    /// rule) and what passes them: stored, bound at `weak_chain`, offered,
    /// and its `prefer-encrypt` recorded.
    async fn harvest_autocrypt(&self, origin: &Origin, message: &std::sync::Arc<Vec<u8>>) {
        let Some(dkim) = &self.dkim else {
            return;
        };
        if !autocrypt::has_field(message) {
            return;
        }
        let now = sealgate_store::now_unix();
        let kind = HarvestKind::Autocrypt;
        let entry = origin.entries(now, kind);
        let m = message.clone();
        let header = match sealgate_crypto::cpu::run(move |_| autocrypt::read(&m)).await {
            Ok(Ok(Some(h))) => h,
            Ok(Ok(None)) => return,
            Ok(Err(r)) => {
                let e = entry(r.address.as_deref(), "refused", None, r.reason);
                return self.record(&e, kind, HarvestOutcome::Refused).await;
            }
            Err(why) => {
                let e = entry(None, "error", None, why);
                return self.record(&e, kind, HarvestOutcome::Error).await;
            }
        };
        let address = header.address.as_str();
        let fpr = header.key.fingerprint().to_hex();
        let refuse = |why: String| entry(Some(address), "refused", Some(fpr.clone()), why);
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        let vouched = match dkim.vouches(message, domain, "Autocrypt").await {
            Ok(who) => who,
            Err(why) => {
                let e = refuse(format!(
                    "no DKIM signature vouches for the Autocrypt field: {why}"
                ));
                return self.record(&e, kind, HarvestOutcome::Refused).await;
            }
        };
        let date = message_date(message).map_or(now, |d| d.min(now));
        match db::autocrypt_peer(self.store.pool(), address).await {
            Ok(Some(p)) if p.message_date > date => {
                let e = refuse(format!(
                    "an Autocrypt header from a newer message (dated {}) is recorded; this one is older",
                    p.message_date
                ));
                return self.record(&e, kind, HarvestOutcome::Refused).await;
            }
            Ok(_) => {}
            Err(err) => {
                let e = entry(Some(address), "error", Some(fpr.clone()), err.to_string());
                return self.record(&e, kind, HarvestOutcome::Error).await;
            }
        }
        let kept = match self
            .keep_pgp(address, &header.key, AUTOCRYPT_SOURCE, None, now)
            .await
        {
            Ok(what) => {
                let peer = db::AutocryptPeer {
                    address: address.to_string(),
                    fingerprint: fpr.clone(),
                    prefer_encrypt: header.prefer_encrypt.as_str().to_string(),
                    message_date: date,
                    updated_at: now,
                };
                db::set_autocrypt_peer(self.store.pool(), &peer)
                    .await
                    .map(|()| what)
                    .map_err(|e| e.to_string())
            }
            Err(why) => Err(why),
        };
        let (e, outcome) = match kept {
            Ok(what) => (
                entry(
                    Some(address),
                    "kept",
                    Some(fpr.clone()),
                    format!(
                        "Autocrypt header vouched for by DKIM ({vouched}), prefer-encrypt={}; {what}",
                        header.prefer_encrypt.as_str()
                    ),
                ),
                HarvestOutcome::Kept,
            ),
            Err(why) => (entry(Some(address), "error", Some(fpr.clone()), why), HarvestOutcome::Error),
        };
        self.record(&e, kind, outcome).await;
    }

    /// Stores one harvested key (merged with the stored copy of the same
    /// fingerprint), binds it to `address` with `source`, records who
    /// signed the message (`signer`, if a signature vouched for it), offers
    /// it.
    async fn keep_pgp(
        &self,
        address: &str,
        cert: &sequoia_openpgp::Cert,
        source: &str,
        signer: Option<&sequoia_openpgp::Fingerprint>,
        now: i64,
    ) -> Result<String, String> {
        use sealgate_keys::offer::{offer, Offered};
        use sequoia_openpgp::parse::Parse;
        let fpr = cert.fingerprint().to_hex();
        let existing = self.store.key(&fpr).await.map_err(|e| e.to_string())?;
        let (merged, key_source) = match existing {
            Some(k) => {
                let old = sequoia_openpgp::Cert::from_bytes(k.data.as_bytes())
                    .map_err(|e| format!("the stored copy cannot be read: {e}"))?;
                let merged = old
                    .merge_public(cert.clone())
                    .map_err(|e| format!("cannot merge with the stored copy: {e}"))?;
                (merged, k.source)
            }
            None => (cert.clone(), source.to_string()),
        };
        let key = sealgate_keys::RecipientKey::Pgp(std::sync::Arc::new(merged.clone()));
        let row = sealgate_keys::import::to_stored_for(&key, &key_source, Vec::new())?;
        self.store
            .put_key_data(&row)
            .await
            .map_err(|e| e.to_string())?;
        let signer = signer.map(|s| s.to_hex());
        self.store
            .bind(
                &NewBinding {
                    address,
                    fingerprint: &fpr,
                    kind: "pgp",
                    level: HARVESTED_LEVEL,
                    source,
                    sign_used: signer.as_deref() == Some(fpr.as_str()),
                },
                now,
            )
            .await
            .map_err(|e| e.to_string())?;
        if let Some(signer) = signer.filter(|s| *s != fpr) {
            // The current key made the signature: its binding records it.
            self.store
                .bind(
                    &NewBinding {
                        address,
                        fingerprint: &signer,
                        kind: "pgp",
                        level: HARVESTED_LEVEL,
                        source,
                        sign_used: true,
                    },
                    now,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(
            match offer(&self.store, address, &merged, HARVESTED_LEVEL).await? {
                Offered::Activated(rule) => format!("now the active key ({})", rule.describe()),
                Offered::Kept { reason, .. } => reason,
            },
        )
    }

    /// Stores a found certificate, its issuers, the binding and the
    /// capabilities; the certificate's thumbprint, and whether the
    /// certificate store gained one.
    async fn keep(&self, found: &smime::Found, now: i64) -> Result<(String, bool), String> {
        let mut added = false;
        for ca in &found.intermediates {
            added |= self
                .trust
                .add_cert(ca, "harvest", false)
                .await
                .map_err(|e| e.to_string())?
                .added;
        }
        let imported = self
            .trust
            .add_cert(&found.cert, "harvest", false)
            .await
            .map_err(|e| e.to_string())?;
        added |= imported.added;
        let pool = self.store.pool();
        self.store
            .bind(
                &NewBinding {
                    address: &found.address,
                    fingerprint: &imported.sha256,
                    kind: "x509",
                    level: HARVESTED_LEVEL,
                    source: "harvest:smime",
                    sign_used: true,
                },
                now,
            )
            .await
            .map_err(|e| e.to_string())?;
        db::set_capabilities(
            pool,
            &found.address,
            &imported.sha256,
            found.capabilities.as_deref(),
            found.aes256_gcm,
            now,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok((imported.sha256, added))
    }

    /// The newest harvest decisions, for `address` or all.
    pub async fn log(&self, address: Option<&str>, limit: i64) -> Result<Vec<LogEntry>, String> {
        db::recent(self.store.pool(), address, limit)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The message's `Date:` in Unix seconds, if it has a readable one.
fn message_date(message: &[u8]) -> Option<i64> {
    mail_parser::MessageParser::new()
        .parse_headers(message)?
        .date()
        .map(|d| d.to_timestamp())
}
