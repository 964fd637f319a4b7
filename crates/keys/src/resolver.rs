//! The resolver: asks the sources in each method's precedence order and keeps,
//! per method, the usable keys of the first source that has any.
//!
//! Sources are consulted lazily and at most once per resolution: a source that
//! serves both methods (the key-store files, uploads) is asked once; a method
//! whose keys were already found stops the walk, so a recipient with a usable
//! OpenPGP key never causes an LDAP query for S/MIME when PGP is preferred.
//! Every lookup is bounded by its source's timeout; a failed or timed-out
//! source is reported as an error ("answer unknown"), never as "no key".
//! Remote sources come wrapped in [`crate::cache::CachedSource`] (memory
//! cache, lookup cache, single-flight, circuit breaker); the resolver reuses
//! its usability verdict for a key object it has checked before, while no
//! date in the key can change it and for at most a minute, so that a cached
//! answer costs no signature checks.
//!
//! With the store's bindings attached ([`Resolver::with_bindings`]), OpenPGP
//! is not "first source wins" but validation levels and the active binding
//! ([`crate::choose`]): a source is asked unless the key chosen so far is at
//! least at the highest level that source can give (its entry level, or a
//! binding's of that source), so precedence still saves remote lookups.

use crate::cache::BreakerState;
use crate::choose::{choose, level_of, level_so_far, Candidate, Choice};
use crate::source::{FoundKey, Source, SourceReport};
use crate::trust::CertificateTrust;
use crate::usable;
use crate::{Method, RecipientKey};
use sealgate_store::Binding;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// What the walk does when a source fails (its answer is unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Stop: no lower-ranked source may decide (`on_source_error = "defer"`).
    Stop,
    /// Go on as if the failed source had no key (`on_source_error = "skip"`).
    Skip,
}

type Answer = Result<Vec<FoundKey>, String>;

/// One step of the precedence walk.
enum Walk {
    Ask(usize),
    Done(Resolution),
}

/// The usable keys for one address.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// Per method: the source that decided and its usable keys (never empty).
    pub keys: BTreeMap<Method, (String, Vec<RecipientKey>)>,
    /// Sources that failed (their answer is unknown), as `source: error`,
    /// in the order the walk met them.
    pub errors: Vec<String>,
    /// The OpenPGP choice by level and active binding, when the resolver
    /// has the store's bindings and a key was found.
    pub pgp_choice: Option<Box<Choice>>,
}

impl Resolution {
    pub fn keys_for(&self, method: Method) -> Option<&[RecipientKey]> {
        self.keys.get(&method).map(|(_, k)| k.as_slice())
    }
}

/// A source as the resolver knows it.
#[derive(Clone)]
pub struct Registered {
    pub name: String,
    /// What [`Resolver::resolve`] asks: the cached wrapper for remote sources.
    pub lookup: Arc<dyn Source>,
    /// What [`Resolver::verify`] asks: the source itself, bypassing the cache.
    pub direct: Arc<dyn Source>,
    /// Bound on one lookup of this source.
    pub timeout: Duration,
    /// Its certificates need a path to a root (see
    /// [`crate::trust::TrustContext`]); `false` for a source the admin
    /// declared authoritative.
    pub require_chain: bool,
}

impl Registered {
    /// A local source (no cache) with a generous timeout.
    pub fn local(source: Arc<dyn Source>) -> Registered {
        Registered {
            name: source.name(),
            lookup: source.clone(),
            direct: source,
            timeout: Duration::from_secs(30),
            require_chain: true,
        }
    }
}

/// Sources, their order per method, and the trust policy.
pub struct Resolver {
    sources: Vec<Registered>,
    order: BTreeMap<Method, Vec<usize>>,
    trust: Arc<dyn CertificateTrust>,
    verdicts: Verdicts,
    /// Where lookups are counted by source and result (`/metrics`).
    metrics: Option<sealgate_metrics::Metrics>,
    /// The store whose key bindings decide OpenPGP by level.
    bindings: Option<sealgate_store::Store>,
}

/// Longest a usability verdict is reused.
const VERDICT_MAX_AGE: Duration = Duration::from_secs(60);
/// Verdicts kept; all are dropped when full.
const VERDICTS_MAX: usize = 20_000;

/// A verdict of [`usable::check`] and the key object it is about.
struct Verdict {
    /// Held so that the object's address (the map key) stays its own.
    _key: RecipientKey,
    usable: Result<(), String>,
    checked_at: SystemTime,
    until: SystemTime,
}

/// Verdicts of [`usable::check`] by key object (the `Arc` the caches hand
/// out again and again for the same certificate text) and address, each
/// reused while none of the key's own dates can change it and for at most
/// [`VERDICT_MAX_AGE`] ([`usable::verdict_lasts_until`]). A refetched key is
/// a new object, so it is checked afresh. Only [`Resolver::resolve`] uses
/// them; `verify` checks every key.
#[derive(Default)]
struct Verdicts {
    map: Mutex<HashMap<(usize, String), Verdict>>,
}

fn object_id(key: &RecipientKey) -> usize {
    match key {
        RecipientKey::Pgp(c) => Arc::as_ptr(c) as usize,
        RecipientKey::Smime(x) => Arc::as_ptr(x) as usize,
    }
}

impl Verdicts {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(usize, String), Verdict>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(
        &self,
        key: &RecipientKey,
        address: &str,
        now: SystemTime,
    ) -> Option<Result<(), String>> {
        self.lock()
            .get(&(object_id(key), address.to_string()))
            .filter(|v| v.checked_at <= now && now < v.until)
            .map(|v| v.usable.clone())
    }

    fn clear(&self) {
        self.lock().clear();
    }

    fn put(&self, key: &RecipientKey, address: &str, v: Verdict) {
        if v.until <= v.checked_at {
            return;
        }
        let mut map = self.lock();
        if map.len() >= VERDICTS_MAX {
            map.clear();
        }
        map.insert((object_id(key), address.to_string()), v);
    }
}

impl Resolver {
    /// Local sources in one order for both methods.
    pub fn new(sources: Vec<Arc<dyn Source>>, trust: Arc<dyn CertificateTrust>) -> Self {
        let registered: Vec<Registered> = sources.into_iter().map(Registered::local).collect();
        let all: Vec<usize> = (0..registered.len()).collect();
        Resolver {
            sources: registered,
            order: BTreeMap::from([(Method::Pgp, all.clone()), (Method::Smime, all)]),
            trust,
            verdicts: Verdicts::default(),
            metrics: None,
            bindings: None,
        }
    }

    /// Sources with a precedence list per method, by source name.
    pub fn with_order(
        sources: Vec<Registered>,
        pgp_order: &[String],
        smime_order: &[String],
        trust: Arc<dyn CertificateTrust>,
    ) -> Result<Self, String> {
        let index = |names: &[String]| -> Result<Vec<usize>, String> {
            names
                .iter()
                .map(|n| {
                    sources
                        .iter()
                        .position(|s| &s.name == n)
                        .ok_or_else(|| format!("unknown key source {n:?}"))
                })
                .collect()
        };
        let order = BTreeMap::from([
            (Method::Pgp, index(pgp_order)?),
            (Method::Smime, index(smime_order)?),
        ]);
        Ok(Resolver {
            sources,
            order,
            trust,
            verdicts: Verdicts::default(),
            metrics: None,
            bindings: None,
        })
    }

    /// Decides OpenPGP by validation level and the active binding of the
    /// store's `key_binding` table, and records there the key that becomes
    /// active (see [`crate::choose`]).
    pub fn with_bindings(mut self, store: sealgate_store::Store) -> Self {
        self.bindings = Some(store);
        self
    }

    /// The address's OpenPGP bindings (`None`: no store attached, or no
    /// OpenPGP asked for), and whether the choice may be recorded: not when
    /// they could not be read (levels then come from the sources alone, and
    /// a transient read error must not move the active binding).
    async fn pgp_bindings(
        &self,
        address: &str,
        methods: &[Method],
    ) -> (Option<Vec<Binding>>, bool) {
        let Some(store) = self.bindings.as_ref() else {
            return (None, false);
        };
        if !methods.contains(&Method::Pgp) {
            return (None, false);
        }
        match store.bindings(address).await {
            Ok(b) => (
                Some(b.into_iter().filter(|b| b.kind == "pgp").collect()),
                true,
            ),
            Err(e) => {
                tracing::warn!("key bindings not read, levels from the sources alone: {e}");
                (Some(Vec::new()), false)
            }
        }
    }

    /// Names of the sources in precedence order for `method`.
    pub fn order(&self, method: Method) -> Vec<String> {
        self.order
            .get(&method)
            .map(|o| o.iter().map(|&i| self.sources[i].name.clone()).collect())
            .unwrap_or_default()
    }

    /// The circuit breaker of every source that has one (the cached remote
    /// sources), by source name, in registration order: for metrics.
    /// Counts every lookup of [`Resolver::resolve`] in `metrics`, by source
    /// and result (found, none, error).
    pub fn with_metrics(mut self, metrics: sealgate_metrics::Metrics) -> Self {
        for s in &self.sources {
            metrics.init_key_source(&s.name);
        }
        self.metrics = Some(metrics);
        self
    }

    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        self.sources
            .iter()
            .filter_map(|s| s.lookup.breaker().map(|b| (s.name.clone(), b)))
            .collect()
    }

    /// Asks the source named `source` again for `address`, past its caches
    /// ([`Source::refresh`]); `None` when no source has that name (any more).
    pub async fn refresh(
        &self,
        source: &str,
        address: &str,
    ) -> Option<Result<Vec<RecipientKey>, String>> {
        let s = self.sources.iter().find(|s| s.name == source)?;
        Some(s.lookup.refresh(address).await)
    }

    /// Forgets the answers the sources keep in this process's memory, for
    /// `address` or all of them. `sealgate cache expire` runs in its own
    /// process and cannot reach a running daemon's memory: there
    /// `keys.memory_cache_secs` bounds how long an expired answer is served.
    pub fn clear_memory_caches(&self, address: Option<&str>) {
        for s in &self.sources {
            s.lookup.clear_memory(address);
        }
        // A verdict may rest on trust stores that changed since.
        self.verdicts.clear();
    }

    /// Usable keys for `address`, for the `methods` in the policy's preference
    /// order: the walk stops at the first method that has keys. With
    /// [`OnError::Stop`] it also stops at the first source that fails: a
    /// lower-ranked source must not decide when a higher one could not answer
    /// (whoever can make the directory fail could otherwise steer mail to a
    /// key-server key).
    pub async fn resolve(
        &self,
        address: &str,
        methods: &[Method],
        on_error: OnError,
    ) -> Resolution {
        let now = SystemTime::now();
        let (bound, record) = self.pgp_bindings(address, methods).await;
        let mut answers: BTreeMap<usize, Answer> = BTreeMap::new();
        loop {
            match self.walk(methods, on_error, &answers, bound.as_deref(), false) {
                Walk::Ask(i) => {
                    let answer = self.ask(&self.sources[i], false, address, now).await;
                    answers.insert(i, answer);
                }
                Walk::Done(res) => {
                    if let (Some(store), Some(activation), true) = (
                        &self.bindings,
                        res.pgp_choice.as_ref().and_then(|c| c.activation.clone()),
                        record,
                    ) {
                        // Off the reply path: the choice is made already.
                        let store = store.clone();
                        let address = address.to_lowercase();
                        tokio::spawn(async move {
                            if let Err(e) =
                                crate::offer::record_activation(&store, &address, &activation).await
                            {
                                tracing::warn!(%address, "active key binding not recorded: {e}");
                            }
                        });
                    }
                    return res;
                }
            }
        }
    }

    /// What every source says about `address`, asked directly (no cache),
    /// usable or not, for `sealgate verify`; the second value is what
    /// [`Resolver::resolve`] makes of the same answers for these `methods`
    /// and `on_error`, so that `verify` and the gateway decide alike.
    pub async fn verify(
        &self,
        address: &str,
        methods: &[Method],
        on_error: OnError,
    ) -> (Vec<SourceReport>, Resolution) {
        let now = SystemTime::now();
        let (bound, _) = self.pgp_bindings(address, methods).await;
        let mut answers: BTreeMap<usize, Answer> = BTreeMap::new();
        for (i, s) in self.sources.iter().enumerate() {
            answers.insert(i, self.ask(s, true, address, now).await);
        }
        let res = match self.walk(methods, on_error, &answers, bound.as_deref(), true) {
            Walk::Done(res) => res,
            // Unreachable: every source was asked above.
            Walk::Ask(_) => Resolution::default(),
        };
        let reports = self
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| match answers.remove(&i) {
                Some(Ok(keys)) => SourceReport {
                    source: s.name.clone(),
                    keys,
                    error: None,
                },
                Some(Err(e)) => SourceReport {
                    source: s.name.clone(),
                    keys: Vec::new(),
                    error: Some(e),
                },
                None => SourceReport {
                    source: s.name.clone(),
                    keys: Vec::new(),
                    error: None,
                },
            })
            .collect();
        (reports, res)
    }

    /// The precedence walk over the answers known so far: either the
    /// resolution, or the next source whose answer it needs. The one place
    /// that turns answers into a [`Resolution`], for both `resolve` and
    /// `verify`.
    fn walk(
        &self,
        methods: &[Method],
        on_error: OnError,
        answers: &BTreeMap<usize, Answer>,
        bound: Option<&[Binding]>,
        explain: bool,
    ) -> Walk {
        let mut res = Resolution::default();
        let mut seen: Vec<usize> = Vec::new();
        for &method in methods {
            if let (Method::Pgp, Some(bound)) = (method, bound) {
                match self.walk_pgp(on_error, answers, bound, &mut res, &mut seen, explain) {
                    Some(walk) => return walk,
                    None => continue,
                }
            }
            for &i in self.order.get(&method).map(Vec::as_slice).unwrap_or(&[]) {
                let Some(answer) = answers.get(&i) else {
                    return Walk::Ask(i);
                };
                match answer {
                    Err(e) => {
                        if !seen.contains(&i) {
                            res.errors.push(format!("{}: {e}", self.sources[i].name));
                        }
                        if on_error == OnError::Stop {
                            return Walk::Done(res);
                        }
                    }
                    Ok(found) => {
                        let keys = usable_keys(found, method);
                        if !keys.is_empty() {
                            res.keys
                                .insert(method, (self.sources[i].name.clone(), keys));
                            return Walk::Done(res);
                        }
                    }
                }
                seen.push(i);
            }
        }
        Walk::Done(res)
    }

    /// The OpenPGP walk by level (see the module doc): `Some` when the walk
    /// needs an answer or is over, `None` when OpenPGP found nothing and the
    /// next method may be tried.
    fn walk_pgp(
        &self,
        on_error: OnError,
        answers: &BTreeMap<usize, Answer>,
        bound: &[Binding],
        res: &mut Resolution,
        seen: &mut Vec<usize>,
        explain: bool,
    ) -> Option<Walk> {
        let now = sealgate_store::now_unix();
        let active = bound.iter().find(|b| b.active);
        let mut candidates: Vec<Candidate> = Vec::new();
        // With `explain` (verify): usable keys of sources the walk skips.
        let mut skipped: Vec<(String, String)> = Vec::new();
        let order = self
            .order
            .get(&Method::Pgp)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for (pos, &i) in order.iter().enumerate() {
            let name = &self.sources[i].name;
            let most = bound
                .iter()
                .filter(|b| &b.source == name)
                .map(|b| b.level)
                .chain([crate::validation::entry_level(name)])
                .max()
                .unwrap_or(crate::validation::Level::WeakChain);
            let active_here = active.is_some_and(|a| {
                &a.source == name
                    && !candidates
                        .iter()
                        .any(|c| c.key.fingerprint() == a.fingerprint)
            });
            if !active_here {
                // The level the choice has reached so far, without running
                // the rules (no signature checks while walking).
                if let Some(level) = level_so_far(&candidates, active) {
                    if level >= most {
                        if let (true, Some(Ok(found))) = (explain, answers.get(&i)) {
                            for key in usable_keys(found, Method::Pgp) {
                                skipped.push((
                                    key.fingerprint(),
                                    format!(
                                        "from {name}, which the gateway does not ask for this address: it gives keys at level {most} at most, and the chosen key is at level {level}"
                                    ),
                                ));
                            }
                        }
                        continue;
                    }
                }
            }
            let Some(answer) = answers.get(&i) else {
                return Some(Walk::Ask(i));
            };
            match answer {
                Err(e) => {
                    if !seen.contains(&i) {
                        res.errors.push(format!("{name}: {e}"));
                    }
                    if on_error == OnError::Stop {
                        return Some(Walk::Done(std::mem::take(res)));
                    }
                }
                Ok(found) => {
                    for key in usable_keys(found, Method::Pgp) {
                        let fpr = key.fingerprint();
                        if candidates.iter().any(|c| c.key.fingerprint() == fpr) {
                            continue;
                        }
                        let (level, is_bound) = level_of(name, &fpr, bound);
                        candidates.push(Candidate {
                            pos,
                            source: name.clone(),
                            key,
                            level,
                            bound: is_bound,
                        });
                    }
                }
            }
            seen.push(i);
        }
        let mut choice = choose(&candidates, bound, now)?;
        for (fpr, why) in skipped {
            if fpr != choice.chosen.key.fingerprint()
                && !choice.passed_over.iter().any(|(f, _)| *f == fpr)
            {
                choice.passed_over.push((fpr, why));
            }
        }
        res.keys.insert(
            Method::Pgp,
            (
                choice.chosen.source.clone(),
                vec![choice.chosen.key.clone()],
            ),
        );
        res.pgp_choice = Some(Box::new(choice));
        Some(Walk::Done(std::mem::take(res)))
    }

    async fn ask(
        &self,
        s: &Registered,
        direct: bool,
        address: &str,
        now: SystemTime,
    ) -> Result<Vec<FoundKey>, String> {
        let source = if direct { &s.direct } else { &s.lookup };
        let answer = match tokio::time::timeout(s.timeout, source.lookup(address)).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {} s", s.timeout.as_secs())),
        };
        if let (Some(m), false) = (&self.metrics, direct) {
            use sealgate_metrics::LookupResult;
            let result = match &answer {
                Ok(k) if k.is_empty() => LookupResult::None,
                Ok(_) => LookupResult::Found,
                Err(_) => LookupResult::Error,
            };
            m.key_lookup(&s.name, result);
        }
        let keys = answer?;
        // The answer's certificates are each other's possible intermediates.
        let bundle: Vec<openssl::x509::X509> = keys
            .iter()
            .filter_map(|k| match k {
                RecipientKey::Smime(x) => Some(x.as_ref().clone()),
                RecipientKey::Pgp(_) => None,
            })
            .collect();
        // A verdict reached before for the same key object and address, if
        // it still holds (not for `verify`, which checks everything afresh).
        let mut found: Vec<Option<FoundKey>> = keys
            .iter()
            .map(|key| {
                let usable = if direct {
                    None
                } else {
                    self.verdicts.get(key, address, now)
                };
                usable.map(|usable| FoundKey {
                    key: key.clone(),
                    usable,
                })
            })
            .collect();
        let missing: Vec<(usize, RecipientKey)> = keys
            .into_iter()
            .enumerate()
            .filter(|(i, _)| found[*i].is_none())
            .collect();
        if missing.is_empty() {
            return Ok(found.into_iter().flatten().collect());
        }
        // Checking a key verifies its signatures: CPU work, off the workers.
        let trust = self.trust.clone();
        let owned = address.to_string();
        let require_chain = s.require_chain;
        let source_name = s.name.clone();
        let checked = sealgate_crypto::cpu::run(move |_| {
            let context = crate::trust::TrustContext {
                require_chain,
                bundle: &bundle,
                source: &source_name,
            };
            missing
                .into_iter()
                .map(|(i, key)| {
                    let usable = usable::check(&key, &owned, now, trust.as_ref(), &context);
                    let until = if direct {
                        now
                    } else {
                        usable::verdict_lasts_until(&key, now, VERDICT_MAX_AGE)
                    };
                    (i, key, usable, until)
                })
                .collect::<Vec<_>>()
        })
        .await?;
        for (i, key, usable, until) in checked {
            if !direct {
                self.verdicts.put(
                    &key,
                    address,
                    Verdict {
                        _key: key.clone(),
                        usable: usable.clone(),
                        checked_at: now,
                        until,
                    },
                );
            }
            found[i] = Some(FoundKey { key, usable });
        }
        Ok(found.into_iter().flatten().collect())
    }
}

/// The usable keys of `method` among `found`, without duplicates.
fn usable_keys(found: &[FoundKey], method: Method) -> Vec<RecipientKey> {
    let mut keys: Vec<RecipientKey> = Vec::new();
    for k in found
        .iter()
        .filter(|k| k.usable.is_ok() && k.key.method() == method)
    {
        if !keys.iter().any(|x| x.fingerprint() == k.key.fingerprint()) {
            keys.push(k.key.clone());
        }
    }
    keys
}
