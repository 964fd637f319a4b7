//! DKIM signing of the copies sealgate built (RFC 6376; Ed25519 per RFC
//! 8463), the last step before a copy is queued.
//!
//! Encryption replaces the body and the `Content-*` fields, so a signature
//! the sending MTA made no longer verifies (the fail-closed stage drops
//! such signatures). When sealgate sits after the signing MTA, DMARC would
//! then fail for every encrypted message. With a `[[dkim.keys]]` entry for
//! the From domain, each copy sealgate changed (encrypted, signed, or with
//! its Subject cleaned) is signed again, after encryption, over what the
//! recipient receives. Copies that are the original bytes keep the
//! original's signatures and are not signed again. The sender's policy
//! (`dkim_sign`) may turn it off.

use mail_auth::common::crypto::{DkimKey as Key, Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

/// The header fields signed, where present (`From` is always present in
/// a message that gets signed).
pub const SIGNED_FIELDS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// `[dkim]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    /// One entry per signing domain (`[[dkim.keys]]`).
    #[serde(default)]
    pub keys: Vec<DkimKeyConfig>,
}

/// `[[dkim.keys]]`: the key for one From domain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKeyConfig {
    /// The `d=` domain, compared with the From address's domain
    /// (case-insensitively; subdomains need entries of their own).
    pub domain: String,
    /// The `s=` selector: the key is published at
    /// `SELECTOR._domainkey.DOMAIN`.
    pub selector: String,
    /// PEM private key: RSA (PKCS#1 or PKCS#8, at least 1024 bits; 2048 or
    /// more recommended) or Ed25519 (PKCS#8).
    pub key_file: PathBuf,
}

struct Entry {
    domain: String,
    selector: String,
    key: Key,
}

/// The loaded signing keys (possibly none).
#[derive(Clone, Default)]
pub struct DkimKeys {
    entries: Arc<Vec<Entry>>,
}

impl std::fmt::Debug for DkimKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys themselves.
        f.debug_list()
            .entries(
                self.entries
                    .iter()
                    .map(|e| format!("{}._domainkey.{}", e.selector, e.domain)),
            )
            .finish()
    }
}

impl DkimKeys {
    /// Reads every key file of `config`.
    ///
    /// # Errors
    /// Naming the entry: an unreadable file, a key that is neither RSA nor
    /// Ed25519, an RSA key under 1024 bits, a bad domain or selector, two
    /// entries for one domain.
    pub fn load(config: &DkimConfig) -> Result<DkimKeys, String> {
        let mut entries: Vec<Entry> = Vec::new();
        for (i, c) in config.keys.iter().enumerate() {
            let at = format!("dkim.keys[{i}] (domain {:?})", c.domain);
            let domain = c.domain.trim_end_matches('.').to_ascii_lowercase();
            let label_ok = |s: &str| {
                !s.is_empty()
                    && s.split('.').all(|l| {
                        !l.is_empty()
                            && l.len() <= 63
                            && l.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    })
            };
            if !label_ok(&domain) {
                return Err(format!("{at}: domain: not a domain name"));
            }
            if !label_ok(&c.selector) {
                return Err(format!(
                    "{at}: selector {:?}: letters, digits, '-', '_' and dots only",
                    c.selector
                ));
            }
            if entries.iter().any(|e| e.domain == domain) {
                return Err(format!("{at}: a second key for the same domain"));
            }
            let pem = std::fs::read(&c.key_file)
                .map_err(|e| format!("{at}: key_file {}: {e}", c.key_file.display()))?;
            let key = read_key(&pem)
                .map_err(|e| format!("{at}: key_file {}: {e}", c.key_file.display()))?;
            entries.push(Entry {
                domain,
                selector: c.selector.clone(),
                key,
            });
        }
        Ok(DkimKeys {
            entries: Arc::new(entries),
        })
    }

    /// No keys: nothing is signed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a key is configured for `domain`.
    pub fn has(&self, domain: &str) -> bool {
        self.entry(domain).is_some()
    }

    fn entry(&self, domain: &str) -> Option<&Entry> {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        self.entries.iter().find(|e| e.domain == d)
    }

    /// The `DKIM-Signature:` field (with its CRLF) for `message` signed
    /// with the key of `domain`; `None` when no key is configured for it.
    ///
    /// # Errors
    /// The library's, for a message it cannot sign.
    pub fn signature(&self, domain: &str, message: &[u8]) -> Result<Option<String>, String> {
        let Some(e) = self.entry(domain) else {
            return Ok(None);
        };
        // A signer borrows its key for one message: the keys stay loaded
        // once.
        let signer = DkimSigner::from_key(KeyRef(&e.key))
            .domain(e.domain.clone())
            .selector(e.selector.clone())
            .headers(SIGNED_FIELDS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed);
        let sig = signer.sign(message).map_err(|e| e.to_string())?;
        let mut header = sig.to_header();
        if !header.ends_with("\r\n") {
            header.push_str("\r\n");
        }
        Ok(Some(header))
    }
}

/// The domain copies of `parsed` are signed for: the domain of its one
/// From address, when a key is configured for it and the policy of that
/// address has `dkim_sign`. `None` when nothing is to be signed (no keys,
/// no or several From addresses, no key for the domain, turned off).
pub fn signing_domain(
    keys: &DkimKeys,
    policy: &sealgate_policy::Policy,
    parsed: &sealgate_crypto::mime::Message<'_>,
) -> Option<String> {
    if keys.is_empty() {
        return None;
    }
    let from = parsed.addresses(&["From"]);
    let [address] = from.as_slice() else {
        return None;
    };
    let (_, domain) = address.rsplit_once('@')?;
    (keys.has(domain) && policy.settings_for(address).dkim_sign).then(|| domain.to_string())
}

/// `copy` with a `DKIM-Signature:` field for `domain` in front, made on
/// the CPU pool. A copy that cannot be signed goes unsigned, with a log
/// line (DKIM is for the receiver's DMARC check; the copy itself is
/// complete).
pub async fn sign_copy<'a>(
    keys: &DkimKeys,
    domain: &str,
    queue_id: &str,
    copy: std::borrow::Cow<'a, [u8]>,
) -> std::borrow::Cow<'a, [u8]> {
    let shared = Arc::new(copy.into_owned());
    let (k, d, m) = (keys.clone(), domain.to_string(), shared.clone());
    let signed = sealgate_crypto::cpu::run(move |_| k.signature(&d, &m)).await;
    let header = match signed {
        Ok(Ok(Some(h))) => Some(h),
        Ok(Ok(None)) => None,
        Ok(Err(e)) | Err(e) => {
            tracing::warn!(queue_id, domain, "copy not DKIM-signed: {e}");
            None
        }
    };
    let mut body = Arc::try_unwrap(shared).unwrap_or_else(|a| a.as_ref().clone());
    if let Some(h) = header {
        body.splice(0..0, h.bytes());
    }
    std::borrow::Cow::Owned(body)
}

/// A borrowed key as a signing key.
struct KeyRef<'a, K>(&'a K);

impl<K: SigningKey> SigningKey for KeyRef<'_, K> {
    type Hasher = K::Hasher;

    fn sign(&self, input: impl mail_auth::common::headers::Writable) -> mail_auth::Result<Vec<u8>> {
        self.0.sign(input)
    }

    fn algorithm(&self) -> mail_auth::common::crypto::Algorithm {
        self.0.algorithm()
    }
}

/// An RSA or Ed25519 private key from PEM, read with OpenSSL and handed to
/// mail-auth as PKCS#8.
fn read_key(pem: &[u8]) -> Result<Key, String> {
    let pkey = openssl::pkey::PKey::private_key_from_pem(pem)
        .map_err(|_| "not a PEM private key (RSA or Ed25519)".to_string())?;
    let der = pkey
        .private_key_to_pkcs8()
        .map_err(|e| format!("cannot re-encode the key: {e}"))?;
    match pkey.id() {
        openssl::pkey::Id::RSA => {
            if pkey.bits() < 1024 {
                return Err(format!(
                    "an RSA key of {} bits is too short (RFC 8301: at least 1024; use 2048)",
                    pkey.bits()
                ));
            }
            let der = rustls_pki_types::PrivateKeyDer::Pkcs8(der.into());
            RsaKey::<Sha256>::from_key_der(der)
                .map(Key::Rsa)
                .map_err(|e| e.to_string())
        }
        openssl::pkey::Id::ED25519 => Ed25519Key::from_pkcs8_der(&der)
            .map(Key::Ed25519)
            .map_err(|e| e.to_string()),
        _ => Err("the key is neither RSA nor Ed25519".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(kind: &str) -> Vec<u8> {
        let k = match kind {
            "rsa" => {
                openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap()
            }
            _ => openssl::pkey::PKey::generate_ed25519().unwrap(),
        };
        k.private_key_to_pem_pkcs8().unwrap()
    }

    fn keys(entries: &[(&str, Vec<u8>)]) -> Result<DkimKeys, String> {
        let dir = tempfile::tempdir().unwrap();
        let config = DkimConfig {
            keys: entries
                .iter()
                .enumerate()
                .map(|(i, (d, pem))| {
                    let path = dir.path().join(format!("{i}.pem"));
                    std::fs::write(&path, pem).unwrap();
                    DkimKeyConfig {
                        domain: d.to_string(),
                        selector: "s1".into(),
                        key_file: path,
                    }
                })
                .collect(),
        };
        DkimKeys::load(&config)
    }

    #[test]
    fn rsa_and_ed25519_sign_their_domains_only() {
        let k = keys(&[("Example.com", pem("rsa")), ("example.org", pem("ed25519"))]).unwrap();
        let msg = b"From: a@example.com\r\nTo: b@example.net\r\nSubject: x\r\n\r\nbody\r\n";
        let rsa = k.signature("example.COM", msg).unwrap().unwrap();
        assert!(rsa.starts_with("DKIM-Signature: "), "{rsa}");
        assert!(
            rsa.contains("a=rsa-sha256") && rsa.contains("d=example.com") && rsa.contains("s=s1")
        );
        assert!(rsa.contains("c=relaxed/relaxed"));
        let ed = k.signature("example.org", msg).unwrap().unwrap();
        assert!(ed.contains("a=ed25519-sha256"), "{ed}");
        assert_eq!(k.signature("example.net", msg).unwrap(), None);
        assert!(!format!("{k:?}").contains("BEGIN"));
    }

    #[test]
    fn bad_entries_are_named() {
        let e = keys(&[("example.com", b"not a key".to_vec())]).unwrap_err();
        assert!(
            e.contains("dkim.keys[0]") && e.contains("not a PEM private key"),
            "{e}"
        );
        let e = keys(&[("example.com", pem("rsa")), ("EXAMPLE.com", pem("rsa"))]).unwrap_err();
        assert!(
            e.contains("dkim.keys[1]") && e.contains("second key"),
            "{e}"
        );
        let e = keys(&[("exa mple.com", pem("rsa"))]).unwrap_err();
        assert!(e.contains("not a domain"), "{e}");
        let short = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(512).unwrap())
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        let e = keys(&[("example.com", short)]).unwrap_err();
        assert!(e.contains("too short"), "{e}");
    }
}
