//! Unit tests of the message splitter: a corpus of header shapes, and the
//! already-encrypted detection with its negatives.

use super::*;

fn names<'a>(m: &'a Message<'_>) -> Vec<&'a str> {
    m.headers().iter().map(|h| h.name).collect()
}

/// Re-assembling headers + separator + body must give the input back.
fn assert_lossless(raw: &[u8]) {
    let m = Message::parse(raw);
    let mut again = Vec::new();
    for h in m.headers() {
        again.extend_from_slice(h.raw);
    }
    again.extend_from_slice(m.separator);
    again.extend_from_slice(m.body());
    assert_eq!(
        again,
        raw,
        "split is not lossless for {:?}",
        String::from_utf8_lossy(raw)
    );
}

#[test]
fn simple_crlf_message() {
    let raw = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hi\r\n\r\nbody\r\n";
    let m = Message::parse(raw);
    assert_eq!(names(&m), ["From", "To", "Subject"]);
    assert_eq!(m.header("subject").unwrap().raw, b"Subject: hi\r\n");
    assert_eq!(m.body(), b"body\r\n");
    assert_lossless(raw);
}

#[test]
fn folded_headers_keep_their_continuation_lines() {
    let raw = b"Subject: a\r\n long\r\n\tsubject\r\nContent-Type: multipart/mixed;\r\n boundary=\"x y\"\r\n\r\nB";
    let m = Message::parse(raw);
    assert_eq!(
        m.header("Subject").unwrap().raw,
        b"Subject: a\r\n long\r\n\tsubject\r\n"
    );
    assert_eq!(
        header_value_unfolded(m.header("Subject").unwrap()),
        "a long\tsubject"
    );
    let ct = m.content_type();
    assert_eq!(ct.mime_type, "multipart/mixed");
    assert_eq!(ct.param("boundary"), Some("x y"));
    assert_eq!(m.body(), b"B");
    assert_lossless(raw);
}

#[test]
fn lf_only_message() {
    let raw = b"From: a@example.test\nContent-Type: text/plain\n\nline\n";
    let m = Message::parse(raw);
    assert_eq!(names(&m), ["From", "Content-Type"]);
    assert_eq!(m.body(), b"line\n");
    assert_eq!(m.inner_entity(), b"Content-Type: text/plain\n\nline\n");
    assert_eq!(m.outer_headers(), b"From: a@example.test\n");
    assert_lossless(raw);
}

#[test]
fn no_body_and_no_empty_line() {
    let raw = b"From: a@example.test\r\nSubject: x\r\n";
    let m = Message::parse(raw);
    assert_eq!(names(&m), ["From", "Subject"]);
    assert_eq!(m.body(), b"");
    // The inner entity gets a separator so that it still parses.
    assert_eq!(m.inner_entity(), b"\r\n");
    assert_lossless(raw);

    // Ends inside the last field: it gets a line ending where it is copied.
    let raw = b"From: a@example.test\r\nContent-Type: text/plain";
    let m = Message::parse(raw);
    assert_eq!(m.inner_entity(), b"Content-Type: text/plain\r\n\r\n");
    let raw = b"Content-Type: text/plain\r\nSubject: x";
    assert_eq!(Message::parse(raw).outer_headers(), b"Subject: x\r\n");
}

#[test]
fn empty_line_then_body_only() {
    let raw = b"\r\nno headers here\r\n";
    let m = Message::parse(raw);
    assert!(m.headers().is_empty());
    assert_eq!(m.body(), b"no headers here\r\n");
    assert_eq!(m.inner_entity(), raw);
    assert_lossless(raw);
}

#[test]
fn no_headers_at_all() {
    for raw in [
        &b"just some text\r\nand more\r\n"[..],
        b"From someone mbox-style\n\nx",
        b" leading space\r\n",
    ] {
        let m = Message::parse(raw);
        assert!(m.headers().is_empty(), "{raw:?}");
        assert_eq!(m.body(), raw);
        assert_eq!(m.content_type().mime_type, "text/plain");
        assert!(m.outer_headers().is_empty());
        let mut expected = if raw.contains(&b'\r') {
            b"\r\n".to_vec()
        } else {
            b"\n".to_vec()
        };
        expected.extend_from_slice(raw);
        assert_eq!(m.inner_entity(), expected);
        assert_lossless(raw);
    }
}

#[test]
fn empty_input() {
    let m = Message::parse(b"");
    assert!(m.headers().is_empty());
    assert_eq!(m.body(), b"");
    assert_eq!(m.inner_entity(), b"\r\n");
    assert!(!m.is_encrypted());
}

#[test]
fn header_without_space_after_colon_and_obsolete_space_before_colon() {
    let raw =
        b"Subject:nospace\r\nX-Odd : value\r\nContent-Type:text/html;charset=utf-8\r\n\r\n<p>";
    let m = Message::parse(raw);
    assert_eq!(names(&m), ["Subject", "X-Odd", "Content-Type"]);
    assert_eq!(header_value_unfolded(&m.headers()[0]), "nospace");
    assert_eq!(header_value_unfolded(&m.headers()[1]), "value");
    let ct = m.content_type();
    assert_eq!(ct.mime_type, "text/html");
    assert_eq!(ct.param("charset"), Some("utf-8"));
    assert_lossless(raw);
}

#[test]
fn content_fields_in_mixed_case_go_inside_in_order() {
    let raw = b"From: a\r\ncontent-TYPE: text/plain; charset=\"ISO-8859-1\"\r\nMIME-Version: 1.0\r\nTo: b\r\n\
CONTENT-transfer-encoding: 8bit\r\nContent-ID: <1@x>\r\nContentless: kept outside\r\n\r\n\xe4\xf6\xfc\r\n";
    let m = Message::parse(raw);
    assert_eq!(
        m.inner_entity(),
        b"content-TYPE: text/plain; charset=\"ISO-8859-1\"\r\nCONTENT-transfer-encoding: 8bit\r\nContent-ID: <1@x>\r\n\r\n\xe4\xf6\xfc\r\n"
    );
    assert_eq!(
        m.outer_headers(),
        b"From: a\r\nTo: b\r\nContentless: kept outside\r\n"
    );
    assert_eq!(m.content_type().param("charset"), Some("ISO-8859-1"));
}

#[test]
fn multipart_body_is_untouched() {
    let raw = b"Content-Type: multipart/alternative; boundary=b1\r\n\r\npre\r\n--b1\r\nContent-Type: text/plain\r\n\r\nA\r\n--b1--\r\n";
    let m = Message::parse(raw);
    assert_eq!(names(&m), ["Content-Type"]);
    assert!(m.body().starts_with(b"pre\r\n--b1\r\n"));
    assert!(raw.ends_with(m.body()));
    assert_eq!(m.content_type().param("boundary"), Some("b1"));
    assert_eq!(m.inner_entity(), raw);
}

#[test]
fn eight_bit_utf8_headers_and_body() {
    let raw = "Subject: Grüße – 東京\r\nFrom: Jürgen <j@exämple.test>\r\n\r\nÄÖÜ 😀\r\n".as_bytes();
    let m = Message::parse(raw);
    assert_eq!(names(&m), ["Subject", "From"]);
    assert_eq!(
        header_value_unfolded(m.header("SUBJECT").unwrap()),
        "Grüße – 東京"
    );
    assert_eq!(m.body(), "ÄÖÜ 😀\r\n".as_bytes());
    assert_lossless(raw);
}

#[test]
fn garbage_line_ends_the_headers() {
    let raw = b"From: a\r\nthis is not a header\r\nSubject: b\r\n\r\nbody";
    let m = Message::parse(raw);
    assert_eq!(names(&m), ["From"]);
    assert_eq!(m.body(), &raw[9..]);
    assert_lossless(raw);
}

#[test]
fn garbage_bytes_never_panic() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let alphabet = b"\r\n\r\n: \t;=\"()\\abcXYZ-\x00\xff\x80/";
    for len in 0..400 {
        let mut raw = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            raw.push(if seed % 3 == 0 {
                (seed >> 8) as u8
            } else {
                alphabet[(seed >> 16) as usize % alphabet.len()]
            });
        }
        let m = Message::parse(&raw);
        let _ = m.content_type();
        let _ = m.is_encrypted();
        let inner = m.inner_entity();
        let outer = m.outer_headers();
        assert!(inner.len() + outer.len() <= raw.len() + 2 + 2 * m.headers().len());
        for h in m.headers() {
            let _ = header_value_unfolded(h);
        }
        assert_lossless(&raw);
    }
}

#[test]
fn content_type_parsing() {
    let ct = ContentType::parse("Text/HTML (a comment) ; Charset = \"UTF-8\" ; format=flowed");
    assert_eq!(ct.mime_type, "text/html");
    assert_eq!(ct.param("charset"), Some("UTF-8"));
    assert_eq!(ct.param("FORMAT"), Some("flowed"));
    let ct = ContentType::parse("application/octet-stream; name=\"a;b \\\"c\\\".bin\"");
    assert_eq!(ct.param("name"), Some("a;b \"c\".bin"));
    let ct =
        ContentType::parse("application/x-stuff; title*0*=us-ascii'en'This%20is; title*1=\" fun\"");
    assert_eq!(ct.param("title"), Some("This is fun"));
    let ct = ContentType::parse("application/octet-stream; name*=utf-8''gr%C3%BC%C3%9Fe.p7m");
    assert_eq!(ct.param("name"), Some("grüße.p7m"));
    assert_eq!(ContentType::parse("garbage").mime_type, "text/plain");
    assert_eq!(ContentType::parse("").mime_type, "text/plain");
    assert_eq!(
        Message::parse(b"\r\nx").content_type(),
        ContentType::default_text_plain()
    );
}

fn encrypted(raw: &[u8]) -> bool {
    Message::parse(raw).is_encrypted()
}

/// Labels alone never make a message "already encrypted" (issue 6 item 1):
/// each of these was passed through unchanged before, to mandatory
/// recipients too. Real encrypted mail is recognised in
/// `tests/already_encrypted.rs`, with gpg and openssl output.
#[test]
fn labels_without_encrypted_content_are_plaintext() {
    for raw in [
        &b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\r\n\r\n--x\r\n"[..],
        b"Subject: x\r\nContent-Type: text/plain\r\n\r\n\r\n  \r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQ==\r\n",
        b"Subject: x\n\n-----BEGIN PGP MESSAGE-----\nhQ==\n",
        b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\n\r\nMIA=",
        b"Content-Type: application/pkcs7-mime;\r\n smime-type=\"authEnveloped-data\"\r\n\r\nMIA=",
        b"Content-Type: application/x-pkcs7-mime; smime-type=Enveloped-Data\r\n\r\nMIA=",
        b"Content-Type: application/x-pkcs7-mime; name=\"smime.P7M\"\r\n\r\nMIA=",
        b"Content-Type: application/pkcs7-mime\r\nContent-Disposition: attachment; filename=\"mail.p7m\"\r\n\r\nMIA=",
        b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8sIHBsYWludGV4dCE=\r\n",
    ] {
        assert!(!encrypted(raw), "{}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn does_not_mistake_other_mail_for_encrypted() {
    assert!(!encrypted(
        b"Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n\r\nMIA="
    ));
    assert!(!encrypted(
        b"Content-Type: application/pkcs7-mime; smime-type=certs-only; name=smime.p7c\r\n\r\nMIA="
    ));
    assert!(!encrypted(
        b"Content-Type: application/pkcs7-mime; name=smime.p7s\r\n\r\nMIA="
    ));
    assert!(!encrypted(
        b"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; micalg=pgp-sha256; boundary=b\r\n\r\n--b\r\n"
    ));
    assert!(!encrypted(
        b"Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b\r\n"
    ));
    assert!(!encrypted(
        b"Content-Type: text/plain\r\n\r\nHi,\r\nhere is how PGP works:\r\n-----BEGIN PGP MESSAGE-----\r\n"
    ));
    assert!(!encrypted(
        b"Content-Type: text/plain\r\n\r\n-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n"
    ));
    assert!(!encrypted(
        b"Content-Type: text/html\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n"
    ));
    assert!(!encrypted(b"Subject: plain\r\n\r\nhello\r\n"));
}

/// Issue 6 item 8: the encrypted copy's outer header drops DKIM and ARC
/// signatures (folded, any case), which can no longer verify; every other
/// field stays byte for byte.
#[test]
fn outer_headers_drop_dkim_and_arc() {
    let raw = b"ARC-Seal: i=1; a=rsa-sha256; cv=none; d=ex.test;\r\n\
        \ts=arc; b=AAAA\r\n\
        ARC-Message-Signature: i=1; a=rsa-sha256; d=ex.test; s=arc;\r\n\
        \tbh=BBBB; b=CCCC\r\n\
        arc-authentication-results: i=1; mx.ex.test; dkim=pass\r\n\
        DKIM-Signature: v=1; a=rsa-sha256; d=ex.test; s=sel;\r\n\
        \th=from:subject; bh=DDDD; b=EEEE\r\n\
        dkim-signature: v=1; a=ed25519-sha256; d=ex.test; s=ed; b=FFFF\r\n\
        From: a@ex.test\r\n\
        X-DKIM-Signature-Note: kept\r\n\
        Authentication-Results: mx.ex.test; dkim=pass\r\n\
        Content-Type: text/plain\r\n\r\nbody\r\n";
    let m = Message::parse(raw);
    assert_eq!(
        m.outer_headers(),
        b"From: a@ex.test\r\nX-DKIM-Signature-Note: kept\r\nAuthentication-Results: mx.ex.test; dkim=pass\r\n"
    );
    assert_lossless(raw);
}

/// Issue 6 item 10: the header section is bounded in bytes and fields; the
/// splitter stops at the bound instead of collecting every field.
#[test]
fn header_limits() {
    let limits = |bytes, fields| HeaderLimits {
        max_bytes: bytes,
        max_fields: fields,
    };
    let raw = b"A: 1\r\nB: 2\r\n folded\r\nC: 3\r\n\r\nbody\r\n";
    let header_bytes = raw.len() - b"\r\nbody\r\n".len();
    assert!(Message::parse_limited(raw, limits(header_bytes, 3)).is_ok());
    assert_eq!(
        Message::parse_limited(raw, limits(header_bytes, 2)).unwrap_err(),
        HeaderLimitExceeded::Fields(2)
    );
    assert_eq!(
        Message::parse_limited(raw, limits(header_bytes - 1, 3)).unwrap_err(),
        HeaderLimitExceeded::Bytes(header_bytes - 1)
    );
    // The body does not count; the parse is the same as without limits.
    let m = Message::parse_limited(raw, limits(header_bytes, 3)).unwrap();
    assert_eq!(m.headers(), Message::parse(raw).headers());
    assert_eq!(m.body(), b"body\r\n");
    // Without an empty line everything is header, and counts.
    let bomb = b"a:b\r\n".repeat(20_000);
    assert_eq!(
        Message::parse_limited(&bomb, limits(1 << 20, 10_000)).unwrap_err(),
        HeaderLimitExceeded::Fields(10_000)
    );
}

/// The parts the encryptors use are the outer headers minus what the caller
/// drops, and the inner entity.
#[test]
fn parts_drop_what_the_caller_names() {
    let raw =
        b"From: a@x\r\nBcc: b@x\r\nDKIM-Signature: v=1\r\nContent-Type: text/plain\r\n\r\nhi\r\n";
    let m = Message::parse(raw);
    let p = m.parts(|h| h.name.eq_ignore_ascii_case("bcc"));
    assert_eq!(p.outer_headers, b"From: a@x\r\n");
    assert_eq!(p.inner_entity(), b"Content-Type: text/plain\r\n\r\nhi\r\n");
    assert_eq!(Parts::of(raw).outer_headers, b"From: a@x\r\nBcc: b@x\r\n");
}

/// Shared parts point into the received message instead of copying its
/// body, and say the same as copied ones; parts of another buffer copy.
#[test]
fn shared_parts_match_copied_parts() {
    for raw in [
        &b"From: a@x\r\nContent-Type: text/plain\r\n\r\nhi\r\n"[..],
        b"no headers at all\n",
        b"Subject: x\r",
    ] {
        let data = std::sync::Arc::new(raw.to_vec());
        let m = Message::parse(&data);
        let shared = m.parts_sharing(&data, |_| false);
        assert_eq!(shared.inner_entity(), m.inner_entity());
        assert_eq!(shared.inner_entity_len(), m.inner_entity().len());
        assert_eq!(shared.outer_headers, m.parts(|_| false).outer_headers);
        assert_eq!(std::sync::Arc::strong_count(&data), 2);
        let other = std::sync::Arc::new(raw.to_vec());
        let copied = m.parts_sharing(&other, |_| false);
        assert_eq!(copied, m.parts(|_| false));
        assert_eq!(std::sync::Arc::strong_count(&other), 1);
    }
}

#[test]
fn without_fields_keeps_every_other_byte() {
    let raw = b"From: a@x\r\nX-Sealgate-Decrypted: forged\r\n\tfolded\r\nTo: b@x\r\n\r\nbody\r\nX-Sealgate-Decrypted: in the body\r\n";
    let out = Message::parse(raw).without_fields(&["x-sealgate-decrypted"]);
    assert_eq!(
        out,
        b"From: a@x\r\nTo: b@x\r\n\r\nbody\r\nX-Sealgate-Decrypted: in the body\r\n"
    );
    let none = b"From: a@x\r\n\r\nbody\r\n";
    assert_eq!(Message::parse(none).without_fields(&["Bcc"]), none);
}
