//! Wiring of the signing stage: a sender's signing certificate (the trust
//! stage's choice, `sealgate certs sign-select` or automatic, judged with
//! the running gateway's trust snapshot), its private key opened with the
//! key-encryption key, and the intermediates that travel in the signature.
//!
//! An answer (a signer, or none) is kept for one trust reload period
//! (10 s) per address, so a burst from one sender opens its key once; a
//! SIGHUP forgets them all. A failure (store, key-encryption key) is not
//! kept: the next message asks again.

use openssl::x509::X509;
use sealgate_pipeline::{Signer, SigningKeys};
use sealgate_trust::{Kek, LiveTrust, Purpose, TrustStore};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an answer is kept: the trust reload period.
const KEEP: Duration = Duration::from_secs(10);
/// Most addresses kept at once; beyond, the cache starts over.
const MAX_ENTRIES: usize = 10_000;

type Answer = Option<Arc<Signer>>;

pub struct LiveSigning {
    trust: Arc<LiveTrust>,
    store: TrustStore,
    kek: Option<Kek>,
    cache: Mutex<HashMap<String, (Instant, Answer)>>,
}

impl LiveSigning {
    pub fn new(trust: Arc<LiveTrust>, store: TrustStore, kek: Option<Kek>) -> LiveSigning {
        LiveSigning {
            trust,
            store,
            kek,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets every answer (SIGHUP: a certificate just imported or chosen
    /// is used by the next message).
    pub fn clear(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    async fn find(&self, address: &str) -> Result<Answer, String> {
        let verifier = self.trust.snapshot();
        let Some((stored, chosen)) = self
            .store
            .signing_certificate_judged(address, &verifier)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let sha = stored.info.sha256.clone();
        let kek = self.kek.as_ref().ok_or_else(|| {
            format!(
                "the private key of {sha} is sealed and no key-encryption key is set (store.key_encryption_key_file or {})",
                sealgate_trust::kek::KEK_ENV
            )
        })?;
        let key = self
            .store
            .private_key(&sha, kek)
            .await
            .map_err(|e| format!("the private key of {sha} does not open: {e}"))?;
        let cert = X509::from_der(&stored.der).map_err(|e| format!("certificate {sha}: {e}"))?;
        // The intermediates between the certificate and its root (a
        // recipient has the root, or does not trust it anyway).
        let chain = verifier
            .verify_for(&cert, &[], true, Purpose::Sign)
            .chain
            .into_iter()
            .skip(1)
            .filter(|c| c.issued(c) != openssl::x509::X509VerifyResult::OK)
            .collect();
        Ok(Some(Arc::new(Signer {
            cert,
            key,
            chain,
            thumbprint: sha,
            chosen,
        })))
    }
}

#[async_trait::async_trait]
impl SigningKeys for LiveSigning {
    async fn signer(&self, address: &str) -> Result<Option<Arc<Signer>>, String> {
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, answer)) = cache.get(address) {
                if at.elapsed() < KEEP {
                    return Ok(answer.clone());
                }
            }
        }
        let answer = self.find(address).await?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        cache.insert(address.to_string(), (Instant::now(), answer.clone()));
        Ok(answer)
    }
}
