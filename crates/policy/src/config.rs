//! The `[policy]` section of the configuration, as serde types.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Encryption mode of a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Never encrypt.
    Off,
    /// Encrypt when a usable key exists, else send as is.
    Opportunistic,
    /// Encrypt or refuse the recipient (550 5.7.1).
    Mandatory,
}

/// An encryption method as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodName {
    /// PGP/MIME (RFC 3156).
    Pgp,
    /// Inline PGP for text/plain messages (old clients); a multipart
    /// message gets PGP/MIME instead. Looks up the same keys as `pgp`.
    #[serde(rename = "pgp-inline")]
    PgpInline,
    Smime,
}

impl From<MethodName> for sealgate_keys::Method {
    fn from(m: MethodName) -> Self {
        match m {
            MethodName::Pgp | MethodName::PgpInline => sealgate_keys::Method::Pgp,
            MethodName::Smime => sealgate_keys::Method::Smime,
        }
    }
}

/// The S/MIME content cipher as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum SmimeCipherName {
    /// AES-256-GCM for a recipient whose signed mail announced it
    /// (SMIMECapabilities, learned by harvesting), AES-256-CBC otherwise.
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "aes-256-cbc")]
    Aes256Cbc,
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
}

/// RSA key transport of S/MIME copies as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RsaPaddingName {
    /// PKCS#1 v1.5: what every S/MIME client reads.
    #[default]
    Pkcs1,
    /// RSAES-OAEP with SHA-256.
    Oaep,
}

/// What to do with a recipient when a key source failed (its answer is unknown)
/// and no other source gave a usable key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSourceError {
    /// 451 4.4.3: the client tries again later.
    Defer,
    /// Decide as if the failed source had no key: opportunistic recipients get
    /// plaintext, mandatory ones are refused (550 5.7.1), never plaintext.
    Skip,
}

/// What to do when a message is already encrypted, but not to any usable key
/// of a recipient whose mode is `mandatory` (a hidden or password-only
/// recipient, or someone else's key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForeignEncryption {
    /// Encrypt the (encrypted) message again, to the recipient's own keys.
    #[default]
    Reencrypt,
    /// Refuse the recipient at the end of DATA with 554 5.7.1.
    Reject,
}

/// Whether outgoing mail is S/MIME-signed for its sender (the author in
/// `From:`), with the signing certificate `sealgate certs sign-select` or
/// the automatic choice gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignMode {
    /// Never sign (the default).
    #[default]
    Off,
    /// Sign when the sender has a usable signing certificate, else send
    /// unsigned (logged).
    Opportunistic,
    /// Sign, or do not take the message (`sign_unavailable`): never sent
    /// unsigned.
    Mandatory,
}

/// What a `mandatory` signer without a usable signing certificate gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignUnavailable {
    /// 451 4.7.5: the client keeps the message and tries again (a
    /// certificate may be imported or a CRL refreshed meanwhile).
    #[default]
    Defer,
    /// 554 5.7.5: the client bounces the message to its sender.
    Reject,
}

/// What a `mandatory` recipient without a usable key gets. Never plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoKeyAction {
    /// `550 5.7.1` at RCPT: the sending MTA bounces it.
    #[default]
    Reject,
    /// Accept it, then send the sender a failure DSN saying why (nothing
    /// is delivered to the recipient).
    Bounce,
    /// Accept it and keep it in the queue, looking its key up again on the
    /// retry schedule; delivered encrypted once a usable key appears, or
    /// bounced after `policy.hold_max_age`. Its plaintext rests in the
    /// queue meanwhile.
    Hold,
}

fn default_on_source_error() -> OnSourceError {
    OnSourceError::Defer
}

fn yes() -> bool {
    true
}

fn default_mode() -> Mode {
    Mode::Opportunistic
}
fn default_methods() -> Vec<MethodName> {
    vec![MethodName::Pgp, MethodName::Smime]
}
fn default_cipher() -> SmimeCipherName {
    SmimeCipherName::Auto
}

/// `[policy]`: global settings and per-domain overrides.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "default_mode")]
    pub mode: Mode,
    #[serde(default = "default_methods")]
    pub methods: Vec<MethodName>,
    #[serde(default = "default_cipher")]
    pub smime_cipher: SmimeCipherName,
    /// RSA key transport: `pkcs1` (default) or `oaep`.
    #[serde(default)]
    pub smime_rsa_padding: RsaPaddingName,
    /// SHA-256 thumbprints of certificates of the certificate store that
    /// every S/MIME copy is also encrypted to (key escrow, archiving,
    /// central scanning).
    #[serde(default)]
    pub additional_certificates: Vec<String>,
    /// Fingerprints of OpenPGP keys in the store (`keys import`) that every
    /// PGP/MIME copy is also encrypted to.
    #[serde(default)]
    pub additional_pgp_keys: Vec<String>,
    /// S/MIME certificates that name the recipient are used (CipherMail's
    /// automatic selection). `false`: only the manually selected ones
    /// (`sealgate certs select`).
    #[serde(default = "yes")]
    pub auto_select: bool,
    #[serde(default = "default_on_source_error")]
    pub on_source_error: OnSourceError,
    /// A `mandatory` recipient without a usable key: `reject`, `bounce` or
    /// `hold`.
    #[serde(default)]
    pub no_key_action: NoKeyAction,
    /// How long a recipient held for a key (`no_key_action = "hold"`) waits
    /// before the sender gets a failure DSN (`30m`, `12h`, `3d`; at most
    /// `queue.max_age`, which still applies).
    #[serde(default = "default_hold_max_age")]
    pub hold_max_age: String,
    #[serde(default)]
    pub foreign_encryption: ForeignEncryption,
    /// S/MIME signing of outgoing mail, read for the sender's address.
    #[serde(default)]
    pub sign: SignMode,
    #[serde(default)]
    pub sign_unavailable: SignUnavailable,
    /// Encrypt-by-subject, read for the sender: a Subject matching this
    /// regular expression makes the message mandatory for every recipient.
    #[serde(default)]
    pub trigger_subject: Option<String>,
    /// The same by a header field: `Name: value` (name case-insensitive,
    /// value compared trimmed and case-insensitively).
    #[serde(default)]
    pub trigger_header: Option<String>,
    /// Keep the matched text in the Subject (it is removed by default).
    #[serde(default)]
    pub trigger_keep_subject: bool,
    /// One encrypted copy per recipient, instead of one copy shared by the
    /// To/Cc recipients of the same method, cipher and padding.
    #[serde(default)]
    pub copy_per_recipient: bool,
    /// Header protection (RFC 9788 `hp="cipher"`, Thunderbird's
    /// `protected-headers="v1"`) on this recipient's encrypted copies.
    #[serde(default)]
    pub header_protection: bool,
    /// The Subject the outside of a header-protected copy shows.
    #[serde(default = "default_outer_subject")]
    pub header_protection_outer_subject: String,
    /// DKIM-sign the copies sealgate changed, when a `[[dkim.keys]]` entry
    /// has the From domain; read for the sender.
    #[serde(default = "default_true")]
    pub dkim_sign: bool,
    /// Keyed by domain (`example.com`) or wildcard (`*.example.com`, which
    /// matches subdomains only).
    #[serde(default)]
    pub domains: BTreeMap<String, DomainPolicy>,
    /// Keyed by full address (`alice@example.com`, compared
    /// case-insensitively): the most specific level, over the domain's.
    #[serde(default)]
    pub users: BTreeMap<String, UserPolicy>,
    /// Seconds between two looks at the policy kept in the store (every
    /// instance sharing it obeys a change within this).
    #[serde(default = "default_reload_secs")]
    pub reload_secs: u64,
}

fn default_reload_secs() -> u64 {
    10
}

fn default_hold_max_age() -> String {
    "3d".into()
}

fn default_outer_subject() -> String {
    "[...]".into()
}

fn default_true() -> bool {
    true
}

/// Whether `s` may be the outer Subject of a header-protected copy: one
/// line of printable US-ASCII, 1 to 200 characters.
pub fn valid_outer_subject(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 200 || !s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!(
            "{s:?} cannot be an outer Subject: give 1 to 200 printable US-ASCII characters, such as \"[...]\""
        ));
    }
    Ok(())
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            mode: default_mode(),
            methods: default_methods(),
            smime_cipher: default_cipher(),
            smime_rsa_padding: RsaPaddingName::default(),
            additional_certificates: Vec::new(),
            additional_pgp_keys: Vec::new(),
            auto_select: true,
            on_source_error: default_on_source_error(),
            no_key_action: NoKeyAction::default(),
            hold_max_age: default_hold_max_age(),
            foreign_encryption: ForeignEncryption::default(),
            sign: SignMode::default(),
            sign_unavailable: SignUnavailable::default(),
            trigger_subject: None,
            trigger_header: None,
            trigger_keep_subject: false,
            copy_per_recipient: false,
            header_protection: false,
            header_protection_outer_subject: default_outer_subject(),
            dkim_sign: true,
            domains: BTreeMap::new(),
            users: BTreeMap::new(),
            reload_secs: default_reload_secs(),
        }
    }
}

/// `[policy.users."alice@example.com"]`: the same settings for one
/// address; any left out comes from its domain, then the global ones.
pub type UserPolicy = DomainPolicy;

/// `[policy.domains."example.com"]`: any setting left out is inherited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DomainPolicy {
    pub mode: Option<Mode>,
    pub methods: Option<Vec<MethodName>>,
    pub smime_cipher: Option<SmimeCipherName>,
    pub smime_rsa_padding: Option<RsaPaddingName>,
    /// Added to the global ones (not replacing them).
    pub additional_certificates: Option<Vec<String>>,
    /// Added to the global ones (not replacing them).
    pub additional_pgp_keys: Option<Vec<String>>,
    pub auto_select: Option<bool>,
    pub on_source_error: Option<OnSourceError>,
    pub no_key_action: Option<NoKeyAction>,
    pub foreign_encryption: Option<ForeignEncryption>,
    pub sign: Option<SignMode>,
    pub sign_unavailable: Option<SignUnavailable>,
    pub trigger_subject: Option<String>,
    pub trigger_header: Option<String>,
    pub trigger_keep_subject: Option<bool>,
    pub copy_per_recipient: Option<bool>,
    pub header_protection: Option<bool>,
    pub header_protection_outer_subject: Option<String>,
    pub dkim_sign: Option<bool>,
}

impl PolicyConfig {
    /// `hold_max_age` as a duration.
    pub fn hold_max_age(&self) -> Result<std::time::Duration, String> {
        match sealgate_store::parse_duration(&self.hold_max_age) {
            Some(d) if !d.is_zero() => Ok(d),
            _ => Err(format!(
                "policy.hold_max_age: {:?} is not a duration (a number with s, m, h or d, such as \"3d\"; not 0)",
                self.hold_max_age
            )),
        }
    }

    /// Checks what serde cannot: non-empty method lists, well-formed domain keys.
    pub fn validate(&self) -> Result<(), String> {
        if self.methods.is_empty() {
            return Err("policy.methods: must name at least one method (pgp, smime)".into());
        }
        if self.reload_secs == 0 {
            return Err("policy.reload_secs: must be at least 1".into());
        }
        self.hold_max_age()?;
        valid_outer_subject(&self.header_protection_outer_subject)
            .map_err(|e| format!("policy.header_protection_outer_subject: {e}"))?;
        let triggers = std::iter::once((
            "policy".to_string(),
            &self.trigger_subject,
            &self.trigger_header,
        ))
        .chain(self.domains.iter().map(|(k, d)| {
            (
                format!("policy.domains.\"{k}\""),
                &d.trigger_subject,
                &d.trigger_header,
            )
        }))
        .chain(self.users.iter().map(|(k, d)| {
            (
                format!("policy.users.\"{k}\""),
                &d.trigger_subject,
                &d.trigger_header,
            )
        }));
        for (level, subject, header) in triggers {
            if let Some(re) = subject {
                crate::trigger::compile(re).map_err(|e| format!("{level}.trigger_subject: {e}"))?;
            }
            if let Some(h) = header {
                crate::trigger::header_rule(h)
                    .map_err(|e| format!("{level}.trigger_header: {e}"))?;
            }
        }
        let hex = |key: &str, list: &[String], lens: &[usize], what: &str| -> Result<(), String> {
            for t in list {
                if !lens.contains(&t.len()) || !t.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!("{key}: {t:?} is not {what}"));
                }
            }
            Ok(())
        };
        let sha256 = "the SHA-256 thumbprint of a stored certificate (64 hex digits, as `sealgate certs list --json` shows)";
        let fpr = "an OpenPGP fingerprint (40 or 64 hex digits)";
        hex(
            "policy.additional_certificates",
            &self.additional_certificates,
            &[64],
            sha256,
        )?;
        hex(
            "policy.additional_pgp_keys",
            &self.additional_pgp_keys,
            &[40, 64],
            fpr,
        )?;
        let levels = self
            .domains
            .iter()
            .map(|(k, d)| (format!("policy.domains.\"{k}\""), d))
            .chain(
                self.users
                    .iter()
                    .map(|(k, d)| (format!("policy.users.\"{k}\""), d)),
            );
        for (level, d) in levels {
            let key = |k: &str| format!("{level}.{k}");
            hex(
                &key("additional_certificates"),
                d.additional_certificates.as_deref().unwrap_or(&[]),
                &[64],
                sha256,
            )?;
            hex(
                &key("additional_pgp_keys"),
                d.additional_pgp_keys.as_deref().unwrap_or(&[]),
                &[40, 64],
                fpr,
            )?;
            if let Some(s) = &d.header_protection_outer_subject {
                valid_outer_subject(s)
                    .map_err(|e| format!("{}: {e}", key("header_protection_outer_subject")))?;
            }
            if d.methods.as_ref().is_some_and(Vec::is_empty) {
                return Err(format!("{level}.methods: must name at least one method"));
            }
        }
        for address in self.users.keys() {
            let ok = address.rsplit_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('*')
                    && !address.chars().any(|c| c.is_whitespace() || c.is_control())
            });
            if !ok {
                return Err(format!(
                    "policy.users.\"{address}\": not an address (user@domain)"
                ));
            }
        }
        for domain in self.domains.keys() {
            let bare = domain.strip_prefix("*.").unwrap_or(domain);
            if bare.is_empty()
                || bare.contains('*')
                || bare.contains('@')
                || bare.starts_with('.')
                || bare.chars().any(char::is_whitespace)
            {
                return Err(format!(
                    "policy.domains.\"{domain}\": not a domain or *.domain wildcard"
                ));
            }
        }
        Ok(())
    }
}
