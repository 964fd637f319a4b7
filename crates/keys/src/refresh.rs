//! Refreshing the OpenPGP keys remote sources served (key servers, WKD).
//!
//! A key the resolver chose from a key server or WKD is stored (its row in
//! `keys` and a binding) and then only looked at again when mail comes and
//! the lookup cache has expired. Keys change where they are published: the
//! owner extends the expiry, adds a subkey, or revokes the key. So a
//! background task ([`run`]) looks every `keys.refresh_check_interval` for
//! stored keys that are due ([`sealgate_store::Store::keys_due_for_refresh`]):
//! - not refreshed for `keys.refresh_interval` (default 7 days), or
//! - expiring within `keys.refresh_before_expiry` (default 60 days) and not
//!   refreshed since they entered that window,
//!
//! and asks their source again for an address bound to them, past both
//! caches ([`crate::source::Source::refresh`]): the answer replaces the
//! cached one, so a key the source now serves revoked stops being used at
//! once, in this process (other gateways sharing the store see it when
//! their memory cache entry ends, `keys.memory_cache_secs`). The stored copy
//! is merged with the fresh one (a new expiry, a revocation), which the
//! can-upgrade rules read.

use crate::resolver::Resolver;
use crate::RecipientKey;
use sealgate_store::Store;
use sequoia_openpgp::parse::Parse;
use std::sync::Arc;
use std::time::Duration;

/// Keys refreshed at most per round (the rest wait for the next).
pub const BATCH: i64 = 200;

/// When keys are due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshConfig {
    pub interval: Duration,
    pub before_expiry: Duration,
    /// How often [`run`] looks for due keys.
    pub check_every: Duration,
}

/// What one round did, by outcome (the names are the metric's labels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// Fetched again, not revoked.
    pub refreshed: usize,
    /// Fetched again and found revoked: no longer used.
    pub revoked: usize,
    /// The source no longer serves it (or is no longer configured).
    pub gone: usize,
    /// The source could not be asked; tried again next round.
    pub failed: usize,
}

/// One round: every due key (up to [`BATCH`]) asked for again.
pub async fn refresh_due(
    resolver: &Resolver,
    store: &Store,
    config: &RefreshConfig,
    metrics: Option<&sealgate_metrics::Metrics>,
) -> Result<Report, String> {
    let now = sealgate_store::now_unix();
    let due = store
        .keys_due_for_refresh(
            now,
            config.interval.as_secs() as i64,
            config.before_expiry.as_secs() as i64,
            BATCH,
        )
        .await
        .map_err(|e| e.to_string())?;
    let mut report = Report::default();
    for key in due {
        let outcome = refresh_one(resolver, store, &key).await;
        match outcome {
            Outcome::Refreshed => report.refreshed += 1,
            Outcome::Revoked => report.revoked += 1,
            Outcome::Gone => report.gone += 1,
            Outcome::Failed => report.failed += 1,
        }
        if let Some(m) = metrics {
            m.key_refresh(outcome.metric());
        }
    }
    Ok(report)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Refreshed,
    Revoked,
    Gone,
    Failed,
}

impl Outcome {
    fn metric(self) -> sealgate_metrics::RefreshResult {
        use sealgate_metrics::RefreshResult as R;
        match self {
            Outcome::Refreshed => R::Refreshed,
            Outcome::Revoked => R::Revoked,
            Outcome::Gone => R::Gone,
            Outcome::Failed => R::Failed,
        }
    }
}

async fn refresh_one(
    resolver: &Resolver,
    store: &Store,
    key: &sealgate_store::StoredKey,
) -> Outcome {
    let fpr = &key.fingerprint;
    let source = &key.source;
    let touch = |why: &str| {
        tracing::info!(fingerprint = %fpr, source = %source, "key refresh: {why}");
        store.touch_key(fpr)
    };
    let Some(address) = key.addresses.first() else {
        let _ = touch("bound to no address; nothing to ask for").await;
        return Outcome::Gone;
    };
    let answer = match resolver.refresh(source, address).await {
        None => {
            let _ = touch("its source is no longer configured").await;
            return Outcome::Gone;
        }
        Some(Err(e)) => {
            tracing::warn!(fingerprint = %fpr, source = %source, address = %address, "key refresh failed (tried again next round): {e}");
            return Outcome::Failed;
        }
        Some(Ok(keys)) => keys,
    };
    let Some(fresh) = answer.iter().find_map(|k| match k {
        RecipientKey::Pgp(c) if c.fingerprint().to_hex() == *fpr => Some(c.clone()),
        _ => None,
    }) else {
        let _ = touch("the source no longer serves it (not used while it does not)").await;
        return Outcome::Gone;
    };
    let merged = match sequoia_openpgp::Cert::from_bytes(key.data.as_bytes())
        .and_then(|old| old.merge_public(fresh.as_ref().clone()))
    {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(fingerprint = %fpr, "stored copy unreadable, replaced by the fresh one: {e}");
            fresh.as_ref().clone()
        }
    };
    let revoked = crate::offer::revoked(&merged);
    let merged = RecipientKey::Pgp(Arc::new(merged));
    let row = match crate::import::to_stored_for(&merged, source, Vec::new()) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(fingerprint = %fpr, "key refresh: cannot store the fresh copy: {e}");
            return Outcome::Failed;
        }
    };
    if let Err(e) = store.put_key_data(&row).await {
        tracing::warn!(fingerprint = %fpr, "key refresh: cannot store the fresh copy: {e}");
        return Outcome::Failed;
    }
    if revoked {
        tracing::warn!(fingerprint = %fpr, source = %source, address = %address, "key refresh: the key is revoked; it is no longer used");
        Outcome::Revoked
    } else {
        tracing::info!(fingerprint = %fpr, source = %source, expires_at = ?row.expires_at, "key refreshed");
        Outcome::Refreshed
    }
}

/// Refreshes due keys every `config.check_every` until `stop` fires.
pub async fn run(
    resolver: Arc<Resolver>,
    store: Store,
    config: RefreshConfig,
    metrics: Option<sealgate_metrics::Metrics>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut clock = sealgate_store::Periodic::new(config.check_every, stop);
    while clock.next().await {
        match refresh_due(&resolver, &store, &config, metrics.as_ref()).await {
            Ok(r) if r == Report::default() => {}
            Ok(r) => tracing::info!(
                refreshed = r.refreshed,
                revoked = r.revoked,
                gone = r.gone,
                failed = r.failed,
                "key refresh round"
            ),
            Err(e) => tracing::warn!("key refresh: the store cannot be read: {e}"),
        }
    }
}
