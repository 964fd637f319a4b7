//! The header splitter (`Message::parse`: `crates/crypto/src/mime/header.rs`)
//! and the Content-Type parser with RFC 2231 continuations and encodings
//! (`mime/content_type.rs`), with the inner/outer split the encryptors use.
//!
//! Input: a raw message; the whole input is also parsed as one Content-Type
//! field value.
//!
//! Checks: no panic; the split is lossless (header fields, separator and
//! body are the input, in order); the inner entity parses back to the same
//! body (byte faithfulness); the outer headers hold no Content-* field; the
//! parsed media type is lowercase `type/subtype`. Run it with a large
//! `-max_len` too: parsing must stay linear.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sealgate_crypto::mime::{header_value_unfolded, is_signature_field, ContentType, Message};

fuzz_target!(|raw: &[u8]| {
    let m = Message::parse(raw);
    assert_eq!(m.raw(), raw);

    let mut at = 0;
    for h in m.headers() {
        assert_eq!(
            &raw[at..at + h.raw.len()],
            h.raw,
            "header fields not in order"
        );
        assert!(h.raw.starts_with(h.name.as_bytes()));
        at += h.raw.len();
        let value = header_value_unfolded(h);
        assert!(!value.contains(['\r', '\n']));
        let _ = is_signature_field(h.name);
        if h.name.eq_ignore_ascii_case("Content-Type")
            || h.name.eq_ignore_ascii_case("Content-Disposition")
        {
            check_content_type(&value);
        }
    }
    let body = m.body();
    assert!(raw.ends_with(body), "body is not the end of the input");
    assert!(at + body.len() <= raw.len(), "fields and body overlap");
    assert!(
        raw.len() - at - body.len() <= 2,
        "separator longer than CRLF"
    );

    let ct = m.content_type();
    let _ = ct.param("boundary");
    let _ = ct.param("protocol");

    let inner = m.inner_entity();
    assert!(inner.ends_with(body));
    let again = Message::parse(&inner);
    assert_eq!(
        again.body(),
        body,
        "inner entity does not parse back to the body"
    );

    let outer = m.outer_headers();
    let outer = Message::parse(&outer);
    for h in outer.headers() {
        assert!(
            !h.name.to_ascii_lowercase().starts_with("content-"),
            "Content-* field left outside"
        );
    }

    check_content_type(&String::from_utf8_lossy(raw));
});

fn check_content_type(value: &str) {
    let ct = ContentType::parse(value);
    assert_eq!(ct.mime_type, ct.mime_type.to_ascii_lowercase());
    assert!(ct.mime_type.contains('/'));
    for (name, _) in &ct.params {
        assert_eq!(*name, name.to_ascii_lowercase());
    }
    let _ = ct.param("name");
}
