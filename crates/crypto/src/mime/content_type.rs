//! Parsing a `Content-Type` (or `Content-Disposition`) field value.
//!
//! Needed to recognise mail that is already encrypted (by media type and the
//! `smime-type`, `name` and `filename` parameters). The parser is lenient and
//! total: it accepts comments, quoted strings and RFC 2231 parameter
//! continuations, and falls back to `text/plain` on anything it cannot read.

/// A parsed `Content-Type` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// `type/subtype`, lowercase.
    pub mime_type: String,
    /// Parameters in order; names lowercase, values unquoted (RFC 2231
    /// encoded values percent-decoded, continuations joined).
    pub params: Vec<(String, String)>,
}

impl ContentType {
    /// The RFC 2045 default for a missing or unreadable Content-Type:
    /// `text/plain; charset=us-ascii`.
    pub fn default_text_plain() -> ContentType {
        ContentType {
            mime_type: "text/plain".to_string(),
            params: vec![("charset".to_string(), "us-ascii".to_string())],
        }
    }

    /// Parses a field value (unfolded). Invalid media types give the default.
    pub fn parse(value: &str) -> ContentType {
        let (media, params) = parse_value(value);
        let media = media.to_ascii_lowercase();
        let valid = match media.split_once('/') {
            Some((t, s)) => is_token(t) && is_token(s),
            None => false,
        };
        if !valid {
            return ContentType::default_text_plain();
        }
        ContentType {
            mime_type: media,
            params,
        }
    }

    /// The value of parameter `name` (case-insensitive), first occurrence.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits a structured value `main; a=b; c="d"` into its main token (for
/// Content-Type the media type, for Content-Disposition the disposition) and
/// its parameters (names lowercase, values unquoted, RFC 2231 decoded).
pub(crate) fn parse_value(value: &str) -> (String, Vec<(String, String)>) {
    let cleaned = strip_comments(value);
    let mut parts = split_semicolons(&cleaned).into_iter();
    let main = parts.next().unwrap_or_default().trim().to_string();
    let mut raw_params: Vec<(String, String)> = Vec::new();
    for part in parts {
        let Some((name, val)) = part.split_once('=') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            continue;
        }
        raw_params.push((name, unquote(val.trim())));
    }
    (main, rfc2231(raw_params))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| (33..=126).contains(&b) && !b"()<>@,;:\\\"/[]?=".contains(&b))
}

/// Removes `(comments)` outside quoted strings (nesting and escapes honoured).
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_quote || depth > 0 => {
                let next = chars.next();
                if depth == 0 {
                    out.push(c);
                    if let Some(n) = next {
                        out.push(n);
                    }
                }
            }
            '"' if depth == 0 => {
                in_quote = !in_quote;
                out.push(c);
            }
            '(' if !in_quote => depth += 1,
            ')' if !in_quote && depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// Splits at semicolons outside quoted strings.
fn split_semicolons(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_quote => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                in_quote = !in_quote;
                cur.push(c);
            }
            ';' if !in_quote => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

/// `"a \"b\""` -> `a "b"`; unquoted values are returned as they are.
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"') else {
        return v.to_string();
    };
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// One RFC 2231 piece of a parameter: (index, percent-encoded?, value).
type Piece = (u32, bool, String);

/// Applies RFC 2231: joins `name*0`, `name*1*`, ... continuations and decodes
/// `name*=charset'lang'%xx` values. Plain parameters pass through unchanged.
/// Linear in the number of parameters (up to the sort of each name's
/// pieces): names are looked up in hash maps, never by scanning.
fn rfc2231(raw: Vec<(String, String)>) -> Vec<(String, String)> {
    use std::collections::{HashMap, HashSet};
    let mut out: Vec<(String, String)> = Vec::new();
    // Per base name, in order of first appearance: its pieces.
    let mut pieces: Vec<(String, Vec<Piece>)> = Vec::new();
    let mut piece_index: HashMap<String, usize> = HashMap::new();
    for (name, value) in raw {
        let (stem, encoded) = match name.strip_suffix('*') {
            Some(s) => (s.to_string(), true),
            None => (name.clone(), false),
        };
        let (base, index) = match stem.rsplit_once('*') {
            Some((b, i)) if !i.is_empty() && i.bytes().all(|c| c.is_ascii_digit()) => {
                (b.to_string(), i.parse::<u32>().ok())
            }
            _ => (stem.clone(), None),
        };
        match (index, encoded) {
            (None, false) => out.push((name, value)),
            (index, _) => {
                let index = index.unwrap_or(0);
                match piece_index.get(&base) {
                    Some(&i) => pieces[i].1.push((index, encoded, value)),
                    None => {
                        piece_index.insert(base.clone(), pieces.len());
                        pieces.push((base, vec![(index, encoded, value)]));
                    }
                }
            }
        }
    }
    let mut plain_names: HashSet<String> = out.iter().map(|(n, _)| n.clone()).collect();
    for (base, mut parts) in pieces {
        parts.sort_by_key(|(i, _, _)| *i);
        let mut bytes = Vec::new();
        for (n, (_, encoded, value)) in parts.iter().enumerate() {
            if *encoded {
                let mut v = value.as_str();
                if n == 0 {
                    // charset'language'value
                    let mut it = v.splitn(3, '\'');
                    if let (Some(_), Some(_), Some(rest)) = (it.next(), it.next(), it.next()) {
                        v = rest;
                    }
                }
                bytes.extend(percent_decode(v));
            } else {
                bytes.extend_from_slice(value.as_bytes());
            }
        }
        if plain_names.insert(base.clone()) {
            out.push((base, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}
