//! The store: sealgate's SQL database.
//!
//! Every stage that must remember something across messages or restarts goes
//! through here: imported and uploaded keys and the addresses they are bound to, and the
//! answers of remote key sources (both read by the key resolver), the policy
//! settings kept in the store, and the audit log the pipeline writes once per message. It is
//! one set of portable SQL on sqlx's `Any` driver, so the same migrations and
//! queries run on SQLite (the embedded default, a file created on first start) and
//! on PostgreSQL (several gateways sharing one database).

mod audit;
mod bindings;
mod cache;
mod db;
mod keys;
mod periodic;
mod policy;

pub use audit::{write_audit, AuditRecipient, AuditRecord};
pub use bindings::{Binding, Level, NewBinding};
pub use db::{redact, Backend, Store};
pub use keys::{KeyKind, StoredKey};
pub use periodic::Periodic;
pub use policy::PolicySetting;

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

/// A duration as the configuration spells it: `"90"` or `"90s"`, `"5m"`,
/// `"4h"`, `"5d"`; `"0"` is zero. `None` for anything else.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("4h"), Some(Duration::from_secs(14_400)));
        assert_eq!(parse_duration("5d"), Some(Duration::from_secs(432_000)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in ["", "m", "5 m", "5w", "-1s", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
