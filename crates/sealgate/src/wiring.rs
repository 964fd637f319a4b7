//! Building the stages from the configuration; shared by `serve`, `verify` and
//! `check-config` so they all see the same sources in the same order.

use crate::config::{BareLfSetting, Settings};
use anyhow::{Context, Result};
use openssl::ssl::{SslAcceptor, SslFiletype, SslMethod};
use sealgate_keys::files::{FileSource, LoadSummary};
use sealgate_keys::Resolver;
use sealgate_smtp_server::{AuthUser, BareLf, ServerConfig};
use sealgate_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Opens the store named by `store.url` (creating and migrating it).
pub async fn open_store(settings: &Settings) -> Result<Store> {
    Ok(Store::open(&settings.store.url).await?)
}

/// The key sources of `[keys]` in precedence order, and the resolver over them.
pub fn resolver(
    settings: &Settings,
    store: &Store,
    trust: Arc<sealgate_trust::LiveTrust>,
) -> Result<(Resolver, Arc<FileSource>, LoadSummary)> {
    crate::sources::build(
        &settings.keys,
        store,
        None,
        trust,
        crate::sources::Harvested::of(settings, store),
    )
}

/// [`resolver`], counting lookups and cache hits in `metrics` (`serve`).
pub fn counted_resolver(
    settings: &Settings,
    store: &Store,
    metrics: &sealgate_metrics::Metrics,
    trust: Arc<sealgate_trust::LiveTrust>,
) -> Result<(Resolver, Arc<FileSource>, LoadSummary)> {
    let (resolver, files, summary) = crate::sources::build(
        &settings.keys,
        store,
        Some(metrics),
        trust,
        crate::sources::Harvested::of(settings, store),
    )?;
    Ok((resolver.with_metrics(metrics.clone()), files, summary))
}

/// The trust stage's current judgement (certificate store, root store,
/// CTL, CRLs), loaded from `store`; with `record`, the certificates the key
/// sources find are added to the certificate store (`serve`).
pub async fn live_trust(
    settings: &Settings,
    store: &Store,
    record: bool,
) -> Result<(Arc<sealgate_trust::LiveTrust>, sealgate_trust::TrustStore)> {
    let ts = crate::trust_cmd::trust_store(settings, store);
    let mut live = sealgate_trust::LiveTrust::load(&ts)
        .await
        .map_err(|e| anyhow::anyhow!("cannot load the trust stores: {e}"))?;
    if record {
        live = live.record_into(ts.clone());
    }
    Ok((Arc::new(live), ts))
}

/// The listener's config, including the TLS acceptor when a certificate is set.
pub fn server_config(settings: &Settings) -> Result<ServerConfig> {
    let s = &settings.smtp;
    let tls = match (&s.tls_cert_file, &s.tls_key_file) {
        (Some(cert), Some(key)) => {
            let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
            b.set_certificate_chain_file(cert)
                .with_context(|| format!("smtp.tls_cert_file: {}", cert.display()))?;
            b.set_private_key_file(key, SslFiletype::PEM)
                .with_context(|| format!("smtp.tls_key_file: {}", key.display()))?;
            b.check_private_key()
                .context("smtp.tls_key_file does not match smtp.tls_cert_file")?;
            Some(b.build())
        }
        _ => None,
    };
    let mut c = ServerConfig::new(s.hostname.clone());
    c.allowed_networks = settings.networks().map_err(anyhow::Error::msg)?;
    c.max_message_size = s.max_message_size;
    c.max_recipients = s.max_recipients;
    c.max_line_length = s.max_line_length;
    c.max_connections = s.max_connections;
    c.max_connections_per_client = s.max_connections_per_client;
    c.max_auth_failures = s.max_auth_failures;
    c.auth_failure_limit = s.auth_failure_limit;
    c.auth_failure_window = Duration::from_secs(s.auth_failure_window_secs);
    c.command_timeout = Duration::from_secs(s.command_timeout_secs);
    c.data_timeout = Duration::from_secs(s.data_timeout_secs);
    c.data_deadline = Duration::from_secs(s.data_deadline_secs);
    c.shutdown_grace = Duration::from_secs(s.shutdown_grace_secs);
    c.max_inflight_bytes = s.max_inflight_bytes;
    c.bare_lf = match s.bare_lf {
        BareLfSetting::Normalize => BareLf::Normalize,
        BareLfSetting::Reject => BareLf::Reject,
    };
    c.tls = tls;
    c.auth_users = s
        .auth_users
        .iter()
        .map(|u| AuthUser {
            name: u.name.clone(),
            password_hash: u.password_hash.clone(),
        })
        .collect();
    Ok(c)
}
