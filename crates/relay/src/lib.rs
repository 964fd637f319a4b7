//! Relay: hands finished messages to the upstream MTA.
//!
//! The last stage of the flow. The pipeline gives it one message per recipient
//! group (sender, recipients, bytes, and whether the original transaction used
//! 8BITMIME/SMTPUTF8) and gets back a verdict per recipient: accepted, failed
//! for now (4xx, timeout, network, TLS), or failed for good (5xx). Its caller
//! is the durable queue's delivery workers (`crates/queue`), behind the
//! [`Relay`] trait. `client.rs` is the SMTP client itself (our own, for
//! control over its read buffer at STARTTLS and over every timeout); `smtp.rs`
//! drives one transaction per copy with it, over kept connections.

mod client;
mod config;
mod smtp;

pub use config::{RelayConfig, TlsMode};
pub use smtp::SmtpRelay;

/// One message to relay. `sender` and `recipients` must be RFC 5321 paths
/// (the listener's form); anything else is refused before it is written
/// (`smtp::check_path`).
#[derive(Debug, Clone, Copy)]
pub struct Outbound<'a> {
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub body_8bitmime: bool,
    pub smtputf8: bool,
    pub data: &'a [u8],
    /// The DSN requests of the original transaction (RFC 3461): passed on
    /// when the upstream offers DSN.
    pub dsn: Option<DsnParams<'a>>,
}

/// DSN parameters to pass on; `notify` and `orcpt` run parallel to
/// `Outbound::recipients`.
#[derive(Debug, Clone, Copy)]
pub struct DsnParams<'a> {
    /// `FULL` or `HDRS`.
    pub ret: Option<&'a str>,
    pub envid: Option<&'a str>,
    /// `NEVER` or a subset of `SUCCESS,FAILURE,DELAY`.
    pub notify: &'a [Option<String>],
    /// `rfc822;ADDRESS`.
    pub orcpt: &'a [Option<String>],
}

/// What the upstream said about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Accepted,
    /// Accepted by an upstream that does not offer DSN, for a recipient who
    /// asked for a success notice (NOTIFY=SUCCESS): RFC 3461 §4.1 makes
    /// that notice ours to send ("relayed").
    Relayed,
    /// Try again later: a 4xx reply, a timeout or a connection/TLS failure.
    Transient(String),
    /// A 5xx reply.
    Permanent(String),
}

impl Delivery {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Delivery::Accepted | Delivery::Relayed)
    }
}

/// Sends messages somewhere; returns one [`Delivery`] per recipient, in order.
#[async_trait::async_trait]
pub trait Relay: Send + Sync {
    async fn send(&self, message: Outbound<'_>) -> Vec<Delivery>;
}

/// The first RFC 3463 enhanced status code (`5.1.1`) in an upstream's reply
/// text, if any.
pub fn enhanced_status(text: &str) -> Option<(u8, u16, u16)> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find_map(|word| {
            let mut it = word.split('.');
            let (a, b, c) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some()
                || a.len() != 1
                || b.is_empty()
                || b.len() > 3
                || c.is_empty()
                || c.len() > 3
            {
                return None;
            }
            let class: u8 = a.parse().ok()?;
            matches!(class, 2 | 4 | 5).then_some(())?;
            Some((class, b.parse().ok()?, c.parse().ok()?))
        })
}

#[cfg(test)]
mod tests {
    use super::enhanced_status;

    #[test]
    fn enhanced_status_codes_are_found_in_upstream_texts() {
        assert_eq!(
            enhanced_status("RCPT TO: permanent error (550): 5.1.1 no such user"),
            Some((5, 1, 1))
        );
        assert_eq!(enhanced_status("550 no such user at 10.0.0.1"), None);
        assert_eq!(enhanced_status("v1.2.3 or 5.7.26"), Some((5, 7, 26)));
        assert_eq!(enhanced_status(""), None);
    }
}
