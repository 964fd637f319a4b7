//! The hot path of cached lookups against a real HKP key server
//! (`tests/support/keyserver.py`, which logs every request) and a real SQLite
//! store: the memory cache answers without the key server or the store, its
//! entries expire after `memory_ttl` and never outlive the store entry,
//! failures are not cached, concurrent lookups of one address share one
//! request, and the circuit breaker opens after repeated failures (a closed
//! port, a server that never answers), answers "error" without a network
//! attempt while open, and closes after a successful trial. The resolver's
//! reused usability verdicts (what makes a memory hit cheap end to end) never
//! outlive a date in the key.

use sealgate_keys::cache::{location, BreakerConfig, CacheOptions, CachedSource, Circuit};
use sealgate_keys::import::key_text;
use sealgate_keys::resolver::Registered;
use sealgate_keys::source::Source;
use sealgate_keys::sources::hkp::HkpKeyserver;
use sealgate_keys::sources::http::{self, HttpConfig};
use sealgate_keys::trust::AcceptAllTrust;
use sealgate_keys::{Method, OnError, RecipientKey, Resolver};
use sealgate_store::Store;
use sealgate_testkit::keyserver::{KeyServer, KeyServerOptions};
use sealgate_testkit::ports::free_port;
use sequoia_openpgp::cert::CertBuilder;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.org";

/// An armored certificate for `address`.
fn armored(address: &str) -> Vec<u8> {
    let (cert, _) = CertBuilder::general_purpose(Some(format!("<{address}>")))
        .generate()
        .unwrap();
    key_text(&RecipientKey::Pgp(Arc::new(cert)))
        .unwrap()
        .into_bytes()
}

fn hkp(url: &str, timeout_secs: u64) -> Arc<HkpKeyserver> {
    let config = HttpConfig {
        timeout_secs,
        ..HttpConfig::default()
    };
    Arc::new(
        HkpKeyserver::new(
            url,
            http::client(&config).unwrap(),
            config.max_response_bytes,
        )
        .unwrap(),
    )
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/c.db", dir.path().display()))
        .await
        .unwrap();
    (dir, store)
}

fn cached(source: Arc<dyn Source>, store: &Store, options: CacheOptions) -> CachedSource {
    CachedSource::with_options(
        source,
        store.clone(),
        location("test"),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
        options,
    )
}

fn memory(ttl_secs: u64) -> CacheOptions {
    CacheOptions {
        memory_entries: 100,
        memory_ttl: Duration::from_secs(ttl_secs),
        ..CacheOptions::default()
    }
}

/// HKP lookups the key server logged for `address`.
fn asked(server: &KeyServer, address: &str) -> usize {
    let search = format!("search={}&", address.to_lowercase().replace('@', "%40"));
    let search_end = format!("search={} ", address.to_lowercase().replace('@', "%40"));
    server
        .requests()
        .iter()
        .map(|r| r.to_lowercase())
        .filter(|r| r.contains(&search) || r.contains(&search_end))
        .count()
}

#[tokio::test]
async fn the_memory_cache_answers_without_the_key_server_or_the_store() {
    let server = KeyServer::start_http();
    server.put_hkp(ALICE, &armored(ALICE));
    let (_dir, store) = store().await;
    let source = hkp(&server.url(), 5);
    let with_memory = cached(source.clone(), &store, memory(60));
    let store_only = cached(source, &store, CacheOptions::store_only());

    let first = with_memory.lookup(ALICE).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(with_memory
        .lookup("nobody@example.org")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(server.requests().len(), 2);
    // The store-only cache finds the same answers in the store.
    assert_eq!(store_only.lookup(ALICE).await.unwrap().len(), 1);
    assert_eq!(server.requests().len(), 2);

    // Key server stopped, store closed: only memory can answer.
    drop(server);
    store.close().await;
    let again = with_memory.lookup("Alice@Example.ORG").await.unwrap();
    assert_eq!(again[0].fingerprint(), first[0].fingerprint());
    assert!(with_memory
        .lookup("nobody@example.org")
        .await
        .unwrap()
        .is_empty());
    assert!(
        store_only.lookup(ALICE).await.is_err(),
        "the store-only path needs the store (or the source)"
    );
    assert_eq!(with_memory.memory_len(), 2);
}

#[tokio::test]
async fn cache_expire_reaches_memory_only_through_clear_memory() {
    let server = KeyServer::start_http();
    server.put_hkp(ALICE, &armored(ALICE));
    let (_dir, store) = store().await;
    let cached = cached(hkp(&server.url(), 5), &store, memory(60));
    cached.lookup(ALICE).await.unwrap();
    // `sealgate cache expire ADDRESS` from another process: the store entry
    // is stale, but this process still answers from memory ...
    assert_eq!(store.cache_expire(Some(ALICE)).await.unwrap(), 1);
    cached.lookup(ALICE).await.unwrap();
    assert_eq!(asked(&server, ALICE), 1);
    // ... until its memory is cleared (in-process expire) ...
    cached.clear_memory(Some("ALICE@example.org"));
    cached.lookup(ALICE).await.unwrap();
    assert_eq!(asked(&server, ALICE), 2);
    // ... and clearing everything works too.
    store.cache_expire(None).await.unwrap();
    cached.clear_memory(None);
    assert_eq!(cached.memory_len(), 0);
    cached.lookup(ALICE).await.unwrap();
    assert_eq!(asked(&server, ALICE), 3);
}

#[tokio::test]
async fn memory_entries_expire_after_their_ttl_and_never_outlive_the_store_entry() {
    let server = KeyServer::start_http();
    server.put_hkp(ALICE, &armored(ALICE));
    let (_dir, store) = store().await;
    let cached = cached(hkp(&server.url(), 5), &store, memory(1));
    cached.lookup(ALICE).await.unwrap();
    store.cache_expire(Some(ALICE)).await.unwrap();
    cached.lookup(ALICE).await.unwrap();
    assert_eq!(asked(&server, ALICE), 1, "within memory_ttl: memory");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    cached.lookup(ALICE).await.unwrap();
    assert_eq!(
        asked(&server, ALICE),
        2,
        "after memory_ttl the (stale) store entry is read, and the source asked"
    );

    // A store entry that expires before memory_ttl takes the memory entry
    // with it: negative lifetime 2 s, memory_ttl 60 s.
    let short = CachedSource::with_options(
        hkp(&server.url(), 5),
        store.clone(),
        location("short"),
        Duration::from_secs(2),
        Duration::from_secs(2),
        memory(60),
    );
    let nobody = "nobody@example.org";
    assert!(short.lookup(nobody).await.unwrap().is_empty());
    assert!(short.lookup(nobody).await.unwrap().is_empty());
    assert_eq!(asked(&server, nobody), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(short.lookup(nobody).await.unwrap().is_empty());
    assert_eq!(asked(&server, nobody), 2, "expired with the store entry");

    // A negative lifetime of 0 caches nothing, in memory either.
    let none = CachedSource::with_options(
        hkp(&server.url(), 5),
        store.clone(),
        location("none"),
        Duration::from_secs(3600),
        Duration::ZERO,
        memory(60),
    );
    none.lookup(nobody).await.unwrap();
    none.lookup(nobody).await.unwrap();
    assert_eq!(asked(&server, nobody), 4);
}

#[tokio::test]
async fn the_memory_cache_is_bounded_and_drops_the_oldest_entry_first() {
    let server = KeyServer::start_http();
    let (_dir, store) = store().await;
    let options = CacheOptions {
        memory_entries: 3,
        ..memory(60)
    };
    let cached = cached(hkp(&server.url(), 5), &store, options);
    let addresses: Vec<String> = (0..5).map(|i| format!("user{i}@example.org")).collect();
    for a in &addresses {
        assert!(cached.lookup(a).await.unwrap().is_empty());
        assert!(cached.memory_len() <= 3);
    }
    assert_eq!(cached.memory_len(), 3);
    // The newest three answer from memory even without the store ...
    store.cache_expire(None).await.unwrap();
    for a in &addresses[2..] {
        cached.lookup(a).await.unwrap();
        assert_eq!(asked(&server, a), 1, "{a}");
    }
    // ... the two oldest were dropped: the (expired) store sends them to the
    // key server again.
    for a in &addresses[..2] {
        cached.lookup(a).await.unwrap();
        assert_eq!(asked(&server, a), 2, "{a}");
    }
    assert_eq!(cached.memory_len(), 3);
}

#[tokio::test]
async fn failures_are_not_cached() {
    let server = KeyServer::start_http();
    server.put_hkp_status(ALICE, 500);
    let (_dir, store) = store().await;
    let cached = cached(hkp(&server.url(), 5), &store, memory(60));
    let err = cached.lookup(ALICE).await.unwrap_err();
    assert!(err.contains("500"), "{err}");
    assert!(cached.lookup(ALICE).await.is_err());
    assert_eq!(asked(&server, ALICE), 2, "the failure was asked again");
    assert_eq!(cached.memory_len(), 0);
    assert!(store
        .cache_get(&cached.name(), ALICE)
        .await
        .unwrap()
        .is_none());
    // The server recovers: the next lookup asks, and is cached.
    server.put_hkp(ALICE, &armored(ALICE));
    server.put_hkp_status(ALICE, 200);
    assert_eq!(cached.lookup(ALICE).await.unwrap().len(), 1);
    assert_eq!(cached.lookup(ALICE).await.unwrap().len(), 1);
    assert_eq!(asked(&server, ALICE), 3);
    assert_eq!(cached.breaker_state().consecutive_failures, 0);
}

/// The real key server behind a pause, so that concurrent lookups surely
/// overlap.
struct Slow(Arc<HkpKeyserver>);

#[async_trait::async_trait]
impl Source for Slow {
    fn name(&self) -> String {
        self.0.name()
    }
    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.0.lookup(address).await
    }
}

async fn concurrently(
    cached: &Arc<CachedSource>,
    addresses: &[&str],
) -> Vec<Result<usize, String>> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, a) in addresses.iter().enumerate() {
        let (cached, a) = (cached.clone(), a.to_string());
        tasks.spawn(async move { (i, cached.lookup(&a).await.map(|k| k.len())) });
    }
    let mut out: Vec<(usize, Result<usize, String>)> = tasks.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_of_one_address_share_one_request() {
    let server = KeyServer::start_http();
    server.put_hkp(ALICE, &armored(ALICE));
    server.put_hkp_status("broken@example.org", 503);
    let (_dir, store) = store().await;
    let source = Arc::new(Slow(hkp(&server.url(), 5)));
    for options in [memory(60), CacheOptions::store_only()] {
        let cached = Arc::new(CachedSource::with_options(
            source.clone(),
            store.clone(),
            location(&format!("{options:?}")),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
            options,
        ));
        let before = asked(&server, ALICE);
        let mut addresses = vec![ALICE; 15];
        addresses.extend(["Alice@Example.org"; 5]);
        let answers = concurrently(&cached, &addresses).await;
        assert!(answers.iter().all(|a| a == &Ok(1)), "{answers:?}");
        assert_eq!(asked(&server, ALICE) - before, 1, "{:?}", server.requests());

        // A failure is shared the same way (and counted once by the breaker).
        let before = asked(&server, "broken@example.org");
        let answers = concurrently(&cached, &["broken@example.org"; 10]).await;
        assert!(answers.iter().all(|a| a.is_err()), "{answers:?}");
        assert_eq!(asked(&server, "broken@example.org") - before, 1);
        assert_eq!(cached.breaker_state().consecutive_failures, 1);
    }
}

fn breaker(failures: u32, open_ms: u64) -> CacheOptions {
    CacheOptions {
        breaker: BreakerConfig {
            failures,
            open_for: Duration::from_millis(open_ms),
            max_open_for: Duration::from_millis(open_ms * 4),
        },
        ..memory(60)
    }
}

#[tokio::test]
async fn the_breaker_opens_after_repeated_failures_and_closes_after_a_success() {
    // Nothing listens on the port yet: connection refused, an error for a
    // configured key server.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (_dir, store) = store().await;
    let cached = Arc::new(cached(hkp(&url, 5), &store, breaker(3, 1000)));
    for i in 0..3 {
        assert_eq!(cached.breaker_state().circuit, Circuit::Closed);
        let err = cached
            .lookup(&format!("user{i}@example.org"))
            .await
            .unwrap_err();
        assert!(!err.contains("not asked"), "{err}");
    }
    let state = cached.breaker_state();
    assert_eq!(
        (state.circuit, state.consecutive_failures),
        (Circuit::Open, 3)
    );
    assert!(state.retry_in.unwrap() <= Duration::from_secs(1));

    // The server is back, but the breaker is open: an error, and no request.
    let server = KeyServer::start(KeyServerOptions {
        port: Some(port),
        ..KeyServerOptions::default()
    });
    server.put_hkp(ALICE, &armored(ALICE));
    let start = Instant::now();
    let err = cached.lookup(ALICE).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(200));
    assert!(err.contains("not asked: 3 consecutive failures"), "{err}");
    assert!(server.requests().is_empty(), "{:?}", server.requests());

    // Through the resolver: the open breaker is a failed source, so with
    // OnError::Stop the walk stops there and policy defers.
    let resolver = Resolver::with_order(
        vec![Registered {
            name: cached.name(),
            lookup: cached.clone(),
            direct: hkp(&url, 5),
            timeout: Duration::from_secs(10),
            require_chain: true,
        }],
        &[cached.name()],
        &[],
        Arc::new(AcceptAllTrust),
    )
    .unwrap();
    let res = resolver.resolve(ALICE, &[Method::Pgp], OnError::Stop).await;
    assert!(res.keys.is_empty());
    assert!(res.errors[0].contains("not asked"), "{:?}", res.errors);
    let states = resolver.breaker_states();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].1.circuit, Circuit::Open);
    assert!(server.requests().is_empty());

    // After the back-off one trial goes through; its success closes it.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(cached.breaker_state().circuit, Circuit::HalfOpen);
    assert_eq!(cached.lookup(ALICE).await.unwrap().len(), 1);
    assert_eq!(server.requests().len(), 1);
    let state = cached.breaker_state();
    assert_eq!(
        (state.circuit, state.consecutive_failures, state.retry_in),
        (Circuit::Closed, 0, None)
    );
    let res = resolver
        .resolve("bob@example.org", &[Method::Pgp], OnError::Stop)
        .await;
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn a_failed_trial_doubles_the_back_off() {
    let port = free_port();
    let (_dir, store) = store().await;
    let cached = cached(
        hkp(&format!("http://127.0.0.1:{port}"), 5),
        &store,
        breaker(2, 500),
    );
    for i in 0..2 {
        cached
            .lookup(&format!("user{i}@example.org"))
            .await
            .unwrap_err();
    }
    assert_eq!(cached.breaker_state().circuit, Circuit::Open);
    tokio::time::sleep(Duration::from_millis(550)).await;
    let err = cached.lookup("trial@example.org").await.unwrap_err();
    assert!(!err.contains("not asked"), "the trial was made: {err}");
    let state = cached.breaker_state();
    assert_eq!(
        (state.circuit, state.consecutive_failures),
        (Circuit::Open, 3)
    );
    let left = state.retry_in.unwrap();
    assert!(
        left > Duration::from_millis(600) && left <= Duration::from_millis(1000),
        "{left:?}"
    );
}

#[tokio::test]
async fn timeouts_count_for_the_breaker_even_when_the_caller_gave_up() {
    // Accepts connections and never answers.
    let server = KeyServer::start(KeyServerOptions {
        hang: true,
        ..KeyServerOptions::default()
    });
    let (_dir, store) = store().await;
    let options = CacheOptions {
        timeout: Some(Duration::from_secs(1)),
        ..breaker(2, 10_000)
    };
    let cached = cached(hkp(&server.url(), 30), &store, options);
    for i in 0..2 {
        // The caller gives up long before the source's bound.
        let address = format!("user{i}@example.org");
        let lookup = cached.lookup(&address);
        assert!(tokio::time::timeout(Duration::from_millis(100), lookup)
            .await
            .is_err());
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let state = cached.breaker_state();
    assert_eq!(
        (state.circuit, state.consecutive_failures),
        (Circuit::Open, 2)
    );
    let err = cached.lookup(ALICE).await.unwrap_err();
    assert!(err.contains("timed out after 1 s"), "{err}");
    assert!(err.contains("not asked"), "{err}");
}

/// A local source that hands out the same key objects every time (as the
/// caches do), so that the resolver's reused verdicts apply.
struct Fixed(Vec<RecipientKey>);

#[async_trait::async_trait]
impl Source for Fixed {
    fn name(&self) -> String {
        "files".into()
    }
    async fn lookup(&self, _: &str) -> Result<Vec<RecipientKey>, String> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn a_reused_usability_verdict_never_outlives_the_key() {
    // Expires 3 s from now.
    let created = std::time::SystemTime::now() - Duration::from_secs(1);
    let (cert, _) = CertBuilder::general_purpose(Some("<alice@example.org>"))
        .set_creation_time(created)
        .set_validity_period(Duration::from_secs(4))
        .generate()
        .unwrap();
    let key = RecipientKey::Pgp(Arc::new(cert));
    let until = sealgate_keys::usable::verdict_lasts_until(
        &key,
        std::time::SystemTime::now(),
        Duration::from_secs(60),
    );
    assert!(until <= created + Duration::from_secs(4), "{until:?}");
    let resolver = Resolver::new(vec![Arc::new(Fixed(vec![key]))], Arc::new(AcceptAllTrust));
    for _ in 0..3 {
        let res = resolver.resolve(ALICE, &[Method::Pgp], OnError::Stop).await;
        assert!(res.keys_for(Method::Pgp).is_some());
    }
    tokio::time::sleep_until((Instant::now() + Duration::from_millis(3100)).into()).await;
    let res = resolver.resolve(ALICE, &[Method::Pgp], OnError::Stop).await;
    assert!(
        res.keys_for(Method::Pgp).is_none(),
        "the expired key must not be used on an old verdict"
    );
    // Far from any date in the key the verdict lasts the full minute, and
    // never longer.
    let (cert, _) = CertBuilder::general_purpose(Some("<bob@example.org>"))
        .set_creation_time(std::time::SystemTime::now() - Duration::from_secs(7200))
        .generate()
        .unwrap();
    let now = std::time::SystemTime::now();
    assert_eq!(
        sealgate_keys::usable::verdict_lasts_until(
            &RecipientKey::Pgp(Arc::new(cert)),
            now,
            Duration::from_secs(60)
        ),
        now + Duration::from_secs(60)
    );
}

#[test]
fn an_x509_verdict_lasts_until_its_not_after_at_most() {
    use openssl::asn1::Asn1Time;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Builder, X509NameBuilder};
    let now = std::time::SystemTime::now();
    let secs = now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let pkey = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "alice").unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&pkey).unwrap();
    b.set_not_before(&Asn1Time::from_unix(secs - 7200).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(secs + 20).unwrap())
        .unwrap();
    b.sign(&pkey, MessageDigest::sha256()).unwrap();
    let key = RecipientKey::Smime(Arc::new(b.build()));
    let until = sealgate_keys::usable::verdict_lasts_until(&key, now, Duration::from_secs(60));
    let not_after = std::time::UNIX_EPOCH + Duration::from_secs((secs + 20) as u64);
    assert_eq!(until, not_after);
}
