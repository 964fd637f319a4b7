//! Turning parsed keys into store rows (for `sealgate keys import`) and back.

use crate::RecipientKey;
use sealgate_store::{KeyKind, StoredKey};
use sequoia_openpgp::serialize::SerializeInto;

/// The text form of a key: an armored OpenPGP certificate (public parts only)
/// or a PEM certificate. The store and the lookup cache keep keys this way;
/// [`crate::load::parse_any`] reads it back.
pub fn key_text(key: &RecipientKey) -> Result<String, String> {
    match key {
        RecipientKey::Pgp(cert) => {
            let armored = cert
                .as_ref()
                .clone()
                .strip_secret_key_material()
                .armored()
                .to_vec()
                .map_err(|e| format!("cannot armor OpenPGP certificate: {e}"))?;
            Ok(String::from_utf8_lossy(&armored).into_owned())
        }
        RecipientKey::Smime(x) => {
            let pem = x
                .to_pem()
                .map_err(|e| format!("cannot encode certificate: {e}"))?;
            Ok(String::from_utf8_lossy(&pem).into_owned())
        }
    }
}

/// The store row for a key, bound to the addresses it names.
pub fn to_stored(key: &RecipientKey, source: &str) -> Result<StoredKey, String> {
    to_stored_for(key, source, key.addresses())
}

/// The store row for a key, bound to `addresses` (an upload is bound to the
/// address of the user who provided it).
pub fn to_stored_for(
    key: &RecipientKey,
    source: &str,
    addresses: Vec<String>,
) -> Result<StoredKey, String> {
    let kind = match key {
        RecipientKey::Pgp(_) => KeyKind::Pgp,
        RecipientKey::Smime(_) => KeyKind::Smime,
    };
    Ok(StoredKey {
        fingerprint: key.fingerprint(),
        kind,
        data: key_text(key)?,
        source: source.to_string(),
        addresses,
        uids: key.addresses(),
        length: key.bits().map(i64::from),
        expires_at: key.expires_at(),
        created_at: 0,
        refreshed_at: 0,
    })
}
