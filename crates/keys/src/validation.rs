//! Which OpenPGP key an address uses: validation levels and the can-upgrade
//! rules of DESIGN.md §6 (Bitmask's keymanager).
//!
//! OpenPGP has no PKI, so a key is worth what the way it arrived is worth:
//! its *level* ([`Level`], lowest first). Each source enters keys at a fixed
//! level ([`entry_level`]); a binding stored for the address may raise it (an
//! admin's `keys trust` puts it at `fingerprint`). One binding per address is
//! *active*: the key in use. A new key replaces it only by [`can_upgrade`].
//! The resolver applies these rules (`resolver.rs`); the places that learn a
//! key (imports, uploads, harvesting) offer it with the same function, so
//! that every path decides alike.

pub use sealgate_store::Level;
use sequoia_openpgp::types::SignatureType;
use sequoia_openpgp::Cert;
use std::time::{Duration, SystemTime};

/// The level at which a source's keys enter, by the source's name (see
/// docs/keys.md, "Validation levels").
pub fn entry_level(source: &str) -> Level {
    match source {
        "upload" => Level::ProviderEndorsement,
        "import" | "files" | "wkd" => Level::ProviderTrust,
        s if s.starts_with("keyserver:ldap") => Level::ProviderTrust,
        s if s.starts_with("ldap:") => Level::ProviderTrust,
        s if s.starts_with("keyserver:") => Level::WeakChain,
        s if s.starts_with("harvest") || s == "harvested" => Level::WeakChain,
        _ => Level::WeakChain,
    }
}

/// What the rules need to know about a key bound to an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub fingerprint: String,
    pub level: Level,
    /// Unix seconds; `None`: the key does not expire.
    pub expires_at: Option<i64>,
    /// Found revoked (for the old key: as good as expired).
    pub revoked: bool,
    /// sealgate verified a signature made with it on incoming mail.
    pub sign_used: bool,
    /// sealgate encrypted to it.
    pub encr_used: bool,
}

/// The rule that let a new key replace the old one (DESIGN.md §6, in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade {
    /// There was no key.
    FirstContact,
    /// The same fingerprint: an update of the key.
    SameKey,
    /// The new binding is at `fingerprint` level (admin-confirmed).
    FingerprintLevel,
    /// The old key expired (or was revoked) and the new level is at least as high.
    OldExpired,
    /// The old key has no expiry and the new level is strictly higher.
    OldNoExpiry,
    /// The old key was never used both to sign and to encrypt, and the new
    /// level is strictly higher.
    OldNotUsedBoth,
    /// The new key carries a certification made by the old key.
    CertifiedByOld,
}

impl Upgrade {
    pub fn describe(self) -> &'static str {
        match self {
            Upgrade::FirstContact => "the address had no key",
            Upgrade::SameKey => "same fingerprint (an update of the key)",
            Upgrade::FingerprintLevel => "the new key is admin-confirmed (fingerprint level)",
            Upgrade::OldExpired => {
                "the old key expired or was revoked and the new level is at least as high"
            }
            Upgrade::OldNoExpiry => "the old key has no expiry and the new level is higher",
            Upgrade::OldNotUsedBoth => {
                "the old key was never used both to sign and to encrypt and the new level is higher"
            }
            Upgrade::CertifiedByOld => "the new key is certified by the old key",
        }
    }
}

/// Whether `new` may replace `old` as the address's key, and by which rule
/// (`None`: it may not). `certified_by_old` is [`certified_by`]`(new, old)`;
/// `now` is Unix seconds.
pub fn can_upgrade(
    old: Option<&Held>,
    new: &Held,
    certified_by_old: bool,
    now: i64,
) -> Option<Upgrade> {
    let Some(old) = old else {
        return Some(Upgrade::FirstContact);
    };
    if new.fingerprint == old.fingerprint {
        return Some(Upgrade::SameKey);
    }
    if new.level == Level::Fingerprint {
        return Some(Upgrade::FingerprintLevel);
    }
    let old_expired = old.revoked || old.expires_at.is_some_and(|t| t <= now);
    if old_expired && new.level >= old.level {
        return Some(Upgrade::OldExpired);
    }
    if old.expires_at.is_none() && new.level > old.level {
        return Some(Upgrade::OldNoExpiry);
    }
    if !(old.sign_used && old.encr_used) && new.level > old.level {
        return Some(Upgrade::OldNotUsedBoth);
    }
    if certified_by_old {
        return Some(Upgrade::CertifiedByOld);
    }
    None
}

/// Why `new` may not replace `old` (for `verify`): the rules it failed.
pub fn refusal(old: &Held, new: &Held) -> String {
    let mut why = vec![format!(
        "its level {} is not fingerprint",
        new.level.as_str()
    )];
    if new.level <= old.level {
        why.push(format!(
            "it is not above the active key's level {}",
            old.level.as_str()
        ));
    } else {
        if old.expires_at.is_some() {
            why.push("the active key has an expiry date".into());
        }
        if old.sign_used && old.encr_used {
            why.push("the active key was used both to sign and to encrypt".into());
        }
    }
    why.push("it is not certified by the active key".into());
    format!(
        "the active key {} stays in use: {} (DESIGN §6; `sealgate keys trust` pins a key)",
        old.fingerprint,
        why.join("; ")
    )
}

/// Whether a User ID of `new` carries a valid, live certification made by
/// `old`'s primary key (or one of its certification-capable subkeys).
pub fn certified_by(new: &Cert, old: &Cert) -> bool {
    if new.fingerprint() == old.fingerprint() {
        return false;
    }
    let now = SystemTime::now();
    let signers: Vec<_> = std::iter::once(old.primary_key().key().clone())
        .chain(
            old.keys()
                .subkeys()
                .map(|k| k.key().clone().role_into_primary()),
        )
        .collect();
    let old_id = old.key_handle();
    new.userids().any(|ua| {
        ua.certifications().any(|sig| {
            matches!(
                sig.typ(),
                SignatureType::GenericCertification
                    | SignatureType::PersonaCertification
                    | SignatureType::CasualCertification
                    | SignatureType::PositiveCertification
            ) && sig
                .get_issuers()
                .iter()
                .any(|h| h.aliases(&old_id) || old.keys().any(|k| h.aliases(k.key().key_handle())))
                && sig.signature_alive(now, Duration::ZERO).is_ok()
                && signers.iter().any(|signer| {
                    sig.verify_userid_binding(signer, new.primary_key().key(), ua.userid())
                        .is_ok()
                })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn held(fpr: &str, level: Level) -> Held {
        Held {
            fingerprint: fpr.into(),
            level,
            expires_at: Some(NOW + 86_400),
            revoked: false,
            sign_used: true,
            encr_used: true,
        }
    }

    // Rule 1: no key before.
    #[test]
    fn first_contact() {
        let new = held("B", Level::WeakChain);
        assert_eq!(
            can_upgrade(None, &new, false, NOW),
            Some(Upgrade::FirstContact)
        );
    }

    // Rule 2: the same fingerprint, whatever the levels.
    #[test]
    fn same_fingerprint_updates() {
        let old = held("A", Level::Fingerprint);
        let new = held("A", Level::WeakChain);
        assert_eq!(
            can_upgrade(Some(&old), &new, false, NOW),
            Some(Upgrade::SameKey)
        );
    }

    #[test]
    fn different_fingerprint_is_not_an_update() {
        let old = held("A", Level::ProviderTrust);
        let new = held("B", Level::ProviderTrust);
        assert_eq!(can_upgrade(Some(&old), &new, false, NOW), None);
    }

    // Rule 3: the new key at fingerprint level.
    #[test]
    fn fingerprint_level_replaces() {
        let old = held("A", Level::Fingerprint);
        let new = held("B", Level::Fingerprint);
        assert_eq!(
            can_upgrade(Some(&old), &new, false, NOW),
            Some(Upgrade::FingerprintLevel)
        );
    }

    #[test]
    fn known_key_is_not_fingerprint_level() {
        let old = held("A", Level::ProviderTrust);
        let new = held("B", Level::KnownKey);
        // Higher, but the old key expires and was used both ways.
        assert_eq!(can_upgrade(Some(&old), &new, false, NOW), None);
    }

    // Rule 4: the old key expired, the new level is at least as high.
    #[test]
    fn old_expired_equal_level_replaces() {
        let mut old = held("A", Level::ProviderTrust);
        old.expires_at = Some(NOW - 1);
        let new = held("B", Level::ProviderTrust);
        assert_eq!(
            can_upgrade(Some(&old), &new, false, NOW),
            Some(Upgrade::OldExpired)
        );
    }

    #[test]
    fn old_revoked_counts_as_expired() {
        let mut old = held("A", Level::ProviderTrust);
        old.revoked = true;
        let new = held("B", Level::ProviderTrust);
        assert_eq!(
            can_upgrade(Some(&old), &new, false, NOW),
            Some(Upgrade::OldExpired)
        );
    }

    #[test]
    fn old_expired_lower_level_does_not_replace() {
        let mut old = held("A", Level::ProviderTrust);
        old.expires_at = Some(NOW - 1);
        let new = held("B", Level::WeakChain);
        assert_eq!(can_upgrade(Some(&old), &new, false, NOW), None);
    }

    #[test]
    fn old_not_yet_expired_equal_level_does_not_replace() {
        let old = held("A", Level::ProviderTrust);
        let new = held("B", Level::ProviderTrust);
        assert_eq!(can_upgrade(Some(&old), &new, false, NOW), None);
    }

    // Rule 5: the old key has no expiry, the new level is strictly higher.
    #[test]
    fn old_without_expiry_higher_level_replaces() {
        let mut old = held("A", Level::WeakChain);
        old.expires_at = None;
        let new = held("B", Level::ProviderTrust);
        assert_eq!(
            can_upgrade(Some(&old), &new, false, NOW),
            Some(Upgrade::OldNoExpiry)
        );
    }

    #[test]
    fn old_without_expiry_equal_level_does_not_replace() {
        let mut old = held("A", Level::ProviderTrust);
        old.expires_at = None;
        let new = held("B", Level::ProviderTrust);
        assert_eq!(can_upgrade(Some(&old), &new, false, NOW), None);
    }

    // Rule 6: the old key was never used both to sign and to encrypt, the
    // new level is strictly higher.
    #[test]
    fn old_not_used_both_higher_level_replaces() {
        for (sign, encr) in [(false, false), (true, false), (false, true)] {
            let mut old = held("A", Level::WeakChain);
            old.sign_used = sign;
            old.encr_used = encr;
            let new = held("B", Level::ProviderTrust);
            assert_eq!(
                can_upgrade(Some(&old), &new, false, NOW),
                Some(Upgrade::OldNotUsedBoth),
                "sign_used {sign}, encr_used {encr}"
            );
        }
    }

    #[test]
    fn old_used_both_higher_level_does_not_replace() {
        let old = held("A", Level::WeakChain);
        let new = held("B", Level::ProviderTrust);
        assert_eq!(can_upgrade(Some(&old), &new, false, NOW), None);
        assert!(refusal(&old, &new).contains("used both to sign and to encrypt"));
    }

    #[test]
    fn old_not_used_equal_level_does_not_replace() {
        let mut old = held("A", Level::ProviderTrust);
        old.sign_used = false;
        old.encr_used = false;
        let new = held("B", Level::ProviderTrust);
        assert_eq!(can_upgrade(Some(&old), &new, false, NOW), None);
    }

    // Rule 7: the new key is certified by the old one, whatever the levels.
    #[test]
    fn certified_by_old_replaces_at_a_lower_level() {
        let old = held("A", Level::ProviderTrust);
        let new = held("B", Level::WeakChain);
        assert_eq!(
            can_upgrade(Some(&old), &new, true, NOW),
            Some(Upgrade::CertifiedByOld)
        );
        assert_eq!(can_upgrade(Some(&old), &new, false, NOW), None);
    }

    #[test]
    fn levels_are_ordered_as_bitmask_lists_them() {
        let mut sorted = Level::ALL;
        sorted.sort();
        assert_eq!(sorted, Level::ALL);
        assert!(Level::WeakChain < Level::ProviderTrust);
        assert!(Level::KnownKey < Level::Fingerprint);
        for l in Level::ALL {
            assert_eq!(Level::parse(l.as_str()), Some(l));
        }
        assert_eq!(Level::parse("Fingerprint"), None);
    }

    #[test]
    fn entry_levels() {
        assert_eq!(entry_level("upload"), Level::ProviderEndorsement);
        assert_eq!(entry_level("import"), Level::ProviderTrust);
        assert_eq!(entry_level("files"), Level::ProviderTrust);
        assert_eq!(entry_level("wkd"), Level::ProviderTrust);
        assert_eq!(
            entry_level("keyserver:ldap://ks.example.org"),
            Level::ProviderTrust
        );
        assert_eq!(
            entry_level("keyserver:hkps://keys.openpgp.org"),
            Level::WeakChain
        );
        assert_eq!(entry_level("harvested"), Level::WeakChain);
        assert_eq!(entry_level("harvest:pgp"), Level::WeakChain);
    }
}
