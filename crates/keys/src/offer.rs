//! Learning an OpenPGP key for an address: the store side of the
//! can-upgrade rules. Every place that learns a key (the admin's import, a
//! user's upload, harvesting) offers it here, so the active binding moves by
//! the same rules everywhere ([`crate::validation::can_upgrade`]); the
//! resolver records here the keys it chose from remote sources.

use crate::choose::Activation;
use crate::import::to_stored_for;
use crate::load::parse_any;
use crate::validation::{can_upgrade, certified_by, Held, Level, Upgrade};
use crate::RecipientKey;
use sealgate_store::{NewBinding, Store};
use sequoia_openpgp::policy::StandardPolicy;
use sequoia_openpgp::types::RevocationStatus;
use sequoia_openpgp::Cert;
use std::sync::Arc;

/// What an offer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// The key is now the address's active key, by this rule.
    Activated(Upgrade),
    /// The key is bound, the active key stays: why.
    Kept { active: String, reason: String },
}

/// Records the key a resolution made active (a binding first, when it had none).
pub async fn record_activation(store: &Store, address: &str, a: &Activation) -> Result<(), String> {
    let now = sealgate_store::now_unix();
    if a.new_binding {
        let row = to_stored_for(&a.key, &a.source, Vec::new())?;
        store.put_key_data(&row).await.map_err(|e| e.to_string())?;
        store
            .bind(
                &NewBinding {
                    address,
                    fingerprint: &a.fingerprint,
                    kind: "pgp",
                    level: a.level,
                    source: &a.source,
                    sign_used: false,
                },
                now,
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    store
        .set_active(address, &a.fingerprint, None, now)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(address, fingerprint = %a.fingerprint, level = %a.level, source = %a.source, "active OpenPGP key");
    Ok(())
}

/// Whether an OpenPGP certificate is revoked (its primary key).
pub(crate) fn revoked(cert: &Cert) -> bool {
    let p = StandardPolicy::new();
    matches!(
        cert.revocation_status(&p, None),
        RevocationStatus::Revoked(_)
    )
}

/// Offers `cert`, already stored and bound to `address` (by
/// [`Store::put_key`] or [`Store::bind`]), as the address's key at `level`:
/// it becomes the active binding if the address had none or by
/// [`can_upgrade`] against the active one.
pub async fn offer(
    store: &Store,
    address: &str,
    cert: &Cert,
    level: Level,
) -> Result<Offered, String> {
    let address = address.to_lowercase();
    let now = sealgate_store::now_unix();
    let fpr = cert.fingerprint().to_hex();
    let bindings = store.bindings(&address).await.map_err(|e| e.to_string())?;
    let mine = bindings.iter().find(|b| b.fingerprint == fpr);
    let active = bindings.iter().find(|b| b.active && b.kind == "pgp");
    let new = Held {
        fingerprint: fpr.clone(),
        level: mine.map_or(level, |b| b.level.max(level)),
        expires_at: RecipientKey::Pgp(Arc::new(cert.clone())).expires_at(),
        revoked: revoked(cert),
        sign_used: mine.is_some_and(|b| b.sign_used),
        encr_used: mine.is_some_and(|b| b.encr_used),
    };
    let (old, certified) = match active {
        None => (None, false),
        Some(a) => {
            let old_cert = match store.key(&a.fingerprint).await.map_err(|e| e.to_string())? {
                Some(k) => parse_any(k.data.as_bytes()).ok().and_then(|keys| {
                    keys.into_iter().find_map(|k| match k {
                        RecipientKey::Pgp(c) => Some(c),
                        RecipientKey::Smime(_) => None,
                    })
                }),
                None => None,
            };
            match old_cert {
                // The active key's data is gone: nothing to protect.
                None => (None, false),
                Some(oc) => (
                    Some(Held {
                        fingerprint: a.fingerprint.clone(),
                        level: a.level,
                        expires_at: RecipientKey::Pgp(oc.clone()).expires_at(),
                        revoked: revoked(&oc),
                        sign_used: a.sign_used,
                        encr_used: a.encr_used,
                    }),
                    certified_by(cert, &oc),
                ),
            }
        }
    };
    match can_upgrade(old.as_ref(), &new, certified, now) {
        Some(rule) => {
            store
                .set_active(&address, &fpr, None, now)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Offered::Activated(rule))
        }
        None => match old {
            Some(old) => Ok(Offered::Kept {
                active: old.fingerprint.clone(),
                reason: crate::validation::refusal(&old, &new),
            }),
            None => Err("no rule decided (cannot happen: a first key is always taken)".into()),
        },
    }
}
