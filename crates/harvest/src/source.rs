//! The key source `harvested`: the certificates and OpenPGP keys
//! harvesting bound to an address. The resolver judges them like any other source's (the trust
//! stage's rules, with a chain required), so a harvested certificate is
//! used only while it is valid.

use sealgate_keys::source::Source;
use sealgate_keys::RecipientKey;
use sealgate_store::Store;
use sealgate_trust::TrustStore;
use std::sync::Arc;

pub struct Harvested {
    store: Store,
    trust: TrustStore,
}

impl Harvested {
    pub fn new(store: Store, trust: TrustStore) -> Harvested {
        Harvested { store, trust }
    }
}

#[async_trait::async_trait]
impl Source for Harvested {
    fn name(&self) -> String {
        "harvested".into()
    }

    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        let address = address.to_lowercase();
        // The certificates harvesting bound (thumbprints of the certificate
        // store). An imported certificate has an x509 binding too, under its
        // `SHA256:` key fingerprint: the `import` source serves that one.
        let shas: Vec<String> = self
            .store
            .bindings(&address)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|b| b.kind == "x509" && b.source.starts_with("harvest:"))
            .map(|b| b.fingerprint)
            .collect();
        let mut out = Vec::new();
        // OpenPGP keys learned from mail (bound with a source `harvest:…`:
        // signed mail, the OpenPGP header, Autocrypt; a key also imported
        // is served by `import`).
        for k in self
            .store
            .keys_for(&address)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|k| k.source.starts_with("harvest:"))
        {
            match sealgate_keys::load::parse_any(k.data.as_bytes()) {
                Ok(keys) => out.extend(keys),
                Err(e) => {
                    tracing::warn!(fingerprint = %k.fingerprint, "unreadable harvested key: {e}")
                }
            }
        }
        for sha in shas {
            match self.trust.cert(&sha).await {
                Ok(c) => match openssl::x509::X509::from_der(&c.der) {
                    Ok(x) => out.push(RecipientKey::Smime(Arc::new(x))),
                    Err(e) => {
                        tracing::warn!(certificate = %sha, "unreadable harvested certificate: {e}")
                    }
                },
                // Removed from the certificate store by the admin: gone.
                Err(sealgate_trust::TrustError::NotFound(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(out)
    }
}
