//! Encrypted-content detection: `Message::encryption()`
//! (`crates/crypto/src/mime/encrypted.rs`), which reads PGP/MIME parts,
//! transfer encodings, the OpenPGP packet sequence (`inspect/openpgp.rs`,
//! sequoia's armor reader and packet parser) and CMS ContentInfo over the
//! bounded BER reader (`inspect/cms.rs`, `inspect/der.rs`).
//!
//! Input: byte 0 says how to wrap the rest, so the fuzzer reaches each
//! inspector with raw bytes: 0 as a whole message; 1 as the binary body of
//! an `application/pkcs7-mime` message (the BER reader directly); 2 as the
//! body of a `text/plain` message (inline PGP); 3 as the second part of a
//! PGP/MIME `multipart/encrypted` message.
//!
//! Checks: no panic, no hang, bounded memory; `is_encrypted` agrees with
//! `encryption`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealgate_crypto::mime::Message;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let raw = match mode % 4 {
        0 => rest.to_vec(),
        1 => [
            &b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\
               Content-Transfer-Encoding: binary\r\n\r\n"[..],
            rest,
        ]
        .concat(),
        2 => [&b"Content-Type: text/plain\r\n\r\n"[..], rest].concat(),
        _ => [
            &b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n\
               \tboundary=\"b\"\r\n\r\n--b\r\nContent-Type: application/pgp-encrypted\r\n\r\n\
               Version: 1\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n"[..],
            rest,
            b"\r\n--b--\r\n",
        ]
        .concat(),
    };
    let m = Message::parse(&raw);
    let e = m.encryption();
    assert_eq!(e.is_encrypted(), m.is_encrypted());
});
