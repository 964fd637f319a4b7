//! `sealgate`: the SMTP encryption gateway binary.
//!
//! This crate is the wiring: the command line ([`cli`]), the configuration
//! ([`config`]), logging ([`logging`]), and the subcommands: [`serve`] builds
//! the flow (listener -> pipeline -> key resolver/policy/crypto -> relay, with
//! the store beside it) and runs it; the others ([`commands`]) are the admin's
//! tools (check-config, verify, keys, cache, hash-password; the queue tools
//! in [`queue_cmd`], the certificate and root stores in [`trust_cmd`]).

/// Writes a line to standard output. A reader that went away (`| head`) ends
/// the command quietly instead of the panic `println!` would give.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(e.into());
        }
    }};
}

mod additional;
mod admin_cmd;
mod ca_cmd;
mod cli;
mod commands;
mod config;
mod decrypting;
mod decrypting_pgp;
mod harvesting;
mod incoming;
mod logging;
mod observe;
mod policy_cmd;
mod queue_cmd;
mod serve;
mod signing;
mod sources;
mod trust_cmd;
mod verify;
mod wiring;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Libraries make error values on normal paths (sequoia, while it looks
    // for signatures, once per key and message); with RUST_BACKTRACE=1 each
    // of them would walk the stack (measured: several percent of the
    // gateway's CPU). Panics still get their backtrace. An explicit
    // RUST_LIB_BACKTRACE is left as the admin set it. Set before any thread
    // starts.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sealgate: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sealgate: {e:#}");
            ExitCode::from(1)
        }
    }
}
