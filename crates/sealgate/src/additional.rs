//! Wiring of the keys the policy adds to a recipient's own: the manually
//! selected certificates (`sealgate certs select`, for a user or a domain),
//! and the additional keys (key escrow, archiving, central scanning):
//! `policy.additional_certificates` are certificates of the trust stage's
//! certificate store, `policy.additional_pgp_keys` OpenPGP keys of the store
//! (`sealgate keys import`). Loaded at start and with every trust reload
//! (every 10 s, SIGHUP); only the ones usable now are handed to the
//! pipeline: a certificate that is not valid (expired, revoked,
//! black-listed, no path to a root), or a key with no live encryption
//! subkey, is left out, and the log says so once per change.

use sealgate_keys::RecipientKey;
use sealgate_pipeline::AdditionalKeys;
use sealgate_policy::PolicyConfig;
use sealgate_store::Store;
use sealgate_trust::{TrustStore, Verifier};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

/// The usable additional keys, by upper-case thumbprint / fingerprint.
#[derive(Default)]
pub struct LiveAdditionalKeys {
    keys: RwLock<HashMap<String, RecipientKey>>,
    /// Valid manual selections by target (address or `@domain`).
    selected: RwLock<HashMap<String, Vec<RecipientKey>>>,
    /// What the last refresh could not use, to log changes only.
    missing: Mutex<BTreeSet<String>>,
}

impl LiveAdditionalKeys {
    /// Every thumbprint and fingerprint the policy names, at any level.
    fn wanted(policy: &PolicyConfig) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut smime: BTreeSet<String> = BTreeSet::new();
        let mut pgp: BTreeSet<String> = BTreeSet::new();
        smime.extend(
            policy
                .additional_certificates
                .iter()
                .map(|t| t.to_ascii_uppercase()),
        );
        pgp.extend(
            policy
                .additional_pgp_keys
                .iter()
                .map(|t| t.to_ascii_uppercase()),
        );
        for d in policy.domains.values().chain(policy.users.values()) {
            smime.extend(
                d.additional_certificates
                    .iter()
                    .flatten()
                    .map(|t| t.to_ascii_uppercase()),
            );
            pgp.extend(
                d.additional_pgp_keys
                    .iter()
                    .flatten()
                    .map(|t| t.to_ascii_uppercase()),
            );
        }
        (smime, pgp)
    }

    /// Reads them again from the stores, judging certificates with
    /// `verifier` (the running gateway's trust snapshot, just refreshed).
    pub async fn refresh(
        &self,
        policy: &PolicyConfig,
        trust: &TrustStore,
        verifier: &Verifier,
        store: &Store,
    ) {
        self.refresh_selections(trust, verifier).await;
        let (smime, pgp) = Self::wanted(policy);
        if smime.is_empty() && pgp.is_empty() {
            return;
        }
        let mut found = HashMap::new();
        let mut missing = BTreeSet::new();
        for t in smime {
            let x = trust
                .cert(&t)
                .await
                .map_err(|e| e.to_string())
                .and_then(|c| openssl::x509::X509::from_der(&c.der).map_err(|e| e.to_string()));
            match x {
                Ok(x) => {
                    let status = verifier.verify(&x, &[]).status;
                    if status.is_valid() {
                        found.insert(t, RecipientKey::Smime(Arc::new(x)));
                    } else {
                        missing.insert(format!("certificate {t}: {status}"));
                    }
                }
                Err(e) => {
                    missing.insert(format!("certificate {t}: {e}"));
                }
            }
        }
        for f in pgp {
            match store.key(&f).await {
                Ok(Some(k)) => match sealgate_keys::load::parse_pgp(k.data.as_bytes()) {
                    Ok(mut keys) => match keys.pop() {
                        Some(RecipientKey::Pgp(cert))
                            if !sealgate_crypto::pgp::encryption_subkeys(
                                &cert,
                                std::time::SystemTime::now(),
                            )
                            .is_empty() =>
                        {
                            found.insert(f, RecipientKey::Pgp(cert));
                        }
                        _ => {
                            missing.insert(format!("OpenPGP key {f}: no live encryption subkey"));
                        }
                    },
                    Err(e) => {
                        missing.insert(format!("OpenPGP key {f}: unreadable: {e}"));
                    }
                },
                Ok(None) => {
                    missing.insert(format!(
                        "OpenPGP key {f}: not in the store (sealgate keys import)"
                    ));
                }
                Err(e) => {
                    missing.insert(format!("OpenPGP key {f}: {e}"));
                }
            }
        }
        {
            let mut last = self.missing.lock().unwrap_or_else(|e| e.into_inner());
            if *last != missing {
                for m in &missing {
                    tracing::error!("additional key not used: {m}; copies go out without it");
                }
                if missing.is_empty() && !last.is_empty() {
                    tracing::info!("every additional key is usable again");
                }
                *last = missing;
            }
        }
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = found;
    }

    /// The manual selections, each kept while valid (by the trust rules,
    /// with a key CMS can encrypt to); the address is not checked.
    async fn refresh_selections(&self, trust: &TrustStore, verifier: &Verifier) {
        let all = match trust.manual_selections().await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("certificate selections not reloaded: {e}");
                return;
            }
        };
        let mut selected: HashMap<String, Vec<RecipientKey>> = HashMap::new();
        {
            for (target, c) in all {
                let Ok(x) = openssl::x509::X509::from_der(&c.der) else {
                    continue;
                };
                if verifier.verify(&x, &[]).status.is_valid()
                    && sealgate_crypto::smime::key_transport_support(&x).is_ok()
                {
                    selected
                        .entry(target)
                        .or_default()
                        .push(RecipientKey::Smime(Arc::new(x)));
                }
            }
        }
        *self.selected.write().unwrap_or_else(|e| e.into_inner()) = selected;
    }

    fn pick(&self, ids: &[String]) -> Vec<RecipientKey> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        ids.iter().filter_map(|i| keys.get(i).cloned()).collect()
    }
}

impl AdditionalKeys for LiveAdditionalKeys {
    fn smime(&self, sha256: &[String]) -> Vec<RecipientKey> {
        self.pick(sha256)
    }
    fn pgp(&self, fingerprints: &[String]) -> Vec<RecipientKey> {
        self.pick(fingerprints)
    }

    fn selected(&self, address: &str) -> Vec<RecipientKey> {
        let address = address.to_lowercase();
        let domain = format!("@{}", address.rsplit_once('@').map_or("", |(_, d)| d));
        let selected = self.selected.read().unwrap_or_else(|e| e.into_inner());
        [address.as_str(), domain.as_str()]
            .iter()
            .filter_map(|t| selected.get(*t))
            .flatten()
            .cloned()
            .collect()
    }
}
