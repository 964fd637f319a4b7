//! Policy: one decision per recipient.
//!
//! In the flow this stage comes after the key resolver and before encryption: for
//! each envelope recipient it takes the effective settings (global, then the
//! recipient's domain) and the usable keys the resolver found, and answers
//! *encrypt with this method and these keys*, *send as is*, or *refuse*
//! (permanently, or for now when a key source failed). The decision is
//! fail-closed: in `mandatory` mode no path leads to plaintext.
//!
//! Settings inherit setting by setting (defaults, global, domain, user), and
//! each level may come from the TOML file and from the store ([`layers`]:
//! the store's value wins at the same level; `sealgate policy show` says
//! where each effective setting came from). [`Policy`] is shared by every
//! task and can be replaced while running ([`Policy::replace`]), so a change
//! made in the store reaches a running gateway without a restart.

mod config;
mod decide;
pub mod layers;
pub mod stored;
pub mod trigger;

pub use config::{
    DomainPolicy, ForeignEncryption, MethodName, Mode, NoKeyAction, OnSourceError, PolicyConfig,
    RsaPaddingName, SignMode, SignUnavailable, SmimeCipherName, UserPolicy,
};
pub use decide::{
    canonical_address, canonical_domain, canonical_domain_key, Decision, Policy, Refusal, Settings,
};
