//! Harvesting: learning partners' keys from the mail they send.
//!
//! In the flow it sits on the incoming path, after the queue's commit: the
//! incoming listener hands each queued message over, and the harvester
//! looks for what it can learn: S/MIME signer certificates ([`smime`]) and
//! OpenPGP keys attached to PGP/MIME signed mail ([`pgp`]). Every gate is a must, since this is the easiest place to
//! slip an attacker's key in; every decision, kept or refused and why, goes
//! to the log, to `harvest_log` (`sealgate harvest log`) and to `/metrics`.
//! Harvesting never delays, refuses or changes mail: it runs after the 250,
//! its errors are logged and counted, and the mail goes on.
//!
//! What it learns is used through the key source [`source::Harvested`]
//! (`harvested` in `keys.smime_sources`), and only while the trust stage
//! finds the certificate valid (a chain to a root, or the CTL; not revoked;
//! the usages; the address).

pub mod db;
pub mod pgp;
pub mod smime;
pub mod source;

use sealgate_metrics::{HarvestKind, HarvestOutcome, Metrics};
use sealgate_store::{Level, NewBinding, Store};
use sealgate_trust::TrustStore;

pub use db::LogEntry;

/// The validation level of a harvested key (Bitmask's weakest useful one).
pub const HARVESTED_LEVEL: Level = Level::WeakChain;

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
}

impl Default for HarvestConfig {
    fn default() -> Self {
        HarvestConfig {
            outgoing: false,
            smime_override: true,
            max_pending: 256,
            max_pending_bytes: 64 << 20,
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
}

impl Harvester {
    pub fn new(trust: TrustStore, store: Store, metrics: Metrics) -> Harvester {
        Harvester {
            trust,
            store,
            metrics,
        }
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
                    let (e, outcome) = match self.keep_pgp(&found, cert, now).await {
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

    /// Stores one harvested key (merged with the stored copy of the same
    /// fingerprint), binds it, records the signature, offers it.
    async fn keep_pgp(
        &self,
        found: &pgp::Found,
        cert: &sequoia_openpgp::Cert,
        now: i64,
    ) -> Result<String, String> {
        use sealgate_keys::offer::{offer, Offered};
        use sequoia_openpgp::parse::Parse;
        let fpr = cert.fingerprint().to_hex();
        let existing = self.store.key(&fpr).await.map_err(|e| e.to_string())?;
        let (merged, source) = match existing {
            Some(k) => {
                let old = sequoia_openpgp::Cert::from_bytes(k.data.as_bytes())
                    .map_err(|e| format!("the stored copy cannot be read: {e}"))?;
                let merged = old
                    .merge_public(cert.clone())
                    .map_err(|e| format!("cannot merge with the stored copy: {e}"))?;
                (merged, k.source)
            }
            None => (cert.clone(), "harvest:pgp".to_string()),
        };
        let key = sealgate_keys::RecipientKey::Pgp(std::sync::Arc::new(merged.clone()));
        let row = sealgate_keys::import::to_stored_for(&key, &source, Vec::new())?;
        self.store
            .put_key_data(&row)
            .await
            .map_err(|e| e.to_string())?;
        let signer = found.signer.to_hex();
        self.store
            .bind(
                &NewBinding {
                    address: &found.address,
                    fingerprint: &fpr,
                    kind: "pgp",
                    level: HARVESTED_LEVEL,
                    source: "harvest:pgp",
                    sign_used: signer == fpr,
                },
                now,
            )
            .await
            .map_err(|e| e.to_string())?;
        if signer != fpr {
            // The current key made the signature: its binding records it.
            self.store
                .bind(
                    &NewBinding {
                        address: &found.address,
                        fingerprint: &signer,
                        kind: "pgp",
                        level: HARVESTED_LEVEL,
                        source: "harvest:pgp",
                        sign_used: true,
                    },
                    now,
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(
            match offer(&self.store, &found.address, &merged, HARVESTED_LEVEL).await? {
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
