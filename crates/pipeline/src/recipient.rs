//! The decision for one recipient at RCPT time, kept with the recipient until
//! the end of DATA so that the message is built with exactly the keys the
//! recipient was accepted with.

use sealgate_keys::{Method, RecipientKey, Resolution, Resolver};
use sealgate_policy::{Decision, ForeignEncryption, Mode, Policy, Refusal};
use sealgate_smtp_server::Reply;
use std::time::Duration;

/// The listener's per-recipient token.
#[derive(Debug, Clone)]
pub struct RecipientDecision {
    pub decision: Decision,
    /// The policy entry that applied (`global` or a domain key).
    pub policy: String,
    /// The recipient's mode: a mandatory recipient gets already-encrypted
    /// mail unchanged only if it names one of the recipient's keys.
    pub mode: Mode,
    /// What to do when it does not.
    pub foreign_encryption: ForeignEncryption,
    /// An encrypted copy of its own, not shared with the other To/Cc
    /// recipients (`copy_per_recipient`).
    pub copy_per_recipient: bool,
    /// Fingerprints of the additional keys (key escrow) among the
    /// decision's keys.
    pub additional: Vec<String>,
}

/// The additional certificates and keys (`policy.additional_certificates`,
/// `additional_pgp_keys`) that exist and are usable now, by thumbprint or
/// fingerprint (upper-case hex). Ones that are not are left out (and the
/// provider says so in the log).
pub trait AdditionalKeys: Send + Sync {
    fn smime(&self, sha256: &[String]) -> Vec<RecipientKey>;
    fn pgp(&self, fingerprints: &[String]) -> Vec<RecipientKey>;
    /// The certificates manually selected for `address` (its own and its
    /// domain's) that are valid now, whether or not they name it.
    fn selected(&self, _address: &str) -> Vec<RecipientKey> {
        Vec::new()
    }
}

/// What a recipient's client announced it reads (SMIMECapabilities of its
/// signed mail, learned by harvesting), for `smime_cipher = "auto"`.
#[async_trait::async_trait]
pub trait Capabilities: Send + Sync {
    /// True when `address`'s signed mail listed AES-256-GCM; false when
    /// unknown (or the answer cannot be had: CBC is what every client reads).
    async fn reads_gcm(&self, address: &str) -> bool;
}

/// Told which learned keys a queued copy was encrypted to, so that their
/// bindings record the use (`encr_used`).
pub trait KeyUse: Send + Sync {
    /// `address` got a copy encrypted to `fingerprints` (as
    /// [`sealgate_keys::RecipientKey::fingerprint`] writes them), all from
    /// the key source `source`. Must return at once.
    fn encrypted_to(&self, address: &str, source: &str, fingerprints: &[String]);
}

/// Nothing is recorded.
pub struct NoKeyUse;

impl KeyUse for NoKeyUse {
    fn encrypted_to(&self, _: &str, _: &str, _: &[String]) {}
}

/// Nothing known: `auto` is always CBC.
pub struct NoCapabilities;

#[async_trait::async_trait]
impl Capabilities for NoCapabilities {
    async fn reads_gcm(&self, _: &str) -> bool {
        false
    }
}

/// No additional keys.
pub struct NoAdditionalKeys;

impl AdditionalKeys for NoAdditionalKeys {
    fn smime(&self, _: &[String]) -> Vec<RecipientKey> {
        Vec::new()
    }
    fn pgp(&self, _: &[String]) -> Vec<RecipientKey> {
        Vec::new()
    }
}

impl RecipientDecision {
    /// `encrypt pgp [FPR,...] from files` / `plain (reason)` for logs.
    pub fn summary(&self) -> String {
        match &self.decision {
            Decision::Encrypt { method, source, .. } => format!(
                "encrypt {method} [{}] from {source}{}",
                self.fingerprints().join(","),
                if self.additional.is_empty() {
                    String::new()
                } else {
                    format!(" + additional [{}]", self.additional.join(","))
                }
            ),
            Decision::Plain { reason } => format!("plain ({reason})"),
            Decision::Bounce { reason } => format!("bounce ({reason})"),
            Decision::Hold { reason } => format!("hold ({reason})"),
        }
    }

    pub fn method(&self) -> Option<Method> {
        match &self.decision {
            Decision::Encrypt { method, .. } => Some(*method),
            Decision::Plain { .. } | Decision::Bounce { .. } | Decision::Hold { .. } => None,
        }
    }

    pub fn fingerprints(&self) -> Vec<String> {
        match &self.decision {
            Decision::Encrypt { keys, .. } => keys.iter().map(|k| k.fingerprint()).collect(),
            Decision::Plain { .. } | Decision::Bounce { .. } | Decision::Hold { .. } => Vec::new(),
        }
    }
}

/// CipherMail's certificate selection on the resolver's answer: with
/// `auto_select` off, the S/MIME keys the sources found for the address are
/// dropped; the manually selected ones are added (they may be the only ones).
fn with_selection(
    mut resolution: Resolution,
    settings: &sealgate_policy::Settings,
    additional: &dyn AdditionalKeys,
    address: &str,
) -> Resolution {
    if !settings.methods.contains(&Method::Smime) {
        return resolution;
    }
    if !settings.auto_select {
        resolution.keys.remove(&Method::Smime);
    }
    let manual = additional.selected(address);
    if manual.is_empty() {
        return resolution;
    }
    let (_, keys) = resolution
        .keys
        .entry(Method::Smime)
        .or_insert_with(|| ("selected".to_string(), Vec::new()));
    for k in manual {
        let f = k.fingerprint();
        if !keys.iter().any(|have| have.fingerprint() == f) {
            keys.push(k);
        }
    }
    resolution
}

/// Resolves and decides; a refusal becomes the RCPT reply.
pub async fn decide(
    policy: &Policy,
    resolver: &Resolver,
    additional: &dyn AdditionalKeys,
    capabilities: &dyn Capabilities,
    timeout: Duration,
    address: &str,
) -> Result<RecipientDecision, Reply> {
    decide_as(
        policy,
        resolver,
        additional,
        capabilities,
        timeout,
        address,
        false,
    )
    .await
}

/// [`decide`]; with `triggered` (a trigger fired on the message) the
/// recipient is mandatory whatever its own mode, and bounced or held (its
/// `no_key_action`; `reject` acts as `bounce`, since RCPT was answered
/// already; never plaintext) when no usable key is found.
pub async fn decide_as(
    policy: &Policy,
    resolver: &Resolver,
    additional: &dyn AdditionalKeys,
    capabilities: &dyn Capabilities,
    timeout: Duration,
    address: &str,
    triggered: bool,
) -> Result<RecipientDecision, Reply> {
    let mut settings = policy.settings_for(address);
    if triggered {
        settings.mode = Mode::Mandatory;
        if settings.no_key_action == sealgate_policy::NoKeyAction::Reject {
            settings.no_key_action = sealgate_policy::NoKeyAction::Bounce;
        }
        settings.matched = format!("{} (triggered)", settings.matched);
    }
    let resolution = if settings.mode == Mode::Off {
        Resolution::default()
    } else {
        match tokio::time::timeout(
            timeout,
            resolver.resolve(address, &settings.methods, settings.on_error()),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Resolution {
                errors: vec![format!(
                    "key lookup timed out after {} s",
                    timeout.as_secs()
                )],
                ..Default::default()
            },
        }
    };
    let resolution = with_selection(resolution, &settings, additional, address);
    match policy.decide(&settings, &resolution) {
        Ok(mut decision) => {
            // Every copy for this recipient is also encrypted to the
            // additional keys of its method; the copy then names them too.
            let mut added = Vec::new();
            if let Decision::Encrypt {
                method: Method::Smime,
                smime_cipher: c @ sealgate_policy::SmimeCipherName::Auto,
                ..
            } = &mut decision
            {
                *c = if capabilities.reads_gcm(address).await {
                    sealgate_policy::SmimeCipherName::Aes256Gcm
                } else {
                    sealgate_policy::SmimeCipherName::Aes256Cbc
                };
            }
            if let Decision::Encrypt { method, keys, .. } = &mut decision {
                let extra = match method {
                    Method::Smime => additional.smime(&settings.additional_certificates),
                    Method::Pgp => additional.pgp(&settings.additional_pgp_keys),
                };
                for k in extra {
                    let f = k.fingerprint();
                    if !keys.iter().any(|have| have.fingerprint() == f) {
                        keys.push(k);
                        added.push(f);
                    }
                }
            }
            Ok(RecipientDecision {
                decision,
                policy: settings.matched,
                mode: settings.mode,
                foreign_encryption: settings.foreign_encryption,
                copy_per_recipient: settings.copy_per_recipient,
                additional: added,
            })
        }
        Err(Refusal::NoKey(reason)) => Err(Reply::new(
            550,
            (5, 7, 1),
            format!("<{address}>: recipient requires encryption: {reason}"),
        )),
        Err(Refusal::SourceFailed(reason)) => {
            // The reason names hosts, DNs and library errors: log only. The
            // client gets a reference to find the log line by.
            let reference = sealgate_queue::next_id();
            tracing::warn!(recipient = address, reference = %reference, reason = %reason, "key lookup failed");
            Err(Reply::new(
                451,
                (4, 4, 3),
                format!("<{address}>: key lookup failed, try again later (ref {reference})"),
            ))
        }
    }
}
