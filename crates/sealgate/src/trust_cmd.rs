//! `sealgate certs|roots|ctl|crl ...`: the CLI face of
//! `sealgate_trust::TrustStore`. They work on the store, so against a
//! running gateway too (every instance on PostgreSQL sees the same stores).

use crate::cli::{CertsCommand, CrlCommand, CtlCommand, RootsCommand};
use crate::commands::fmt_time;
use crate::config::Settings;
use crate::wiring;
use anyhow::{anyhow, Context, Result};
use sealgate_trust::{CertFilter, CertView, CrlView, Fetcher, Status, TrustStore};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

pub async fn certs(settings: &Settings, cmd: CertsCommand) -> Result<ExitCode> {
    let store = wiring::open_store(settings).await?;
    let trust = trust_store(settings, &store);
    let result = certs_command(settings, &trust, cmd).await;
    store.close().await;
    result
}

pub async fn roots(settings: &Settings, cmd: RootsCommand) -> Result<ExitCode> {
    let store = wiring::open_store(settings).await?;
    let trust = trust_store(settings, &store);
    let result = roots_command(&trust, cmd).await;
    store.close().await;
    result
}

pub async fn ctl(settings: &Settings, cmd: CtlCommand) -> Result<ExitCode> {
    let store = wiring::open_store(settings).await?;
    let trust = trust_store(settings, &store);
    let result = ctl_command(&trust, cmd).await;
    store.close().await;
    result
}

async fn ctl_command(trust: &TrustStore, cmd: CtlCommand) -> Result<ExitCode> {
    match cmd {
        CtlCommand::Add {
            thumbprint,
            white,
            black: _,
            allow_expired,
        } => {
            let sha512 = trust
                .ctl_add(&thumbprint, white, allow_expired)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            out!(
                "{} {sha512}{}",
                if white {
                    "white-listed"
                } else {
                    "black-listed"
                },
                if allow_expired {
                    " (expired or not)"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::List { json } => {
            let list = trust.ctl_list().await.map_err(|e| anyhow!("{e}"))?;
            if json {
                out!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                out!("the CTL is empty");
            } else {
                for e in &list {
                    out!(
                        "{:<5} {}  {}{}",
                        e.status,
                        &e.sha512[..32],
                        e.subject
                            .as_deref()
                            .unwrap_or("(not in the certificate store)"),
                        if e.allow_expired {
                            "  allow-expired"
                        } else {
                            ""
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Remove { thumbprint } => {
            let sha512 = trust
                .ctl_remove(&thumbprint)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            out!("removed {sha512} from the CTL");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The trust stage on `store`, with the `[trust]` settings.
pub(crate) fn trust_store(settings: &Settings, store: &sealgate_store::Store) -> TrustStore {
    TrustStore::with_options(store.clone(), settings.trust.options())
}

/// How CRLs are downloaded: the key sources' HTTP client (`[keys.http]`:
/// proxy, extra CA, timeouts) and `trust.crl_max_bytes`.
pub(crate) fn fetcher(settings: &Settings) -> Result<Fetcher> {
    Ok(Fetcher {
        http: sealgate_keys::sources::http::client(&settings.keys.http)
            .map_err(|e| anyhow!("keys.http: {e}"))?,
        max_bytes: settings.trust.crl_max_bytes,
        timeout: std::time::Duration::from_secs(settings.keys.http.timeout_secs),
    })
}

pub async fn crl(settings: &Settings, cmd: CrlCommand) -> Result<ExitCode> {
    let store = wiring::open_store(settings).await?;
    let trust = trust_store(settings, &store);
    let result = crl_command(settings, &trust, cmd).await;
    store.close().await;
    result
}

async fn crl_command(settings: &Settings, trust: &TrustStore, cmd: CrlCommand) -> Result<ExitCode> {
    match cmd {
        CrlCommand::Update => {
            let report = trust
                .update_crls(&fetcher(settings)?)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            if report.is_empty() {
                out!("no stored certificate names a CRL distribution point");
            }
            let mut failed = false;
            for r in &report {
                match (&r.error, &r.issuer) {
                    (Some(e), _) => {
                        failed = true;
                        out!("failed  {}: {e}", r.url)
                    }
                    (None, Some(issuer)) if r.replaced => out!("stored  {} ({issuer})", r.url),
                    (None, issuer) => out!(
                        "kept    {} (the stored CRL of {} is newer)",
                        r.url,
                        issuer.as_deref().unwrap_or("?")
                    ),
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        CrlCommand::Import { files } => {
            for (f, bytes) in read_all(&files)? {
                let (info, replaced) = trust
                    .import_crl(&bytes, "import")
                    .await
                    .map_err(|e| anyhow!("{}: {e}", f.display()))?;
                out!(
                    "{} CRL {} of {} ({} entries)",
                    if replaced {
                        "imported"
                    } else {
                        "kept the newer stored"
                    },
                    &info.sha256[..16],
                    info.issuer,
                    info.revoked
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        CrlCommand::List { json } => {
            let list = trust.list_crls().await.map_err(|e| anyhow!("{e}"))?;
            if json {
                let items: Vec<_> = list.iter().map(crl_json).collect();
                out!("{}", serde_json::to_string_pretty(&items)?);
            } else if list.is_empty() {
                out!("the CRL store is empty");
            } else {
                for c in &list {
                    let i = &c.stored.info;
                    out!(
                        "{:<7} {}  {}  next update {}  {} entries  {}{}",
                        if c.validity.is_ok() {
                            "valid"
                        } else {
                            "invalid"
                        },
                        &i.sha256[..16],
                        i.issuer,
                        fmt_time(i.next_update),
                        i.revoked,
                        c.stored.source,
                        match &c.validity {
                            Err(why) => format!("  ({why})"),
                            Ok(()) => String::new(),
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CrlCommand::Show { id, json } => {
            let c = trust.show_crl(&id).await.map_err(|e| anyhow!("{e}"))?;
            if json {
                out!("{}", serde_json::to_string_pretty(&crl_json(&c))?);
            } else {
                let i = &c.stored.info;
                out!("issuer:       {}", i.issuer);
                out!("this update:  {}", fmt_time(Some(i.this_update)));
                out!("next update:  {}", fmt_time(i.next_update));
                out!("CRL number:   {}", i.crl_number.as_deref().unwrap_or("-"));
                out!("entries:      {}", i.revoked);
                out!("source:       {}", c.stored.source);
                out!("fetched:      {}", fmt_time(Some(c.stored.fetched_at)));
                out!("id (SHA-256): {}", i.sha256);
                match &c.validity {
                    Ok(()) => out!("status:       valid"),
                    Err(why) => out!("status:       invalid: {why} (kept, not used)"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn crl_json(c: &CrlView) -> serde_json::Value {
    c.to_json()
}

/// Every file read first: one unreadable file imports nothing.
fn read_all(files: &[PathBuf]) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    files
        .iter()
        .map(|f| {
            std::fs::read(f)
                .with_context(|| format!("cannot read {}", f.display()))
                .map(|b| (f.clone(), b))
        })
        .collect()
}

async fn certs_command(
    settings: &Settings,
    trust: &TrustStore,
    cmd: CertsCommand,
) -> Result<ExitCode> {
    match cmd {
        CertsCommand::List {
            email,
            expired,
            unexpired,
            with_key,
            json,
        } => {
            let filter = CertFilter {
                email,
                expired: if expired {
                    Some(true)
                } else if unexpired {
                    Some(false)
                } else {
                    None
                },
                with_key,
            };
            let list = trust
                .list_certs(&filter)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            if json {
                let items: Vec<_> = list.iter().map(view_json).collect();
                out!("{}", serde_json::to_string_pretty(&items)?);
            } else if list.is_empty() {
                out!("no certificate");
            } else {
                for v in &list {
                    let i = &v.stored.info;
                    out!(
                        "{:<13} {}  {}  {}  until {}{}",
                        v.verdict.status.label(),
                        &i.sha256[..16],
                        if i.emails.is_empty() {
                            "-".to_string()
                        } else {
                            i.emails.join(",")
                        },
                        i.subject,
                        fmt_time(Some(i.not_after)),
                        if i.is_ca { "  (CA)" } else { "" }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CertsCommand::Show { thumbprint, json } => {
            let v = trust
                .show_cert(&thumbprint)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            if json {
                out!("{}", serde_json::to_string_pretty(&view_json(&v))?);
            } else {
                let i = &v.stored.info;
                out!("subject:        {}", i.subject);
                out!("issuer:         {}", i.issuer);
                out!("serial:         {}", i.serial);
                out!(
                    "emails:         {}",
                    if i.emails.is_empty() {
                        "-".to_string()
                    } else {
                        i.emails.join(", ")
                    }
                );
                out!("not before:     {}", fmt_time(Some(i.not_before)));
                out!("not after:      {}", fmt_time(Some(i.not_after)));
                out!("key usage:      {}", list_or_any(&i.key_usage));
                out!("ext key usage:  {}", list_or_any(&i.ext_key_usage));
                out!("CA:             {}", if i.is_ca { "yes" } else { "no" });
                out!("SHA-256:        {}", i.sha256);
                out!("SHA-512:        {}", i.sha512);
                out!("source:         {}", v.stored.source);
                out!(
                    "private key:    {}",
                    if v.stored.has_key { "held" } else { "no" }
                );
                out!("status:         {}", v.verdict.status);
                if v.verdict.chain.is_empty() {
                    out!("chain:          none found");
                } else {
                    out!("chain:");
                    for c in &v.verdict.chain {
                        out!("  {}", sealgate_trust::cert::name(c.subject_name()));
                    }
                }
            }
            Ok(if v.verdict.status.is_valid() {
                ExitCode::SUCCESS
            } else {
                // Shown, but not usable: scripts can tell.
                ExitCode::from(2)
            })
        }
        CertsCommand::Import {
            files,
            password_file,
        } => {
            let (p12, other): (Vec<PathBuf>, Vec<PathBuf>) =
                files.into_iter().partition(|f| is_pkcs12(f));
            if !p12.is_empty() {
                import_pkcs12(settings, trust, &p12, password_file.as_deref()).await?;
            }
            if other.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                import(trust, &other, Target::Certs).await
            }
        }
        CertsCommand::Select { target, thumbprint } => {
            let (c, added) = trust
                .select(&target, &thumbprint)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            out!(
                "{} {} {} for {}",
                if added {
                    "selected"
                } else {
                    "already selected"
                },
                &c.info.sha256[..16],
                c.info.subject,
                target.to_lowercase()
            );
            Ok(ExitCode::SUCCESS)
        }
        CertsCommand::Deselect { target, thumbprint } => {
            let c = trust
                .deselect(&target, &thumbprint)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            out!(
                "deselected {} {} for {}",
                &c.info.sha256[..16],
                c.info.subject,
                target.to_lowercase()
            );
            Ok(ExitCode::SUCCESS)
        }
        CertsCommand::SignSelect { target, thumbprint } => {
            let c = trust
                .sign_select(&target, &thumbprint)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            out!(
                "{} signs with {} {}",
                target.to_lowercase(),
                &c.info.sha256[..16],
                c.info.subject
            );
            Ok(ExitCode::SUCCESS)
        }
        CertsCommand::SignAuto { target } => {
            let was = trust.sign_auto(&target).await.map_err(|e| anyhow!("{e}"))?;
            out!(
                "{}: the signing certificate is chosen automatically{}",
                target.to_lowercase(),
                if was { "" } else { " (it already was)" }
            );
            Ok(ExitCode::SUCCESS)
        }
        CertsCommand::Selected { address, json } => {
            let s = trust.selected(&address).await.map_err(|e| anyhow!("{e}"))?;
            let signing = trust
                .signing_certificate(&address)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            if json {
                let manual: Vec<_> = s
                    .manual
                    .iter()
                    .map(|(t, v)| {
                        let mut j = view_json(v);
                        j["selected_for"] = json!(t);
                        j
                    })
                    .collect();
                let automatic: Vec<_> = s.automatic.iter().map(view_json).collect();
                let signing = signing.as_ref().map(|(c, how)| {
                    json!({"sha256": c.info.sha256, "subject": c.info.subject, "chosen": how})
                });
                out!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"manual": manual, "automatic": automatic, "signing": signing})
                    )?
                );
            } else {
                if s.manual.is_empty() && s.automatic.is_empty() {
                    out!("nothing selected for {address} in the certificate store");
                }
                for (t, v) in &s.manual {
                    out!(
                        "manual ({t}) {:<13} {}  {}",
                        v.verdict.status.label(),
                        &v.stored.info.sha256[..16],
                        v.stored.info.subject
                    );
                }
                for v in &s.automatic {
                    out!(
                        "automatic {:<13} {}  {}",
                        v.verdict.status.label(),
                        &v.stored.info.sha256[..16],
                        v.stored.info.subject
                    );
                }
                match &signing {
                    Some((c, how)) => out!(
                        "signing ({how}) {}  {}",
                        &c.info.sha256[..16],
                        c.info.subject
                    ),
                    None => out!("signing: no valid certificate with a private key"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CertsCommand::Remove { thumbprint } => {
            let removed = trust
                .remove_cert(&thumbprint)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            out!("removed {} {}", removed.info.sha256, removed.info.subject);
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn roots_command(trust: &TrustStore, cmd: RootsCommand) -> Result<ExitCode> {
    match cmd {
        RootsCommand::Import { files } => import(trust, &files, Target::Roots).await,
        RootsCommand::List { json } => {
            let roots = trust.list_roots().await.map_err(|e| anyhow!("{e}"))?;
            if json {
                out!("{}", serde_json::to_string_pretty(&roots)?);
            } else if roots.is_empty() {
                out!(
                    "the root store is empty: no certificate chains to a root (see docs/trust.md)"
                );
            } else {
                for r in &roots {
                    out!(
                        "{}  {}  until {}",
                        &r.sha256[..16],
                        r.subject,
                        fmt_time(Some(r.not_after))
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RootsCommand::Remove { thumbprint } => {
            let r = trust
                .remove_root(&thumbprint)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            out!("removed root {} {}", r.sha256, r.subject);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn is_pkcs12(f: &std::path::Path) -> bool {
    f.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"))
}

/// The key-encryption key, which storing a private key needs.
pub(crate) fn require_kek(settings: &Settings) -> Result<sealgate_trust::Kek> {
    sealgate_trust::Kek::load(settings.store.key_encryption_key_file.as_deref())
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| {
            anyhow!(
                "a private key is only stored sealed: set store.key_encryption_key_file (a file with 64 hex digits, `openssl rand -hex 32`) or {}",
                sealgate_trust::kek::KEK_ENV
            )
        })
}

/// PKCS#12 files: every one read and its password known before anything
/// is stored; the private keys sealed under the key-encryption key.
async fn import_pkcs12(
    settings: &Settings,
    trust: &TrustStore,
    files: &[PathBuf],
    password_file: Option<&std::path::Path>,
) -> Result<()> {
    let Some(pw_file) = password_file else {
        return Err(anyhow!(
            "{}: a PKCS#12 file needs --password-file FILE",
            files[0].display()
        ));
    };
    let password = std::fs::read_to_string(pw_file)
        .with_context(|| format!("--password-file: cannot read {}", pw_file.display()))?;
    let password = password.lines().next().unwrap_or("").to_string();
    let kek = require_kek(settings)?;
    for (f, bytes) in read_all(files)? {
        let imported = trust
            .import_pkcs12(&bytes, &password, &kek, "import")
            .await
            .map_err(|e| anyhow!("{}: {e}", f.display()))?;
        for (n, i) in imported.iter().enumerate() {
            out!(
                "{} {} {}{}",
                if i.added {
                    "imported"
                } else {
                    "already stored"
                },
                &i.sha256[..16],
                i.subject,
                if n == 0 {
                    " with its private key (sealed)"
                } else if i.is_ca {
                    " (CA: an intermediate)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}

/// Which store `import` adds to.
#[derive(Clone, Copy)]
enum Target {
    Certs,
    Roots,
}

/// Reads every file, then adds each certificate in them to one store and
/// says what happened to it.
async fn import(trust: &TrustStore, files: &[PathBuf], into: Target) -> Result<ExitCode> {
    for (f, bytes) in read_all(files)? {
        let imported = match into {
            Target::Certs => trust.import_certs(&bytes, "import").await,
            Target::Roots => trust.import_roots(&bytes, "import").await,
        }
        .map_err(|e| anyhow!("{}: {e}", f.display()))?;
        for i in imported {
            let (done, again, note) = match into {
                Target::Certs => (
                    "imported",
                    "already stored",
                    if i.is_ca {
                        " (CA: an intermediate)"
                    } else {
                        ""
                    },
                ),
                Target::Roots => (
                    "trusted",
                    "already trusted",
                    if i.is_ca {
                        ""
                    } else {
                        " (warning: not a CA certificate)"
                    },
                ),
            };
            out!(
                "{} {} {}{note}",
                if i.added { done } else { again },
                &i.sha256[..16],
                i.subject
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list_or_any(l: &Option<Vec<String>>) -> String {
    match l {
        None => "(extension absent: any)".into(),
        Some(v) if v.is_empty() => "(none recognised)".into(),
        Some(v) => v.join(", "),
    }
}

fn view_json(v: &CertView) -> serde_json::Value {
    let reason = match &v.verdict.status {
        Status::NotTrusted(r)
        | Status::WrongUsage(r)
        | Status::BlackListed(r)
        | Status::Revoked(r) => Some(r.clone()),
        _ => None,
    };
    json!({
        "certificate": v.stored.info,
        "source": v.stored.source,
        "has_key": v.stored.has_key,
        "added_at": v.stored.added_at,
        "status": v.verdict.status.label(),
        "reason": reason,
        "chain": v.verdict.chain.iter().map(|c| {
            json!({
                "subject": sealgate_trust::cert::name(c.subject_name()),
                "sha256": c.digest(openssl::hash::MessageDigest::sha256())
                    .map(|d| sealgate_trust::cert::to_hex(&d))
                    .unwrap_or_default(),
            })
        }).collect::<Vec<_>>(),
    })
}
