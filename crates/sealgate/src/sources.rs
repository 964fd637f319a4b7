//! The key sources named in `[keys]`, built in precedence order.
//!
//! Names in `keys.pgp_sources` / `keys.smime_sources`: `upload`, `import`
//! (keys in the store), `files` (key-store files), `ldap` (every `[[keys.ldap]]`
//! directory in config order) or `ldap:<name>`, `keyservers` (every entry of
//! `keys.keyservers`) or `keyserver:<url>`, `wkd`, and for S/MIME `harvested`
//! (certificates learned from signed incoming mail; added right after
//! `upload` when the list leaves it out and `harvest.smime_override` is on,
//! else last). Remote sources sit behind
//! the memory cache (`keys.memory_cache_entries`, `keys.memory_cache_secs`),
//! the lookup cache and a circuit breaker; `verify` asks them directly.

use crate::config::KeysSettings;
use anyhow::{Context, Result};
use sealgate_keys::cache::{location, BreakerConfig, CacheOptions, CachedSource};
use sealgate_keys::files::{FileSource, KeyFiles, LoadSummary};
use sealgate_keys::resolver::Registered;
use sealgate_keys::source::{Source, StoreSource};
use sealgate_keys::sources::hkp::HkpKeyserver;
use sealgate_keys::sources::http;
use sealgate_keys::sources::ldap_directory::LdapDirectory;
use sealgate_keys::sources::ldap_keyserver::LdapKeyserver;
use sealgate_keys::sources::wkd::Wkd;
use sealgate_keys::trust::CertificateTrust;
use sealgate_keys::Resolver;
use sealgate_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Checks the source settings: known names in the precedence lists, unique
/// directory names, well-formed key server URLs.
pub fn validate(k: &KeysSettings) -> std::result::Result<(), String> {
    let mut names = Vec::new();
    for (i, d) in k.ldap.iter().enumerate() {
        d.validate()?;
        if names.contains(&d.name) {
            return Err(format!("keys.ldap[{i}].name: {:?} is used twice", d.name));
        }
        names.push(d.name.clone());
    }
    for entry in &k.keyservers {
        let url = entry.url();
        keyserver_kind(url).map_err(|e| format!("keys.keyservers: {e}"))?;
        if is_unencrypted(url) && !entry.allow_insecure() {
            return Err(format!(
                "keys.keyservers: {} is unencrypted: anyone on the path sees which addresses are \
                 looked up and can substitute keys; use hkps://, https:// or ldaps://, or write \
                 {{ url = \"{}\", allow_insecure = true }}",
                sealgate_store::redact(url),
                sealgate_store::redact(url)
            ));
        }
    }
    k.http.validate()?;
    if k.cache_positive_secs == 0 && k.cache_negative_secs == 0 {
        // Allowed: no caching at all. Nothing to check.
    }
    for (key, list, allowed_remote) in [
        ("keys.pgp_sources", &k.pgp_sources, ["keyservers", "wkd"]),
        (
            "keys.smime_sources",
            &k.smime_sources,
            ["ldap", "harvested"],
        ),
    ] {
        for name in list {
            let ok = match name.as_str() {
                "upload" | "import" | "files" => true,
                n if allowed_remote.contains(&n) => true,
                n if key == "keys.pgp_sources" => n
                    .strip_prefix("keyserver:")
                    .is_some_and(|u| k.keyservers.iter().any(|x| x.url() == u)),
                n => n
                    .strip_prefix("ldap:")
                    .is_some_and(|d| k.ldap.iter().any(|x| x.name == d)),
            };
            if !ok {
                return Err(format!(
                    "{key}: unknown source {name:?} (use upload, import, files, {})",
                    if key == "keys.pgp_sources" {
                        "keyservers, keyserver:<url from keys.keyservers>, wkd, harvested"
                    } else {
                        "ldap, ldap:<name from [[keys.ldap]]>, harvested"
                    }
                ));
            }
        }
    }
    Ok(())
}

enum KeyserverKind {
    Hkp,
    Ldap,
}

/// hkp://, http:// and ldap:// key servers (no TLS).
fn is_unencrypted(url: &str) -> bool {
    let scheme = url.split("://").next().unwrap_or("").to_ascii_lowercase();
    matches!(scheme.as_str(), "hkp" | "http" | "ldap")
}

fn keyserver_kind(url: &str) -> std::result::Result<KeyserverKind, String> {
    let scheme = url.split("://").next().unwrap_or("").to_ascii_lowercase();
    match scheme.as_str() {
        "hkp" | "hkps" | "http" | "https" if url.contains("://") => Ok(KeyserverKind::Hkp),
        "ldap" | "ldaps" if url.contains("://") => Ok(KeyserverKind::Ldap),
        _ => Err(format!(
            "{url:?} is not a key server URL (hkp://, hkps://, http://, https://, ldap://, ldaps://)"
        )),
    }
}

/// The warnings for sources that `allow_insecure` lets run unencrypted, one
/// per source: logged at start and printed by `check-config`.
pub fn insecure_warnings(k: &KeysSettings) -> Vec<String> {
    let mut out = Vec::new();
    for d in k.ldap.iter().filter(|d| d.is_unencrypted()) {
        out.push(format!(
            "ldap:{}: allow_insecure = true: LDAP queries and certificates travel unencrypted",
            d.name
        ));
    }
    for e in k.keyservers.iter().filter(|e| is_unencrypted(e.url())) {
        out.push(format!(
            "keyserver:{}: allow_insecure = true: key queries and answers travel unencrypted",
            sealgate_store::redact(e.url())
        ));
    }
    out
}

/// Every configured source and the resolver over them, judging
/// certificates with `trust`; also returns the key-store files (for SIGHUP)
/// and what they held.
pub fn build(
    k: &KeysSettings,
    store: &Store,
    metrics: Option<&sealgate_metrics::Metrics>,
    trust: Arc<dyn CertificateTrust>,
    harvested: Harvested,
) -> Result<(Resolver, Arc<FileSource>, LoadSummary)> {
    for w in insecure_warnings(k) {
        tracing::warn!("{w}");
    }
    let (files, summary) = FileSource::load(KeyFiles {
        pgp_keyrings: k.pgp_keyrings.clone(),
        smime_certificates: k.smime_certificates.clone(),
        bks_passwords: k.bks_passwords.clone(),
    })
    .context("keys")?;
    let files = Arc::new(files);
    let local_timeout = Duration::from_secs(k.lookup_timeout_secs);
    let local = |s: Arc<dyn Source>, require_chain: bool| Registered {
        name: s.name(),
        lookup: s.clone(),
        direct: s,
        timeout: local_timeout,
        require_chain,
    };
    // Remote sources: memory cache, then the store's lookup cache, then one
    // shared request per address behind the source's circuit breaker.
    let cached =
        |s: Arc<dyn Source>, config_text: String, timeout: Duration, require_chain: bool| {
            let timeout = timeout.min(local_timeout);
            Registered {
                name: s.name(),
                lookup: Arc::new(CachedSource::with_options(
                    s.clone(),
                    store.clone(),
                    location(&config_text),
                    Duration::from_secs(k.cache_positive_secs),
                    Duration::from_secs(k.cache_negative_secs),
                    CacheOptions {
                        memory_entries: k.memory_cache_entries,
                        memory_ttl: Duration::from_secs(k.memory_cache_secs),
                        timeout: Some(timeout),
                        breaker: BreakerConfig::default(),
                        metrics: metrics.cloned(),
                    },
                )),
                direct: s,
                timeout,
                require_chain,
            }
        };
    let mut all = vec![
        local(Arc::new(StoreSource::new(store.clone(), "upload")), true),
        local(Arc::new(StoreSource::new(store.clone(), "import")), true),
        local(files.clone(), k.files_require_chain),
        local(harvested.source, true),
    ];
    for d in &k.ldap {
        let text = serde_json::to_string(d)?;
        let timeout = Duration::from_secs(
            d.timeout_secs
                .saturating_mul(2 + d.max_referral_hops as u64),
        );
        let src = LdapDirectory::new(d.clone()).map_err(anyhow::Error::msg)?;
        all.push(cached(Arc::new(src), text, timeout, d.require_chain));
    }
    let http_client = http::client(&k.http).map_err(anyhow::Error::msg)?;
    let http_timeout = Duration::from_secs(k.http.timeout_secs.saturating_mul(2));
    let http_text = serde_json::to_string(&k.http)?;
    for entry in &k.keyservers {
        let url = entry.url();
        let src: Arc<dyn Source> = match keyserver_kind(url).map_err(anyhow::Error::msg)? {
            KeyserverKind::Hkp => Arc::new(
                HkpKeyserver::new(url, http_client.clone(), k.http.max_response_bytes)
                    .map_err(anyhow::Error::msg)?,
            ),
            KeyserverKind::Ldap => Arc::new(
                LdapKeyserver::new(
                    url,
                    Duration::from_secs(k.http.timeout_secs),
                    k.http.ca_file.as_deref(),
                )
                .map_err(anyhow::Error::msg)?,
            ),
        };
        all.push(cached(
            src,
            format!("{url} {http_text}"),
            http_timeout,
            true,
        ));
    }
    if k.wkd.enabled {
        // WKD hosts are chosen by the recipient's domain: public addresses
        // only, unless pinned in keys.http.resolve.
        let wkd_client = http::public_client(&k.http).map_err(anyhow::Error::msg)?;
        let src = Arc::new(Wkd::new(wkd_client, k.http.max_response_bytes));
        all.push(cached(src, format!("wkd {http_text}"), http_timeout, true));
    }
    let expand = |list: &[String]| -> Vec<String> {
        let mut out = Vec::new();
        for name in list {
            match name.as_str() {
                "ldap" => out.extend(k.ldap.iter().map(|d| format!("ldap:{}", d.name))),
                "keyservers" => out.extend(
                    k.keyservers
                        .iter()
                        .map(|u| format!("keyserver:{}", sealgate_store::redact(u.url()))),
                ),
                "wkd" if !k.wkd.enabled => {}
                n => match n.strip_prefix("keyserver:") {
                    // Source names never carry URL userinfo.
                    Some(url) => out.push(format!("keyserver:{}", sealgate_store::redact(url))),
                    None => out.push(n.to_string()),
                },
            }
        }
        out
    };
    let mut pgp_order = expand(&k.pgp_sources);
    if !pgp_order.iter().any(|n| n == "harvested") {
        // Levels decide OpenPGP; the position only breaks ties between
        // weak_chain keys (harvested before public key servers).
        let at = pgp_order
            .iter()
            .position(|n| n == "upload")
            .map_or(0, |i| i + 1);
        pgp_order.insert(at, "harvested".into());
    }
    let mut smime_order = expand(&k.smime_sources);
    if !smime_order.iter().any(|n| n == "harvested") {
        let at = match smime_order.iter().position(|n| n == "upload") {
            Some(i) if harvested.smime_override => i + 1,
            None if harvested.smime_override => 0,
            _ => smime_order.len(),
        };
        smime_order.insert(at, "harvested".into());
    }
    let resolver = Resolver::with_order(all, &pgp_order, &smime_order, trust)
        .map_err(anyhow::Error::msg)?
        .with_bindings(store.clone());
    Ok((resolver, files, summary))
}

/// The harvested certificates' source and where it goes in
/// `keys.smime_sources` when the list does not name it.
pub struct Harvested {
    pub source: Arc<dyn Source>,
    pub smime_override: bool,
}

impl Harvested {
    pub fn of(settings: &crate::config::Settings, store: &Store) -> Harvested {
        Harvested {
            source: Arc::new(sealgate_harvest::source::Harvested::new(
                store.clone(),
                crate::trust_cmd::trust_store(settings, store),
            )),
            smime_override: settings.harvest.smime_override,
        }
    }
}

/// Marks stale the cached answers of sources whose configuration changed
/// since they were fetched; returns how many entries.
pub async fn expire_moved(k: &KeysSettings, store: &Store) -> Result<u64> {
    let http_text = serde_json::to_string(&k.http)?;
    let mut n = 0;
    for d in &k.ldap {
        n += store
            .cache_expire_moved(
                &format!("ldap:{}", d.name),
                &location(&serde_json::to_string(d)?),
            )
            .await?;
    }
    for entry in &k.keyservers {
        let url = entry.url();
        n += store
            .cache_expire_moved(
                &format!("keyserver:{}", sealgate_store::redact(url)),
                &location(&format!("{url} {http_text}")),
            )
            .await?;
    }
    if k.wkd.enabled {
        n += store
            .cache_expire_moved("wkd", &location(&format!("wkd {http_text}")))
            .await?;
    }
    Ok(n)
}
