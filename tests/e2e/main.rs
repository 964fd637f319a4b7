//! End-to-end tests: mail goes from a real Postfix (the sending MTA, relayhost =
//! sealgate) through the `sealgate serve` binary to an SMTP sink, and what the
//! sink received is judged by independent tools (`gpg --decrypt`,
//! `openssl cms -decrypt`). Every peer runs on loopback in its own temp dir.

mod api;
mod bad_input;
mod ca;
mod ca_requests;
mod copies;
mod crash;
mod decrypt;
mod decrypt_pgp;
mod dkim_sign;
mod flow;
mod gateway;
mod harvest;
mod harvest_autocrypt;
mod harvest_header;
mod harvest_pgp;
mod header_protection;
mod hold;
mod incoming;
mod levels;
mod limits;
mod observe;
mod pgp_forms;
mod policy;
mod policy_matrix;
mod policy_matrix_more;
mod privacy;
mod queue;
mod queue_tools;
mod refresh;
mod reload;
mod signatures;
mod signing;
mod sources;
mod trace;
mod trust;
mod world;
