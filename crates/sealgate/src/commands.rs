//! The subcommands other than `serve`: the admin's tools.

use crate::cli::{CacheCommand, Cli, Command, KeysCommand};
use crate::config::{self, Settings};
use crate::{logging, serve, wiring};
use anyhow::{anyhow, bail, Context, Result};
use sealgate_keys::import::{to_stored, to_stored_for};
use sealgate_keys::load::load_file;
use sealgate_keys::offer::{offer, Offered};
use sealgate_keys::validation::{entry_level, Level};
use sealgate_keys::Method;
use sealgate_policy::Policy;
use serde_json::json;
use std::io::BufRead;
use std::process::ExitCode;

pub async fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::HashPassword = cli.command {
        return hash_password();
    }
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve => {
            logging::init(&settings.log);
            serve::run(settings, cli.config.clone()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig => check_config(&settings).await,
        Command::Verify { address, json } => verify(&settings, &address, json).await,
        Command::Keys(k) => keys(&settings, k).await,
        Command::Cache(CacheCommand::Expire { address }) => {
            let store = wiring::open_store(&settings).await?;
            let n = store.cache_expire(address.as_deref()).await?;
            out!(
                "marked {n} cached answer(s) stale{}",
                address.map(|a| format!(" for {a}")).unwrap_or_default()
            );
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Queue(q) => crate::queue_cmd::run(&settings, q).await,
        Command::Certs(c) => crate::trust_cmd::certs(&settings, c).await,
        Command::Roots(r) => crate::trust_cmd::roots(&settings, r).await,
        Command::Ctl(c) => crate::trust_cmd::ctl(&settings, c).await,
        Command::Crl(c) => crate::trust_cmd::crl(&settings, c).await,
        Command::Harvest(h) => harvest(&settings, h).await,
        Command::Policy(p) => crate::policy_cmd::run(&settings, p).await,
        Command::Ca(c) => crate::ca_cmd::run(&settings, c).await,
        Command::Admin(a) => crate::admin_cmd::run(&settings, a).await,
        Command::HashPassword => unreachable!("handled above"),
    }
}

async fn check_config(settings: &Settings) -> Result<ExitCode> {
    wiring::server_config(settings)?;
    let store = wiring::open_store(settings).await?;
    let (trust, _) = wiring::live_trust(settings, &store, false).await?;
    let (resolver, _, summary) = wiring::resolver(settings, &store, trust)?;
    // The file's policy with the store's settings over it must load.
    Policy::new(
        sealgate_policy::stored::load(&store, &settings.policy)
            .await
            .map_err(anyhow::Error::msg)?,
    )
    .map_err(anyhow::Error::msg)?;
    sealgate_relay::SmtpRelay::new(settings.relay.clone()).map_err(anyhow::Error::msg)?;
    out!("configuration OK");
    out!("{}", config::describe(settings));
    for w in crate::sources::insecure_warnings(&settings.keys) {
        out!("warning: {w}");
    }
    out!(
        "key files hold {} OpenPGP key(s) and {} certificate(s) for {} address(es); the store holds {} key(s)",
        summary.pgp_keys,
        summary.smime_certificates,
        summary.addresses,
        store.list_keys().await?.len()
    );
    out!(
        "OpenPGP sources in order: {}\nS/MIME sources in order: {}",
        resolver.order(Method::Pgp).join(", "),
        resolver.order(Method::Smime).join(", ")
    );
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn fmt_time(t: Option<i64>) -> String {
    match t {
        None => "never".into(),
        Some(s) => openssl::asn1::Asn1Time::from_unix(s)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| s.to_string()),
    }
}

async fn verify(settings: &Settings, address: &str, as_json: bool) -> Result<ExitCode> {
    let store = wiring::open_store(settings).await?;
    let (trust, trust_store) = wiring::live_trust(settings, &store, false).await?;
    let (resolver, _, _) = wiring::resolver(settings, &store, trust)?;
    let verifier = trust_store
        .verifier()
        .await
        .map_err(|e| anyhow!("cannot load the trust stores: {e}"))?;
    let policy = Policy::new(
        sealgate_policy::stored::load(&store, &settings.policy)
            .await
            .map_err(anyhow::Error::msg)?,
    )
    .map_err(anyhow::Error::msg)?;
    let v = crate::verify::run(settings, &store, &resolver, &verifier, &policy, address).await;
    if as_json {
        out!("{}", serde_json::to_string_pretty(&v.json())?);
    } else {
        let methods: Vec<&str> = v.settings.methods.iter().map(|m| m.as_str()).collect();
        out!(
            "{address}: policy {} (mode {:?}, methods {})",
            v.settings.matched,
            v.settings.mode,
            methods.join(", ")
        );
        out!(
            "sources asked directly (no cache); precedence: OpenPGP {}; S/MIME {}",
            v.order_pgp.join(" > "),
            v.order_smime.join(" > ")
        );
        for (r, chains) in v.reports.iter().zip(&v.chains) {
            out!("source {}:", r.source);
            if let Some(e) = &r.error {
                out!("  ERROR: {e}");
            } else if r.keys.is_empty() {
                out!("  no keys for this address");
            }
            for (k, chain) in r.keys.iter().zip(chains) {
                out!(
                    "  {} {} (expires {}): {}\n    {}",
                    k.key.method(),
                    k.key.fingerprint(),
                    fmt_time(k.key.expires_at()),
                    match &k.usable {
                        Ok(()) => "usable".to_string(),
                        Err(e) => format!("NOT usable: {e}"),
                    },
                    k.key.describe()
                );
                if k.key.method() == Method::Smime {
                    if chain.is_empty() {
                        out!("    chain: none found");
                    } else {
                        out!("    chain: {}", chain.join(" > "));
                    }
                }
            }
        }
        if !v.bindings.is_empty() {
            out!("key bindings (* active):");
            for b in &v.bindings {
                out!(
                    "  {}{} {} level {} from {}, first seen {}, last seen {}{}{}",
                    if b.active { "* " } else { "" },
                    b.kind,
                    b.fingerprint,
                    b.level,
                    b.source,
                    fmt_time(Some(b.first_seen)),
                    fmt_time(Some(b.last_seen)),
                    if b.sign_used {
                        ", signature verified"
                    } else {
                        ""
                    },
                    if b.encr_used { ", encrypted to" } else { "" },
                );
            }
        }
        if let Some(c) = &v.resolution.pgp_choice {
            for (f, why) in &c.passed_over {
                out!("OpenPGP key {f} not used: {why}");
            }
        }
        out!("decision: {}", v.decision);
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn keys(settings: &Settings, cmd: KeysCommand) -> Result<ExitCode> {
    let store = wiring::open_store(settings).await?;
    let code = match cmd {
        KeysCommand::Import { for_address, files } => {
            if let Some(a) = &for_address {
                if !a.contains('@') || a.chars().any(char::is_whitespace) {
                    bail!("keys import --for: {a:?} is not a mail address");
                }
            }
            let mut parsed = Vec::new();
            // Parse everything first: one bad file imports nothing.
            for f in &files {
                parsed.push((f, load_file(f)?));
            }
            for (f, keys) in parsed {
                for key in keys {
                    let stored = match &for_address {
                        Some(a) => to_stored_for(&key, "upload", vec![a.to_lowercase()]),
                        None => to_stored(&key, "import"),
                    }
                    .map_err(|e| anyhow!("{}: {e}", f.display()))?;
                    if let Some(a) = &for_address {
                        if !key.names(a) {
                            eprintln!(
                                "warning: {}: {} {} does not name {a}; it is stored as {a}'s upload but is not usable for it",
                                f.display(),
                                key.method(),
                                stored.fingerprint
                            );
                        }
                    }
                    if stored.addresses.is_empty() {
                        eprintln!(
                            "warning: {}: {} {} names no mail address; it will never be used",
                            f.display(),
                            key.method(),
                            stored.fingerprint
                        );
                    }
                    let level = entry_level(&stored.source);
                    store.put_key(&stored, level).await?;
                    out!(
                        "imported {} {} as {} (level {level}) for {}",
                        key.method(),
                        stored.fingerprint,
                        stored.source,
                        if stored.addresses.is_empty() {
                            "-".into()
                        } else {
                            stored.addresses.join(", ")
                        }
                    );
                    if let sealgate_keys::RecipientKey::Pgp(cert) = &key {
                        for a in &stored.addresses {
                            match offer(&store, a, cert, level)
                                .await
                                .map_err(anyhow::Error::msg)?
                            {
                                Offered::Activated(rule) => {
                                    out!("  {a}: now the active key ({})", rule.describe())
                                }
                                Offered::Kept { reason, .. } => out!("  {a}: {reason}"),
                            }
                        }
                    }
                }
            }
            ExitCode::SUCCESS
        }
        KeysCommand::List { address, json } => {
            let trust = crate::trust_cmd::trust_store(settings, &store);
            keys_list(&store, &trust, address.as_deref(), json).await?;
            ExitCode::SUCCESS
        }
        KeysCommand::ImportSecret {
            passphrase_file,
            files,
        } => {
            let kek = crate::trust_cmd::require_kek(settings)?;
            let passphrase = match &passphrase_file {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("--passphrase-file: cannot read {}", p.display()))?
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string(),
                ),
                None => None,
            };
            let trust = crate::trust_cmd::trust_store(settings, &store);
            // Read everything first: one bad file stores nothing.
            let mut all = Vec::new();
            for f in &files {
                all.push((
                    f,
                    std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
                ));
            }
            for (f, data) in all {
                let held = trust
                    .add_pgp_secrets(&data, passphrase.as_deref(), &kek)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
                for k in held {
                    out!(
                        "holding the OpenPGP secret key {} for {} (sealed; incoming.decrypt opens mail with it)",
                        k.fingerprint,
                        if k.addresses.is_empty() {
                            "no address (it has no User ID with an email)".to_string()
                        } else {
                            k.addresses.join(", ")
                        }
                    );
                }
            }
            ExitCode::SUCCESS
        }
        KeysCommand::Trust {
            address,
            fingerprint,
        } => {
            let address = address.to_lowercase();
            let fpr = normalise_fingerprint(&fingerprint);
            let now = sealgate_store::now_unix();
            let bound = store.bindings(&address).await?;
            if !bound.iter().any(|b| b.fingerprint == fpr) {
                // A stored key that names the address may be pinned for it.
                match store.key(&fpr).await? {
                    Some(k) if k.uids.contains(&address) => {
                        store
                            .bind(
                                &sealgate_store::NewBinding {
                                    address: &address,
                                    fingerprint: &fpr,
                                    kind: k.kind.as_str(),
                                    level: Level::Fingerprint,
                                    source: &k.source,
                                    sign_used: false,
                                },
                                now,
                            )
                            .await?;
                    }
                    Some(_) => bail!(
                        "keys trust: key {fpr} does not name {address} (see `sealgate keys list`)"
                    ),
                    None => bail!(
                        "keys trust: no stored key {fpr} (import it with `sealgate keys import`, or send mail to {address} so that it is looked up, then see `sealgate keys list`)"
                    ),
                }
            }
            store
                .set_active(&address, &fpr, Some(Level::Fingerprint), now)
                .await?;
            out!("{address}: {fpr} is now the active key at level fingerprint (admin-confirmed)");
            ExitCode::SUCCESS
        }
        KeysCommand::Remove { ids } => {
            let mut missing = Vec::new();
            for id in ids {
                let fprs: Vec<String> = if id.contains('@') {
                    store
                        .keys_for(&id)
                        .await?
                        .into_iter()
                        .map(|k| k.fingerprint)
                        .collect()
                } else {
                    vec![normalise_fingerprint(&id)]
                };
                let mut any = false;
                let trust = crate::trust_cmd::trust_store(settings, &store);
                for f in fprs {
                    if store.remove_key(&f).await? {
                        out!("removed {f}");
                        any = true;
                    }
                    if trust.remove_pgp_secret(&f).await? {
                        out!("removed the held secret key {f}");
                        any = true;
                    }
                }
                if !any {
                    missing.push(id);
                }
            }
            if !missing.is_empty() {
                eprintln!("sealgate: no stored key matches {}", missing.join(", "));
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
    };
    store.close().await;
    Ok(code)
}

/// A fingerprint as the store spells it: no spaces, upper-case hex, and
/// `SHA256:` for X.509.
fn normalise_fingerprint(id: &str) -> String {
    let norm = id.replace(' ', "");
    match norm
        .strip_prefix("SHA256:")
        .or_else(|| norm.strip_prefix("sha256:"))
    {
        Some(h) => format!("SHA256:{}", h.to_uppercase()),
        None => norm.to_uppercase(),
    }
}

/// `sealgate keys list`: every address with its bindings (level, source,
/// whether active, usage), then the stored keys bound to no address.
async fn keys_list(
    store: &sealgate_store::Store,
    trust: &sealgate_trust::TrustStore,
    address: Option<&str>,
    as_json: bool,
) -> Result<()> {
    let mut secrets = trust.list_pgp_secrets().await?;
    if let Some(a) = address {
        let a = a.to_lowercase();
        secrets.retain(|s| s.addresses.contains(&a));
    }
    let keys = store.list_keys().await?;
    let mut bindings = store.all_bindings().await?;
    if let Some(a) = address {
        let a = a.to_lowercase();
        bindings.retain(|b| b.address == a);
    }
    let key_of = |fpr: &str| keys.iter().find(|k| k.fingerprint == fpr);
    let wanted = address.map(str::to_lowercase);
    let autocrypt = sealgate_harvest::db::autocrypt_peers(store.pool(), wanted.as_deref()).await?;
    if as_json {
        let (bindings, keys) = store.key_report(address).await?;
        let v = json!({
            "bindings": bindings,
            "keys": keys,
            "autocrypt": autocrypt,
            "secret_keys": secrets,
        });
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if bindings.is_empty() && keys.is_empty() && secrets.is_empty() {
        out!("no keys in the store");
        return Ok(());
    }
    let mut last = String::new();
    for b in &bindings {
        if b.address != last {
            out!("{}", b.address);
            last = b.address.clone();
        }
        let k = key_of(&b.fingerprint);
        out!(
            "  {} {:<4} {}  level {}  from {}  expires {}{}{}",
            if b.active { "*" } else { " " },
            b.kind,
            b.fingerprint,
            b.level,
            b.source,
            fmt_time(k.and_then(|k| k.expires_at)),
            if b.sign_used {
                ", signature verified"
            } else {
                ""
            },
            if b.encr_used { ", encrypted to" } else { "" },
        );
        let last_of_address = bindings
            .iter()
            .rposition(|x| x.address == b.address)
            .is_some_and(|i| std::ptr::eq(&bindings[i], b));
        if let Some(p) = autocrypt
            .iter()
            .find(|p| last_of_address && p.address == b.address)
        {
            out!(
                "    autocrypt: prefer-encrypt={}, key {}, from a message of {}",
                p.prefer_encrypt,
                p.fingerprint,
                fmt_time(Some(p.message_date))
            );
        }
    }
    if address.is_none() {
        let unbound: Vec<_> = keys.iter().filter(|k| k.addresses.is_empty()).collect();
        if !unbound.is_empty() {
            out!("bound to no address");
            for k in unbound {
                out!(
                    "    {:<4} {}  source {}  expires {}",
                    k.kind.as_str(),
                    k.fingerprint,
                    k.source,
                    fmt_time(k.expires_at)
                );
            }
        }
    }
    if !secrets.is_empty() {
        out!("OpenPGP secret keys held (sealed; incoming.decrypt)");
        for s in &secrets {
            out!(
                "    pgp  {}  for {}  since {}",
                s.fingerprint,
                s.addresses.join(", "),
                fmt_time(Some(s.added_at))
            );
        }
    }
    out!("(* the active key of an address: the one OpenPGP mail is encrypted to; levels lowest first: weak_chain < provider_trust < provider_endorsement < ... < fingerprint)");
    Ok(())
}

fn hash_password() -> Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        bail!("hash-password: give the password on standard input (e.g. `read -rs P; echo \"$P\" | sealgate hash-password`)");
    }
    out!("{}", sealgate_smtp_server::hash_password(password));
    Ok(ExitCode::SUCCESS)
}

/// `sealgate harvest log`.
async fn harvest(settings: &Settings, cmd: crate::cli::HarvestCommand) -> Result<ExitCode> {
    let crate::cli::HarvestCommand::Log {
        address,
        limit,
        json,
    } = cmd;
    if limit < 1 {
        anyhow::bail!("--limit: must be at least 1");
    }
    let store = crate::wiring::open_store(settings).await?;
    let harvester = sealgate_harvest::Harvester::new(
        crate::trust_cmd::trust_store(settings, &store),
        store.clone(),
        sealgate_metrics::Metrics::new(),
    );
    let address = address.map(|a| a.to_lowercase());
    let entries = harvester
        .log(address.as_deref(), limit)
        .await
        .map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else if entries.is_empty() {
        println!("no harvest decisions yet");
    } else {
        for e in &entries {
            println!(
                "{} {} {} {} <{}> {}{}: {}",
                e.at,
                e.queue_id,
                e.kind,
                e.outcome,
                e.address.as_deref().unwrap_or("-"),
                e.fingerprint.as_deref().unwrap_or("-"),
                e.message_id
                    .as_deref()
                    .map(|m| format!(" {m}"))
                    .unwrap_or_default(),
                e.reason
            );
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
