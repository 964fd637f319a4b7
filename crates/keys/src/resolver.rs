//! The resolver: asks the sources in each method's precedence order and keeps,
//! per method, the usable keys of the first source that has any.
//!
//! Sources are consulted lazily and at most once per resolution: a source that
//! serves both methods (the key-store files, uploads) is asked once; a method
//! whose keys were already found stops the walk, so a recipient with a usable
//! OpenPGP key never causes an LDAP query for S/MIME when PGP is preferred.
//! Every lookup is bounded by its source's timeout; a failed or timed-out
//! source is reported as an error ("answer unknown"), never as "no key".

use crate::source::{FoundKey, Source, SourceReport};
use crate::trust::CertificateTrust;
use crate::usable;
use crate::{Method, RecipientKey};
use std::collections::BTreeMap;
use std::sync::Arc;
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
}

impl Registered {
    /// A local source (no cache) with a generous timeout.
    pub fn local(source: Arc<dyn Source>) -> Registered {
        Registered {
            name: source.name(),
            lookup: source.clone(),
            direct: source,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Sources, their order per method, and the trust policy.
pub struct Resolver {
    sources: Vec<Registered>,
    order: BTreeMap<Method, Vec<usize>>,
    trust: Arc<dyn CertificateTrust>,
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
        })
    }

    /// Names of the sources in precedence order for `method`.
    pub fn order(&self, method: Method) -> Vec<String> {
        self.order
            .get(&method)
            .map(|o| o.iter().map(|&i| self.sources[i].name.clone()).collect())
            .unwrap_or_default()
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
        let mut answers: BTreeMap<usize, Answer> = BTreeMap::new();
        loop {
            match self.walk(methods, on_error, &answers) {
                Walk::Ask(i) => {
                    let answer = self.ask(&self.sources[i], false, address, now).await;
                    answers.insert(i, answer);
                }
                Walk::Done(res) => return res,
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
        let mut answers: BTreeMap<usize, Answer> = BTreeMap::new();
        for (i, s) in self.sources.iter().enumerate() {
            answers.insert(i, self.ask(s, true, address, now).await);
        }
        let res = match self.walk(methods, on_error, &answers) {
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
    ) -> Walk {
        let mut res = Resolution::default();
        let mut seen: Vec<usize> = Vec::new();
        for &method in methods {
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

    async fn ask(
        &self,
        s: &Registered,
        direct: bool,
        address: &str,
        now: SystemTime,
    ) -> Result<Vec<FoundKey>, String> {
        let source = if direct { &s.direct } else { &s.lookup };
        let keys = match tokio::time::timeout(s.timeout, source.lookup(address)).await {
            Ok(r) => r?,
            Err(_) => return Err(format!("timed out after {} s", s.timeout.as_secs())),
        };
        // Checking a key verifies its signatures: CPU work, off the workers.
        let trust = self.trust.clone();
        let address = address.to_string();
        sealgate_crypto::cpu::run(move |_| {
            keys.into_iter()
                .map(|key| FoundKey {
                    usable: usable::check(&key, &address, now, trust.as_ref()),
                    key,
                })
                .collect()
        })
        .await
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
