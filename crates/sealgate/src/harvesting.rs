//! Wiring of harvesting: the incoming listener (and, with
//! `harvest.outgoing`, the outbound one) hands each queued message to a
//! bounded queue that one task drains into the harvester. A full queue
//! (`harvest.max_pending` messages or `harvest.max_pending_bytes`) skips
//! the message (counted), so harvesting can neither hold a listener nor
//! grow without bound; the mail itself is already queued either way.
//! When a harvest adds a certificate, the trust snapshot is refreshed (at
//! most once a second; the periodic reload catches the rest) so that a
//! partner's intermediate serves the very next lookup.

use sealgate_crypto::mime::{header_value_unfolded, Message};
use sealgate_harvest::{Harvester, Origin};
use sealgate_metrics::{HarvestKind, HarvestOutcome, Metrics};
use sealgate_pipeline::incoming::Observer;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Least time between two trust reloads caused by harvests.
const REFRESH_GAP: std::time::Duration = std::time::Duration::from_secs(1);

/// Longest Message-ID kept for the log.
const MAX_MESSAGE_ID: usize = 256;

pub struct Harvesting {
    tx: mpsc::Sender<(String, Arc<Vec<u8>>)>,
    metrics: Metrics,
    /// Bytes of the messages waiting, and the most allowed.
    pending_bytes: Arc<AtomicUsize>,
    max_pending_bytes: usize,
}

impl Harvesting {
    /// Starts the task; `max_pending` messages wait at most.
    pub fn start(
        harvester: Harvester,
        metrics: Metrics,
        max_pending: usize,
        max_pending_bytes: usize,
        live: Arc<sealgate_trust::LiveTrust>,
        trust: sealgate_trust::TrustStore,
    ) -> Harvesting {
        let (tx, mut rx) = mpsc::channel::<(String, Arc<Vec<u8>>)>(max_pending);
        let pending_bytes = Arc::new(AtomicUsize::new(0));
        let waiting = pending_bytes.clone();
        tokio::spawn(async move {
            let mut refreshed = tokio::time::Instant::now() - REFRESH_GAP;
            // A certificate was added since the last refresh.
            let mut pending = false;
            loop {
                let due = refreshed + REFRESH_GAP;
                tokio::select! {
                    next = rx.recv() => {
                        let Some((queue_id, message)) = next else { return };
                        let message_id = Message::parse(&message).header("Message-ID").map(|h| {
                            header_value_unfolded(h)
                                .chars()
                                .filter(|c| !c.is_control())
                                .take(MAX_MESSAGE_ID)
                                .collect()
                        });
                        let origin = Origin { queue_id, message_id };
                        let len = message.len();
                        pending |= harvester.harvest(&origin, message).await;
                        waiting.fetch_sub(len, Ordering::Relaxed);
                    }
                    _ = tokio::time::sleep_until(due), if pending => {}
                }
                if pending && tokio::time::Instant::now() >= due {
                    pending = false;
                    refreshed = tokio::time::Instant::now();
                    if let Err(e) = live.refresh(&trust).await {
                        tracing::warn!("trust stores not reloaded after a harvest: {e}");
                    }
                }
            }
        });
        Harvesting {
            tx,
            metrics,
            pending_bytes,
            max_pending_bytes,
        }
    }
}

impl Observer for Harvesting {
    fn queued(&self, queue_id: &str, message: Arc<Vec<u8>>) {
        let len = message.len();
        let before = self.pending_bytes.fetch_add(len, Ordering::Relaxed);
        let fits = before + len <= self.max_pending_bytes;
        if !fits || self.tx.try_send((queue_id.to_string(), message)).is_err() {
            self.pending_bytes.fetch_sub(len, Ordering::Relaxed);
            tracing::warn!(
                queue_id,
                "not harvested: too much mail waits for harvesting (harvest.max_pending, harvest.max_pending_bytes)"
            );
            self.metrics
                .harvest(HarvestKind::Smime, HarvestOutcome::Skipped);
        }
    }
}

/// `smime_cipher = "auto"`: what the recipient's signed mail announced
/// (the `smime_capability` rows harvesting writes); CBC when unknown or
/// when the store cannot say.
pub struct StoredCapabilities {
    pub store: sealgate_store::Store,
}

#[async_trait::async_trait]
impl sealgate_pipeline::Capabilities for StoredCapabilities {
    async fn reads_gcm(&self, address: &str) -> bool {
        match sealgate_harvest::db::reads_gcm(self.store.pool(), &address.to_lowercase()).await {
            Ok(yes) => yes,
            Err(e) => {
                tracing::warn!(
                    recipient = address,
                    "capabilities unknown, using AES-256-CBC: {e}"
                );
                false
            }
        }
    }
}

/// Sets `encr_used` on a key binding the first time (per process) a queued
/// copy is encrypted to it; written off the reply path.
pub struct BindingUse {
    pub store: sealgate_store::Store,
    pub seen: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
}

/// Most (address, key) pairs remembered as recorded; beyond, it starts over
/// (a pair is then written once more, harmlessly).
const MAX_SEEN: usize = 100_000;

impl sealgate_pipeline::KeyUse for BindingUse {
    fn encrypted_to(&self, address: &str, source: &str, fingerprints: &[String]) {
        let address = address.to_lowercase();
        for f in fingerprints {
            // Harvested certificates are bound by the certificate store's
            // thumbprint; every other binding by the key's fingerprint.
            let sha = if source == "harvested" {
                f.strip_prefix("SHA256:").unwrap_or(f).to_ascii_uppercase()
            } else {
                f.clone()
            };
            {
                let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                if seen.len() >= MAX_SEEN {
                    seen.clear();
                }
                if !seen.insert((address.clone(), sha.clone())) {
                    continue;
                }
            }
            let store = self.store.clone();
            let address = address.clone();
            tokio::spawn(async move {
                if let Err(e) = store.mark_encrypted(&address, &sha).await {
                    tracing::debug!("encr_used not recorded: {e}");
                }
            });
        }
    }
}
