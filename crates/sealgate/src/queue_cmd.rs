//! `sealgate queue ...`: the CLI face of `sealgate_queue::admin`, for the
//! mail admin what `postqueue` and `postsuper` are for Postfix. It works on
//! the store, so against a running gateway (any instance on PostgreSQL).

use crate::cli::QueueCommand;
use crate::commands::fmt_time;
use crate::config::Settings;
use crate::wiring;
use anyhow::{anyhow, Result};
use sealgate_queue::admin::{self, Filter};
use sealgate_queue::QueueError;
use std::process::ExitCode;

pub async fn run(settings: &Settings, cmd: QueueCommand) -> Result<ExitCode> {
    let store = wiring::open_store(settings).await?;
    let result = command(settings, &store, cmd).await;
    store.close().await;
    result
}

/// Unix ms as the admin reads it.
fn at(ms: i64) -> String {
    fmt_time(Some(ms / 1000))
}

/// The queue's error as the CLI's (it names the id or the store problem).
fn named(e: QueueError) -> anyhow::Error {
    anyhow!("{e}")
}

async fn command(
    settings: &Settings,
    store: &sealgate_store::Store,
    cmd: QueueCommand,
) -> Result<ExitCode> {
    match cmd {
        QueueCommand::List {
            json,
            deferred,
            held,
        } => {
            let filter = if deferred {
                Filter::Deferred
            } else if held {
                Filter::Held
            } else {
                Filter::All
            };
            let list = admin::list(store, filter).await.map_err(named)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                out!("the queue is empty");
            } else {
                for m in &list {
                    let sender = if m.sender.is_empty() {
                        "<>".to_string()
                    } else {
                        format!("<{}>", m.sender)
                    };
                    let next = m
                        .next_attempt_at
                        .map(|t| format!(", next attempt {}", at(t)))
                        .unwrap_or_default();
                    out!(
                        "{}  {}  {} bytes  from {sender}{}  recipients {}: {} queued, {} deferred, {} held{next}",
                        m.id,
                        at(m.received_at),
                        m.size,
                        if m.kind == "dsn" { " (report)" } else { "" },
                        m.recipients,
                        m.queued,
                        m.deferred,
                        m.held,
                    );
                }
                out!("{} message(s)", list.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Show { id, json } => {
            let Some(m) = admin::show(store, &id).await.map_err(named)? else {
                return Err(named(QueueError::NotFound(id)));
            };
            if json {
                out!("{}", serde_json::to_string_pretty(&m)?);
                return Ok(ExitCode::SUCCESS);
            }
            out!("message {}", m.id);
            out!(
                "  from      <{}>{}",
                m.sender,
                if m.kind == "dsn" {
                    " (a report sealgate generated)"
                } else {
                    ""
                }
            );
            out!("  client    {}", m.client);
            out!("  arrived   {}", at(m.received_at));
            out!("  gives up  {}", at(m.expires_at));
            if let Some(e) = &m.envid {
                out!("  envid     {e}");
            }
            if let Some(r) = &m.ret {
                out!("  ret       {r}");
            }
            for c in &m.copies {
                out!(
                    "  copy {} ({}, {} bytes){}",
                    c.id,
                    c.method,
                    c.size,
                    c.leased_by
                        .as_ref()
                        .map(|o| format!(", being delivered by {o}"))
                        .unwrap_or_default()
                );
                for r in &c.recipients {
                    let next = r
                        .next_attempt_at
                        .map(|t| format!(", next attempt {}", at(t)))
                        .unwrap_or_default();
                    let last = r
                        .last_attempt_at
                        .map(|t| format!(", last attempt {}", at(t)))
                        .unwrap_or_default();
                    out!(
                        "    <{}> {} after {} attempt(s){last}{next}",
                        r.address,
                        r.state,
                        r.attempts
                    );
                    if let Some(e) = &r.last_error {
                        out!("      last error: {e}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Flush { id } => {
            let n = admin::flush(store, id.as_deref()).await.map_err(named)?;
            out!("{n} recipient(s) due now");
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Hold { id } => {
            let n = admin::hold(store, &id).await.map_err(named)?;
            out!("{id}: {n} recipient(s) held");
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Release { id } => {
            let n = admin::release(store, &id).await.map_err(named)?;
            out!("{id}: {n} recipient(s) released, due now");
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Delete { id } => {
            let n = admin::delete(store, &id).await.map_err(named)?;
            out!("{id}: deleted ({n} recipient(s) were still waiting)");
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Bounce { id } => {
            let schedule = settings.queue.schedule().map_err(anyhow::Error::msg)?;
            let n = admin::bounce(store, &schedule, &settings.smtp.hostname, &id)
                .await
                .map_err(named)?;
            out!("{id}: {n} recipient(s) failed; the sender gets a report");
            Ok(ExitCode::SUCCESS)
        }
    }
}
