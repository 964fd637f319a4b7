//! The admin listener as the binary starts it: `[admin] listen`, the
//! metrics every stage counts into, and the readiness checks of `/readyz`
//! (store reachable, queue writable, disk space above
//! `queue.min_free_space`, not shutting down).

use crate::config::Settings;
use anyhow::{Context, Result};
use sealgate_admin::{check_fn, AdminState};
use sealgate_metrics::Metrics;
use sealgate_queue::Queue;
use sealgate_store::Store;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running admin listener.
pub struct Admin {
    state: AdminState,
    /// The admin API's verify, set once the resolver exists.
    pub verify: std::sync::Arc<std::sync::OnceLock<sealgate_web::VerifyFn>>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Admin {
    /// `/readyz` answers 503 from now on (the balancer stops sending).
    pub fn shutting_down(&self) {
        self.state.mark_shutting_down();
    }

    /// Stops the listener and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts the admin listener unless `admin.listen` is empty.
pub async fn start(
    settings: &Settings,
    metrics: &Metrics,
    store: &Store,
    queue: &Queue,
    file_policy: tokio::sync::watch::Receiver<sealgate_policy::PolicyConfig>,
) -> Result<Option<Admin>> {
    let Some(addr) = settings.admin.listen_addr().map_err(anyhow::Error::msg)? else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("admin.listen: cannot listen on {addr}"))?;
    let s = store.clone();
    let q = queue.clone();
    let checks = vec![
        check_fn("store", move || {
            let s = s.clone();
            // The store's own error names no password (URLs are redacted).
            async move { s.ping().await.map_err(|e| e.to_string()) }
        }),
        check_fn("queue", move || {
            let q = q.clone();
            async move { q.check_writable().await }
        }),
    ];
    let trust = crate::trust_cmd::trust_store(settings, store);
    let kek = sealgate_trust::Kek::load(settings.store.key_encryption_key_file.as_deref())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ca = sealgate_ca::Ca::new(store.clone(), trust.clone(), kek);
    let verify: std::sync::Arc<std::sync::OnceLock<sealgate_web::VerifyFn>> = Default::default();
    let api = sealgate_web::router(sealgate_web::WebState {
        verify: verify.clone(),
        accounts: sealgate_web::Accounts::new(store.clone()),
        logins: Default::default(),
        store: store.clone(),
        trust,
        ca: ca.clone(),
        schedule: settings.queue.schedule().map_err(anyhow::Error::msg)?,
        hostname: settings.smtp.hostname.clone(),
        file_policy: std::sync::Arc::new(move || file_policy.borrow().clone()),
    });
    let state = AdminState::new(metrics.clone(), checks)
        .with_crls(std::sync::Arc::new(PublishedCrls(ca)))
        .with_routes(api);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(sealgate_admin::serve(listener, state.clone(), async move {
        let _ = stopped.await;
    }));
    tracing::info!(listen = %addr, "admin listener started (/metrics, /livez, /readyz)");
    Ok(Some(Admin {
        state,
        verify,
        stop,
        task,
    }))
}

/// The built-in CA's CRLs, as the admin listener publishes them.
struct PublishedCrls(sealgate_ca::Ca);

#[async_trait::async_trait]
impl sealgate_admin::CrlSource for PublishedCrls {
    async fn crl(&self, thumbprint: &str) -> Result<Option<Vec<u8>>, String> {
        self.0
            .published_crl(thumbprint)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Sets the circuit breaker gauge of every remote key source every few
/// seconds, for as long as the process runs.
pub fn sample_breakers(resolver: std::sync::Arc<sealgate_keys::Resolver>, metrics: Metrics) {
    tokio::spawn(async move {
        loop {
            for (name, state) in resolver.breaker_states() {
                metrics.set_circuit_open(
                    &name,
                    state.circuit != sealgate_keys::cache::Circuit::Closed,
                );
            }
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    });
}
