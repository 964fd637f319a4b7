//! The admin HTTP listener (`[admin] listen`, default `127.0.0.1:9025`; `""`
//! turns it off), beside the flow: it watches the gateway, it does not carry
//! mail. It serves `/metrics` (the [`Metrics`] every stage counts into, for
//! Prometheus), `/livez` (200 while the process runs) and `/readyz` (200
//! only while every [`ReadinessCheck`] the binary passed in holds: store
//! reachable, queue writable, disk space; 503 naming the failing ones), and
//! the built-in CA's CRLs at `/crl/<thumbprint>.crl` ([`CrlSource`]; public,
//! as CRL distribution points are). It is the server where the admin web
//! pages will live later.
//!
//! Security: these three endpoints need no authentication and show nothing
//! secret (counters, check names, short error texts). Every page added later
//! shows or changes mail data and **must** require authentication; see
//! `routes.rs`. Keep the listener on loopback or a management network.
//!
//! Bounds: a request gets at most [`Limits::request_timeout`] (503 after),
//! each readiness check [`Limits::check_timeout`], a connection lives at
//! most [`Limits::connection_lifetime`], and at most
//! [`Limits::max_connections`] are open at once (`conn.rs`): a slow or
//! stuck client cannot hold the listener.
//!
//! Files: [`config`] (`[admin]`), `routes.rs` (the endpoints), [`ready`]
//! (readiness checks), `conn.rs` (bounded connections).

pub mod config;
mod conn;
pub mod ready;
mod routes;

pub use config::AdminConfig;
pub use conn::ClientAddr;
pub use ready::{check_fn, CheckResult, FnCheck, ReadinessCheck};
pub use sealgate_metrics::Metrics;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Where the published CRLs come from (the built-in CA): DER by the CA's
/// thumbprint (64 upper-case hex digits), `None` when there is none.
#[async_trait::async_trait]
pub trait CrlSource: Send + Sync {
    async fn crl(&self, thumbprint: &str) -> Result<Option<Vec<u8>>, String>;
}

/// How long and how much the admin listener gives each client.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest a request may take to answer; then 503.
    pub request_timeout: Duration,
    /// Longest one readiness check may take; then it counts as failed.
    /// Keep it below `request_timeout`.
    pub check_timeout: Duration,
    /// Longest a connection may stay open, busy or idle; then it is closed.
    pub connection_lifetime: Duration,
    /// Most connections open at once; more are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_timeout: Duration::from_secs(10),
            check_timeout: Duration::from_secs(5),
            connection_lifetime: Duration::from_secs(30),
            max_connections: 64,
        }
    }
}

/// What the admin listener serves: the metrics, the readiness checks, the
/// limits, and whether the gateway is shutting down. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    metrics: Metrics,
    checks: Arc<[Box<dyn ReadinessCheck>]>,
    crls: Option<Arc<dyn CrlSource>>,
    /// Routes with their own authentication (the admin API), served beside
    /// the open endpoints.
    extra: Option<axum::Router>,
    limits: Limits,
    shutting_down: Arc<AtomicBool>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState")
            .field(
                "checks",
                &self.checks.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .field("limits", &self.limits)
            .field("shutting_down", &self.shutting_down.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl AdminState {
    /// Serves `metrics`; `/readyz` passes while every check in `checks` does
    /// (no checks: always ready, until shutdown).
    pub fn new(metrics: Metrics, checks: Vec<Box<dyn ReadinessCheck>>) -> AdminState {
        AdminState {
            metrics,
            checks: checks.into(),
            crls: None,
            extra: None,
            limits: Limits::default(),
            shutting_down: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Publishes the built-in CA's CRLs at `/crl/<thumbprint>.crl`.
    pub fn with_crls(mut self, crls: Arc<dyn CrlSource>) -> AdminState {
        self.crls = Some(crls);
        self
    }

    /// Also serves `routes` (the admin API, which authenticates every
    /// request itself), under the same limits.
    pub fn with_routes(mut self, routes: axum::Router) -> AdminState {
        self.extra = Some(routes);
        self
    }

    /// Other limits than [`Limits::default`].
    pub fn with_limits(mut self, limits: Limits) -> AdminState {
        self.limits = limits;
        self
    }

    /// From now on `/readyz` answers 503 (check `shutdown`), while the
    /// listener keeps serving: call it at SIGTERM, before the SMTP sessions
    /// drain, so a load balancer stops sending mail here. [`serve`] calls it
    /// too when its `shutdown` resolves.
    pub fn mark_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// The metrics served on `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves; then
/// stops accepting, lets requests under way finish (each connection is
/// closed after its current response, and none lives longer than
/// [`Limits::connection_lifetime`]), and returns.
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let limits = state.limits.clone();
    let flag = state.clone();
    let app = routes::router(state);
    let listener =
        conn::BoundedListener::new(listener, limits.max_connections, limits.connection_lifetime);
    tracing::info!(listen = %local, "admin listener ready (/metrics, /livez, /readyz)");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<conn::ClientAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        flag.mark_shutting_down();
    })
    .await?;
    tracing::info!(listen = %local, "admin listener stopped");
    Ok(())
}
