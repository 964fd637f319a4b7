//! Sample messages shared by the integration tests: the shapes of mail the
//! gateway must carry through encryption byte for byte.

#![allow(dead_code)]

/// A name and the raw message.
pub struct Sample {
    pub name: &'static str,
    pub raw: Vec<u8>,
}

/// Plain ASCII text, CRLF.
pub fn plain_ascii() -> Sample {
    Sample {
        name: "plain-ascii",
        raw: b"Return-Path: <s@example.test>\r\n\
From: Sender <s@example.test>\r\n\
To: Alice <alice@example.org>\r\n\
Subject: Quarterly report\r\n\
Date: Tue, 3 Mar 2026 10:00:00 +0000\r\n\
Message-ID: <plain.1@example.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
Content-Transfer-Encoding: 7bit\r\n\
\r\n\
Hello Alice,\r\n\
\r\n\
the numbers are in.   \r\n\
.\r\n\
From the desk of the sender\r\n\
-- \r\n\
Sender\r\n"
            .to_vec(),
    }
}

/// multipart/mixed: multipart/alternative (text + HTML) and a binary
/// attachment in base64; Content-* fields in odd case and folded.
pub fn html_with_attachment() -> Sample {
    let mut attachment = Vec::new();
    for i in 0..600u32 {
        attachment.push((i * 7 % 256) as u8);
    }
    let b64 = base64_lines(&attachment);
    let mut raw = Vec::new();
    raw.extend_from_slice(
        b"From: Sender <s@example.test>\r\n\
To: Alice <alice@example.org>, Bob <bob@example.net>\r\n\
Subject: Invoice\r\n\
 with a folded subject line\r\n\
Message-ID: <multi.1@example.test>\r\n\
MIME-Version: 1.0\r\n\
content-type: multipart/mixed;\r\n\
\tboundary=\"outer-XyZ\"\r\n\
X-Mailer: test\r\n\
\r\n\
This is a multi-part message in MIME format.\r\n\
--outer-XyZ\r\n\
Content-Type: multipart/alternative; boundary=\"inner-AbC\"\r\n\
\r\n\
--inner-AbC\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Please find the invoice attached. Gr=C3=BC=C3=9Fe\r\n\
--inner-AbC\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<html><body><p>Please find the <b>invoice</b> attached.</p></body></html>\r\n\
--inner-AbC--\r\n\
--outer-XyZ\r\n\
Content-Type: application/octet-stream; name=\"invoice.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"invoice.bin\"\r\n\
\r\n",
    );
    raw.extend_from_slice(&b64);
    raw.extend_from_slice(b"--outer-XyZ--\r\n");
    Sample {
        name: "html-attachment",
        raw,
    }
}

/// 8-bit UTF-8 in headers and body, lines of 900 characters (more than
/// 900 bytes), 8bit transfer encoding.
pub fn utf8_long_lines() -> Sample {
    let mut raw = Vec::new();
    raw.extend_from_slice(
        "From: Jürgen Müller <juergen@example.test>\r\n\
To: Zoë <zoe@exämple.org>\r\n\
Subject: Grüße aus Köln – 東京 📬\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=\"utf-8\"\r\n\
Content-Transfer-Encoding: 8bit\r\n\
\r\n"
            .as_bytes(),
    );
    let alphabet: Vec<char> = "äöüßÄÖÜ€漢字😀abc ".chars().collect();
    for line in 0..5 {
        let s: String = (0..900)
            .map(|i| alphabet[(i + line) % alphabet.len()])
            .collect();
        raw.extend_from_slice(s.as_bytes());
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\xff\xfe raw non-UTF-8 bytes too\r\n");
    Sample {
        name: "utf8-long-lines",
        raw,
    }
}

/// A body of nothing but CRLF line endings.
pub fn crlf_only() -> Sample {
    Sample {
        name: "crlf-only",
        raw: b"From: s@example.test\r\nTo: alice@example.org\r\nSubject: empty lines\r\n\r\n\r\n\r\n\r\n".to_vec(),
    }
}

/// LF line endings throughout, no Content-Type, no final newline.
pub fn lf_only() -> Sample {
    Sample {
        name: "lf-only",
        raw: b"From: s@example.test\nTo: alice@example.org\nSubject: unix\n\nline one\nline two without newline".to_vec(),
    }
}

/// Every sample.
pub fn all() -> Vec<Sample> {
    vec![
        plain_ascii(),
        html_with_attachment(),
        utf8_long_lines(),
        crlf_only(),
        lf_only(),
    ]
}

/// Base64 in 76-character CRLF lines.
pub fn base64_lines(data: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = Vec::new();
    for chunk in text.as_bytes().chunks(76) {
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The raw bytes of the first header field `name` in `raw`.
pub fn raw_header<'a>(raw: &'a [u8], name: &str) -> Option<&'a [u8]> {
    sealgate_crypto::mime::Message::parse(raw)
        .header(name)
        .map(|h| h.raw)
}

/// Checks what both methods promise about the outer message: the original
/// outer header fields first, unchanged, then MIME-Version and the new
/// Content-* fields; the original Content-* fields are gone; every line we
/// generated ends in CRLF.
pub fn assert_outer_layout(original: &[u8], encrypted: &[u8]) {
    use sealgate_crypto::mime::Message;
    let orig = Message::parse(original);
    let outer = orig.outer_headers();
    assert!(
        encrypted.starts_with(&outer),
        "outer headers not preserved at the start"
    );
    let rest = &encrypted[outer.len()..];
    assert!(
        rest.starts_with(b"MIME-Version: 1.0\r\n"),
        "MIME-Version does not follow the outer headers"
    );
    let enc = Message::parse(encrypted);
    for name in ["From", "To", "Subject", "Message-ID", "Date"] {
        assert_eq!(
            orig.header(name).map(|h| h.raw),
            enc.header(name).map(|h| h.raw),
            "header {name} changed"
        );
    }
    assert_eq!(
        enc.headers()
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("MIME-Version"))
            .count(),
        1
    );
    assert!(enc.is_encrypted(), "output is not recognised as encrypted");
    // Everything after the original outer headers is ours: CRLF only.
    for (i, &b) in rest.iter().enumerate() {
        if b == b'\n' {
            assert!(
                i > 0 && rest[i - 1] == b'\r',
                "bare LF in generated part at offset {i}"
            );
        }
    }
}
