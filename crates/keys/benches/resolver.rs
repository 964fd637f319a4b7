//! Benchmark of the resolver over cached answers: 1,000 addresses whose remote
//! lookups are already in the store's lookup cache (SQLite), resolved through
//! the same `CachedSource` + `Resolver` path as a message's RCPT, twice:
//!
//! - **store only** (`CacheOptions::store_only`, the path before the memory
//!   cache): every lookup reads the store's `lookup_cache`;
//! - **memory** (`CacheOptions::default`, 10,000 entries, 60 s): after one
//!   warm-up pass every lookup is answered from memory; the store is closed
//!   before it is measured, so a lookup that reached it would fail.
//!
//! For each it prints lookups per second and latency percentiles through the
//! resolver (which also checks every key's usability, or reuses a verdict it
//! reached for the same key object, see `resolver::Verdicts`), and the rate of
//! the cache alone (`CachedSource::lookup`). It asserts that the remote
//! source was never asked (every lookup a cache hit).
//!
//!     cargo bench -j1 -p sealgate-keys --bench resolver

use sealgate_keys::cache::{location, CacheOptions, CachedSource};
use sealgate_keys::import::key_text;
use sealgate_keys::resolver::Registered;
use sealgate_keys::source::Source;
use sealgate_keys::trust::AcceptAllTrust;
use sealgate_keys::{Method, OnError, RecipientKey, Resolver};
use sequoia_openpgp::cert::CertBuilder;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ADDRESSES: usize = 1000;
/// Passes over the addresses: more for the memory cache, which is fast
/// enough that 5 passes would take only milliseconds.
const ROUNDS: usize = 5;
const MEMORY_ROUNDS: usize = 50;

/// Stands for a remote source; counts how often the cache let it be asked.
struct Remote(AtomicUsize);

#[async_trait::async_trait]
impl Source for Remote {
    fn name(&self) -> String {
        "keyserver:hkps://keys.bench.test".into()
    }
    async fn lookup(&self, _: &str) -> Result<Vec<RecipientKey>, String> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Vec::new())
    }
}

fn resolver(remote: &Arc<Remote>, cached: Arc<CachedSource>) -> Resolver {
    let name = remote.name();
    Resolver::with_order(
        vec![Registered {
            name: name.clone(),
            lookup: cached,
            direct: remote.clone(),
            timeout: Duration::from_secs(30),
            require_chain: true,
        }],
        std::slice::from_ref(&name),
        &[],
        Arc::new(AcceptAllTrust),
    )
    .unwrap()
}

/// Resolves every address `rounds` times; prints the rate and percentiles.
async fn measure_resolver(
    label: &str,
    resolver: &Resolver,
    addresses: &[String],
    rounds: usize,
) -> f64 {
    let mut lat = Vec::with_capacity(addresses.len() * rounds);
    let start = Instant::now();
    for _ in 0..rounds {
        for a in addresses {
            let t = Instant::now();
            let r = resolver.resolve(a, &[Method::Pgp], OnError::Stop).await;
            lat.push(t.elapsed());
            assert!(
                r.keys_for(Method::Pgp).is_some(),
                "{a}: no key from the cache: {:?}",
                r.errors
            );
        }
    }
    let total = start.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    let rate = lat.len() as f64 / total.as_secs_f64();
    println!(
        "resolver, cached answers ({label}): {} lookups over {} addresses in {:.3} s",
        lat.len(),
        addresses.len(),
        total.as_secs_f64()
    );
    println!("  lookups/sec: {rate:.0}");
    println!(
        "  latency: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        lat[lat.len() - 1]
    );
    rate
}

/// The cache alone (no usability checks): `CachedSource::lookup` per second.
async fn measure_cache(
    label: &str,
    cached: &CachedSource,
    addresses: &[String],
    rounds: usize,
) -> f64 {
    let start = Instant::now();
    for _ in 0..rounds {
        for a in addresses {
            let keys = cached.lookup(a).await.unwrap();
            assert_eq!(keys.len(), 1, "{a}");
        }
    }
    let total = start.elapsed();
    let rate = (addresses.len() * rounds) as f64 / total.as_secs_f64();
    println!("cache alone ({label}): {rate:.0} lookups/sec");
    rate
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = sealgate_store::Store::open(&format!("sqlite://{}/bench.db", dir.path().display()))
        .await
        .unwrap();
    let remote = Arc::new(Remote(AtomicUsize::new(0)));
    let loc = location("bench");
    eprintln!("generating {ADDRESSES} keys and filling the cache ...");
    let addresses: Vec<String> = (0..ADDRESSES)
        .map(|i| format!("user{i}@bench.test"))
        .collect();
    for a in &addresses {
        let (cert, _) = CertBuilder::general_purpose(Some(format!("<{a}>")))
            .generate()
            .unwrap();
        let text = key_text(&RecipientKey::Pgp(Arc::new(cert))).unwrap();
        store
            .cache_put(&remote.name(), a, &loc, &[text], 86_400)
            .await
            .unwrap();
    }
    let cache = |options: CacheOptions| {
        Arc::new(CachedSource::with_options(
            remote.clone(),
            store.clone(),
            loc.clone(),
            Duration::from_secs(86_400),
            Duration::from_secs(3_600),
            options,
        ))
    };

    // Store only: the path before the memory cache.
    let store_only = cache(CacheOptions::store_only());
    let store_resolver = resolver(&remote, store_only.clone());
    // Warm up (connections, page cache, parsed keys).
    for a in &addresses {
        store_resolver
            .resolve(a, &[Method::Pgp], OnError::Stop)
            .await;
    }
    let sql = measure_resolver("store only, SQLite", &store_resolver, &addresses, ROUNDS).await;
    let sql_cache = measure_cache("store only, SQLite", &store_only, &addresses, ROUNDS).await;

    // Memory cache in front of the store.
    let memory = cache(CacheOptions::default());
    let memory_resolver = resolver(&remote, memory.clone());
    for a in &addresses {
        memory_resolver
            .resolve(a, &[Method::Pgp], OnError::Stop)
            .await;
    }
    assert_eq!(memory.memory_len(), ADDRESSES);
    // From here on only memory can answer.
    store.close().await;
    let mem = measure_resolver("memory", &memory_resolver, &addresses, MEMORY_ROUNDS).await;
    let mem_cache = measure_cache("memory", &memory, &addresses, MEMORY_ROUNDS).await;
    assert_eq!(
        remote.0.load(Ordering::Relaxed),
        0,
        "a lookup missed the cache"
    );
    println!(
        "memory / store only: {:.1}x through the resolver, {:.1}x for the cache alone",
        mem / sql,
        mem_cache / sql_cache
    );
}
