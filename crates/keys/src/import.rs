//! Turning parsed keys into store rows (for `sealgate keys import`) and back.

use crate::RecipientKey;
use sealgate_store::{KeyKind, StoredKey};
use sequoia_openpgp::serialize::SerializeInto;

/// The store row for a key: public material only, armored or PEM.
pub fn to_stored(key: &RecipientKey, source: &str) -> Result<StoredKey, String> {
    let (kind, data) = match key {
        RecipientKey::Pgp(cert) => {
            let armored = cert
                .clone()
                .as_ref()
                .clone()
                .strip_secret_key_material()
                .armored()
                .to_vec()
                .map_err(|e| format!("cannot armor OpenPGP certificate: {e}"))?;
            (KeyKind::Pgp, String::from_utf8_lossy(&armored).into_owned())
        }
        RecipientKey::Smime(x) => {
            let pem = x
                .to_pem()
                .map_err(|e| format!("cannot encode certificate: {e}"))?;
            (KeyKind::Smime, String::from_utf8_lossy(&pem).into_owned())
        }
    };
    Ok(StoredKey {
        fingerprint: key.fingerprint(),
        kind,
        data,
        source: source.to_string(),
        addresses: key.addresses(),
        expires_at: key.expires_at(),
        created_at: 0,
        refreshed_at: 0,
    })
}
