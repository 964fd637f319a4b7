//! The policy calls every face uses (the CLI now, the admin HTTP API
//! later): the policy in force from the file and the store, `show`, `set`
//! and `unset`. A value is checked before it is stored, against the whole
//! policy it would make, so the store never holds a setting that would stop
//! a gateway from loading its policy.

use crate::config::PolicyConfig;
use crate::decide::Policy;
use crate::layers::{explain, overlay, parse_value, Effective, Row, Scope};
use sealgate_store::{PolicySetting, Store};

/// The file's policy with the store's settings over it.
pub async fn load(store: &Store, file: &PolicyConfig) -> Result<PolicyConfig, String> {
    let rows = store.policy_settings().await.map_err(|e| e.to_string())?;
    overlay(file, &as_rows(&rows))
}

fn as_rows(rows: &[PolicySetting]) -> Vec<Row<'_>> {
    rows.iter()
        .map(|r| (r.scope.as_str(), r.name.as_str(), r.value.as_str()))
        .collect()
}

/// Every effective setting for `address` and where it came from.
pub async fn show(
    store: &Store,
    file: &PolicyConfig,
    address: &str,
) -> Result<Vec<Effective>, String> {
    if !address.contains('@') {
        return Err(format!("{address:?} is not an address (user@domain)"));
    }
    let rows = store.policy_settings().await.map_err(|e| e.to_string())?;
    Ok(explain(file, &as_rows(&rows), address))
}

/// Stores `name` = `raw` for `scope`; the scope and the value as stored.
pub async fn set(
    store: &Store,
    file: &PolicyConfig,
    scope: &str,
    name: &str,
    raw: &str,
) -> Result<(Scope, serde_json::Value), String> {
    let scope = Scope::parse(scope)?;
    let value = parse_value(name, raw)?;
    let text = value.to_string();
    let key = scope.key();
    let mut rows = store.policy_settings().await.map_err(|e| e.to_string())?;
    rows.retain(|r| !(r.scope == key && r.name == name));
    rows.push(PolicySetting {
        scope: key.clone(),
        name: name.to_string(),
        value: text.clone(),
        updated_at: 0,
    });
    let merged = overlay(file, &as_rows(&rows))?;
    Policy::new(merged).map_err(|e| format!("{} {name}: {e}", scope.describe()))?;
    store
        .policy_set(&key, name, &text)
        .await
        .map_err(|e| e.to_string())?;
    Ok((scope, value))
}

/// Removes `name` for `scope` from the store; whether it was set there.
pub async fn unset(store: &Store, scope: &str, name: &str) -> Result<(Scope, bool), String> {
    let scope = Scope::parse(scope)?;
    if !crate::layers::SETTINGS.contains(&name) {
        return Err(format!(
            "{name:?} is not a policy setting; the settings are: {}",
            crate::layers::SETTINGS.join(", ")
        ));
    }
    let done = store
        .policy_unset(&scope.key(), name)
        .await
        .map_err(|e| e.to_string())?;
    Ok((scope, done))
}

/// Keeps `policy` equal to the file's with the store's settings over it:
/// every `policy.reload_secs` it reads the store's change counter and, when
/// it moved, loads and puts the new policy in force; so it does at once when
/// `file` brings a new file policy (SIGHUP). A policy that does not load
/// keeps the current one (logged). Stops when `stop` turns true.
pub async fn follow(
    store: Store,
    mut file: tokio::sync::watch::Receiver<PolicyConfig>,
    policy: Policy,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = std::time::Duration::from_secs(file.borrow().reload_secs.max(1));
    let mut seen = store.policy_version().await.ok();
    let mut clock = sealgate_store::Periodic::new(every, stop);
    let mut file_open = true;
    loop {
        let new_file = tokio::select! {
            go = clock.next() => {
                if !go {
                    return;
                }
                false
            }
            changed = file.changed(), if file_open => {
                file_open = changed.is_ok();
                file_open
            }
        };
        let version = match store.policy_version().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(
                    "policy: the store cannot be read, keeping the policy in force: {e}"
                );
                continue;
            }
        };
        if Some(version) == seen && !new_file {
            continue;
        }
        let current = file.borrow().clone();
        match load(&store, &current).await.and_then(|c| policy.replace(c)) {
            Ok(()) if new_file => {
                seen = Some(version);
                tracing::info!(version, "SIGHUP: the policy from the file is in force");
            }
            Ok(()) => {
                seen = Some(version);
                tracing::info!(version, "policy: a change in the store is in force");
            }
            Err(e) => tracing::error!(
                "policy: the policy does not load, keeping the policy in force: {e}"
            ),
        }
    }
}
