//! What the queue holds: a message's envelope, its copies, and each
//! recipient's state.

use std::fmt;

/// The envelope of a message about to be queued.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The queue id (as in the 250 reply and the logs).
    pub id: String,
    /// Unix milliseconds.
    pub received_at: i64,
    /// RFC 5321 path; `""` is the null sender.
    pub sender: String,
    /// DSN ENVID (RFC 3461).
    pub envid: Option<String>,
    /// DSN RET.
    pub ret: Option<Ret>,
    pub body_8bitmime: bool,
    pub smtputf8: bool,
    /// The client (address and HELO name), for Received-From-MTA.
    pub client: String,
    pub kind: MessageKind,
}

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// Mail a client handed over.
    Mail,
    /// A delivery status notification sealgate generated: it never gets one.
    Dsn,
    /// Mail from outside for the organisation, taken on the incoming
    /// listener: relayed unchanged to `incoming.upstream`.
    Incoming,
}

impl MessageKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MessageKind::Mail => "mail",
            MessageKind::Dsn => "dsn",
            MessageKind::Incoming => "incoming",
        }
    }

    /// Whether its sender gets delivery status notifications (all mail but
    /// the notifications themselves).
    pub fn reported(self) -> bool {
        self != MessageKind::Dsn
    }

    /// Which upstream it goes to: incoming mail to `incoming.upstream`,
    /// everything else (DSNs for incoming mail too: they go out to its
    /// sender) to `relay.upstream`.
    pub(crate) fn incoming(self) -> bool {
        self == MessageKind::Incoming
    }

    pub(crate) fn parse(s: &str) -> MessageKind {
        if s == "dsn" {
            MessageKind::Dsn
        } else if s == "incoming" {
            MessageKind::Incoming
        } else {
            MessageKind::Mail
        }
    }
}

/// DSN RET (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

impl Ret {
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }

    pub fn parse(s: &str) -> Option<Ret> {
        match s {
            "FULL" => Some(Ret::Full),
            "HDRS" => Some(Ret::Hdrs),
            _ => None,
        }
    }
}

/// One copy built from a message, with the recipients it is for.
#[derive(Debug, Clone)]
pub struct NewCopy {
    /// `pgp`, `smime`, `plain`, `pass-through` or `dsn`.
    pub method: String,
    pub recipients: Vec<NewRecipient>,
    /// The bytes to send, CRLF line endings.
    pub data: Vec<u8>,
}

/// A recipient of a copy.
#[derive(Debug, Clone)]
pub struct NewRecipient {
    /// Position in the original envelope.
    pub seq: u32,
    pub address: String,
    /// DSN ORCPT as given (`rfc822;a@example.org`).
    pub orcpt: Option<String>,
    /// DSN NOTIFY as given (`NEVER`, or `SUCCESS,FAILURE,DELAY` in any
    /// subset); `None` is the default (failure and delay).
    pub notify: Option<String>,
}

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not tried yet.
    Queued,
    /// Tried, failed for now; waiting for its next attempt.
    Deferred,
    Delivered,
    /// Failed for good; its sender got (or will not get) a DSN.
    Failed,
    /// Kept aside by `sealgate queue hold` until released.
    Held,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Deferred => "deferred",
            State::Delivered => "delivered",
            State::Failed => "failed",
            State::Held => "held",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "queued" => State::Queued,
            "deferred" => State::Deferred,
            "delivered" => State::Delivered,
            "failed" => State::Failed,
            "held" => State::Held,
            _ => return None,
        })
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a recipient's NOTIFY asks for this kind of report. No NOTIFY is
/// "FAILURE,DELAY" (RFC 3461 §4.1).
pub fn wants(notify: Option<&str>, what: &str) -> bool {
    match notify {
        None => what != "SUCCESS",
        Some(n) => n.split(',').any(|k| k.trim().eq_ignore_ascii_case(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::wants;

    #[test]
    fn notify_defaults_to_failure_and_delay() {
        assert!(wants(None, "FAILURE"));
        assert!(wants(None, "DELAY"));
        assert!(!wants(None, "SUCCESS"));
        assert!(!wants(Some("NEVER"), "FAILURE"));
        assert!(wants(Some("SUCCESS,FAILURE"), "FAILURE"));
        assert!(!wants(Some("SUCCESS,FAILURE"), "DELAY"));
    }
}
