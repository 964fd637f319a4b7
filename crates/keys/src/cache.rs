//! The lookup cache in front of a remote source.
//!
//! [`CachedSource`] answers from the store's `lookup_cache` while the entry is
//! fresh and was fetched under the source's current configuration
//! (`location`); otherwise it asks the source and stores the answer, with the
//! positive lifetime when keys were found and the negative lifetime when none
//! were. A failed lookup is never cached (the next message asks again), and a
//! cache the store cannot read is skipped, not fatal.

use crate::import::key_text;
use crate::load::parse_any;
use crate::source::Source;
use crate::RecipientKey;
use sealgate_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Parsed keys by their text, so that a cache hit does not parse (and verify
/// the self-signatures of) the same certificate again. Bounded: cleared when
/// full. The store is still read on every lookup, so `cache expire` and other
/// gateways' refreshes take effect at once.
struct Parsed {
    by_text: Mutex<HashMap<String, Vec<RecipientKey>>>,
}

const PARSED_MAX: usize = 20_000;

impl Parsed {
    /// The parsed keys of `text`. The lock is held only to look up and to
    /// insert, never while parsing, which runs on the CPU pool.
    async fn get_or_parse(&self, text: &str) -> Result<Vec<RecipientKey>, String> {
        if let Some(k) = self.lock().get(text) {
            return Ok(k.clone());
        }
        let owned = text.to_string();
        let keys = sealgate_crypto::cpu::run(move |_| parse_any(owned.as_bytes())).await??;
        let mut map = self.lock();
        if map.len() >= PARSED_MAX {
            map.clear();
        }
        map.insert(text.to_string(), keys.clone());
        Ok(keys)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<RecipientKey>>> {
        self.by_text.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A [`Source`] behind the lookup cache.
pub struct CachedSource {
    inner: Arc<dyn Source>,
    store: Store,
    location: String,
    positive: Duration,
    negative: Duration,
    parsed: Parsed,
}

impl CachedSource {
    /// `location` identifies the source's configuration (see [`location`]).
    pub fn new(
        inner: Arc<dyn Source>,
        store: Store,
        location: String,
        positive: Duration,
        negative: Duration,
    ) -> CachedSource {
        CachedSource {
            inner,
            store,
            location,
            positive,
            negative,
            parsed: Parsed {
                by_text: Mutex::new(HashMap::new()),
            },
        }
    }
}

/// A digest of a source's configuration: when it changes, the source's cached
/// answers no longer count. Secrets in the configuration only enter the digest.
pub fn location(config_text: &str) -> String {
    openssl::sha::sha256(config_text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[async_trait::async_trait]
impl Source for CachedSource {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        let name = self.inner.name();
        match self.store.cache_get(&name, address).await {
            Ok(Some(entry)) if entry.is_fresh(&self.location, sealgate_store::now_unix()) => {
                let mut keys = Vec::with_capacity(entry.keys.len());
                for text in &entry.keys {
                    match self.parsed.get_or_parse(text).await {
                        Ok(k) => keys.extend(k),
                        Err(e) => {
                            tracing::warn!(source = %name, "unreadable cache entry, refetching: {e}")
                        }
                    }
                }
                if keys.len() >= entry.keys.len() {
                    return Ok(keys);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(source = %name, "lookup cache unavailable: {e}"),
        }
        let keys = self.inner.lookup(address).await?;
        let texts: Vec<String> = keys.iter().filter_map(|k| key_text(k).ok()).collect();
        let ttl = if keys.is_empty() {
            self.negative
        } else {
            self.positive
        };
        if let Err(e) = self
            .store
            .cache_put(&name, address, &self.location, &texts, ttl.as_secs() as i64)
            .await
        {
            tracing::warn!(source = %name, "cannot write the lookup cache: {e}");
        }
        Ok(keys)
    }
}
