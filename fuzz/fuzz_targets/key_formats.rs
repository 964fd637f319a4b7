//! The key-store readers in `crates/keys/src/formats/`: BouncyCastle BKS
//! (`bks.rs`) and GnuPG keybox (`keybox.rs`).
//!
//! Input: the file. Each reader gets every input (after its own sniffing
//! function, which must agree with it where it says yes); BKS also with a
//! password when byte 0 is odd, which runs the PKCS#12 KDF and the MAC check.
//!
//! Checks: no panic, no hang (iteration counts, lengths and offsets come from
//! the input), bounded memory.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealgate_keys::formats::bks::{is_bks, parse_bks};
use sealgate_keys::formats::keybox::{is_keybox, parse_keybox};

fuzz_target!(|data: &[u8]| {
    let _ = is_bks(data);
    let _ = parse_bks(data, None);
    if data.first().is_some_and(|b| b & 1 == 1) {
        let _ = parse_bks(data, Some("changeit"));
    }
    let _ = is_keybox(data);
    let _ = parse_keybox(data);
});
