//! The store: sealgate's SQL database.
//!
//! Every stage that must remember something across messages or restarts goes
//! through here: imported and uploaded keys and the addresses they are bound to, and the
//! answers of remote key sources (both read by the key resolver), and the audit log the pipeline writes once per message. It is
//! one set of portable SQL on sqlx's `Any` driver, so the same migrations and
//! queries run on SQLite (the embedded default, a file created on first start) and
//! on PostgreSQL (several gateways sharing one database).

mod audit;
mod cache;
mod db;
mod keys;

pub use audit::{write_audit, AuditRecipient, AuditRecord};
pub use db::{redact, Backend, Store};
pub use keys::{KeyKind, StoredKey};

/// Errors of the store; the message says what failed, never key material.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot create the directory {path} for the SQLite store: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("store migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("unsupported store URL {0:?}: use sqlite://PATH or postgres://USER@HOST/DB")]
    Url(String),
    #[error("bad data in the store: {0}")]
    Data(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Seconds since the Unix epoch, the time format of every column.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
