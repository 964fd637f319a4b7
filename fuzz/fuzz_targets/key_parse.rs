//! The S/MIME and OpenPGP key parsers of `crates/keys/src/load.rs`
//! (format detection, armor blocks, PEM/DER/PKCS#7, keybox and BKS through
//! detection) and what the gateway asks of every parsed key (`key.rs`:
//! fingerprint, addresses, description, expiry; `import.rs`: key text).
//!
//! Input: the key material. Byte 0 picks the entry point: `parse_any`,
//! `parse_pgp` or `parse_x509`.
//!
//! Checks: no panic, no hang, bounded memory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealgate_keys::load::{parse_any, parse_pgp, parse_x509};

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    let parsed = match mode % 3 {
        0 => parse_any(data),
        1 => parse_pgp(data),
        _ => parse_x509(data),
    };
    for key in parsed.into_iter().flatten() {
        let _ = key.method();
        let _ = key.fingerprint();
        let _ = key.addresses();
        let _ = key.describe();
        let _ = key.expires_at();
        let _ = sealgate_keys::import::key_text(&key);
    }
});
