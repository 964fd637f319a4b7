//! `sealgate policy ...`: a thin face over `sealgate_policy::stored`.

use crate::cli::PolicyCommand;
use crate::config::Settings;
use anyhow::Result;
use std::process::ExitCode;

pub async fn run(settings: &Settings, cmd: PolicyCommand) -> Result<ExitCode> {
    let store = crate::wiring::open_store(settings).await?;
    let file = &settings.policy;
    let code = match cmd {
        PolicyCommand::Show { address, json } => {
            let shown = sealgate_policy::stored::show(&store, file, &address)
                .await
                .map_err(|e| anyhow::anyhow!("policy show: {e}"))?;
            if json {
                out!("{}", serde_json::to_string_pretty(&shown)?);
            } else {
                out!(
                    "policy for {}",
                    sealgate_policy::canonical_address(&address)
                );
                for e in &shown {
                    out!(
                        "  {:<24} {:<28} from {}",
                        e.name,
                        e.value.to_string(),
                        e.from.join(" + ")
                    );
                }
                out!("(levels: default < global < domain < user; at each level a store value wins over the file's)");
            }
            ExitCode::SUCCESS
        }
        PolicyCommand::Set { scope, name, value } => {
            let (scope, value) = sealgate_policy::stored::set(&store, file, &scope, &name, &value)
                .await
                .map_err(|e| anyhow::anyhow!("policy set: {e}"))?;
            out!(
                "{} {name} = {value} (in the store; running gateways obey it within {} s)",
                scope.describe(),
                file.reload_secs
            );
            ExitCode::SUCCESS
        }
        PolicyCommand::Unset { scope, name } => {
            let (scope, done) = sealgate_policy::stored::unset(&store, &scope, &name)
                .await
                .map_err(|e| anyhow::anyhow!("policy unset: {e}"))?;
            if done {
                out!(
                    "{} {name}: removed from the store; it inherits again",
                    scope.describe()
                );
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "sealgate: policy unset: the store has no {name} for {}",
                    scope.describe()
                );
                ExitCode::from(1)
            }
        }
        PolicyCommand::List { json } => {
            let rows = store.policy_settings().await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                out!("the store holds no policy settings (the file's [policy] applies)");
            } else {
                for r in &rows {
                    out!("{:<32} {:<24} {}", r.scope, r.name, r.value);
                }
            }
            ExitCode::SUCCESS
        }
    };
    store.close().await;
    Ok(code)
}
