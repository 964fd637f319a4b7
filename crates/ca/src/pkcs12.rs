//! PKCS#12 files of issued certificates with their keys.
//!
//! The default is what OpenSSL 3 writes: AES-256-CBC with PBKDF2 for the
//! key and the certificates, and an HMAC-SHA-256 MAC; every current client
//! imports it (Thunderbird, Outlook 2019 and later, Apple Mail, OpenSSL 3).
//! `legacy` writes 3DES with SHA-1 PBE and a SHA-1 MAC, for importers that
//! know nothing newer: GnuPG's gpgsm 2.2 (Debian 12), Windows before 10
//! 1709 and old Outlook versions.

use crate::CaError;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKeyRef, Private};
use openssl::stack::Stack;
use openssl::x509::{X509Ref, X509};

/// The PKCS#12 of `cert` with `key` and its `chain` (issuer first),
/// protected by `password`, named `name`.
pub fn export(
    name: &str,
    cert: &X509Ref,
    key: &PKeyRef<Private>,
    chain: &[X509],
    password: &str,
    legacy: bool,
) -> Result<Vec<u8>, CaError> {
    let mut ca = Stack::new()?;
    for c in chain {
        ca.push(c.clone())?;
    }
    let mut b = Pkcs12::builder();
    b.name(name).pkey(key).cert(cert).ca(ca);
    if legacy {
        b.key_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
            .cert_algorithm(Nid::PBE_WITHSHA1AND3_KEY_TRIPLEDES_CBC)
            .mac_md(MessageDigest::sha1());
    } else {
        b.key_algorithm(Nid::AES_256_CBC)
            .cert_algorithm(Nid::AES_256_CBC)
            .mac_md(MessageDigest::sha256());
    }
    Ok(b.build2(password)?.to_der()?)
}

/// A password of `len` characters from an alphabet without look-alikes
/// (no 0/O, 1/l/I), from OpenSSL's random generator.
pub fn password(len: u32) -> Result<String, CaError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(len as usize);
    let mut buf = [0u8; 64];
    while out.len() < len as usize {
        openssl::rand::rand_bytes(&mut buf)?;
        for b in buf {
            // Rejection sampling: no bias towards the first letters.
            let limit = 256 - 256 % ALPHABET.len();
            if (b as usize) < limit && out.len() < len as usize {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}
