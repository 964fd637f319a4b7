//! The key source `harvested`: the certificates harvesting bound to an
//! address. The resolver judges them like any other source's (the trust
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
        let shas = crate::db::bound(self.store.pool(), &address, "x509")
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
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
