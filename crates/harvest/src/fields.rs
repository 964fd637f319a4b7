//! The attribute lists of the `OpenPGP:` and `Autocrypt:` header fields
//! (`name=value; name=value`), read the same strict way for both.
//!
//! Both fields come from the sender, unsigned (Autocrypt is vouched for by
//! DKIM at best), so the reader is paranoid: a field longer than
//! [`MAX_FIELD_BYTES`], an attribute without `=`, a name that is not a token
//! or a name given twice makes the whole field unreadable; the caller then
//! learns nothing from it. Values may be quoted (`url="https://…"`).

/// Longest field value read (an Autocrypt key is a few KiB of base64).
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

/// Most attributes in one field.
const MAX_ATTRIBUTES: usize = 32;

/// The attributes of a field value, names lower-cased, values unquoted and
/// trimmed, in order.
pub fn attributes(value: &str) -> Result<Vec<(String, String)>, String> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(format!("the field is larger than {MAX_FIELD_BYTES} bytes"));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for item in split_unquoted(value)? {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some((name, raw)) = item.split_once('=') else {
            return Err(format!("attribute {:?} has no value", shorten(item)));
        };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("{:?} is not an attribute name", shorten(&name)));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("attribute {name} is given twice"));
        }
        if out.len() >= MAX_ATTRIBUTES {
            return Err(format!("more than {MAX_ATTRIBUTES} attributes"));
        }
        out.push((name, unquote(raw.trim())?));
    }
    Ok(out)
}

/// The value of attribute `name` (lower case) in `attrs`.
pub fn get<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Splits at `;` outside double quotes.
fn split_unquoted(value: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted {
        return Err("a quoted value is not closed".into());
    }
    out.push(&value[start..]);
    Ok(out)
}

/// A value without its surrounding quotes and backslash escapes.
fn unquote(raw: &str) -> Result<String, String> {
    let Some(inner) = raw.strip_prefix('"') else {
        if raw.contains('"') {
            return Err(format!("stray quote in {:?}", shorten(raw)));
        }
        return Ok(raw.to_string());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return Err(format!("text after a quoted value in {:?}", shorten(raw)));
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' => return Err(format!("stray quote in {:?}", shorten(raw))),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// At most 60 characters of `s`, for messages.
pub(crate) fn shorten(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_quoted_values() {
        let a = attributes(" id=0x12AB; URL=\"https://x.example/k.asc;v=1\" ; preference=sign;")
            .unwrap();
        assert_eq!(
            a,
            vec![
                ("id".to_string(), "0x12AB".to_string()),
                ("url".to_string(), "https://x.example/k.asc;v=1".to_string()),
                ("preference".to_string(), "sign".to_string()),
            ]
        );
        assert_eq!(get(&a, "url"), Some("https://x.example/k.asc;v=1"));
        assert_eq!(get(&a, "addr"), None);
    }

    #[test]
    fn keeps_base64_padding_in_values() {
        let a = attributes("addr=a@b.example; keydata=AAAA BBB=").unwrap();
        assert_eq!(get(&a, "keydata"), Some("AAAA BBB="));
    }

    #[test]
    fn refuses_what_it_cannot_read_surely() {
        for bad in [
            "addr",
            "addr=a@b; addr=c@d",
            "ad dr=x",
            "url=\"https://x",
            "url=\"a\"b",
            "url=a\"b",
            "=x",
        ] {
            assert!(attributes(bad).is_err(), "{bad:?} should be refused");
        }
        let many: String = (0..40).map(|i| format!("a{i}=b;")).collect();
        assert!(attributes(&many).unwrap_err().contains("more than"));
        let big = format!("keydata={}", "A".repeat(MAX_FIELD_BYTES));
        assert!(attributes(&big).unwrap_err().contains("larger than"));
    }
}
