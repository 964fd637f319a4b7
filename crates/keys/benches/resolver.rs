//! Benchmark of the resolver over cached answers: 1,000 addresses whose remote
//! lookups are already in the store's lookup cache (SQLite), resolved through
//! the same `CachedSource` + `Resolver` path as a message's RCPT. Prints
//! lookups per second and latency percentiles; asserts only that the remote
//! source was never asked (every lookup a cache hit).
//!
//!     cargo bench -p sealgate-keys --bench resolver

use sealgate_keys::cache::{location, CachedSource};
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
const ROUNDS: usize = 5;

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
    let cached: Arc<dyn Source> = Arc::new(CachedSource::new(
        remote.clone(),
        store.clone(),
        loc,
        Duration::from_secs(86_400),
        Duration::from_secs(3_600),
    ));
    let name = remote.name();
    let resolver = Resolver::with_order(
        vec![Registered {
            name: name.clone(),
            lookup: cached,
            direct: remote.clone(),
            timeout: Duration::from_secs(30),
        }],
        std::slice::from_ref(&name),
        &[],
        Arc::new(AcceptAllTrust),
    )
    .unwrap();

    // Warm up (connections, page cache).
    for a in addresses.iter().take(50) {
        resolver.resolve(a, &[Method::Pgp], OnError::Stop).await;
    }
    let mut lat = Vec::with_capacity(ADDRESSES * ROUNDS);
    let start = Instant::now();
    for _ in 0..ROUNDS {
        for a in &addresses {
            let t = Instant::now();
            let r = resolver.resolve(a, &[Method::Pgp], OnError::Stop).await;
            lat.push(t.elapsed());
            assert!(
                r.keys_for(Method::Pgp).is_some(),
                "{a}: no key from the cache"
            );
        }
    }
    let total = start.elapsed();
    assert_eq!(
        remote.0.load(Ordering::Relaxed),
        0,
        "a lookup missed the cache"
    );
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "resolver, cached answers (SQLite): {} lookups over {ADDRESSES} addresses in {:.2} s",
        lat.len(),
        total.as_secs_f64()
    );
    println!(
        "  lookups/sec: {:.0}",
        lat.len() as f64 / total.as_secs_f64()
    );
    println!(
        "  latency: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        lat[lat.len() - 1]
    );
    store.close().await;
}
