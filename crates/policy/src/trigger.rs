//! Encrypt-by-subject (CipherMail's trigger), read for the sender: a
//! message whose Subject matches `trigger_subject` (a regular expression,
//! e.g. `\[(secure|encrypt)\]`), or that carries the header field
//! `trigger_header` (`X-Encrypt: yes`), is mandatory for every recipient.
//! The matched text is removed from the Subject unless
//! `trigger_keep_subject`. The Subject is known only at DATA, after every
//! RCPT was answered, so a triggered recipient without a key goes through
//! its `no_key_action` then: `hold` holds it, `bounce` and `reject` bounce
//! it (never plaintext).
//!
//! The regex crate matches in linear time, and patterns are bounded in
//! size: a pattern cannot make the gateway spend more than linear CPU per
//! Subject.

use regex::{Regex, RegexBuilder};

/// Largest compiled pattern.
const SIZE_LIMIT: usize = 1 << 20;

/// `pattern` compiled, case-insensitively; the error says why not.
pub fn compile(pattern: &str) -> Result<Regex, String> {
    if pattern.is_empty() {
        return Err("an empty pattern would match every Subject".into());
    }
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| format!("not a regular expression: {e}"))
}

/// `Name: value` split (name trimmed, value trimmed and lower-cased).
pub fn header_rule(rule: &str) -> Result<(String, String), String> {
    let Some((name, value)) = rule.split_once(':') else {
        return Err(format!("{rule:?} is not \"Name: value\""));
    };
    let name = name.trim();
    if name.is_empty() || !name.bytes().all(|b| (33..=126).contains(&b) && b != b':') {
        return Err(format!("{name:?} is not a header field name"));
    }
    Ok((name.to_string(), value.trim().to_lowercase()))
}

/// What the trigger of a sender's policy says about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggered {
    /// Why, for the log: `subject matched "[secure]"` or `header X-Encrypt`.
    pub why: String,
    /// The Subject without the matched text, when it is to be cleaned.
    pub clean_subject: Option<String>,
}

/// Whether the sender's trigger fires on a message with this `subject`
/// (unfolded, as written) and these header fields (name, unfolded value).
pub fn fires(
    subject_re: Option<&Regex>,
    header: Option<&(String, String)>,
    keep_subject: bool,
    subject: Option<&str>,
    fields: &[(String, String)],
) -> Option<Triggered> {
    if let (Some(re), Some(s)) = (subject_re, subject) {
        if let Some(m) = re.find(s) {
            let clean = (!keep_subject).then(|| {
                let mut out = String::with_capacity(s.len());
                out.push_str(&s[..m.start()]);
                out.push_str(&s[m.end()..]);
                out.split_whitespace().collect::<Vec<_>>().join(" ")
            });
            return Some(Triggered {
                why: format!("subject matched {:?}", m.as_str()),
                clean_subject: clean,
            });
        }
    }
    if let Some((name, value)) = header {
        if fields
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && v.trim().to_lowercase() == *value)
        {
            return Some(Triggered {
                why: format!("header {name}"),
                clean_subject: None,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_triggers_and_is_cleaned() {
        let re = compile(r"\[(secure|encrypt)\]").unwrap();
        let t = fires(
            Some(&re),
            None,
            false,
            Some("Re: [SECURE]  numbers  Q3"),
            &[],
        )
        .unwrap();
        assert_eq!(t.clean_subject.as_deref(), Some("Re: numbers Q3"));
        assert!(t.why.contains("[SECURE]"));
        let kept = fires(Some(&re), None, true, Some("[secure] x"), &[]).unwrap();
        assert_eq!(kept.clean_subject, None);
        assert_eq!(fires(Some(&re), None, false, Some("secure x"), &[]), None);
        assert_eq!(fires(Some(&re), None, false, None, &[]), None);
    }

    #[test]
    fn header_triggers() {
        let rule = header_rule("X-Encrypt: Yes").unwrap();
        let f = |n: &str, v: &str| vec![(n.to_string(), v.to_string())];
        assert!(fires(None, Some(&rule), false, None, &f("x-encrypt", " YES ")).is_some());
        assert!(fires(None, Some(&rule), false, None, &f("X-Encrypt", "no")).is_none());
        assert!(header_rule("no colon").is_err());
        assert!(header_rule(": v").is_err());
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(compile("").is_err());
        assert!(compile("(unclosed")
            .unwrap_err()
            .contains("not a regular expression"));
        assert!(compile(&"a{1000}{1000}".repeat(3)).is_err());
    }
}
