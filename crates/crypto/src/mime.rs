//! A raw RFC 5322 message, split into header fields and body without copying.
//!
//! The encryptors need three things from the original message, all as the
//! original bytes: the outer header fields that stay visible, the inner entity
//! (the `Content-*` fields and the body) that gets encrypted, and whether the
//! message is already encrypted. [`Message`] gives exactly those and nothing
//! more: it does not decode, re-encode or re-fold anything, and it accepts any
//! bytes (8-bit, invalid UTF-8, bare LF, garbage) without panicking.

mod content_type;
mod encrypted;
mod header;
pub(crate) mod multipart;
mod protect;

/// A parameter of a structured field such as Content-Disposition (`name`
/// case-insensitive; the value unquoted, RFC 2231 decoded).
pub fn field_param(h: &Header<'_>, name: &str) -> Option<String> {
    let (_, params) = content_type::parse_value(&header_value_unfolded(h));
    params
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// A base64 body decoded, line breaks and other white space ignored.
pub fn decode_base64(body: &[u8]) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let clean: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .map_err(|e| format!("bad base64: {e}"))
}

/// The parts of a multipart body (each part's headers and body, exactly as
/// sent, without the line ending that belongs to the next delimiter), and
/// whether the close delimiter was seen.
pub fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> (Vec<&'a [u8]>, bool) {
    let m = multipart::split(body, boundary);
    (m.parts, m.closed)
}

pub use content_type::ContentType;
pub use header::{header_value_unfolded, Header, HeaderLimitExceeded, HeaderLimits};
pub use protect::{is_header_text, TRACE_FIELDS};

/// The two pieces an encrypted copy is made of, owned so that they can be
/// shared by every copy of a message (and sent to the blocking pool).
///
/// The inner entity is kept as its head (the `Content-*` fields and the
/// separator line, small) and its body. The body is either a copy or, from
/// [`Message::parts_sharing`], a range of the received message itself, so
/// that a large message is not held twice while it is encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The outer header fields, raw, each with its line ending.
    pub outer_headers: Vec<u8>,
    /// The inner entity up to its body: `Content-*` fields and separator.
    entity_head: Vec<u8>,
    body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Owned(Vec<u8>),
    /// `message[offset..]`.
    Shared {
        message: std::sync::Arc<Vec<u8>>,
        offset: usize,
    },
}

impl Parts {
    /// The parts of a whole raw message.
    pub fn of(message: &[u8]) -> Parts {
        Message::parse(message).parts(|_| false)
    }

    /// The entity that gets encrypted ([`Message::inner_entity`]) as two
    /// slices, head then body, for encryptors that stream.
    pub fn inner_entity_slices(&self) -> [&[u8]; 2] {
        let body = match &self.body {
            Body::Owned(b) => b.as_slice(),
            Body::Shared { message, offset } => &message[*offset..],
        };
        [&self.entity_head, body]
    }

    /// Length of the inner entity in bytes.
    pub fn inner_entity_len(&self) -> usize {
        let [h, b] = self.inner_entity_slices();
        h.len() + b.len()
    }

    /// The text of a text/plain entity, decoded from its transfer encoding
    /// (base64, quoted-printable, or none), and its charset (`us-ascii` when
    /// unnamed): what inline PGP encrypts. `None` for any other entity, an
    /// encoding that does not decode, or a charset that is not a plain token.
    pub fn plain_text(&self) -> Option<(Vec<u8>, String)> {
        let head = header::split(&self.entity_head);
        let field = |name: &str| {
            head.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(header_value_unfolded)
        };
        let ct = field("Content-Type")
            .map(|v| ContentType::parse(&v))
            .unwrap_or_else(ContentType::default_text_plain);
        if !ct.mime_type.eq_ignore_ascii_case("text/plain") {
            return None;
        }
        let charset = ct.param("charset").unwrap_or("us-ascii").to_string();
        if charset.is_empty()
            || charset.len() > 64
            || !charset
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:+".contains(&b))
        {
            return None;
        }
        let [_, body] = self.inner_entity_slices();
        let cte = field("Content-Transfer-Encoding")
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let text = match cte.as_str() {
            "" | "7bit" | "8bit" | "binary" => body.to_vec(),
            "base64" => decode_base64(body).ok()?,
            "quoted-printable" => {
                mail_parser::decoders::quoted_printable::quoted_printable_decode(body)?
            }
            _ => return None,
        };
        Some((text, charset))
    }

    /// The inner entity in one buffer (a copy), for encryptors that need
    /// their whole input at once.
    pub fn inner_entity(&self) -> Vec<u8> {
        let [h, b] = self.inner_entity_slices();
        let mut out = Vec::with_capacity(h.len() + b.len());
        out.extend_from_slice(h);
        out.extend_from_slice(b);
        out
    }
}

/// A message split at the first empty line, borrowing the raw bytes.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    raw: &'a [u8],
    headers: Vec<Header<'a>>,
    separator: &'a [u8],
    body: &'a [u8],
}

impl<'a> Message<'a> {
    /// Splits `raw`. The header section ends at the first empty line (`CRLF`
    /// or `LF`). Without an empty line, everything is headers and the body is
    /// empty. If the first line is not a header field (nor empty), there are
    /// no headers and everything is body. A non-field line later in the
    /// header section ends it (the body starts at that line).
    pub fn parse(raw: &'a [u8]) -> Message<'a> {
        let s = header::split(raw);
        Message {
            raw,
            headers: s.headers,
            separator: s.separator,
            body: s.body,
        }
    }

    /// Like [`Message::parse`], but refuses a header section beyond
    /// `limits` (more bytes or fields), having looked at no more of it than
    /// the limits allow.
    pub fn parse_limited(
        raw: &'a [u8],
        limits: HeaderLimits,
    ) -> Result<Message<'a>, HeaderLimitExceeded> {
        let s = header::split_limited(raw, limits)?;
        Ok(Message {
            raw,
            headers: s.headers,
            separator: s.separator,
            body: s.body,
        })
    }

    /// What the encryptors need, computed once per message: the outer
    /// header fields that stay visible ([`Message::outer_headers`]) minus
    /// those `drop` names (the pipeline drops `Bcc`), and the inner entity
    /// (its body copied).
    pub fn parts(&self, drop: impl Fn(&Header<'_>) -> bool) -> Parts {
        Parts {
            outer_headers: self.outer_headers_where(|h| !drop(h)),
            entity_head: self.entity_head(),
            body: Body::Owned(self.body.to_vec()),
        }
    }

    /// [`Message::parts`] without copying the body: `message` must be the
    /// buffer this message was parsed from (else the body is copied after
    /// all), and the parts keep it alive.
    pub fn parts_sharing(
        &self,
        message: &std::sync::Arc<Vec<u8>>,
        drop: impl Fn(&Header<'_>) -> bool,
    ) -> Parts {
        let same =
            std::ptr::eq(message.as_ptr(), self.raw.as_ptr()) && message.len() == self.raw.len();
        let body = if same {
            // The body is always a suffix of the raw message.
            Body::Shared {
                message: message.clone(),
                offset: self.raw.len() - self.body.len(),
            }
        } else {
            Body::Owned(self.body.to_vec())
        };
        Parts {
            outer_headers: self.outer_headers_where(|h| !drop(h)),
            entity_head: self.entity_head(),
            body,
        }
    }

    /// The whole message as given.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// All header fields in order.
    pub fn headers(&self) -> &[Header<'a>] {
        &self.headers
    }

    /// The first header field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&Header<'a>> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
    }

    /// Every address (lower-case, in order) in the header fields named
    /// `names` (`From`, `To`, ...), read as RFC 5322 address lists by
    /// mail-parser (groups, comments, quoted display names); an address
    /// inside a display name or comment is not one.
    pub fn addresses(&self, names: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for h in self
            .headers
            .iter()
            .filter(|h| names.iter().any(|n| h.name.eq_ignore_ascii_case(n)))
        {
            let value = match h.raw.iter().position(|&b| b == b':') {
                Some(i) => &h.raw[i + 1..],
                None => continue,
            };
            let mut stream = mail_parser::parsers::MessageStream::new(value);
            if let mail_parser::HeaderValue::Address(list) = stream.parse_address() {
                for addr in list.iter() {
                    if let Some(a) = addr.address() {
                        out.push(a.to_lowercase());
                    }
                }
            }
        }
        out
    }

    /// The message without the header fields named `names` (any case),
    /// every other byte as it was.
    pub fn without_fields(&self, names: &[&str]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.raw.len());
        for h in &self.headers {
            if !names.iter().any(|n| h.name.eq_ignore_ascii_case(n)) {
                out.extend_from_slice(h.raw);
            }
        }
        out.extend_from_slice(self.separator);
        out.extend_from_slice(self.body);
        out
    }

    /// The body: everything after the empty line that ends the headers.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The parsed `Content-Type`; `text/plain; charset=us-ascii` when absent
    /// or unreadable (RFC 2045).
    pub fn content_type(&self) -> ContentType {
        match self.header("Content-Type") {
            Some(h) => ContentType::parse(&header_value_unfolded(h)),
            None => ContentType::default_text_plain(),
        }
    }

    /// The entity to encrypt: every `Content-*` header field's raw bytes in
    /// original order, then the original separator line (its line ending),
    /// then the body, byte for byte. This is what the recipient gets back
    /// after decryption.
    ///
    /// Only where the original has no separator (no headers at all, a header
    /// section ended by a non-field line, or a message that ends in its
    /// headers) is one line ending added, in the message's own style (LF if
    /// its first line ends in a bare LF, else CRLF), so that the entity
    /// still parses as headers + body; likewise for a last field the message
    /// ends inside of.
    pub fn inner_entity(&self) -> Vec<u8> {
        let mut out = self.entity_head();
        out.extend_from_slice(self.body);
        out
    }

    /// [`Message::inner_entity`] up to the body.
    fn entity_head(&self) -> Vec<u8> {
        let eol = self.line_ending();
        let mut out = Vec::new();
        for h in self.headers.iter().filter(|h| is_content_field(h.name)) {
            out.extend_from_slice(h.raw);
            if !h.raw.ends_with(b"\n") {
                out.extend_from_slice(eol);
            }
        }
        if self.separator.is_empty() {
            out.extend_from_slice(eol);
        } else {
            out.extend_from_slice(self.separator);
            if self.separator == b"\r" {
                // A lone CR at the very end of the input: complete it.
                out.push(b'\n');
            }
        }
        out
    }

    /// The raw bytes of every header field that stays visible on the
    /// encrypted message, in order: all but `Content-*`, `MIME-Version` and
    /// the signatures over the original message ([`is_signature_field`]:
    /// DKIM and ARC), which can no longer verify once the body is replaced.
    /// A field the message ends inside of gets a line ending.
    pub fn outer_headers(&self) -> Vec<u8> {
        self.outer_headers_where(|_| true)
    }

    /// [`Message::outer_headers`], of those fields `keep` accepts.
    fn outer_headers_where(&self, keep: impl Fn(&Header<'_>) -> bool) -> Vec<u8> {
        let eol = self.line_ending();
        let mut out = Vec::new();
        for h in self.headers.iter().filter(|h| {
            !is_content_field(h.name)
                && !h.name.eq_ignore_ascii_case("MIME-Version")
                && !is_signature_field(h.name)
                && keep(h)
        }) {
            out.extend_from_slice(h.raw);
            if !h.raw.ends_with(b"\n") {
                out.extend_from_slice(eol);
            }
        }
        out
    }

    /// `\n` if the first line of the message ends in a bare LF, else `\r\n`.
    fn line_ending(&self) -> &'static [u8] {
        let end = header::line_end(self.raw, 0);
        let first = &self.raw[..end];
        if first.ends_with(b"\n") && !first.ends_with(b"\r\n") {
            b"\n"
        } else {
            b"\r\n"
        }
    }
}

/// `DKIM-Signature` (RFC 6376) and the ARC set (RFC 8617: `ARC-Seal`,
/// `ARC-Message-Signature`, `ARC-Authentication-Results`), any case: they sign
/// the original body and headers, so an encrypted copy drops them. Plain
/// copies keep them byte for byte.
pub fn is_signature_field(name: &str) -> bool {
    [
        "DKIM-Signature",
        "ARC-Seal",
        "ARC-Message-Signature",
        "ARC-Authentication-Results",
    ]
    .iter()
    .any(|n| name.eq_ignore_ascii_case(n))
}

/// `Content-*` fields (any case) belong to the entity, not the envelope.
fn is_content_field(name: &str) -> bool {
    name.len() >= 8 && name.as_bytes()[..8].eq_ignore_ascii_case(b"content-")
}

#[cfg(test)]
mod tests;
