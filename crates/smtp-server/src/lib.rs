//! The inbound SMTP listener of sealgate.
//!
//! Role in the flow: sending MTAs and applications connect here. This crate
//! speaks ESMTP (RFC 5321 with PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
//! ENHANCEDSTATUSCODES, STARTTLS and AUTH PLAIN/LOGIN), enforces the limits
//! and the relay access rule, and hands each recipient and each complete
//! message to a [`Handler`] (the pipeline), whose [`Reply`] goes back to the
//! client. It knows nothing about encryption.
//!
//! Map of the crate:
//! * [`serve`] (`listener.rs`): accept loop, connection limits, shutdown;
//! * `anvil.rs`: per-client counters (sessions, AUTH failures);
//! * `session.rs`: the per-connection state machine;
//! * `address.rs`: MAIL/RCPT paths read and kept in RFC 5321 form;
//! * `line.rs`: buffered I/O with bounded command lines;
//! * `data.rs`: DATA decoding (dot-unstuffing, bare LF, NUL, size, line length,
//!   SMTP smuggling defence);
//! * `stream.rs`: plain/TLS stream; `auth.rs`: SASL and password hashes;
//!   `access.rs`: network allow-list; `config.rs`, `reply.rs`, `handler.rs`:
//!   the public types.

mod access;
mod address;
mod anvil;
mod auth;
mod budget;
mod config;
mod data;
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod line;
mod listener;
mod reply;
mod session;
mod stream;

pub use auth::{hash_password, verify_password};
pub use config::{AuthUser, BareLf, ServerConfig, MAX_COMMAND_LINE};
pub use handler::{ClientInfo, DsnRet, Envelope, Handler, Recipient};
pub use listener::serve;
pub use reply::Reply;
