//! The resolver: asks the sources in precedence order and keeps, per method, the
//! usable keys of the first source that has any.

use crate::source::{FoundKey, Source, SourceReport};
use crate::trust::CertificateTrust;
use crate::usable;
use crate::{Method, RecipientKey};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

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

/// Sources in precedence order plus the trust policy.
pub struct Resolver {
    sources: Vec<Arc<dyn Source>>,
    trust: Arc<dyn CertificateTrust>,
}

impl Resolver {
    pub fn new(sources: Vec<Arc<dyn Source>>, trust: Arc<dyn CertificateTrust>) -> Self {
        Resolver { sources, trust }
    }

    /// Usable keys for `address`, first source first.
    pub async fn resolve(&self, address: &str) -> Resolution {
        let reports = self.ask_all(address, true).await;
        Self::decide(reports)
    }

    /// What every source says about `address`, usable or not, for `sealgate
    /// verify`; the second value is what [`Resolver::resolve`] would return.
    pub async fn verify(&self, address: &str) -> (Vec<SourceReport>, Resolution) {
        let reports = self.ask_all(address, false).await;
        let resolution = Self::decide(reports.clone());
        (reports, resolution)
    }

    async fn ask_all(&self, address: &str, stop_early: bool) -> Vec<SourceReport> {
        let now = SystemTime::now();
        let mut reports = Vec::with_capacity(self.sources.len());
        let mut found: Vec<Method> = Vec::new();
        for source in &self.sources {
            let report = match source.lookup(address).await {
                Ok(keys) => SourceReport {
                    source: source.name(),
                    keys: keys
                        .into_iter()
                        .map(|key| FoundKey {
                            usable: usable::check(&key, address, now, self.trust.as_ref()),
                            key,
                        })
                        .collect(),
                    error: None,
                },
                Err(e) => SourceReport {
                    source: source.name(),
                    keys: Vec::new(),
                    error: Some(e),
                },
            };
            for k in report.keys.iter().filter(|k| k.usable.is_ok()) {
                if !found.contains(&k.key.method()) {
                    found.push(k.key.method());
                }
            }
            reports.push(report);
            if stop_early && found.len() == 2 {
                break;
            }
        }
        reports
    }

    fn decide(reports: Vec<SourceReport>) -> Resolution {
        let mut res = Resolution::default();
        for report in reports {
            if let Some(e) = report.error {
                res.errors.push(format!("{}: {e}", report.source));
                continue;
            }
            let mut this: BTreeMap<Method, Vec<RecipientKey>> = BTreeMap::new();
            for k in report.keys.into_iter().filter(|k| k.usable.is_ok()) {
                this.entry(k.key.method()).or_default().push(k.key);
            }
            for (method, mut keys) in this {
                keys.dedup_by_key(|k| k.fingerprint());
                res.keys
                    .entry(method)
                    .or_insert((report.source.clone(), keys));
            }
        }
        res
    }
}
