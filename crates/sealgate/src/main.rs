//! `sealgate`: the SMTP encryption gateway binary.
//!
//! This crate is the wiring: the command line ([`cli`]), the configuration
//! ([`config`]), logging ([`logging`]), and the subcommands: [`serve`] builds
//! the flow (listener -> pipeline -> key resolver/policy/crypto -> relay, with
//! the store beside it) and runs it; the others ([`commands`]) are the admin's
//! tools (check-config, verify, keys, hash-password).

mod cli;
mod commands;
mod config;
mod logging;
mod serve;
mod sources;
mod wiring;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
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
