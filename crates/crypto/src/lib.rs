//! The encryption stage of sealgate.
//!
//! By the time a message reaches this crate, the policy stage has decided, for
//! one group of recipients, which method to use (PGP/MIME or S/MIME) and which
//! keys or certificates to encrypt to; after it, the relay stage hands the
//! result to the upstream MTA. This crate does exactly one thing in between:
//! it turns the original RFC 5322 message into an encrypted one. The original
//! outer headers (everything but `Content-*` and `MIME-Version`) stay as they
//! are; the original body and its `Content-*` headers become, byte for byte,
//! the encrypted inner entity (design invariant 6, "byte faithfulness"), and
//! new `MIME-Version`/`Content-*` headers describe the encrypted wrapper.
//!
//! - [`mime`] splits a raw message into headers and body without copying and
//!   tells whether it is already encrypted, which [`inspect`] decides from
//!   the OpenPGP packets or the CMS content type, never from labels.
//! - [`pgp`] selects a certificate's usable encryption subkeys and writes
//!   PGP/MIME (RFC 3156) with sequoia-openpgp.
//! - [`smime`] writes S/MIME enveloped-data / authEnveloped-data (RFC 8551)
//!   with OpenSSL's CMS; `cms_ffi` is the crate's one `unsafe` module, for
//!   RSA-OAEP recipients, which the `openssl` crate cannot set up.
//! - [`sign`] writes S/MIME `multipart/signed` (detached CMS SignedData).
//!
//! Every function here fails closed: an error means no output at all, never a
//! partially encrypted or plaintext message.

mod base64_lines;
mod boundary;
mod cms_ffi;
mod compose;
pub mod cpu;
pub mod decrypt;
pub mod decrypt_pgp;
mod error;
pub mod inspect;
pub mod mime;
pub mod pgp;
pub mod sign;
pub mod signed;
pub mod smime;

pub use error::CryptoError;
