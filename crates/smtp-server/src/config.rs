//! Listener configuration.
//!
//! All limits the listener enforces (invariant 7, "Bounded") and the access and
//! TLS/AUTH settings (invariant 3, "No open relay") live in [`ServerConfig`], so
//! the binary can build it from its TOML file and tests can build it in code.

use std::fmt;
use std::time::Duration;

/// Longest accepted command line (and SASL response line), CRLF included.
///
/// RFC 5321 §4.5.3.1.4 asks for at least 512 octets; 4096 leaves room for long
/// SMTPUTF8 addresses, ESMTP parameters and base64 AUTH data.
pub const MAX_COMMAND_LINE: usize = 4096;

/// What to do with a DATA line that ends in a bare LF instead of CRLF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLf {
    /// Accept the message and turn bare LF into CRLF.
    Normalize,
    /// Refuse the message with `550 5.6.0` after the end of data.
    Reject,
}

/// A user allowed to authenticate with AUTH PLAIN/LOGIN (over TLS only).
#[derive(Clone)]
pub struct AuthUser {
    /// Login name, compared exactly.
    pub name: String,
    /// A hash from [`hash_password`](crate::hash_password).
    pub password_hash: String,
}

impl fmt::Debug for AuthUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthUser")
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// Everything the listener needs to know; shared by all sessions behind an `Arc`.
pub struct ServerConfig {
    /// Used in the greeting, the EHLO reply and the 421 messages.
    pub hostname: String,
    /// Client networks allowed to relay without authentication.
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// Largest accepted message in bytes (after unstuffing); advertised in SIZE.
    pub max_message_size: usize,
    /// Most accepted recipients per transaction; more get `452 4.5.3`.
    pub max_recipients: usize,
    /// Longest DATA line in bytes, CRLF included. Command lines use the fixed
    /// [`MAX_COMMAND_LINE`] instead.
    pub max_line_length: usize,
    /// Concurrent sessions; more get `421 4.3.2`.
    pub max_connections: usize,
    /// Concurrent sessions from one client address (IPv4, or one IPv6
    /// address; IPv4-mapped IPv6 counts as IPv4); more get `421 4.7.0`.
    pub max_connections_per_client: usize,
    /// Failed AUTH attempts per session; the last one is answered `421 4.7.0`
    /// and the session closes. 0 behaves as 1.
    pub max_auth_failures: u32,
    /// Failed AUTH attempts one client address may make per
    /// [`auth_failure_window`](Self::auth_failure_window), over all its
    /// sessions; once they are used up, AUTH gets `454 4.7.0` at once, without
    /// a password check. Checks in progress count against the budget.
    pub auth_failure_limit: usize,
    /// The sliding window of [`auth_failure_limit`](Self::auth_failure_limit).
    pub auth_failure_window: Duration,
    /// Longest wait for a complete command line (and for writing a reply).
    pub command_timeout: Duration,
    /// Longest wait for each read during DATA.
    pub data_timeout: Duration,
    /// Longest time the whole DATA phase may take, however steadily bytes
    /// trickle in (a slow-drip client cannot hold a session slot forever).
    pub data_deadline: Duration,
    /// Treatment of bare LF line endings in DATA.
    pub bare_lf: BareLf,
    /// STARTTLS is offered only when this is set.
    pub tls: Option<openssl::ssl::SslAcceptor>,
    /// AUTH is offered only when this is non-empty and the session is under TLS.
    pub auth_users: Vec<AuthUser>,
    /// Refuse AUTH outside TLS (`538 5.7.11`). Always true in production.
    pub require_auth_over_tls: bool,
    /// At shutdown, how long open sessions may take to finish before they
    /// are cut off.
    pub shutdown_grace: Duration,
    /// Message bytes all sessions together may hold (`smtp.max_inflight_bytes`);
    /// beyond, `452 4.3.1`.
    pub max_inflight_bytes: usize,
    /// Where open sessions are counted (`/metrics`).
    pub metrics: Option<sealgate_metrics::Metrics>,
}

impl ServerConfig {
    /// A configuration with RFC-sized defaults, loopback-only relaying, no TLS
    /// and no AUTH.
    pub fn new(hostname: impl Into<String>) -> Self {
        ServerConfig {
            hostname: hostname.into(),
            allowed_networks: vec![
                "127.0.0.0/8".parse().expect("valid network"),
                "::1/128".parse().expect("valid network"),
            ],
            max_message_size: 52_428_800,
            max_recipients: 1000,
            max_line_length: 4096,
            max_connections: 100,
            max_connections_per_client: 20,
            max_auth_failures: 3,
            auth_failure_limit: 10,
            auth_failure_window: Duration::from_secs(60),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(300),
            data_deadline: Duration::from_secs(1800),
            bare_lf: BareLf::Normalize,
            tls: None,
            auth_users: Vec::new(),
            require_auth_over_tls: true,
            shutdown_grace: Duration::from_secs(30),
            max_inflight_bytes: 512 << 20,
            metrics: None,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig::new("localhost")
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("hostname", &self.hostname)
            .field("allowed_networks", &self.allowed_networks)
            .field("max_message_size", &self.max_message_size)
            .field("max_recipients", &self.max_recipients)
            .field("max_line_length", &self.max_line_length)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_client",
                &self.max_connections_per_client,
            )
            .field("max_auth_failures", &self.max_auth_failures)
            .field("auth_failure_limit", &self.auth_failure_limit)
            .field("auth_failure_window", &self.auth_failure_window)
            .field("command_timeout", &self.command_timeout)
            .field("data_timeout", &self.data_timeout)
            .field("data_deadline", &self.data_deadline)
            .field("bare_lf", &self.bare_lf)
            .field("tls", &self.tls.is_some())
            .field("auth_users", &self.auth_users)
            .field("require_auth_over_tls", &self.require_auth_over_tls)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("max_inflight_bytes", &self.max_inflight_bytes)
            .finish()
    }
}
