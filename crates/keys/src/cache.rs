//! The lookup caches in front of a remote source.
//!
//! [`CachedSource`] answers, in this order:
//!
//! 1. From its **memory cache** (in-process, bounded, [`CacheOptions`]): the
//!    parsed answer (the keys found, or none), kept for at most
//!    `memory_ttl` and never past the expiry of the store entry it came from.
//!    It is what makes a repeated lookup cheap; it is also what another
//!    gateway process's `cache expire` cannot reach, so `memory_ttl` bounds
//!    how stale an answer can be across processes sharing one store.
//! 2. From the store's `lookup_cache` while the entry is fresh and was fetched
//!    under the source's current configuration (`location`).
//! 3. From the source itself, with the positive lifetime when keys were found
//!    and the negative lifetime when none were. Concurrent lookups of the same
//!    address share one request (single-flight), and a source that keeps
//!    failing is not asked for a while (a circuit breaker, [`BreakerConfig`]).
//!
//! A failed lookup is never cached in either cache (the next message asks
//! again, unless the breaker is open), and a store the cache cannot read is
//! skipped, not fatal.

use crate::import::key_text;
use crate::load::parse_any;
use crate::source::Source;
use crate::RecipientKey;
use sealgate_store::Store;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

type Answer = Result<Vec<RecipientKey>, String>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Parsed keys by their text, so that a store cache hit does not parse (and
/// verify the self-signatures of) the same certificate again. Bounded:
/// cleared when full.
struct Parsed {
    by_text: Mutex<HashMap<String, Vec<RecipientKey>>>,
}

const PARSED_MAX: usize = 20_000;

impl Parsed {
    /// The parsed keys of `text`. The lock is held only to look up and to
    /// insert, never while parsing, which runs on the CPU pool.
    async fn get_or_parse(&self, text: &str) -> Result<Vec<RecipientKey>, String> {
        if let Some(k) = lock(&self.by_text).get(text) {
            return Ok(k.clone());
        }
        let owned = text.to_string();
        let keys = sealgate_crypto::cpu::run(move |_| parse_any(owned.as_bytes())).await??;
        let mut map = lock(&self.by_text);
        if map.len() >= PARSED_MAX {
            map.clear();
        }
        map.insert(text.to_string(), keys.clone());
        Ok(keys)
    }
}

/// How a [`CachedSource`] caches and protects its source.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Most answers kept in memory (`keys.memory_cache_entries`); `0` turns
    /// the memory cache off. When full, the oldest-written entry goes first.
    pub memory_entries: usize,
    /// Longest an answer stays in memory (`keys.memory_cache_secs`), and so
    /// the longest another process's `cache expire` or refresh can go
    /// unnoticed here. `0` turns the memory cache off.
    pub memory_ttl: Duration,
    /// Bound on one request to the source, applied inside the shared request
    /// so that a timeout counts for the breaker even when every caller has
    /// already given up. `None`: only the source's own timeouts.
    pub timeout: Option<Duration>,
    pub breaker: BreakerConfig,
    /// Where cache hits are counted by layer (`/metrics`).
    pub metrics: Option<sealgate_metrics::Metrics>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            memory_entries: 10_000,
            memory_ttl: Duration::from_secs(60),
            timeout: None,
            breaker: BreakerConfig::default(),
            metrics: None,
        }
    }
}

impl CacheOptions {
    /// No memory cache: every lookup reads the store (single-flight and the
    /// breaker still apply).
    pub fn store_only() -> Self {
        CacheOptions {
            memory_entries: 0,
            ..CacheOptions::default()
        }
    }
}

/// The circuit breaker of one source: after `failures` consecutive failed
/// lookups (any addresses) the source is not asked for `open_for`; then one
/// trial lookup goes through: a success closes the breaker, a failure opens
/// it again for twice as long, up to `max_open_for`.
#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker; `0` turns it off.
    pub failures: u32,
    pub open_for: Duration,
    pub max_open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            open_for: Duration::from_secs(30),
            max_open_for: Duration::from_secs(300),
        }
    }
}

/// Whether a source is being asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// Asked normally.
    Closed,
    /// Not asked: lookups that reach the source fail at once.
    Open,
    /// The back-off is over: the next lookup (one at a time) is a trial.
    HalfOpen,
}

/// A snapshot of a source's breaker, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerState {
    pub circuit: Circuit,
    /// Failed lookups since the last success.
    pub consecutive_failures: u32,
    /// While open: time left until the next trial.
    pub retry_in: Option<Duration>,
}

struct BreakerInner {
    failures: u32,
    open_until: Option<Instant>,
    /// The back-off used the last time it opened (doubles on a failed trial).
    open_for: Duration,
    trial_running: bool,
    last_error: String,
}

struct Breaker {
    config: BreakerConfig,
    state: Mutex<BreakerInner>,
}

impl Breaker {
    fn new(config: BreakerConfig) -> Breaker {
        Breaker {
            state: Mutex::new(BreakerInner {
                failures: 0,
                open_until: None,
                open_for: config.open_for,
                trial_running: false,
                last_error: String::new(),
            }),
            config,
        }
    }

    /// May the source be asked now? `Ok(true)` for a trial lookup.
    fn admit(&self) -> Result<bool, String> {
        let mut s = lock(&self.state);
        let Some(until) = s.open_until else {
            return Ok(false);
        };
        let now = Instant::now();
        if now < until || s.trial_running {
            let wait = until.saturating_duration_since(now);
            let next = if s.trial_running {
                "a trial lookup is under way".to_string()
            } else {
                format!(
                    "next attempt in {} s",
                    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
                )
            };
            return Err(format!(
                "not asked: {} consecutive failures (last: {}); {next}",
                s.failures, s.last_error
            ));
        }
        s.trial_running = true;
        Ok(true)
    }

    fn record(&self, trial: bool, result: Result<(), &str>) {
        let mut s = lock(&self.state);
        if trial {
            s.trial_running = false;
        }
        match result {
            Ok(()) => {
                s.failures = 0;
                s.open_until = None;
                s.open_for = self.config.open_for;
            }
            Err(e) => {
                s.failures = s.failures.saturating_add(1);
                s.last_error = e.to_string();
                if self.config.failures == 0 {
                    return;
                }
                if trial && s.open_until.is_some() {
                    s.open_for = (s.open_for * 2).min(self.config.max_open_for);
                    s.open_until = Some(Instant::now() + s.open_for);
                } else if s.open_until.is_none() && s.failures >= self.config.failures {
                    s.open_for = self.config.open_for;
                    s.open_until = Some(Instant::now() + s.open_for);
                }
            }
        }
    }

    fn state(&self) -> BreakerState {
        let s = lock(&self.state);
        let now = Instant::now();
        let circuit = match s.open_until {
            None => Circuit::Closed,
            Some(until) if now < until => Circuit::Open,
            Some(_) => Circuit::HalfOpen,
        };
        BreakerState {
            circuit,
            consecutive_failures: s.failures,
            retry_in: s
                .open_until
                .filter(|_| circuit == Circuit::Open)
                .map(|u| u.saturating_duration_since(now)),
        }
    }
}

/// One lookup admitted by the breaker: reports its outcome, or a failure if
/// it is dropped unfinished (the task panicked).
struct Attempt<'a> {
    breaker: &'a Breaker,
    trial: bool,
    done: bool,
}

impl Attempt<'_> {
    fn finish(mut self, result: &Answer) {
        self.done = true;
        self.breaker.record(
            self.trial,
            result.as_ref().map(|_| ()).map_err(String::as_str),
        );
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.breaker
                .record(self.trial, Err("the lookup ended without an answer"));
        }
    }
}

struct MemEntry {
    keys: Vec<RecipientKey>,
    expires: Instant,
    generation: u64,
}

/// The in-process answers: a map bounded by entry count, evicting in write
/// order (first written, first dropped; an entry rewritten moves to the back).
/// With one TTL for all, the oldest-written entry is also about the next to
/// expire. Hits take only the read lock.
struct Memory {
    capacity: usize,
    ttl: Duration,
    inner: RwLock<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    map: HashMap<String, MemEntry>,
    /// Keys in write order with the generation written; stale pairs (the
    /// entry was rewritten or removed since) are skipped and compacted away.
    order: VecDeque<(String, u64)>,
    next_generation: u64,
    /// Bumped by every clear: an answer fetched before it is not stored.
    epoch: u64,
}

impl Memory {
    fn enabled(&self) -> bool {
        self.capacity > 0 && !self.ttl.is_zero()
    }

    fn get(&self, key: &str) -> Option<Vec<RecipientKey>> {
        if !self.enabled() {
            return None;
        }
        let m = self.inner.read().unwrap_or_else(|e| e.into_inner());
        m.map
            .get(key)
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.keys.clone())
    }

    fn epoch(&self) -> u64 {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).epoch
    }

    /// Stores `keys` until `expires` (capped by the TTL), unless the memory
    /// was cleared since `epoch`.
    fn put(&self, key: &str, keys: &[RecipientKey], expires: Instant, epoch: u64) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let expires = expires.min(now + self.ttl);
        if expires <= now {
            return;
        }
        let mut guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let m = &mut *guard;
        if m.epoch != epoch {
            return;
        }
        m.next_generation += 1;
        let generation = m.next_generation;
        if !m.map.contains_key(key) {
            while m.map.len() >= self.capacity {
                let Some((old, g)) = m.order.pop_front() else {
                    break;
                };
                if m.map.get(&old).is_some_and(|e| e.generation == g) {
                    m.map.remove(&old);
                }
            }
        }
        m.map.insert(
            key.to_string(),
            MemEntry {
                keys: keys.to_vec(),
                expires,
                generation,
            },
        );
        m.order.push_back((key.to_string(), generation));
        if m.order.len() > 2 * self.capacity + 16 {
            let map = &m.map;
            m.order
                .retain(|(k, g)| map.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    fn clear(&self, key: Option<&str>) {
        let mut m = self.inner.write().unwrap_or_else(|e| e.into_inner());
        m.epoch += 1;
        match key {
            None => {
                m.map.clear();
                m.order.clear();
            }
            Some(k) => {
                m.map.remove(k);
            }
        }
    }

    fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .len()
    }
}

/// A [`Source`] behind the memory cache and the lookup cache.
pub struct CachedSource {
    shared: Arc<Shared>,
}

/// What a lookup and its shared request (a spawned task) both reach.
struct Shared {
    inner: Arc<dyn Source>,
    name: String,
    store: Store,
    location: String,
    positive: Duration,
    negative: Duration,
    timeout: Option<Duration>,
    parsed: Parsed,
    memory: Memory,
    breaker: Breaker,
    metrics: Option<sealgate_metrics::Metrics>,
    /// Requests to the source under way, by lower-cased address: a lookup of
    /// the same address waits for that answer instead of asking again.
    flights: Mutex<HashMap<String, watch::Receiver<Option<Answer>>>>,
}

impl CachedSource {
    /// The store cache only ([`CacheOptions::store_only`]): every lookup reads
    /// the store, so `cache expire` from another process takes effect at once.
    /// `location` identifies the source's configuration (see [`location`]).
    pub fn new(
        inner: Arc<dyn Source>,
        store: Store,
        location: String,
        positive: Duration,
        negative: Duration,
    ) -> CachedSource {
        CachedSource::with_options(
            inner,
            store,
            location,
            positive,
            negative,
            CacheOptions::store_only(),
        )
    }

    /// The memory cache, single-flight and breaker as `options` say.
    pub fn with_options(
        inner: Arc<dyn Source>,
        store: Store,
        location: String,
        positive: Duration,
        negative: Duration,
        options: CacheOptions,
    ) -> CachedSource {
        CachedSource {
            shared: Arc::new(Shared {
                name: inner.name(),
                inner,
                store,
                location,
                positive,
                negative,
                timeout: options.timeout,
                parsed: Parsed {
                    by_text: Mutex::new(HashMap::new()),
                },
                memory: Memory {
                    capacity: options.memory_entries,
                    ttl: options.memory_ttl,
                    inner: RwLock::new(MemoryInner::default()),
                },
                breaker: Breaker::new(options.breaker),
                metrics: options.metrics,
                flights: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The breaker's state (closed, open or half-open; consecutive failures).
    pub fn breaker_state(&self) -> BreakerState {
        self.shared.breaker.state()
    }

    /// Forgets the in-process answers for `address`, or all of them: what
    /// `sealgate cache expire [ADDRESS]` must be followed by in this process.
    /// The store's entries are left to [`Store::cache_expire`].
    pub fn clear_memory(&self, address: Option<&str>) {
        let key = address.map(str::to_lowercase);
        self.shared.memory.clear(key.as_deref());
    }

    /// Answers held in memory now (expired ones included until evicted).
    pub fn memory_len(&self) -> usize {
        self.shared.memory.len()
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

/// `expires_at` (Unix seconds) as an instant.
fn instant_of(expires_at: i64) -> Instant {
    let at = UNIX_EPOCH + Duration::from_secs(expires_at.max(0) as u64);
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left
}

impl Shared {
    fn hit(&self, layer: sealgate_metrics::CacheLayer) {
        if let Some(m) = &self.metrics {
            m.cache_hit(layer);
        }
    }

    /// The answer when the memory cache had none: the store's entry, else
    /// the source's (through the breaker), stored in both caches.
    async fn fetch(&self, address: &str, key: &str, epoch: u64) -> Answer {
        let name = &self.name;
        match self.store.cache_get(name, address).await {
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
                    self.memory
                        .put(key, &keys, instant_of(entry.expires_at), epoch);
                    self.hit(sealgate_metrics::CacheLayer::Store);
                    return Ok(keys);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(source = %name, "lookup cache unavailable: {e}"),
        }
        self.ask_source(address, key, epoch).await
    }

    /// The source's answer (through the breaker), stored in both caches.
    async fn ask_source(&self, address: &str, key: &str, epoch: u64) -> Answer {
        let name = &self.name;
        let trial = self.breaker.admit()?;
        let attempt = Attempt {
            breaker: &self.breaker,
            trial,
            done: false,
        };
        let result = match self.timeout {
            Some(t) => tokio::time::timeout(t, self.inner.lookup(address))
                .await
                .unwrap_or_else(|_| Err(format!("timed out after {} s", t.as_secs()))),
            None => self.inner.lookup(address).await,
        };
        attempt.finish(&result);
        if trial {
            match &result {
                Ok(_) => tracing::info!(source = %name, "source answers again: breaker closed"),
                Err(e) => tracing::warn!(source = %name, "trial lookup failed, breaker open: {e}"),
            }
        } else if let Err(e) = &result {
            let s = self.breaker.state();
            if s.circuit == Circuit::Open {
                tracing::warn!(
                    source = %name,
                    failures = s.consecutive_failures,
                    "breaker open: not asking the source for {} s: {e}",
                    s.retry_in.unwrap_or_default().as_secs()
                );
            }
        }
        let keys = result?;
        let texts: Vec<String> = keys.iter().filter_map(|k| key_text(k).ok()).collect();
        let ttl = if keys.is_empty() {
            self.negative
        } else {
            self.positive
        };
        let ttl = ttl.as_secs() as i64;
        // Taken before the store takes its own `now`: the memory entry never
        // outlives the store entry.
        let expires_at = sealgate_store::now_unix().saturating_add(ttl);
        if let Err(e) = self
            .store
            .cache_put(name, address, &self.location, &texts, ttl)
            .await
        {
            tracing::warn!(source = %name, "cannot write the lookup cache: {e}");
        }
        self.memory.put(key, &keys, instant_of(expires_at), epoch);
        Ok(keys)
    }
}

/// Removes a finished (or panicked) request from the flights.
struct Flight {
    shared: Arc<Shared>,
    key: String,
}

impl Drop for Flight {
    fn drop(&mut self) {
        lock(&self.shared.flights).remove(&self.key);
    }
}

#[async_trait::async_trait]
impl Source for CachedSource {
    fn name(&self) -> String {
        self.shared.name.clone()
    }

    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        let key = address.to_lowercase();
        if let Some(keys) = self.shared.memory.get(&key) {
            self.shared.hit(sealgate_metrics::CacheLayer::Memory);
            return Ok(keys);
        }
        let mut rx = {
            let mut flights = lock(&self.shared.flights);
            match flights.get(&key) {
                Some(rx) => rx.clone(),
                None => {
                    // A request that just finished stored its answer before
                    // leaving the flights.
                    if let Some(keys) = self.shared.memory.get(&key) {
                        return Ok(keys);
                    }
                    let (tx, rx) = watch::channel(None);
                    flights.insert(key.clone(), rx.clone());
                    let flight = Flight {
                        shared: self.shared.clone(),
                        key,
                    };
                    let address = address.to_string();
                    let epoch = self.shared.memory.epoch();
                    // Its own task: the request finishes (and is counted by
                    // the breaker, and cached) even if this caller gives up.
                    tokio::spawn(async move {
                        let answer = flight.shared.fetch(&address, &flight.key, epoch).await;
                        let _ = tx.send(Some(answer));
                        drop(flight);
                    });
                    rx
                }
            }
        };
        let answer = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| "the lookup ended without an answer".to_string())?;
        match &*answer {
            Some(a) => a.clone(),
            None => Err("the lookup ended without an answer".into()),
        }
    }

    fn breaker(&self) -> Option<BreakerState> {
        Some(self.breaker_state())
    }

    fn clear_memory(&self, address: Option<&str>) {
        CachedSource::clear_memory(self, address);
    }

    /// Past both caches to the source (through the breaker); the answer
    /// replaces what both caches held for the address, so a key found
    /// revoked stops being served here at once.
    async fn refresh(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        let key = address.to_lowercase();
        let epoch = self.shared.memory.epoch();
        self.shared.ask_source(address, &key, epoch).await
    }
}
