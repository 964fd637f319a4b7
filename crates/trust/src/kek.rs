//! Private keys at rest: sealed under the key-encryption key (KEK).
//!
//! The store is a database that backups copy and other instances read, so a
//! private key (of an imported PKCS#12 file; later of the built-in CA) is
//! never written in the clear. It is sealed with AES-256-GCM under a 32-byte
//! KEK that lives outside the store: the file `store.key_encryption_key_file`
//! or the environment variable `SEALGATE_KEY_ENCRYPTION_KEY` (64 hex digits
//! either way; make one with `openssl rand -hex 32`). The certificate's
//! thumbprint is the additional authenticated data, so a sealed key cannot
//! be moved to another certificate's row. A blob names the KEK it was sealed
//! under (the first 8 bytes of the KEK's SHA-256), so a wrong KEK is told
//! apart from a damaged blob.

use crate::TrustError;
use openssl::hash::{hash, MessageDigest};
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use std::path::Path;

/// The environment variable that may hold the KEK.
pub const KEK_ENV: &str = "SEALGATE_KEY_ENCRYPTION_KEY";

const VERSION: u8 = 1;
const ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A key-encryption key. `Debug` does not show it.
#[derive(Clone)]
pub struct Kek {
    key: [u8; 32],
    id: [u8; ID_LEN],
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek({})", crate::cert::to_hex(&self.id))
    }
}

impl Kek {
    /// From 64 hex digits (surrounding white space ignored).
    pub fn from_hex(text: &str, origin: &str) -> Result<Kek, TrustError> {
        let t = text.trim();
        let bad = || {
            TrustError::Format(format!(
                "{origin}: the key-encryption key must be 64 hex digits (32 bytes; make one with `openssl rand -hex 32`)"
            ))
        };
        if t.len() != 64 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut key = [0u8; 32];
        for (i, b) in key.iter_mut().enumerate() {
            *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let digest = hash(MessageDigest::sha256(), &key)?;
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&digest[..ID_LEN]);
        Ok(Kek { key, id })
    }

    /// From the file `path`, else from [`KEK_ENV`]; `None` when neither is set.
    pub fn load(path: Option<&Path>) -> Result<Option<Kek>, TrustError> {
        if let Some(p) = path {
            let text = std::fs::read_to_string(p).map_err(|e| {
                TrustError::Format(format!(
                    "store.key_encryption_key_file: cannot read {}: {e}",
                    p.display()
                ))
            })?;
            return Kek::from_hex(
                &text,
                &format!("store.key_encryption_key_file ({})", p.display()),
            )
            .map(Some);
        }
        match std::env::var(KEK_ENV) {
            Ok(v) => Kek::from_hex(&v, KEK_ENV).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// `plaintext` sealed, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, TrustError> {
        let mut nonce = [0u8; NONCE_LEN];
        openssl::rand::rand_bytes(&mut nonce)?;
        let mut tag = [0u8; TAG_LEN];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.key,
            Some(&nonce),
            aad,
            plaintext,
            &mut tag,
        )?;
        let mut out = Vec::with_capacity(1 + ID_LEN + NONCE_LEN + ct.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// What [`Kek::seal`] sealed with `aad`; an error names a wrong KEK or
    /// a damaged (or moved) blob.
    pub fn open(&self, blob: &[u8], aad: &[u8]) -> Result<Vec<u8>, TrustError> {
        let head = 1 + ID_LEN + NONCE_LEN;
        if blob.len() < head + TAG_LEN || blob[0] != VERSION {
            return Err(TrustError::Format("a sealed private key is damaged".into()));
        }
        if blob[1..1 + ID_LEN] != self.id {
            return Err(TrustError::Format(format!(
                "a private key was sealed under another key-encryption key (id {}, this one is {})",
                crate::cert::to_hex(&blob[1..1 + ID_LEN]),
                crate::cert::to_hex(&self.id)
            )));
        }
        let nonce = &blob[1 + ID_LEN..head];
        let (ct, tag) = blob[head..].split_at(blob.len() - head - TAG_LEN);
        decrypt_aead(Cipher::aes_256_gcm(), &self.key, Some(nonce), aad, ct, tag).map_err(|_| {
            TrustError::Format(
                "a sealed private key does not open (damaged, or not this certificate's)".into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn sealed_keys_open_only_with_their_kek_and_aad() {
        let k = Kek::from_hex(HEX, "test").unwrap();
        let blob = k.seal(b"secret key bytes", b"cert-a").unwrap();
        assert!(!blob.windows(6).any(|w| w == b"secret"));
        assert_eq!(k.open(&blob, b"cert-a").unwrap(), b"secret key bytes");
        let e = k.open(&blob, b"cert-b").unwrap_err();
        assert!(e.to_string().contains("does not open"), "{e}");
        let other = Kek::from_hex(&HEX.replace("00", "01"), "test").unwrap();
        let e = other.open(&blob, b"cert-a").unwrap_err();
        assert!(e.to_string().contains("another key-encryption key"), "{e}");
        let mut damaged = blob.clone();
        let n = damaged.len();
        damaged[n - 1] ^= 1;
        assert!(k.open(&damaged, b"cert-a").is_err());
        assert!(!format!("{k:?}").contains("0011"), "Debug shows no key");
    }

    #[test]
    fn bad_keks_are_named() {
        for bad in ["", "abc", &"g".repeat(64), &HEX[..62]] {
            let e = Kek::from_hex(bad, "store.key_encryption_key_file (x)").unwrap_err();
            assert!(e.to_string().contains("must be 64 hex digits"), "{e}");
        }
        assert!(Kek::from_hex(&format!("  {HEX}\n"), "t").is_ok());
    }
}
