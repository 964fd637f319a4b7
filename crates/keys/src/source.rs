//! A key source: something that can be asked for the keys of an address.
//!
//! Today: keys imported into the store ([`StoreSource`]) and the key-store files
//! ([`crate::files::FileSource`]). LDAP, key servers, WKD and harvested keys are
//! more implementations of [`Source`], placed in the resolver's precedence list.

use crate::cache::BreakerState;
use crate::load::parse_any;
use crate::RecipientKey;
use sealgate_store::Store;

/// One place keys come from.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// A short name for logs, `verify` and audit, e.g. `store` or `files`.
    fn name(&self) -> String;
    /// Every key this source has for `address`, usable or not. `Err` means the
    /// answer is unknown (the source failed), which is not the same as "none".
    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String>;
    /// The circuit breaker in front of this source, if it has one (the
    /// cached remote sources, [`crate::cache::CachedSource`]).
    fn breaker(&self) -> Option<BreakerState> {
        None
    }
    /// Forgets answers this source keeps in process memory, for `address`
    /// or all; a source without such a cache has nothing to do.
    fn clear_memory(&self, _address: Option<&str>) {}
    /// Asks the source itself again, past any cache, and caches the answer
    /// ([`crate::refresh`]); a source without a cache just looks up.
    async fn refresh(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        self.lookup(address).await
    }
}

/// A key a source returned and whether it may be used (else why not).
#[derive(Debug, Clone)]
pub struct FoundKey {
    pub key: RecipientKey,
    pub usable: Result<(), String>,
}

/// What one source said about one address: `sealgate verify` prints these.
#[derive(Debug, Clone)]
pub struct SourceReport {
    pub source: String,
    pub keys: Vec<FoundKey>,
    pub error: Option<String>,
}

/// Keys kept in the store's `keys` table with one `source` value: `upload`
/// (a user's own key, `sealgate keys import --for ADDRESS`) or `import` (the
/// admin's `sealgate keys import`). The source's name is that value.
pub struct StoreSource {
    store: Store,
    kind: String,
}

impl StoreSource {
    pub fn new(store: Store, kind: &str) -> Self {
        StoreSource {
            store,
            kind: kind.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl Source for StoreSource {
    fn name(&self) -> String {
        self.kind.clone()
    }

    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        let stored = self
            .store
            .keys_for(address)
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for k in stored.into_iter().filter(|k| k.source == self.kind) {
            match parse_any(k.data.as_bytes()) {
                Ok(keys) => out.extend(keys),
                Err(e) => {
                    tracing::warn!(fingerprint = %k.fingerprint, "unreadable key in the store: {e}")
                }
            }
        }
        Ok(out)
    }
}
