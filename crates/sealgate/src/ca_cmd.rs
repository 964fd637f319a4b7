//! `sealgate ca ...`: the CLI face of `sealgate_ca::Ca`. It works on the
//! store, so against a running gateway too: a certificate issued here is
//! used by every instance for the next message to its address.

use crate::cli::{CaCommand, CaConfigCommand, CaCrlCommand, CaPendingCommand};
use crate::config::Settings;
use crate::wiring;
use anyhow::{anyhow, Context, Result};
use sealgate_ca::{Ca, KeySpec, NewCa, NewCrl, Request, SigAlg};
use std::process::ExitCode;

pub async fn run(settings: &Settings, cmd: CaCommand) -> Result<ExitCode> {
    let store = wiring::open_store(settings).await?;
    let trust = crate::trust_cmd::trust_store(settings, &store);
    let kek = sealgate_trust::Kek::load(settings.store.key_encryption_key_file.as_deref())
        .map_err(|e| anyhow!("{e}"))?;
    let ca = Ca::new(store.clone(), trust, kek);
    let result = command(settings, &store, &ca, cmd).await;
    store.close().await;
    result
}

fn err(e: sealgate_ca::CaError) -> anyhow::Error {
    anyhow!("{e}")
}

async fn command(
    settings: &Settings,
    store: &sealgate_store::Store,
    ca: &Ca,
    cmd: CaCommand,
) -> Result<ExitCode> {
    let schedule = || settings.queue.schedule().map_err(|e| anyhow!("{e}"));
    match cmd {
        CaCommand::Create {
            root_cn,
            intermediate_cn,
            email,
            days,
            key,
            signature,
            default,
            json,
        } => {
            let view = ca
                .create(&NewCa {
                    root_name: root_cn,
                    intermediate_name: intermediate_cn,
                    email,
                    validity_days: days,
                    key: KeySpec::parse(&key).map_err(err)?,
                    signature_algorithm: SigAlg::parse(&signature).map_err(err)?,
                    make_default: default,
                })
                .await
                .map_err(err)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                out!(
                    "created CA {} ({}){}\n  root:         {} ({}, in the root store)\n  intermediate: {}\n  valid until:  {}",
                    view.authority.sha256,
                    view.authority.name,
                    if view.authority.is_default { ", the default CA" } else { "" },
                    view.root_subject,
                    view.authority.root_sha256,
                    view.intermediate_subject,
                    view.not_after
                );
            }
        }
        CaCommand::List { json } => {
            let list = ca.list().await.map_err(err)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                out!("no CA yet: create one with `sealgate ca create`");
            } else {
                for v in &list {
                    out!(
                        "{} {}  {}  until {}{}",
                        if v.authority.is_default { "*" } else { " " },
                        v.authority.sha256,
                        v.intermediate_subject,
                        v.not_after,
                        v.crl_number
                            .map(|n| format!("  CRL #{n}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        CaCommand::Default { thumbprint } => {
            let v = ca.set_default(&thumbprint).await.map_err(err)?;
            out!(
                "the default CA is now {} ({})",
                v.authority.sha256,
                v.authority.name
            );
        }
        CaCommand::Config(CaConfigCommand::Show { json }) => {
            let c = ca.config().await.map_err(err)?;
            if json {
                out!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                let v = serde_json::to_value(&c)?;
                for name in sealgate_ca::config::SETTINGS {
                    out!("{name:<28} {}", v[name]);
                }
            }
        }
        CaCommand::Config(CaConfigCommand::Set { name, value }) => {
            let c = ca.set_config(&name, &value).await.map_err(err)?;
            out!("{name} = {}", serde_json::to_value(&c)?[name.as_str()]);
        }
        CaCommand::Request {
            email,
            cn,
            organisation,
            first_name,
            last_name,
            days,
            key,
            signature,
            crl_dp,
            no_crl_dp,
            ca: which,
            p12_out,
            legacy,
            send,
            add_user,
            handler,
            json,
        } => {
            let request = Request {
                email,
                common_name: cn,
                organisation,
                given_name: first_name,
                surname: last_name,
                validity_days: days,
                key: key
                    .as_deref()
                    .map(KeySpec::parse)
                    .transpose()
                    .map_err(err)?,
                signature_algorithm: signature
                    .as_deref()
                    .map(SigAlg::parse)
                    .transpose()
                    .map_err(err)?,
                crl_distribution_point: if crl_dp {
                    Some(true)
                } else if no_crl_dp {
                    Some(false)
                } else {
                    None
                },
                ca: which,
            };
            let handler_name = match handler {
                Some(h) => h,
                None => ca.config().await.map_err(err)?.default_handler,
            };
            let handler = sealgate_ca::handler::by_name(&handler_name).map_err(err)?;
            let issued = match handler.submit(ca, &request).await.map_err(err)? {
                sealgate_ca::handler::Outcome::Issued(i) => *i,
                sealgate_ca::handler::Outcome::Pending(p) => {
                    if json {
                        out!("{}", serde_json::to_string_pretty(&p)?);
                    } else {
                        out!(
                            "request {} pending ({} handler) for {}\n  take its CSR to the CA: sealgate ca pending download {}\n  then: sealgate ca pending upload CERTIFICATE",
                            p.id, p.handler, p.email, p.id
                        );
                    }
                    return Ok(ExitCode::SUCCESS);
                }
            };
            let password = match &p12_out {
                Some(path) => {
                    let password = ca.new_password(&issued.sha256).await.map_err(err)?;
                    let p12 = ca
                        .pkcs12(&issued.sha256, &password, legacy)
                        .await
                        .map_err(err)?;
                    write_private(path, &p12)?;
                    Some(password)
                }
                None => None,
            };
            if add_user {
                sealgate_policy::stored::set(
                    store,
                    &settings.policy,
                    &issued.email,
                    "sign",
                    "opportunistic",
                )
                .await
                .map_err(|e| anyhow!("--add-user: {e}"))?;
            }
            let sent = if send {
                Some(
                    ca.send(
                        &schedule()?,
                        &settings.smtp.hostname,
                        &issued.email,
                        std::slice::from_ref(&issued.sha256),
                        false,
                        password.clone(),
                        legacy,
                    )
                    .await
                    .map_err(err)?,
                )
            } else {
                None
            };
            let password = password.or_else(|| sent.as_ref().map(|s| s.password.clone()));
            if json {
                let mut v = serde_json::to_value(&issued)?;
                if let Some(p) = &password {
                    v["pkcs12_password"] = serde_json::json!(p);
                }
                if let Some(s) = &sent {
                    v["mail_queue_id"] = serde_json::json!(s.queue_id);
                }
                v["user_added"] = serde_json::json!(add_user);
                out!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                out!(
                    "issued {} for {}\n  subject: {}\n  serial:  {}\n  until:   {}\n  CA:      {}",
                    issued.sha256,
                    issued.email,
                    issued.subject,
                    issued.serial,
                    issued.not_after,
                    issued.ca
                );
                if let Some(path) = &p12_out {
                    out!(
                        "PKCS#12 written to {} ({})",
                        path.display(),
                        if legacy {
                            "3DES/SHA-1, legacy"
                        } else {
                            "AES-256/PBKDF2"
                        }
                    );
                }
                if let Some(s) = &sent {
                    out!("PKCS#12 mailed to {} (queue id {})", s.to, s.queue_id);
                }
                if add_user {
                    out!(
                        "user object added for {}: policy sign = \"opportunistic\" (store)",
                        issued.email
                    );
                }
                if let Some(p) = &password {
                    out!("its password (give it to the user by another channel): {p}");
                }
            }
        }
        CaCommand::Send {
            address,
            certs,
            allow_mismatch,
            password_file,
            legacy,
            json,
        } => {
            let password = match &password_file {
                Some(f) => Some(
                    std::fs::read_to_string(f)
                        .with_context(|| format!("--password-file: cannot read {}", f.display()))?
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string(),
                ),
                None => None,
            };
            let given = password.is_some();
            let sent = ca
                .send(
                    &schedule()?,
                    &settings.smtp.hostname,
                    &address,
                    &certs,
                    allow_mismatch,
                    password,
                    legacy,
                )
                .await
                .map_err(err)?;
            if json {
                let mut v = serde_json::to_value(&sent)?;
                if !given {
                    v["pkcs12_password"] = serde_json::json!(sent.password);
                }
                out!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                out!(
                    "PKCS#12 of {} certificate(s) mailed to {} (queue id {})",
                    sent.certificates.len(),
                    sent.to,
                    sent.queue_id
                );
                if !given {
                    out!(
                        "its password (give it to the user by another channel): {}",
                        sent.password
                    );
                }
            }
        }
        CaCommand::Pending(p) => match p {
            CaPendingCommand::List { json } => {
                let list = ca.pending_list().await.map_err(err)?;
                if json {
                    out!("{}", serde_json::to_string_pretty(&list)?);
                } else if list.is_empty() {
                    out!("no pending requests");
                } else {
                    for p in &list {
                        out!(
                            "{}  {}  {}  {}  created {}, attempts {}{}",
                            p.id,
                            p.handler,
                            p.email,
                            p.subject,
                            crate::commands::fmt_time(Some(p.created_at)),
                            p.attempts,
                            p.last_error
                                .as_deref()
                                .map(|e| format!(" ({e})"))
                                .unwrap_or_default()
                        );
                    }
                }
            }
            CaPendingCommand::Download { id, out } => {
                let p = ca.pending(&id).await.map_err(err)?;
                match out {
                    Some(path) => {
                        std::fs::write(&path, &p.csr_pem)
                            .with_context(|| format!("--out: cannot write {}", path.display()))?;
                        out!("the CSR of {} is in {}", p.view.id, path.display());
                    }
                    None => out!("{}", String::from_utf8_lossy(&p.csr_pem).trim_end()),
                }
            }
            CaPendingCommand::Upload { file } => {
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let done = ca
                    .pending_upload(&bytes)
                    .await
                    .map_err(|e| anyhow!("{}: {e}", file.display()))?;
                for (id, sha) in done {
                    out!("request {id} completed: certificate {sha} stored with its key and used from now on");
                }
            }
            CaPendingCommand::Reschedule { id } => {
                let p = ca.pending_reschedule(&id).await.map_err(err)?;
                out!("request {} is looked at again now", p.id);
            }
            CaPendingCommand::Delete { id } => {
                let p = ca.pending_delete(&id).await.map_err(err)?;
                out!("request {} for {} deleted with its key", p.id, p.email);
            }
        },
        CaCommand::Bulk {
            file,
            preview,
            handler,
            json,
        } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let in_file = |e: sealgate_ca::CaError| anyhow!("{}: {e}", file.display());
            if preview {
                let plan = ca.bulk_plan(&bytes).await.map_err(in_file)?;
                if json {
                    out!("{}", serde_json::to_string_pretty(&plan)?);
                } else {
                    for r in &plan.requests {
                        out!(
                            "row {}: would request {} for {}{}",
                            r.row,
                            r.common_name,
                            r.email,
                            r.organisation
                                .as_deref()
                                .map(|o| format!(" ({o})"))
                                .unwrap_or_default()
                        );
                    }
                    for s in &plan.skipped {
                        out!("row {}: skip {}: {}", s.row, s.email, s.reason);
                    }
                    out!(
                        "{} to request, {} skipped (preview: nothing requested)",
                        plan.requests.len(),
                        plan.skipped.len()
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let handler_name = match handler {
                Some(h) => h,
                None => ca.config().await.map_err(err)?.default_handler,
            };
            let handler = sealgate_ca::handler::by_name(&handler_name).map_err(err)?;
            let (plan, done) = ca.bulk(&bytes, handler.as_ref()).await.map_err(in_file)?;
            let mut results = Vec::new();
            for (row, outcome) in &done {
                let (what, id, email) = match outcome {
                    sealgate_ca::handler::Outcome::Issued(i) => {
                        ("issued", i.sha256.clone(), i.email.clone())
                    }
                    sealgate_ca::handler::Outcome::Pending(p) => {
                        ("pending", p.id.clone(), p.email.clone())
                    }
                };
                if !json {
                    out!("row {row}: {what} {id} for {email}");
                }
                results.push(
                    serde_json::json!({"row": row, "outcome": what, "id": id, "email": email}),
                );
            }
            if json {
                out!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"results": results, "skipped": plan.skipped})
                    )?
                );
            } else {
                for s in &plan.skipped {
                    out!("row {}: skipped {}: {}", s.row, s.email, s.reason);
                }
                out!("{} requested, {} skipped", done.len(), plan.skipped.len());
            }
        }
        CaCommand::Export {
            thumbprint,
            out,
            password_file,
            legacy,
        } => {
            let (password, generated) = match &password_file {
                Some(f) => {
                    let text = std::fs::read_to_string(f)
                        .with_context(|| format!("--password-file: cannot read {}", f.display()))?;
                    (text.lines().next().unwrap_or("").to_string(), false)
                }
                None => {
                    let length = ca.config().await.map_err(err)?.password_length;
                    (sealgate_ca::pkcs12::password(length).map_err(err)?, true)
                }
            };
            let p12 = ca
                .pkcs12(&thumbprint, &password, legacy)
                .await
                .map_err(err)?;
            write_private(&out, &p12)?;
            if generated {
                out!(
                    "PKCS#12 written to {}; its password: {password}",
                    out.display()
                );
            } else {
                out!("PKCS#12 written to {}", out.display());
            }
        }
        CaCommand::Crl(CaCrlCommand::Create {
            ca: which,
            serials,
            next_update_days,
            replace,
            signature,
            out,
        }) => {
            let (crl, listed) = ca
                .create_crl(&NewCrl {
                    ca: which,
                    serials,
                    next_update_days,
                    update_existing: !replace,
                    signature_algorithm: signature
                        .as_deref()
                        .map(SigAlg::parse)
                        .transpose()
                        .map_err(err)?,
                })
                .await
                .map_err(err)?;
            if let Some(path) = &out {
                std::fs::write(path, &crl.der)
                    .with_context(|| format!("--out: cannot write {}", path.display()))?;
            }
            out!(
                "CRL #{} created: {} serial(s) listed{}; in the CRL store and published on the admin listener",
                crl.number,
                listed.len(),
                if listed.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", listed.join(", "))
                }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a file only its owner may read (it holds a private key).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
