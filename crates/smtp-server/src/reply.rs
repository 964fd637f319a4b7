//! SMTP replies.
//!
//! Every answer the listener gives, and every answer the [`Handler`](crate::Handler)
//! hands back, is a [`Reply`]: a basic code, an RFC 3463 enhanced status code and
//! human-readable text. Keeping it one type means the wire format (including
//! multi-line continuation and CR/LF sanitising) is produced in exactly one place.

use std::fmt;

/// An SMTP reply: code, enhanced status code (RFC 3463), text.
///
/// `Display` renders the wire form without the final CRLF, e.g. `550 5.7.1 text`.
/// Text containing line breaks becomes a multi-line reply
/// (`550-5.7.1 first` / `550 5.7.1 last`), lines joined by CRLF. Stray CR
/// characters are dropped so a reply can never inject extra lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Basic reply code (RFC 5321 §4.2), e.g. 250.
    pub code: u16,
    /// Enhanced status code (class, subject, detail), e.g. `(2, 1, 5)`.
    pub status: (u8, u16, u16),
    /// Human-readable text; may contain `\n` for a multi-line reply.
    pub text: String,
}

impl Reply {
    /// Builds a reply.
    pub fn new(code: u16, status: (u8, u16, u16), text: impl Into<String>) -> Self {
        Reply {
            code,
            status,
            text: text.into(),
        }
    }

    /// 2xx or 3xx.
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    /// 4xx: the client may try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: permanent failure.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (class, subject, detail) = self.status;
        let lines: Vec<&str> = self.text.split('\n').collect();
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let clean: String = line.chars().filter(|&c| c != '\r').collect();
            write!(f, "{}{sep}{class}.{subject}.{detail}", self.code)?;
            if !clean.is_empty() {
                write!(f, " {clean}")?;
            }
            if i != last {
                f.write_str("\r\n")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line() {
        let r = Reply::new(550, (5, 7, 1), "Relay access denied");
        assert_eq!(r.to_string(), "550 5.7.1 Relay access denied");
        assert!(!r.is_positive() && !r.is_transient() && r.is_permanent());
    }

    #[test]
    fn multi_line_and_injection() {
        let r = Reply::new(451, (4, 3, 0), "first\r\nsecond\nthird");
        assert_eq!(
            r.to_string(),
            "451-4.3.0 first\r\n451-4.3.0 second\r\n451 4.3.0 third"
        );
        assert!(r.is_transient());
        assert!(Reply::new(354, (2, 0, 0), "go").is_positive());
    }
}
