//! `sealgate serve`: builds the flow and runs it until SIGTERM/SIGINT;
//! SIGHUP re-reads the key-store files and empties the in-memory key cache.

use crate::config::Settings;
use crate::wiring;
use anyhow::{Context, Result};
use sealgate_pipeline::{Pipeline, PipelineOptions};
use sealgate_policy::Policy;
use sealgate_queue::Queue;
use sealgate_relay::SmtpRelay;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

pub async fn run(settings: Settings, config_file: Option<std::path::PathBuf>) -> Result<()> {
    // The handlers first: a SIGHUP or SIGTERM that arrives while the
    // gateway starts (the listener may already accept) must not take the
    // default action, which ends the process.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let store = wiring::open_store(&settings).await?;
    let metrics = sealgate_metrics::Metrics::new();
    let (trust, trust_store) = wiring::live_trust(&settings, &store, true).await?;
    let (resolver, files, summary) =
        wiring::counted_resolver(&settings, &store, &metrics, trust.clone())?;
    let moved = crate::sources::expire_moved(&settings.keys, &store).await?;
    if moved > 0 {
        tracing::info!(
            entries = moved,
            "key source settings changed: their cached answers are stale"
        );
    }
    tracing::info!(
        pgp_keys = summary.pgp_keys,
        smime_certificates = summary.smime_certificates,
        addresses = summary.addresses,
        "key files loaded"
    );
    // The file's policy with the store's settings over it; followed below.
    let policy = Policy::new(
        sealgate_policy::stored::load(&store, &settings.policy)
            .await
            .map_err(anyhow::Error::msg)?,
    )
    .map_err(anyhow::Error::msg)?;
    let relay = SmtpRelay::new(settings.relay.clone()).map_err(anyhow::Error::msg)?;
    let schedule = settings.queue.schedule().map_err(anyhow::Error::msg)?;
    let queue = Queue::open(
        store.clone(),
        schedule,
        &settings.smtp.hostname,
        metrics.clone(),
    )
    .await
    .context("cannot open the queue")?;
    // The file's policy, which SIGHUP re-reads (the store's is followed
    // below); the admin API shows the file's levels from it too.
    let (file_policy, file_policy_rx) = tokio::sync::watch::channel(settings.policy.clone());
    let admin =
        crate::observe::start(&settings, &metrics, &store, &queue, file_policy_rx.clone()).await?;
    let incoming_upstream = if settings.incoming.upstream.is_empty() {
        None
    } else {
        let relay = SmtpRelay::new(settings.incoming.relay_config(&settings))
            .map_err(|e| anyhow::anyhow!("incoming.upstream: {e}"))?;
        Some(sealgate_queue::Upstream {
            relay: Arc::new(relay),
            name: settings.incoming.upstream.clone(),
        })
    };
    let resolver = Arc::new(resolver);
    crate::observe::sample_breakers(resolver.clone(), metrics.clone());
    // The policy kept in the store, followed, and the file's, which SIGHUP
    // re-reads; stops with the listeners.
    let (policy_stop, policy_stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(sealgate_policy::stored::follow(
        store.clone(),
        file_policy_rx,
        policy.clone(),
        policy_stopped,
    ));
    // Refreshing stored key-server and WKD keys; stops with the listeners.
    let (refresh_stop, refresh_stopped) = tokio::sync::watch::channel(false);
    match settings.keys.refresh().map_err(anyhow::Error::msg)? {
        Some(config) => {
            tokio::spawn(sealgate_keys::refresh::run(
                resolver.clone(),
                store.clone(),
                config,
                Some(metrics.clone()),
                refresh_stopped,
            ));
        }
        None => tracing::info!("keys.refresh_interval = 0: stored remote keys are not refreshed"),
    }
    let additional = Arc::new(crate::additional::LiveAdditionalKeys::default());
    additional
        .refresh(&policy.config(), &trust_store, &trust.snapshot(), &store)
        .await;
    let kek = sealgate_trust::Kek::load(settings.store.key_encryption_key_file.as_deref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if policy.signs_anywhere() && kek.is_none() {
        tracing::warn!(
            "policy.sign is on, but no key-encryption key is set (store.key_encryption_key_file or {}): stored signing keys cannot be opened, so mandatory signers are deferred and opportunistic ones go out unsigned",
            sealgate_trust::kek::KEK_ENV
        );
    }
    let decrypt_kek = kek.clone();
    let ca_kek = kek.clone();
    if settings.incoming.decrypt && decrypt_kek.is_none() {
        anyhow::bail!(
            "incoming.decrypt: the private keys are sealed; set store.key_encryption_key_file or {}",
            sealgate_trust::kek::KEK_ENV
        );
    }
    let trust_store_for_incoming = trust_store.clone();
    let trust_for_incoming = trust.clone();
    let signing = Arc::new(crate::signing::LiveSigning::new(
        trust.clone(),
        trust_store.clone(),
        kek,
    ));
    // Harvesting, fed by the incoming listener (and the outbound one with
    // harvest.outgoing).
    let mut harvester =
        sealgate_harvest::Harvester::new(trust_store.clone(), store.clone(), metrics.clone());
    if settings.harvest.openpgp_header {
        let client = sealgate_keys::sources::http::public_client_no_redirects(&settings.keys.http)
            .map_err(anyhow::Error::msg)?;
        harvester = harvester.with_openpgp_header(sealgate_harvest::fetcher::Fetcher::new(
            client,
            settings.keys.http.max_response_bytes,
        ));
    }
    if settings.harvest.autocrypt {
        harvester = harvester.with_autocrypt(
            sealgate_harvest::dkim::Dkim::new(&settings.dns).map_err(anyhow::Error::msg)?,
        );
    }
    let harvesting = Arc::new(crate::harvesting::Harvesting::start(
        harvester,
        metrics.clone(),
        settings.harvest.max_pending,
        settings.harvest.max_pending_bytes,
        trust.clone(),
        trust_store.clone(),
    ));
    let ca_email = Arc::new(CaEmail::default());
    let dkim =
        sealgate_pipeline::dkim::DkimKeys::load(&settings.dkim).map_err(anyhow::Error::msg)?;
    if !dkim.is_empty() {
        tracing::info!(keys = ?dkim, "dkim: copies sealgate changes are signed for these domains");
    }
    let pipeline = Pipeline::new(
        policy.clone(),
        resolver.clone(),
        queue.clone(),
        PipelineOptions {
            lookup_timeout: Duration::from_secs(settings.keys.lookup_timeout_secs),
            message_timeout: Duration::from_secs(settings.relay.message_timeout_secs),
            hostname: settings.smtp.hostname.clone(),
            max_hops: settings.smtp.max_hops,
            header_limits: sealgate_crypto::mime::HeaderLimits {
                max_bytes: settings.smtp.max_header_size,
                max_fields: settings.smtp.max_header_fields,
            },
        },
    )
    .with_additional_keys(additional.clone())
    .with_signing_keys(signing.clone())
    .with_dkim_keys(dkim)
    .with_plain_senders(ca_email.clone())
    .with_capabilities(Arc::new(crate::harvesting::StoredCapabilities {
        store: store.clone(),
    }))
    .with_key_use(Arc::new(crate::harvesting::BindingUse {
        store: store.clone(),
        seen: Default::default(),
    }));
    let pipeline = Arc::new(if settings.harvest.outgoing {
        tracing::info!("harvest.outgoing: signed mail on the outbound listener is harvested too");
        pipeline.with_observer(harvesting.clone())
    } else {
        pipeline
    });
    if let Some(a) = &admin {
        let (settings, store, resolver, trust, policy) = (
            Arc::new(settings.clone()),
            store.clone(),
            resolver.clone(),
            trust.clone(),
            policy.clone(),
        );
        let f: sealgate_web::VerifyFn = Arc::new(move |address: String| {
            let (settings, store, resolver, trust, policy) = (
                settings.clone(),
                store.clone(),
                resolver.clone(),
                trust.clone(),
                policy.clone(),
            );
            Box::pin(async move {
                let verifier = trust.snapshot();
                let v =
                    crate::verify::run(&settings, &store, &resolver, &verifier, &policy, &address)
                        .await;
                Ok(v.json())
            })
        });
        let _ = a.verify.set(f);
    }
    // Delivery starts once held copies can be looked at again.
    queue.set_key_wait(pipeline.release());
    let workers = queue.start_routes(
        sealgate_queue::Upstream {
            relay: Arc::new(relay),
            name: settings.relay.upstream.clone(),
        },
        incoming_upstream,
    );
    let mut server_config = wiring::server_config(&settings)?;
    server_config.metrics = Some(metrics.clone());
    let server_config = Arc::new(server_config);
    let addr = settings.listen_addr().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("smtp.listen: cannot listen on {addr}"))?;
    let incoming_listener = if settings.incoming.enabled() {
        let mut config = settings.incoming.server_config(&settings)?;
        config.metrics = Some(metrics.clone());
        let listener = settings.incoming.bind().await?;
        tracing::info!(
            listen = %listener.local_addr()?,
            upstream = %settings.incoming.upstream,
            allowed_networks = %settings.incoming.allowed_networks.join(","),
            "incoming listener ready: mail from these networks is relayed unchanged to incoming.upstream"
        );
        Some((listener, Arc::new(config)))
    } else {
        None
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        upstream = %settings.relay.upstream,
        store = %sealgate_store::redact(&settings.store.url),
        "sealgate ready"
    );

    warn_empty_root_store(&settings, &trust_store, summary.smime_certificates).await;
    crl_refresh(&settings, &store)?;
    ca_background(
        sealgate_ca::Ca::new(store.clone(), trust_store.clone(), ca_kek),
        ca_email.clone(),
    );
    trust_reload(
        trust.clone(),
        trust_store.clone(),
        additional.clone(),
        policy.clone(),
        store.clone(),
        resolver.clone(),
    );
    let hup_additional = additional.clone();
    let hup_policy = policy.clone();
    let hup_store = store.clone();
    let hup_settings = settings.clone();
    tokio::spawn(async move {
        let mut running = hup_settings;
        while hup.recv().await.is_some() {
            // The whole file again: the policy takes effect now, anything
            // else that changed is named for a restart.
            match Settings::load(config_file.as_deref()) {
                Ok(new) => {
                    for section in crate::config::restart_needed(&running, &new) {
                        tracing::warn!(
                            "SIGHUP: [{section}] changed in the configuration; it takes effect after a restart"
                        );
                    }
                    if new.policy != running.policy {
                        let _ = file_policy.send(new.policy.clone());
                    }
                    running = new;
                }
                Err(e) => tracing::error!(
                    "SIGHUP: the configuration file does not load, keeping the one in force: {e:#}"
                ),
            }
            // The trust stores as they are now (a root just imported).
            if let Err(e) = trust.refresh(&trust_store).await {
                tracing::error!(
                    "SIGHUP: trust stores not reloaded, keeping the previous ones: {e}"
                );
            }
            hup_additional
                .refresh(
                    &hup_policy.config(),
                    &trust_store,
                    &trust.snapshot(),
                    &hup_store,
                )
                .await;
            signing.clear();
            // Remote answers are asked again: a changed key at a source
            // shows at once, not after keys.memory_cache_secs; so are the
            // verdicts on keys.
            resolver.clear_memory_caches(None);
            match files.reload() {
                Ok(s) => tracing::info!(
                    pgp_keys = s.pgp_keys,
                    smime_certificates = s.smime_certificates,
                    addresses = s.addresses,
                    "SIGHUP: key files reloaded"
                ),
                Err(e) => tracing::error!(
                    "SIGHUP: key files not reloaded, keeping the previous keys: {e}"
                ),
            }
        }
    });
    // Both listeners stop on the same signal.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let incoming = match incoming_listener {
        Some((listener, config)) => {
            let handler = sealgate_pipeline::incoming::Incoming::new(
                queue.clone(),
                sealgate_pipeline::incoming::IncomingOptions {
                    hostname: settings.smtp.hostname.clone(),
                    max_hops: settings.smtp.max_hops,
                    header_limits: sealgate_crypto::mime::HeaderLimits {
                        max_bytes: settings.smtp.max_header_size,
                        max_fields: settings.smtp.max_header_fields,
                    },
                },
                harvesting.clone(),
            );
            let handler = Arc::new(match (&decrypt_kek, settings.incoming.decrypt) {
                (Some(kek), true) => {
                    handler.with_decryptor(Arc::new(crate::decrypting::LiveDecryptor {
                        trust: trust_store_for_incoming.clone(),
                        store: store.clone(),
                        live: trust_for_incoming.clone(),
                        kek: kek.clone(),
                        timeout: Duration::from_secs(settings.relay.message_timeout_secs),
                    }))
                }
                _ => handler,
            });
            let stop = stopped(stop_rx.clone());
            Some(tokio::spawn(async move {
                sealgate_smtp_server::serve(listener, config, handler, stop).await
            }))
        }
        None => None,
    };
    let admin_ref = admin.as_ref();
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        }
        if let Some(a) = admin_ref {
            a.shutting_down();
        }
        let _ = stop_tx.send(true);
        let _ = refresh_stop.send(true);
        let _ = policy_stop.send(true);
    };
    sealgate_smtp_server::serve(listener, server_config, pipeline, shutdown).await?;
    if let Some(task) = incoming {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("incoming listener: {e}"),
            Err(e) => tracing::error!("incoming listener: {e}"),
        }
    }
    workers
        .shutdown(Duration::from_secs(settings.smtp.shutdown_grace_secs))
        .await;
    if let Some(a) = admin {
        a.stop().await;
    }
    store.close().await;
    tracing::info!("sealgate stopped");
    Ok(())
}

/// Downloads the CRLs of every distribution point at start and every
/// The built-in CA's email (`ca_email`), as the pipeline asks for it: mail
/// from it is never encrypted. Read from the store every 10 seconds.
#[derive(Default)]
pub(crate) struct CaEmail(std::sync::RwLock<Option<String>>);

impl sealgate_pipeline::PlainSenders for CaEmail {
    fn is_plain(&self, sender: &str) -> bool {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(sender))
    }
}

/// The built-in CA beside the flow: its email followed every 10 seconds,
/// and its pending requests looked at again when due (a handler whose CA
/// answers later completes them here), once a minute.
fn ca_background(ca: sealgate_ca::Ca, email: Arc<CaEmail>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n: u64 = 0;
        loop {
            tick.tick().await;
            if let Ok(c) = ca.config().await {
                *email.0.write().unwrap_or_else(|e| e.into_inner()) = c.ca_email;
            }
            n += 1;
            if n % 6 != 0 {
                continue;
            }
            match ca.retry_pending().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(completed = n, "ca: pending requests completed"),
                Err(e) => tracing::warn!("ca: pending requests not looked at: {e}"),
            }
        }
    });
}

/// `trust.crl_refresh_interval` (each instance on a shared PostgreSQL does,
/// storing the same CRLs). Failures are logged, and with
/// `trust.crl_missing = "allow"` the certificates stay usable meanwhile.
fn crl_refresh(settings: &Settings, store: &sealgate_store::Store) -> Result<()> {
    let Some(every) = settings
        .trust
        .refresh_interval()
        .map_err(anyhow::Error::msg)?
    else {
        tracing::info!(
            "trust.crl_refresh_interval = 0: CRLs are only updated by `sealgate crl update`"
        );
        return Ok(());
    };
    if settings.trust.crl_missing == sealgate_trust::CrlMissing::Allow {
        tracing::info!(
            "trust.crl_missing = allow: a certificate whose CRL cannot be obtained is still used"
        );
    }
    let trust = crate::trust_cmd::trust_store(settings, store);
    let fetcher = crate::trust_cmd::fetcher(settings)?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match trust.update_crls(&fetcher).await {
                Ok(report) => {
                    let failed = report.iter().filter(|r| r.error.is_some()).count();
                    if !report.is_empty() {
                        tracing::info!(distribution_points = report.len(), failed, "CRLs updated");
                    }
                }
                Err(e) => tracing::warn!("CRL update failed: {e}"),
            }
        }
    });
    Ok(())
}

/// Says at start when chains are required but nothing can chain: an empty
/// root store (and no system roots) with S/MIME certificates in key-store
/// files or LDAP directories that need a path to a root. Such certificates
/// are not used (opportunistic recipients then get plaintext).
async fn warn_empty_root_store(
    settings: &Settings,
    trust: &sealgate_trust::TrustStore,
    file_certificates: usize,
) {
    if settings.trust.system_roots {
        return;
    }
    let Ok(roots) = trust.list_roots().await else {
        return;
    };
    if !roots.is_empty() {
        return;
    }
    let files = settings.keys.files_require_chain && file_certificates > 0;
    let ldap: Vec<&str> = settings
        .keys
        .ldap
        .iter()
        .filter(|d| d.require_chain)
        .map(|d| d.name.as_str())
        .collect();
    if files || !ldap.is_empty() {
        tracing::warn!(
            key_store_files = files,
            ldap = %ldap.join(","),
            "the root store is empty: S/MIME certificates of these sources need a path to a root and none is used until `sealgate roots import` (or require_chain = false for a source you curate; docs/trust.md)"
        );
    }
}

/// How often a running gateway reloads the certificate store, root store,
/// CTL and CRLs (what `sealgate certs|roots|ctl|crl` change).
const TRUST_RELOAD: Duration = Duration::from_secs(10);

fn trust_reload(
    trust: Arc<sealgate_trust::LiveTrust>,
    store: sealgate_trust::TrustStore,
    additional: Arc<crate::additional::LiveAdditionalKeys>,
    policy: Policy,
    keys_store: sealgate_store::Store,
    resolver: Arc<sealgate_keys::Resolver>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(TRUST_RELOAD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut failing = false;
        loop {
            tick.tick().await;
            let reloaded = trust.refresh(&store).await;
            // Judged with the snapshot just built (not a second one).
            additional
                .refresh(&policy.config(), &store, &trust.snapshot(), &keys_store)
                .await;
            if let Ok(true) = reloaded {
                // A root, a CRL (a revocation), the CTL changed: verdicts
                // on keys made with the old stores are not reused.
                resolver.clear_memory_caches(None);
                tracing::debug!("trust stores changed: cached key verdicts dropped");
            }
            match reloaded {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("trust stores reloaded again");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(
                        "cannot reload the trust stores, keeping the previous ones: {e}"
                    );
                }
                Err(_) => {}
            }
        }
    });
}
