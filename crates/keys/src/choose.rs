//! The OpenPGP choice: of the usable keys the sources returned for an
//! address, which one is used, by validation level and the active binding
//! (DESIGN.md §6; the rules are in [`crate::validation`]).
//!
//! - With no usable active binding, the key of the highest level is used
//!   (precedence breaks ties) and becomes the active one. An active key that
//!   expired, was revoked or is gone protects nothing: it is not kept.
//! - With a usable active key, that key is used, unless a key new to the
//!   address (no binding yet: the first time a remote source serves it) may
//!   replace it by [`can_upgrade`]. Keys already bound were offered when they
//!   were learned (import, upload, harvest) and are not offered again;
//!   `sealgate keys trust` pins one.

use crate::validation::{can_upgrade, certified_by, entry_level, refusal, Held, Level, Upgrade};
use crate::RecipientKey;
use sealgate_store::Binding;

/// A usable OpenPGP key a source returned.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Position of its source in the precedence list.
    pub pos: usize,
    pub source: String,
    pub key: RecipientKey,
    pub level: Level,
    /// The address already has a binding to it.
    pub bound: bool,
}

/// What the store should learn from a choice: the chosen key became the
/// address's active binding (and, when it had none, a binding).
#[derive(Debug, Clone)]
pub struct Activation {
    pub fingerprint: String,
    pub source: String,
    pub level: Level,
    pub key: RecipientKey,
    /// It had no binding yet.
    pub new_binding: bool,
}

/// The key chosen, and why.
#[derive(Debug, Clone)]
pub struct Choice {
    pub chosen: Candidate,
    /// Why this key (for `verify` and the log).
    pub reason: String,
    /// Other usable keys not used, each with the reason.
    pub passed_over: Vec<(String, String)>,
    /// Set when the active binding changes.
    pub activation: Option<Activation>,
}

/// The level of a key from `source` for an address with `bound` bindings:
/// the source's entry level, raised by the binding's level.
pub fn level_of(source: &str, fingerprint: &str, bound: &[Binding]) -> (Level, bool) {
    let binding = bound.iter().find(|b| b.fingerprint == fingerprint);
    let entry = entry_level(source);
    match binding {
        Some(b) => (entry.max(b.level), true),
        None => (entry, false),
    }
}

/// The level the walk measures sources against: the active key's when it is
/// among `candidates` (it stays in use unless the rules say otherwise), else
/// the highest. Cheap, no signature checks: the walk asks it before every
/// source, and a source that cannot give a key above it is not asked.
pub fn level_so_far(candidates: &[Candidate], active: Option<&Binding>) -> Option<Level> {
    if let Some(a) = active {
        if let Some(c) = candidates
            .iter()
            .find(|c| c.key.fingerprint() == a.fingerprint)
        {
            return Some(c.level);
        }
    }
    candidates.iter().map(|c| c.level).max()
}

fn held(c: &Candidate, binding: Option<&Binding>) -> Held {
    Held {
        fingerprint: c.key.fingerprint(),
        level: c.level,
        expires_at: c.key.expires_at(),
        revoked: false,
        sign_used: binding.is_some_and(|b| b.sign_used),
        encr_used: binding.is_some_and(|b| b.encr_used),
    }
}

/// Chooses among `candidates` (any order) for an address with `bound`
/// OpenPGP bindings; `None` when there is no candidate. `now` is Unix seconds.
pub fn choose(candidates: &[Candidate], bound: &[Binding], now: i64) -> Option<Choice> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| b.level.cmp(&a.level).then(a.pos.cmp(&b.pos)));
    let active = bound.iter().find(|b| b.active);
    let active_cand = active.and_then(|a| {
        sorted
            .iter()
            .copied()
            .find(|c| c.key.fingerprint() == a.fingerprint)
    });
    if let (Some(a), Some(ac)) = (active, active_cand) {
        let old = held(ac, Some(a));
        let mut passed_over = Vec::new();
        for c in sorted.iter().copied() {
            let fpr = c.key.fingerprint();
            if fpr == a.fingerprint {
                continue;
            }
            let new = held(c, None);
            if !c.bound {
                let certified = match (&c.key, &ac.key) {
                    (RecipientKey::Pgp(n), RecipientKey::Pgp(o)) => certified_by(n, o),
                    _ => false,
                };
                if let Some(rule) = can_upgrade(Some(&old), &new, certified, now) {
                    return Some(Choice {
                        chosen: c.clone(),
                        reason: format!(
                            "new key from {} (level {}) replaces the active key {}: {}",
                            c.source,
                            c.level,
                            a.fingerprint,
                            rule.describe()
                        ),
                        passed_over,
                        activation: Some(activation(c)),
                    });
                }
            }
            let why = if c.bound {
                format!(
                    "level {} from {}; bound before and not chosen then; {}",
                    c.level,
                    c.source,
                    refusal(&old, &new)
                )
            } else {
                format!(
                    "level {} from {}; {}",
                    c.level,
                    c.source,
                    refusal(&old, &new)
                )
            };
            passed_over.push((fpr, why));
        }
        return Some(Choice {
            chosen: ac.clone(),
            reason: format!(
                "the active key for the address (level {}, from {})",
                ac.level, ac.source
            ),
            passed_over,
            activation: None,
        });
    }
    let best = *sorted.first()?;
    let reason = match active {
        Some(a) => format!(
            "the active key {} is not usable any more; the key of the highest level (level {}, from {}) takes its place",
            a.fingerprint, best.level, best.source
        ),
        None => format!(
            "{}: the key of the highest level (level {}, from {}; precedence breaks ties)",
            Upgrade::FirstContact.describe(),
            best.level,
            best.source
        ),
    };
    let passed_over = sorted[1..]
        .iter()
        .map(|c| {
            let why = if c.level < best.level {
                format!(
                    "level {} from {} is below level {}",
                    c.level, c.source, best.level
                )
            } else {
                format!(
                    "level {} from {}, equal: {} comes first in precedence",
                    c.level, c.source, best.source
                )
            };
            (c.key.fingerprint(), why)
        })
        .collect();
    Some(Choice {
        chosen: best.clone(),
        reason,
        passed_over,
        activation: Some(activation(best)),
    })
}

fn activation(c: &Candidate) -> Activation {
    Activation {
        fingerprint: c.key.fingerprint(),
        source: c.source.clone(),
        level: c.level,
        key: c.key.clone(),
        new_binding: !c.bound,
    }
}
