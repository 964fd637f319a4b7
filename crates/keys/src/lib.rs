//! Keys: where recipients' OpenPGP keys and S/MIME certificates come from, and
//! whether each one may be used.
//!
//! In the flow this stage sits between the SMTP listener and the policy: for every
//! recipient the [`Resolver`] asks its sources (keys imported into the store, then
//! the key-store files named in the config) and returns the *usable* keys per
//! method. "Usable" is decided here and nowhere else: [`usable`] checks expiry,
//! revocation, key flags and the address binding, and [`trust`] is the home of
//! X.509 chain, CRL and CTL checks. Later key sources (LDAP, key servers, WKD,
//! harvesting) plug in as more [`source::Source`]s.

pub mod cache;
pub mod choose;
pub mod files;
pub mod formats;
pub mod import;
pub mod key;
pub mod load;
pub mod offer;
pub mod refresh;
pub mod resolver;
pub mod source;
pub mod sources;
pub mod trust;
pub mod usable;
pub mod validation;

pub use key::{Method, RecipientKey};
pub use resolver::{OnError, Resolution, Resolver};
pub use source::{FoundKey, SourceReport};

/// Errors while reading key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("key store: {0}")]
    Store(#[from] sealgate_store::StoreError),
}
