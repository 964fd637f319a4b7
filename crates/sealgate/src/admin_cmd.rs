//! `sealgate admin ...`: the admin accounts and API tokens of the admin
//! HTTP API, the CLI face of `sealgate_web::Accounts`.

use crate::cli::{AdminCommand, TokenCommand};
use crate::commands::fmt_time;
use crate::config::Settings;
use crate::wiring;
use anyhow::{anyhow, Result};
use sealgate_web::Accounts;
use std::process::ExitCode;

pub async fn run(settings: &Settings, cmd: AdminCommand) -> Result<ExitCode> {
    let store = wiring::open_store(settings).await?;
    let accounts = Accounts::new(store.clone());
    let result = command(&accounts, cmd).await;
    store.close().await;
    result
}

fn err(e: sealgate_web::ApiError) -> anyhow::Error {
    anyhow!("{e}")
}

async fn command(accounts: &Accounts, cmd: AdminCommand) -> Result<ExitCode> {
    match cmd {
        AdminCommand::Add { name, replace } => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\r', '\n']);
            let a = accounts.add(&name, password, replace).await.map_err(err)?;
            out!(
                "admin {} {}",
                a.name,
                if replace {
                    "has a new password"
                } else {
                    "added"
                }
            );
        }
        AdminCommand::List { json } => {
            let list = accounts.list().await.map_err(err)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                out!("no admin accounts (sealgate admin add NAME)");
            } else {
                for a in &list {
                    out!("{}  added {}", a.name, fmt_time(Some(a.created_at)));
                }
            }
        }
        AdminCommand::Remove { name } => {
            accounts.remove(&name).await.map_err(err)?;
            out!("admin {name} removed, its tokens revoked");
        }
        AdminCommand::Token(TokenCommand::Create { admin, name }) => {
            let (t, token) = accounts.create_token(&admin, &name).await.map_err(err)?;
            out!(
                "token {} ({}) for {}: {token}\nit is shown this once; use it as Authorization: Bearer {token}",
                t.id,
                t.name,
                t.admin
            );
        }
        AdminCommand::Token(TokenCommand::List { json }) => {
            let list = accounts.tokens().await.map_err(err)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                out!("no tokens");
            } else {
                for t in &list {
                    out!(
                        "{}  {}  as {}  created {}, last used {}{}",
                        t.id,
                        t.name,
                        t.admin,
                        fmt_time(Some(t.created_at)),
                        fmt_time(t.last_used),
                        t.revoked_at
                            .map(|r| format!(", revoked {}", fmt_time(Some(r))))
                            .unwrap_or_default()
                    );
                }
            }
        }
        AdminCommand::Token(TokenCommand::Revoke { id }) => {
            let t = accounts.revoke_token(&id).await.map_err(err)?;
            out!("token {} ({}) revoked", t.id, t.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}
