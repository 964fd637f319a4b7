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

/// The usable keys for one address.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    /// Per method: the source that decided and its usable keys (never empty).
    pub keys: BTreeMap<Method, (String, Vec<RecipientKey>)>,
    /// Sources that failed (their answer is unknown), as `source: error`.
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
    /// order: the walk stops at the first method that has keys.
    pub async fn resolve(&self, address: &str, methods: &[Method]) -> Resolution {
        let now = SystemTime::now();
        let mut memo: BTreeMap<usize, Result<Vec<FoundKey>, String>> = BTreeMap::new();
        let mut res = Resolution::default();
        for &method in methods {
            for &i in self.order.get(&method).map(Vec::as_slice).unwrap_or(&[]) {
                if let std::collections::btree_map::Entry::Vacant(slot) = memo.entry(i) {
                    let answer = self.ask(&self.sources[i], false, address, now).await;
                    if let Err(e) = &answer {
                        res.errors.push(format!("{}: {e}", self.sources[i].name));
                    }
                    slot.insert(answer);
                }
                if let Some(Ok(found)) = memo.get(&i) {
                    let keys = usable_keys(found, method);
                    if !keys.is_empty() {
                        res.keys
                            .insert(method, (self.sources[i].name.clone(), keys));
                        break;
                    }
                }
            }
            if res.keys.contains_key(&method) {
                break;
            }
        }
        res
    }

    /// What every source says about `address`, asked directly (no cache),
    /// usable or not, for `sealgate verify`; the second value is what the
    /// precedence order makes of it, per method.
    pub async fn verify(&self, address: &str) -> (Vec<SourceReport>, Resolution) {
        let now = SystemTime::now();
        let mut reports = Vec::with_capacity(self.sources.len());
        for s in &self.sources {
            let answer = self.ask(s, true, address, now).await;
            reports.push(match answer {
                Ok(keys) => SourceReport {
                    source: s.name.clone(),
                    keys,
                    error: None,
                },
                Err(e) => SourceReport {
                    source: s.name.clone(),
                    keys: Vec::new(),
                    error: Some(e),
                },
            });
        }
        let mut res = Resolution::default();
        for (&method, order) in &self.order {
            for &i in order {
                let r = &reports[i];
                if let Some(e) = &r.error {
                    res.errors.push(format!("{}: {e}", r.source));
                    continue;
                }
                let keys = usable_keys(&r.keys, method);
                if !keys.is_empty() {
                    res.keys.insert(method, (r.source.clone(), keys));
                    break;
                }
            }
        }
        res.errors.dedup();
        (reports, res)
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
        Ok(keys
            .into_iter()
            .map(|key| FoundKey {
                usable: usable::check(&key, address, now, self.trust.as_ref()),
                key,
            })
            .collect())
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
