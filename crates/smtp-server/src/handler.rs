//! The seam between the listener and the rest of sealgate.
//!
//! The listener speaks SMTP; what happens to recipients and messages is decided
//! by a [`Handler`] (the pipeline). The listener calls it once per accepted
//! RCPT TO and once per complete message, and sends whatever [`Reply`] it
//! returns, so "250 only when durable" (invariant 1) is the handler's call.

use crate::Reply;

/// Who is talking to us in a session.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Remote address of the TCP connection.
    pub peer: std::net::SocketAddr,
    /// The HELO/EHLO argument ("" before the client greeted).
    pub helo: String,
    /// The client greeted with EHLO (ESMTP), not HELO.
    pub esmtp: bool,
    /// Whether the session is under TLS (after STARTTLS).
    pub tls: bool,
    /// The AUTH identity, when the client authenticated.
    pub authenticated_as: Option<String>,
}

/// One accepted recipient and the handler's per-recipient state for it.
#[derive(Debug)]
pub struct Recipient<T> {
    /// The RCPT TO address, without angle brackets, in RFC 5321 form (see
    /// `address.rs`): a local part that is not a dot-atom stays quoted
    /// (`"a b"@example.org`), so the domain is what follows the last `@`;
    /// `postmaster` (RFC 5321 §4.5.1) has no domain.
    pub address: String,
    /// What [`Handler::recipient`] returned for it.
    pub token: T,
    /// DSN NOTIFY (RFC 3461 §4.1): `NEVER`, or a comma-separated subset of
    /// `SUCCESS,FAILURE,DELAY` in that order; `None` when not given.
    pub notify: Option<String>,
    /// DSN ORCPT (RFC 3461 §4.2), xtext-decoded, as `rfc822;ADDRESS`; never
    /// holds a control character.
    pub orcpt: Option<String>,
}

/// The envelope of one message, handed to [`Handler::message`].
#[derive(Debug)]
pub struct Envelope<T> {
    /// The session's client at the end of DATA.
    pub client: ClientInfo,
    /// MAIL FROM address in the same RFC 5321 form; `""` is the null sender
    /// `<>`.
    pub sender: String,
    /// Accepted recipients, in RCPT order.
    pub recipients: Vec<Recipient<T>>,
    /// MAIL FROM carried BODY=8BITMIME.
    pub body_8bitmime: bool,
    /// MAIL FROM carried SMTPUTF8.
    pub smtputf8: bool,
    /// DSN RET (RFC 3461 §4.3).
    pub ret: Option<DsnRet>,
    /// DSN ENVID (RFC 3461 §4.4), xtext-decoded; never holds a control
    /// character.
    pub envid: Option<String>,
}

/// What a DSN should return of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnRet {
    Full,
    Hdrs,
}

/// What the listener hands each transaction to (the pipeline implements this).
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Per-recipient state decided at RCPT time and handed back with the message.
    type Token: Send + Sync + 'static;

    /// Called at MAIL FROM, before anything else of the transaction:
    /// `Err(reply)` refuses the transaction (e.g. `452 4.3.1` while the queue
    /// is short of disk). The default takes every transaction.
    async fn transaction(&self, _client: &ClientInfo, _sender: &str) -> Result<(), Reply> {
        Ok(())
    }

    /// Called for each RCPT TO after the access check passed. `Err(reply)`
    /// refuses this recipient only.
    async fn recipient(
        &self,
        client: &ClientInfo,
        sender: &str,
        address: &str,
    ) -> Result<Self::Token, Reply>;

    /// Called once per message after end of DATA with the unstuffed message
    /// bytes (CRLF line endings). The returned reply is sent to the client as
    /// the DATA reply.
    async fn message(&self, envelope: Envelope<Self::Token>, data: Vec<u8>) -> Reply;
}
