//! Header protection (RFC 9788, `hp="cipher"`), read by Thunderbird too
//! (`protected-headers="v1"`).
//!
//! A client that did not protect its headers leaves the Subject in the clear
//! on every hop. With header protection on, the entity that gets encrypted
//! carries the real header fields (every non-structural field of the
//! message: From, To, Cc, Date, Message-ID, Reply-To, In-Reply-To,
//! References, Subject and the rest; not the trace fields) in front of its
//! own `Content-*` fields, and the outer header shows an obscured Subject
//! (`[...]` by default, as RFC 9788's `hcp_baseline` does). The other
//! fields stay outside too, unchanged, since transport and threading need
//! them; one inner `HP-Outer` field per outer field says what the outside
//! showed, so that a receiver can tell which fields were confidential.
//!
//! Invariant 6 holds: the entity's `Content-*` fields and body keep every
//! byte. The root `Content-Type` field gets the two parameters appended in
//! front of its line ending, and the protected fields are added in front of
//! the `Content-*` fields.

use super::header::{self, Header};
use super::Parts;

/// Trace fields (RFC 5321 §4.4): they describe the transport, stay
/// outside only and get no `HP-Outer` record.
pub const TRACE_FIELDS: &[&str] = &["Received", "Return-Path"];

/// The parameters added to the root `Content-Type` of the encrypted entity.
const PARAMETERS: &str = "; hp=\"cipher\"; protected-headers=\"v1\"";

impl Parts {
    /// These parts with their headers protected: every outer field but the
    /// [`TRACE_FIELDS`] copied into the inner entity (raw, in order), one
    /// `HP-Outer` field for each as the outer header shows it, and each
    /// outer `Subject` replaced by one `Subject: {outer_subject}`.
    ///
    /// `outer_subject` must be one line of printable US-ASCII (the policy
    /// checks it); anything else is replaced by `[...]`. An entity whose
    /// `Content-Type` already has an `hp` parameter (the client protected
    /// its headers itself) is left as it is.
    pub fn protect_headers(&self, outer_subject: &str) -> Parts {
        let outer_subject = if is_header_text(outer_subject) {
            outer_subject
        } else {
            "[...]"
        };
        let head = header::split(&self.entity_head);
        let content_type = head
            .headers
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case("Content-Type"));
        if let Some(i) = content_type {
            let value = super::header_value_unfolded(&head.headers[i]);
            if super::content_type::ContentType::parse(&value)
                .param("hp")
                .is_some()
            {
                return self.clone();
            }
        }
        let eol: &[u8] = if self.entity_head.ends_with(b"\r\n") || self.entity_head.is_empty() {
            b"\r\n"
        } else {
            b"\n"
        };

        let outer_fields = header::split(&self.outer_headers).headers;
        let protected =
            |h: &Header<'_>| !TRACE_FIELDS.iter().any(|n| h.name.eq_ignore_ascii_case(n));
        let is_subject = |h: &Header<'_>| h.name.eq_ignore_ascii_case("Subject");

        let mut outer = Vec::with_capacity(self.outer_headers.len());
        let mut inner = Vec::with_capacity(self.entity_head.len() + 2 * self.outer_headers.len());
        let mut hp_outer = Vec::new();
        let mut subject_written = false;
        for h in &outer_fields {
            if protected(h) {
                inner.extend_from_slice(h.raw);
                if !h.raw.ends_with(b"\n") {
                    inner.extend_from_slice(eol);
                }
            }
            if is_subject(h) {
                // One obscured Subject outside, whatever the original had.
                if !subject_written {
                    let line = format!("Subject: {outer_subject}");
                    outer.extend_from_slice(line.as_bytes());
                    outer.extend_from_slice(field_end(h.raw, eol));
                    hp_outer.extend_from_slice(b"HP-Outer: ");
                    hp_outer.extend_from_slice(line.as_bytes());
                    hp_outer.extend_from_slice(eol);
                    subject_written = true;
                }
                continue;
            }
            outer.extend_from_slice(h.raw);
            if protected(h) {
                hp_outer.extend_from_slice(b"HP-Outer: ");
                hp_outer.extend_from_slice(h.raw);
                if !h.raw.ends_with(b"\n") {
                    hp_outer.extend_from_slice(eol);
                }
            }
        }
        inner.extend_from_slice(&hp_outer);

        // The entity's own fields, every byte kept; the parameters go at
        // the end of the root Content-Type (or a Content-Type is added).
        match content_type {
            Some(i) => {
                for (j, h) in head.headers.iter().enumerate() {
                    if j == i {
                        let end = field_end(h.raw, eol);
                        inner.extend_from_slice(&h.raw[..h.raw.len() - end.len()]);
                        inner.extend_from_slice(PARAMETERS.as_bytes());
                        inner.extend_from_slice(end);
                    } else {
                        inner.extend_from_slice(h.raw);
                    }
                }
            }
            None => {
                inner.extend_from_slice(b"Content-Type: text/plain; charset=us-ascii");
                inner.extend_from_slice(PARAMETERS.as_bytes());
                inner.extend_from_slice(eol);
                for h in &head.headers {
                    inner.extend_from_slice(h.raw);
                }
            }
        }
        // The separator line (and, when the head had no fields, the rest).
        inner.extend_from_slice(head.separator);
        inner.extend_from_slice(head.body);

        Parts {
            outer_headers: outer,
            entity_head: inner,
            body: self.body.clone(),
        }
    }
}

/// The line ending a field ends with (`eol` when it has none: the message
/// ended inside it).
fn field_end<'a>(raw: &'a [u8], eol: &'a [u8]) -> &'a [u8] {
    if raw.ends_with(b"\r\n") {
        &raw[raw.len() - 2..]
    } else if raw.ends_with(b"\n") {
        &raw[raw.len() - 1..]
    } else {
        eol
    }
}

/// One line of printable US-ASCII, at most 200 characters: what may stand
/// in a header field as written.
pub fn is_header_text(s: &str) -> bool {
    !s.is_empty() && s.len() <= 200 && s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protected(message: &[u8]) -> (String, String) {
        let p = Parts::of(message).protect_headers("[...]");
        (
            String::from_utf8(p.outer_headers.clone()).unwrap(),
            String::from_utf8(p.inner_entity()).unwrap(),
        )
    }

    #[test]
    fn subject_moves_inside_and_the_entity_keeps_its_bytes() {
        let msg = b"Received: from x by y; Mon, 7 Dec 2026 10:00:01 +0000\r\nFrom: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: Quarterly numbers\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nX-Mailer: test\r\nMIME-Version: 1.0\r\nContent-Type: text/plain;\r\n charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nbody line\r\n";
        let (outer, inner) = protected(msg);
        assert_eq!(
            outer,
            "Received: from x by y; Mon, 7 Dec 2026 10:00:01 +0000\r\nFrom: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: [...]\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nX-Mailer: test\r\n"
        );
        assert_eq!(
            inner,
            "From: Alice <alice@example.com>\r\nTo: bob@example.net\r\nSubject: Quarterly numbers\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\nX-Mailer: test\r\n\
             HP-Outer: From: Alice <alice@example.com>\r\nHP-Outer: To: bob@example.net\r\nHP-Outer: Subject: [...]\r\nHP-Outer: Date: Mon, 7 Dec 2026 10:00:00 +0000\r\nHP-Outer: Message-ID: <1@example.com>\r\nHP-Outer: X-Mailer: test\r\n\
             Content-Type: text/plain;\r\n charset=utf-8; hp=\"cipher\"; protected-headers=\"v1\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\nbody line\r\n"
        );
        // The original entity is a suffix of the new one, but for the
        // appended parameters.
        let original = String::from_utf8(Parts::of(msg).inner_entity()).unwrap();
        assert_eq!(
            inner[inner.find("Content-Type").unwrap()..].replace(PARAMETERS, ""),
            original
        );
    }

    #[test]
    fn no_content_type_gets_the_default_one_and_lf_stays_lf() {
        let (outer, inner) = protected(b"Subject: hi\nFrom: a@example.com\n\nbody\n");
        assert_eq!(outer, "Subject: [...]\nFrom: a@example.com\n");
        assert_eq!(
            inner,
            "Subject: hi\nFrom: a@example.com\nHP-Outer: Subject: [...]\nHP-Outer: From: a@example.com\nContent-Type: text/plain; charset=us-ascii; hp=\"cipher\"; protected-headers=\"v1\"\n\nbody\n"
        );
    }

    #[test]
    fn already_protected_entity_is_left_alone() {
        let msg = b"Subject: [...]\r\nContent-Type: text/plain; hp=\"cipher\"\r\n\r\nx\r\n";
        let p = Parts::of(msg);
        assert_eq!(p.protect_headers("[...]"), p);
    }

    #[test]
    fn a_bad_outer_subject_falls_back_and_several_subjects_become_one() {
        let (outer, inner) = protected(b"Subject: one\r\nSubject: two\r\n\r\nx");
        assert_eq!(outer, "Subject: [...]\r\n");
        assert!(inner.starts_with("Subject: one\r\nSubject: two\r\nHP-Outer: Subject: [...]\r\n"));
        let p = Parts::of(b"Subject: s\r\n\r\nx").protect_headers("evil\r\nBcc: x");
        assert_eq!(p.outer_headers, b"Subject: [...]\r\n");
        assert!(is_header_text("[encrypted]"));
        assert!(!is_header_text("a\u{7f}"));
    }
}
