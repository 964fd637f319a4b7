//! Test peers for sealgate's tests.
//!
//! Every peer here is a real program (Postfix, an aiosmtpd sink, GnuPG, the
//! `openssl` CLI, PostgreSQL) started by the test on a loopback port in its own
//! temporary directory and stopped by its pid when the handle is dropped. Nothing
//! here imitates the thing a test checks: the peers are the independent judges of
//! what sealgate sends.

pub mod dns;
pub mod gnupg;
pub mod hostile_upstream;
pub mod keyserver;
pub mod pki;
pub mod ports;
pub mod postfix;
pub mod postgres;
pub mod process;
pub mod sink;
pub mod slapd;
