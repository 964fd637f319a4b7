//! The admin web face: the HTTP API under `/api/v1` (and, later, the admin
//! pages and the self-service portal), beside the flow on the admin
//! listener. It carries no mail: every route is a thin face over the same
//! library calls as the CLI (the policy layer, the queue's admin view, the
//! trust stores, the built-in CA), behind authentication: API tokens of
//! local admin accounts ([`auth`]), kept in the store for every instance.
//!
//! Files: [`auth`] (accounts and tokens), `api.rs` (the routes and the
//! token check), [`openapi`] (the description at `/api/v1/openapi.json`),
//! `error.rs` (JSON errors with a stable code).

mod api;
mod api_ca;
pub mod auth;
mod error;
pub mod openapi;

pub use auth::Accounts;
pub use error::ApiError;

use std::sync::Arc;

/// `verify ADDRESS` as the running gateway answers it: its JSON report,
/// or why it could not be made.
pub type VerifyFn = Arc<
    dyn Fn(
            String,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<serde_json::Value, String>> + Send>,
        > + Send
        + Sync,
>;

/// What the routes work on. Cheap to clone.
#[derive(Clone)]
pub struct WebState {
    pub accounts: Accounts,
    /// Failed logins per client.
    pub logins: Arc<auth::LoginLimiter>,
    pub store: sealgate_store::Store,
    pub trust: sealgate_trust::TrustStore,
    pub ca: sealgate_ca::Ca,
    /// The queue's retry schedule (a bounce's report uses it).
    pub schedule: sealgate_queue::Schedule,
    /// `smtp.hostname` (a bounce's Reporting-MTA).
    pub hostname: String,
    /// Verify, set once the gateway's resolver exists.
    pub verify: Arc<std::sync::OnceLock<VerifyFn>>,
    /// The file's `[policy]` as in force (SIGHUP replaces it).
    pub file_policy: Arc<dyn Fn() -> sealgate_policy::PolicyConfig + Send + Sync>,
}

impl WebState {
    fn file_policy(&self) -> sealgate_policy::PolicyConfig {
        (self.file_policy)()
    }
}

/// The API's router, to be served on the admin listener beside its open
/// endpoints.
pub fn router(state: WebState) -> axum::Router {
    api::router(state)
}
