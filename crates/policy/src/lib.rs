//! Policy: one decision per recipient.
//!
//! In the flow this stage comes after the key resolver and before encryption: for
//! each envelope recipient it takes the effective settings (global, then the
//! recipient's domain) and the usable keys the resolver found, and answers
//! *encrypt with this method and these keys*, *send as is*, or *refuse*
//! (permanently, or for now when a key source failed). The decision is
//! fail-closed: in `mandatory` mode no path leads to plaintext.

mod config;
mod decide;

pub use config::{
    DomainPolicy, ForeignEncryption, MethodName, Mode, OnSourceError, PolicyConfig, RsaPaddingName,
    SignMode, SignUnavailable, SmimeCipherName, UserPolicy,
};
pub use decide::{canonical_address, canonical_domain, Decision, Policy, Refusal, Settings};
