//! `verify ADDRESS` (S/Notify's "Verify Settings"): every key source's
//! answer for an address, whether each key is usable and why not, the
//! certificate paths, the bindings, and the decision. One report for the
//! CLI (`sealgate verify`, text and `--json`) and for the admin API (`GET
//! /api/v1/verify/{address}`), which runs it with the running gateway's
//! resolver, trust snapshot and policy.

use crate::config::Settings;
use sealgate_keys::{Method, Resolution, Resolver, SourceReport};
use sealgate_policy::{Decision, Policy, Refusal};
use serde_json::{json, Value};

/// What `verify` found for one address.
pub(crate) struct Verified {
    pub address: String,
    pub settings: sealgate_policy::Settings,
    pub reports: Vec<SourceReport>,
    /// Per report, per key: the path to a root (subjects, leaf first;
    /// empty for OpenPGP keys and when there is none).
    pub chains: Vec<Vec<Vec<String>>>,
    pub resolution: Resolution,
    pub bindings: Vec<sealgate_store::Binding>,
    pub order_pgp: Vec<String>,
    pub order_smime: Vec<String>,
    pub decision: String,
}

/// Whether certificates from the source `name` need a path to a root.
pub(crate) fn source_requires_chain(settings: &Settings, name: &str) -> bool {
    if name == "files" {
        return settings.keys.files_require_chain;
    }
    if let Some(n) = name.strip_prefix("ldap:") {
        return settings
            .keys
            .ldap
            .iter()
            .find(|d| d.name == n)
            .is_none_or(|d| d.require_chain);
    }
    true
}

/// Asks every source for `address` (no cache) and decides as the gateway
/// would.
pub(crate) async fn run(
    settings: &Settings,
    store: &sealgate_store::Store,
    resolver: &Resolver,
    verifier: &sealgate_trust::Verifier,
    policy: &Policy,
    address: &str,
) -> Verified {
    let policy_settings = policy.settings_for(address);
    let (reports, resolution) = resolver
        .verify(
            address,
            &policy_settings.methods,
            policy_settings.on_error(),
        )
        .await;
    let decision = policy.decide(&policy_settings, &resolution);
    let bindings = store
        .bindings(&address.to_lowercase())
        .await
        .unwrap_or_default();
    let cipher = match policy_settings.smime_cipher {
        sealgate_policy::SmimeCipherName::Auto => {
            let gcm = sealgate_harvest::db::reads_gcm(store.pool(), &address.to_lowercase())
                .await
                .unwrap_or(false);
            if gcm {
                "auto: Aes256Gcm (its signed mail listed AES-256-GCM)".to_string()
            } else {
                "auto: Aes256Cbc (no signed mail of its listed AES-256-GCM)".to_string()
            }
        }
        c => format!("{c:?}"),
    };
    let pgp_choice = resolution.pgp_choice.as_ref();
    let decision = match &decision {
        Ok(Decision::Encrypt {
            method: Method::Pgp,
            keys,
            source,
            ..
        }) if pgp_choice.is_some() => format!(
            "encrypt with pgp to {} (from source {source}: {})",
            keys.iter().map(|k| k.fingerprint()).collect::<Vec<_>>().join(", "),
            pgp_choice.map(|c| c.reason.as_str()).unwrap_or_default()
        ),
        Ok(Decision::Encrypt { method, keys, source, .. }) => format!(
            "encrypt with {method} to {} (from source {source}, the first in precedence order with a usable {method} key{})",
            keys.iter().map(|k| k.fingerprint()).collect::<Vec<_>>().join(", "),
            if *method == Method::Smime { format!(", cipher {cipher}") } else { String::new() }
        ),
        Ok(Decision::Plain { reason }) => format!("send unencrypted: {reason}"),
        Ok(Decision::Bounce { reason }) => format!(
            "accept, deliver nothing, and send the sender a failure report (no_key_action = bounce): {reason}"
        ),
        Ok(Decision::Hold { reason }) => format!(
            "accept and keep the message in the queue until a usable key is found, then deliver it encrypted; the sender gets a failure report after policy.hold_max_age (no_key_action = hold): {reason}"
        ),
        Err(Refusal::NoKey(r)) => format!("refuse at RCPT with 550 5.7.1: {r}"),
        Err(Refusal::SourceFailed(r)) => format!("defer at RCPT with 451 4.4.3: {r}"),
    };
    // The path to a root of each certificate, as the trust stage finds it.
    let chains = reports
        .iter()
        .map(|r| {
            let bundle: Vec<openssl::x509::X509> = r
                .keys
                .iter()
                .filter_map(|k| match &k.key {
                    sealgate_keys::RecipientKey::Smime(x) => Some(x.as_ref().clone()),
                    sealgate_keys::RecipientKey::Pgp(_) => None,
                })
                .collect();
            r.keys
                .iter()
                .map(|k| match &k.key {
                    sealgate_keys::RecipientKey::Smime(x) => verifier
                        .verify_with(x, &bundle, source_requires_chain(settings, &r.source))
                        .chain
                        .iter()
                        .map(|c| sealgate_trust::cert::name(c.subject_name()))
                        .collect(),
                    sealgate_keys::RecipientKey::Pgp(_) => Vec::new(),
                })
                .collect()
        })
        .collect();
    Verified {
        address: address.to_string(),
        order_pgp: resolver.order(Method::Pgp),
        order_smime: resolver.order(Method::Smime),
        settings: policy_settings,
        reports,
        chains,
        resolution,
        bindings,
        decision,
    }
}

impl Verified {
    /// The report as JSON (`verify --json`, the admin API).
    pub(crate) fn json(&self) -> Value {
        let methods: Vec<&str> = self.settings.methods.iter().map(|m| m.as_str()).collect();
        let sources: Vec<Value> = self
            .reports
            .iter()
            .zip(&self.chains)
            .map(|(r, chains)| {
                json!({
                    "source": r.source,
                    "error": r.error,
                    "keys": r.keys.iter().zip(chains).map(|(k, chain)| json!({
                        "method": k.key.method().as_str(),
                        "fingerprint": k.key.fingerprint(),
                        "description": k.key.describe(),
                        "addresses": k.key.addresses(),
                        "expires_at": k.key.expires_at(),
                        "usable": k.usable.is_ok(),
                        "reason": k.usable.as_ref().err(),
                        "chain": chain,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        let pgp_choice = self.resolution.pgp_choice.as_ref();
        json!({
            "address": self.address,
            "policy": {
                "matched": self.settings.matched,
                "mode": format!("{:?}", self.settings.mode).to_lowercase(),
                "methods": methods,
            },
            "order": { "pgp": self.order_pgp, "smime": self.order_smime },
            "sources": sources,
            "bindings": self.bindings,
            "pgp_choice": pgp_choice.map(|c| json!({
                "fingerprint": c.chosen.key.fingerprint(),
                "source": c.chosen.source,
                "level": c.chosen.level.as_str(),
                "reason": c.reason,
                "not_used": c.passed_over.iter().map(|(f, why)| json!({"fingerprint": f, "reason": why})).collect::<Vec<_>>(),
            })),
            "decision": self.decision,
        })
    }
}
