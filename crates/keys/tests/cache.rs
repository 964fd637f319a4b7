//! The lookup cache with a real store: hits do not reach the source, misses
//! and stale entries do, nothing-found answers use the negative lifetime,
//! failures are never cached, a changed source configuration (location)
//! misses, and `cache_expire` makes the next lookup refetch.

use sealgate_keys::cache::{location, CachedSource};
use sealgate_keys::source::Source;
use sealgate_keys::RecipientKey;
use sealgate_store::Store;
use sequoia_openpgp::cert::CertBuilder;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A remote source stand-in: answers from a fixed key list, counts calls, can fail.
struct Counting {
    calls: AtomicUsize,
    fail: AtomicBool,
    keys: Vec<RecipientKey>,
}

#[async_trait::async_trait]
impl Source for Counting {
    fn name(&self) -> String {
        "ldap:test".into()
    }
    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err("connection refused".into());
        }
        Ok(self
            .keys
            .iter()
            .filter(|k| k.addresses().contains(&address.to_lowercase()))
            .cloned()
            .collect())
    }
}

async fn setup(
    positive: u64,
    negative: u64,
    loc: &str,
) -> (tempfile::TempDir, Store, Arc<Counting>, CachedSource) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/c.db", dir.path().display()))
        .await
        .unwrap();
    let (cert, _) = CertBuilder::general_purpose(Some("<alice@example.org>"))
        .generate()
        .unwrap();
    let remote = Arc::new(Counting {
        calls: AtomicUsize::new(0),
        fail: AtomicBool::new(false),
        keys: vec![RecipientKey::Pgp(Arc::new(cert))],
    });
    let cached = CachedSource::new(
        remote.clone(),
        store.clone(),
        location(loc),
        Duration::from_secs(positive),
        Duration::from_secs(negative),
    );
    (dir, store, remote, cached)
}

#[tokio::test]
async fn hits_misses_and_expiry() {
    let (_dir, store, remote, cached) = setup(3600, 3600, "v1").await;
    let calls = || remote.calls.load(Ordering::SeqCst);
    let first = cached.lookup("Alice@example.org").await.unwrap();
    assert_eq!((first.len(), calls()), (1, 1));
    let again = cached.lookup("alice@example.org").await.unwrap();
    assert_eq!((again.len(), calls()), (1, 1), "served from the cache");
    assert_eq!(again[0].fingerprint(), first[0].fingerprint());
    // Nothing found is cached too (negative lifetime).
    assert!(cached
        .lookup("nobody@example.org")
        .await
        .unwrap()
        .is_empty());
    assert!(cached
        .lookup("nobody@example.org")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(calls(), 2);
    // `sealgate cache expire ADDRESS`, then everything.
    assert_eq!(
        store.cache_expire(Some("alice@example.org")).await.unwrap(),
        1
    );
    cached.lookup("alice@example.org").await.unwrap();
    cached.lookup("nobody@example.org").await.unwrap();
    assert_eq!(calls(), 3, "only the expired address was refetched");
    store.cache_expire(None).await.unwrap();
    cached.lookup("alice@example.org").await.unwrap();
    cached.lookup("nobody@example.org").await.unwrap();
    assert_eq!(calls(), 5);
}

#[tokio::test]
async fn failures_are_not_cached_and_lifetimes_apply() {
    let (_dir, _store, remote, cached) = setup(3600, 0, "v1").await;
    let calls = || remote.calls.load(Ordering::SeqCst);
    remote.fail.store(true, Ordering::SeqCst);
    assert!(cached.lookup("alice@example.org").await.is_err());
    remote.fail.store(false, Ordering::SeqCst);
    assert_eq!(cached.lookup("alice@example.org").await.unwrap().len(), 1);
    assert_eq!(calls(), 2, "the failure was not cached");
    // Negative lifetime 0: a miss is asked again every time.
    cached.lookup("nobody@example.org").await.unwrap();
    cached.lookup("nobody@example.org").await.unwrap();
    assert_eq!(calls(), 4);
    // While the source is down, a fresh positive entry still answers.
    remote.fail.store(true, Ordering::SeqCst);
    assert_eq!(cached.lookup("alice@example.org").await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_changed_source_configuration_misses() {
    let (dir, store, remote, cached) = setup(3600, 3600, "v1").await;
    cached.lookup("alice@example.org").await.unwrap();
    let moved = CachedSource::new(
        remote.clone(),
        store.clone(),
        location("v2"),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    );
    moved.lookup("alice@example.org").await.unwrap();
    assert_eq!(
        remote.calls.load(Ordering::SeqCst),
        2,
        "entry of the old location ignored"
    );
    // expire_moved marks the old location's entries stale (what serve does at start).
    cached.lookup("alice2@example.org").await.unwrap();
    assert_eq!(
        store
            .cache_expire_moved("ldap:test", &location("v2"))
            .await
            .unwrap(),
        1
    );
    drop(dir);
}
