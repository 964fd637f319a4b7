//! `sealgate ca ...`: the CLI face of `sealgate_ca::Ca`. It works on the
//! store, so against a running gateway too: a certificate issued here is
//! used by every instance for the next message to its address.

use crate::cli::{CaCommand, CaConfigCommand, CaCrlCommand};
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
    let result = command(&ca, cmd).await;
    store.close().await;
    result
}

fn err(e: sealgate_ca::CaError) -> anyhow::Error {
    anyhow!("{e}")
}

async fn command(ca: &Ca, cmd: CaCommand) -> Result<ExitCode> {
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
            let issued = ca.issue(&request).await.map_err(err)?;
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
            if json {
                let mut v = serde_json::to_value(&issued)?;
                if let Some(p) = &password {
                    v["pkcs12_password"] = serde_json::json!(p);
                }
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
                if let (Some(path), Some(p)) = (&p12_out, &password) {
                    out!(
                        "PKCS#12 written to {} ({}); its password (give it to the user by another channel): {p}",
                        path.display(),
                        if legacy { "3DES/SHA-1, legacy" } else { "AES-256/PBKDF2" }
                    );
                }
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
