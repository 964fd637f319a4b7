//! Effective settings for an address and the decision for it.

use crate::config::{
    ForeignEncryption, MethodName, Mode, NoKeyAction, OnSourceError, PolicyConfig,
};
use crate::config::{RsaPaddingName, SignMode, SignUnavailable, SmimeCipherName};
use sealgate_keys::{Method, OnError, RecipientKey, Resolution};
use std::collections::BTreeMap;

/// The settings that apply to one recipient after inheritance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: Mode,
    pub methods: Vec<Method>,
    pub smime_cipher: SmimeCipherName,
    pub smime_rsa_padding: RsaPaddingName,
    /// Upper-case SHA-256 thumbprints: global ones, then the domain's.
    pub additional_certificates: Vec<String>,
    /// Upper-case OpenPGP fingerprints: global ones, then the domain's.
    pub additional_pgp_keys: Vec<String>,
    /// Certificates that name the recipient are used (besides the manually
    /// selected ones).
    pub auto_select: bool,
    pub on_source_error: OnSourceError,
    pub no_key_action: NoKeyAction,
    pub foreign_encryption: ForeignEncryption,
    /// Signing, when this address is the sender.
    pub sign: SignMode,
    pub sign_unavailable: SignUnavailable,
    /// Encrypt-by-subject, when this address is the sender.
    pub trigger_subject: Option<String>,
    pub trigger_header: Option<String>,
    pub trigger_keep_subject: bool,
    /// This recipient gets an encrypted copy of its own.
    pub copy_per_recipient: bool,
    /// `pgp-inline` is among the methods: a text/plain message gets inline
    /// PGP instead of PGP/MIME.
    pub pgp_inline: bool,
    /// Header protection, with the outer Subject, when on.
    pub header_protection: Option<String>,
    /// DKIM signing, when this address is the sender.
    pub dkim_sign: bool,
    /// The most specific policy entry that applied: `global`, a domain key
    /// or an address (`policy.users`).
    pub matched: String,
}

impl Settings {
    /// How the key resolver treats a failing source for this recipient:
    /// `defer` stops the precedence walk there, `skip` goes on.
    pub fn on_error(&self) -> OnError {
        match self.on_source_error {
            OnSourceError::Defer => OnError::Stop,
            OnSourceError::Skip => OnError::Skip,
        }
    }
}

/// What happens to one recipient.
#[derive(Debug, Clone)]
pub enum Decision {
    Encrypt {
        method: Method,
        keys: Vec<RecipientKey>,
        smime_cipher: SmimeCipherName,
        smime_rsa_padding: RsaPaddingName,
        /// Inline PGP for a text/plain message (`pgp-inline`).
        pgp_inline: bool,
        /// Header protection with this outer Subject.
        header_protection: Option<String>,
        /// The key source that supplied the keys.
        source: String,
    },
    /// Sent as is; the reason is logged and audited.
    Plain { reason: String },
    /// Accepted, not delivered: the sender gets a failure DSN with the
    /// reason (`no_key_action = "bounce"`).
    Bounce { reason: String },
    /// Accepted and kept in the queue until a usable key appears
    /// (`no_key_action = "hold"`): encrypted then, bounced after
    /// `policy.hold_max_age`; never plaintext.
    Hold { reason: String },
}

/// Why a recipient is refused at RCPT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 550 5.7.1: mandatory encryption and no usable key.
    NoKey(String),
    /// 451 4.4.3: a key source failed, so we cannot know.
    SourceFailed(String),
}

/// The compiled `[policy]` section (the file's, with the store's settings
/// over it). Clones share one current version, which [`Policy::replace`]
/// swaps for every holder at once.
#[derive(Debug, Clone)]
pub struct Policy {
    current: std::sync::Arc<std::sync::RwLock<std::sync::Arc<Compiled>>>,
}

#[derive(Debug)]
struct Compiled {
    config: PolicyConfig,
    /// Some level turns signing on (worked out once: read per message).
    signs: bool,
    /// Every level's trigger pattern, compiled once.
    patterns: BTreeMap<String, regex::Regex>,
    /// Some level has a trigger (worked out once: read per message).
    triggers: bool,
}

/// The form a domain is compared in: IDNA (UTS #46) ASCII, lower case,
/// without a final dot, so that `bücher.example`, `BÜCHER.example.` and
/// `xn--bcher-kva.example` (the same domain to every MTA) get the same
/// policy. A domain IDNA refuses is compared lower-cased as written.
pub fn canonical_domain(domain: &str) -> String {
    let d = domain.trim_end_matches('.');
    match url::Host::parse(d) {
        Ok(url::Host::Domain(ascii)) => ascii,
        _ => d.to_lowercase(),
    }
}

/// The form a domain-level key is compared in: [`canonical_domain`], keeping
/// a leading `*.` wildcard.
pub fn canonical_domain_key(key: &str) -> String {
    match key.strip_prefix("*.") {
        Some(base) => format!("*.{}", canonical_domain(base)),
        None => canonical_domain(key),
    }
}

/// The form a user-level key and an address are compared in: the local
/// part lower-cased (as sealgate compares addresses everywhere), the domain
/// as [`canonical_domain`].
pub fn canonical_address(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => format!("{}@{}", local.to_lowercase(), canonical_domain(domain)),
        None => address.to_lowercase(),
    }
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Result<Policy, String> {
        Ok(Policy {
            current: std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(
                Compiled::new(config)?,
            ))),
        })
    }

    /// Puts `config` in force for every holder of this policy; on an error
    /// the current one stays.
    pub fn replace(&self, config: PolicyConfig) -> Result<(), String> {
        let compiled = std::sync::Arc::new(Compiled::new(config)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = compiled;
        Ok(())
    }

    /// The configuration in force (the file's with the store's over it).
    pub fn config(&self) -> PolicyConfig {
        self.now().config.clone()
    }

    /// `policy.hold_max_age` in force (validated when it was put in force).
    pub fn hold_max_age(&self) -> std::time::Duration {
        self.now()
            .config
            .hold_max_age()
            .unwrap_or(std::time::Duration::from_secs(3 * 86_400))
    }

    fn now(&self) -> std::sync::Arc<Compiled> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Compiled {
    fn new(config: PolicyConfig) -> Result<Compiled, String> {
        config.validate()?;
        let mut config = config;
        let mut domains = BTreeMap::new();
        for (k, v) in std::mem::take(&mut config.domains) {
            let canonical = canonical_domain_key(&k);
            if domains.insert(canonical.clone(), v).is_some() {
                return Err(format!(
                    "policy.domains.\"{k}\": the same domain as another entry (both are {canonical})"
                ));
            }
        }
        config.domains = domains;
        let mut users = BTreeMap::new();
        for (k, v) in std::mem::take(&mut config.users) {
            let canonical = canonical_address(&k);
            if users.insert(canonical.clone(), v).is_some() {
                return Err(format!(
                    "policy.users.\"{k}\": the same address as another entry (both are {canonical})"
                ));
            }
        }
        config.users = users;
        let signs = config.sign != SignMode::Off
            || config
                .domains
                .values()
                .chain(config.users.values())
                .any(|d| d.sign.is_some_and(|m| m != SignMode::Off));
        let mut patterns = BTreeMap::new();
        let all = std::iter::once(config.trigger_subject.as_ref()).chain(
            config
                .domains
                .values()
                .chain(config.users.values())
                .map(|d| d.trigger_subject.as_ref()),
        );
        for p in all.flatten() {
            patterns.insert(p.clone(), crate::trigger::compile(p)?);
        }
        let triggers = config.trigger_subject.is_some()
            || config.trigger_header.is_some()
            || config
                .domains
                .values()
                .chain(config.users.values())
                .any(|d| d.trigger_subject.is_some() || d.trigger_header.is_some());
        Ok(Compiled {
            config,
            signs,
            patterns,
            triggers,
        })
    }
}

impl Policy {
    /// Global settings, overridden by the most specific matching domain entry
    /// (the exact domain first, then the longest matching `*.` wildcard),
    /// then by the address's own entry, setting by setting.
    pub fn settings_for(&self, address: &str) -> Settings {
        let now = self.now();
        let c = &now.config;
        let mut s = Settings {
            mode: c.mode,
            methods: methods(&c.methods),
            smime_cipher: c.smime_cipher,
            smime_rsa_padding: c.smime_rsa_padding,
            additional_certificates: upper(&c.additional_certificates),
            additional_pgp_keys: upper(&c.additional_pgp_keys),
            auto_select: c.auto_select,
            on_source_error: c.on_source_error,
            no_key_action: c.no_key_action,
            foreign_encryption: c.foreign_encryption,
            sign: c.sign,
            sign_unavailable: c.sign_unavailable,
            trigger_subject: c.trigger_subject.clone(),
            trigger_header: c.trigger_header.clone(),
            trigger_keep_subject: c.trigger_keep_subject,
            copy_per_recipient: c.copy_per_recipient,
            pgp_inline: c.methods.contains(&MethodName::PgpInline),
            header_protection: None,
            dkim_sign: c.dkim_sign,
            matched: "global".into(),
        };
        let mut protect = c.header_protection;
        let mut outer_subject = c.header_protection_outer_subject.clone();
        let domain = address
            .rsplit_once('@')
            .map(|(_, d)| canonical_domain(d))
            .unwrap_or_default();
        let exact = c.domains.get_key_value(domain.as_str());
        let wildcard = c
            .domains
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("*.")
                    .is_some_and(|base| domain.ends_with(&format!(".{base}")))
            })
            .max_by_key(|(k, _)| k.len());
        let user = c.users.get_key_value(canonical_address(address).as_str());
        for (key, d) in exact.or(wildcard).into_iter().chain(user) {
            if let Some(m) = d.mode {
                s.mode = m;
            }
            if let Some(ms) = &d.methods {
                s.methods = methods(ms);
                s.pgp_inline = ms.contains(&MethodName::PgpInline);
            }
            if let Some(ci) = d.smime_cipher {
                s.smime_cipher = ci;
            }
            if let Some(p) = d.smime_rsa_padding {
                s.smime_rsa_padding = p;
            }
            if let Some(a) = d.auto_select {
                s.auto_select = a;
            }
            for (mine, theirs) in [
                (&mut s.additional_certificates, &d.additional_certificates),
                (&mut s.additional_pgp_keys, &d.additional_pgp_keys),
            ] {
                for t in upper(theirs.as_deref().unwrap_or(&[])) {
                    if !mine.contains(&t) {
                        mine.push(t);
                    }
                }
            }
            if let Some(e) = d.on_source_error {
                s.on_source_error = e;
            }
            if let Some(a) = d.no_key_action {
                s.no_key_action = a;
            }
            if let Some(f) = d.foreign_encryption {
                s.foreign_encryption = f;
            }
            if let Some(m) = d.sign {
                s.sign = m;
            }
            if let Some(u) = d.sign_unavailable {
                s.sign_unavailable = u;
            }
            if let Some(t) = &d.trigger_subject {
                s.trigger_subject = Some(t.clone());
            }
            if let Some(t) = &d.trigger_header {
                s.trigger_header = Some(t.clone());
            }
            if let Some(k) = d.trigger_keep_subject {
                s.trigger_keep_subject = k;
            }
            if let Some(c) = d.copy_per_recipient {
                s.copy_per_recipient = c;
            }
            if let Some(h) = d.header_protection {
                protect = h;
            }
            if let Some(o) = &d.header_protection_outer_subject {
                outer_subject = o.clone();
            }
            if let Some(k) = d.dkim_sign {
                s.dkim_sign = k;
            }
            s.matched = key.clone();
        }
        s.header_protection = protect.then_some(outer_subject);
        s
    }

    /// Whether the trigger of `sender`'s policy fires on a message with this
    /// Subject (unfolded, as written) and these header fields.
    pub fn trigger_for(
        &self,
        sender: &str,
        subject: Option<&str>,
        fields: &[(String, String)],
    ) -> Option<crate::trigger::Triggered> {
        let s = self.settings_for(sender);
        let now = self.now();
        let re = s.trigger_subject.as_ref().and_then(|p| now.patterns.get(p));
        let header = s
            .trigger_header
            .as_deref()
            .and_then(|h| crate::trigger::header_rule(h).ok());
        crate::trigger::fires(re, header.as_ref(), s.trigger_keep_subject, subject, fields)
    }

    /// True when some level has a trigger: without that, the pipeline does
    /// not look for one.
    pub fn triggers_anywhere(&self) -> bool {
        self.now().triggers
    }

    /// True when some level turns signing on: without that, the pipeline
    /// does not look at the sender at all.
    pub fn signs_anywhere(&self) -> bool {
        self.now().signs
    }

    /// The decision for `address` given the keys the resolver found. `Off`
    /// needs no resolution; callers may pass an empty one.
    pub fn decide(
        &self,
        settings: &Settings,
        resolution: &Resolution,
    ) -> Result<Decision, Refusal> {
        if settings.mode == Mode::Off {
            return Ok(Decision::Plain {
                reason: format!("policy {} has mode off", settings.matched),
            });
        }
        if !resolution.errors.is_empty() && settings.on_source_error == OnSourceError::Defer {
            // The answer is unknown: never guess plaintext, and never let a
            // lower-ranked source decide in place of the one that failed.
            return Err(Refusal::SourceFailed(resolution.errors.join("; ")));
        }
        for &method in &settings.methods {
            if let Some((source, keys)) = resolution.keys.get(&method) {
                return Ok(Decision::Encrypt {
                    method,
                    keys: keys.clone(),
                    smime_cipher: settings.smime_cipher,
                    smime_rsa_padding: settings.smime_rsa_padding,
                    pgp_inline: method == Method::Pgp && settings.pgp_inline,
                    header_protection: settings.header_protection.clone(),
                    source: source.clone(),
                });
            }
        }
        match settings.mode {
            Mode::Mandatory => {
                let reason = format!(
                    "encryption is mandatory (policy {}) and no usable {} key was found",
                    settings.matched,
                    settings
                        .methods
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(" or ")
                );
                match settings.no_key_action {
                    NoKeyAction::Reject => Err(Refusal::NoKey(reason)),
                    NoKeyAction::Bounce => Ok(Decision::Bounce { reason }),
                    NoKeyAction::Hold => Ok(Decision::Hold { reason }),
                }
            }
            _ => Ok(Decision::Plain {
                reason: "opportunistic and no usable key".into(),
            }),
        }
    }
}

/// The methods to look keys up for, in order (`pgp-inline` is `pgp`).
fn methods(names: &[MethodName]) -> Vec<Method> {
    let mut out: Vec<Method> = Vec::new();
    for &n in names {
        let m = n.into();
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

fn upper(list: &[String]) -> Vec<String> {
    list.iter().map(|t| t.to_ascii_uppercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DomainPolicy, MethodName};

    fn policy() -> Policy {
        let mut c = PolicyConfig::default();
        c.domains.insert(
            "Example.com".into(),
            DomainPolicy {
                mode: Some(Mode::Mandatory),
                ..Default::default()
            },
        );
        c.domains.insert(
            "*.example.com".into(),
            DomainPolicy {
                mode: Some(Mode::Off),
                methods: Some(vec![MethodName::Smime]),
                smime_cipher: Some(SmimeCipherName::Aes256Gcm),
                smime_rsa_padding: Some(crate::config::RsaPaddingName::Oaep),
                ..Default::default()
            },
        );
        c.domains.insert(
            "*.deep.example.com".into(),
            DomainPolicy {
                mode: Some(Mode::Mandatory),
                ..Default::default()
            },
        );
        Policy::new(c).unwrap()
    }

    #[test]
    fn inheritance_and_wildcards() {
        let p = policy();
        let s = p.settings_for("a@other.org");
        assert_eq!(
            (s.mode, s.matched.as_str()),
            (Mode::Opportunistic, "global")
        );
        assert_eq!(s.methods, vec![Method::Pgp, Method::Smime]);
        let s = p.settings_for("a@EXAMPLE.com");
        assert_eq!(
            (s.mode, s.matched.as_str()),
            (Mode::Mandatory, "example.com")
        );
        let s = p.settings_for("a@sub.example.com");
        assert_eq!(s.mode, Mode::Off);
        assert_eq!(s.methods, vec![Method::Smime]);
        assert_eq!(s.smime_cipher, SmimeCipherName::Aes256Gcm);
        assert_eq!(s.smime_rsa_padding, crate::config::RsaPaddingName::Oaep);
        assert_eq!(
            p.settings_for("a@other.org").smime_rsa_padding,
            crate::config::RsaPaddingName::Pkcs1
        );
        assert_eq!(
            p.settings_for("a@x.deep.example.com").matched,
            "*.deep.example.com"
        );
        // The wildcard does not match the bare domain nor look-alikes.
        assert_eq!(p.settings_for("a@notexample.com").matched, "global");
    }

    #[test]
    fn fail_closed_decisions() {
        let p = policy();
        let none = Resolution::default();
        let s = p.settings_for("a@example.com");
        assert!(matches!(p.decide(&s, &none), Err(Refusal::NoKey(_))));
        let failed = Resolution {
            errors: vec!["store: down".into()],
            ..Default::default()
        };
        assert!(matches!(
            p.decide(&s, &failed),
            Err(Refusal::SourceFailed(_))
        ));
        let s = p.settings_for("a@other.org");
        assert!(matches!(p.decide(&s, &none), Ok(Decision::Plain { .. })));
        assert!(matches!(
            p.decide(&s, &failed),
            Err(Refusal::SourceFailed(_))
        ));
        let s = p.settings_for("a@sub.example.com");
        assert!(matches!(p.decide(&s, &failed), Ok(Decision::Plain { .. })));
        // on_source_error = skip: decide without the failed source, but a
        // mandatory recipient is still refused, never sent plaintext.
        let mut s = p.settings_for("a@other.org");
        s.on_source_error = OnSourceError::Skip;
        assert!(matches!(p.decide(&s, &failed), Ok(Decision::Plain { .. })));
        let mut s = p.settings_for("a@example.com");
        s.on_source_error = OnSourceError::Skip;
        assert!(matches!(p.decide(&s, &failed), Err(Refusal::NoKey(_))));
        // A key found below a failed source does not decide unless skip.
        let mut below = failed.clone();
        let (cert, _) =
            sequoia_openpgp::cert::CertBuilder::general_purpose(Some("<a@example.com>"))
                .generate()
                .unwrap();
        below.keys.insert(
            Method::Pgp,
            (
                "files".into(),
                vec![RecipientKey::Pgp(std::sync::Arc::new(cert))],
            ),
        );
        let s = p.settings_for("a@example.com");
        assert!(matches!(
            p.decide(&s, &below),
            Err(Refusal::SourceFailed(_))
        ));
        let mut s = p.settings_for("a@example.com");
        s.on_source_error = OnSourceError::Skip;
        assert!(matches!(p.decide(&s, &below), Ok(Decision::Encrypt { .. })));
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = PolicyConfig::default();
        c.domains
            .insert("bad domain".into(), DomainPolicy::default());
        let e = Policy::new(c).unwrap_err();
        assert!(e.contains("policy.domains.\"bad domain\""), "{e}");
        let c = PolicyConfig {
            methods: vec![],
            ..Default::default()
        };
        assert!(Policy::new(c).unwrap_err().contains("policy.methods"));
        for bad in ["0", "3 days", "", "-1d"] {
            let c = PolicyConfig {
                hold_max_age: bad.into(),
                ..Default::default()
            };
            let e = Policy::new(c).unwrap_err();
            assert!(e.contains("policy.hold_max_age"), "{bad}: {e}");
        }
        let c = PolicyConfig {
            hold_max_age: "12h".into(),
            ..Default::default()
        };
        assert_eq!(
            Policy::new(c).unwrap().hold_max_age(),
            std::time::Duration::from_secs(12 * 3600)
        );
    }

    /// A mandatory recipient without a key: refused, bounced or held, as
    /// `no_key_action` says; never plaintext.
    #[test]
    fn no_key_actions() {
        let p = policy();
        let none = Resolution::default();
        let mut s = p.settings_for("a@example.com");
        for (action, want) in [
            (NoKeyAction::Reject, "reject"),
            (NoKeyAction::Bounce, "bounce"),
            (NoKeyAction::Hold, "hold"),
        ] {
            s.no_key_action = action;
            let got = match p.decide(&s, &none) {
                Err(Refusal::NoKey(_)) => "reject",
                Ok(Decision::Bounce { .. }) => "bounce",
                Ok(Decision::Hold { reason }) => {
                    assert!(reason.contains("encryption is mandatory"), "{reason}");
                    "hold"
                }
                other => panic!("{other:?}"),
            };
            assert_eq!(got, want);
        }
    }

    /// The user level: over the domain's, setting by setting; additional
    /// keys add up over all three; matched case-insensitively; keys that
    /// are not addresses, or the same address twice, name their entry.
    #[test]
    fn the_user_level_overrides_the_domain_setting_by_setting() {
        let (g, d, u) = ("11".repeat(32), "22".repeat(32), "33".repeat(32));
        let mut c = PolicyConfig {
            additional_certificates: vec![g.clone()],
            ..Default::default()
        };
        c.domains.insert(
            "corp.test".into(),
            DomainPolicy {
                mode: Some(Mode::Mandatory),
                smime_cipher: Some(SmimeCipherName::Aes256Gcm),
                additional_certificates: Some(vec![d.clone()]),
                ..Default::default()
            },
        );
        c.users.insert(
            "Ann@CORP.test".into(),
            DomainPolicy {
                mode: Some(Mode::Off),
                auto_select: Some(false),
                sign: Some(SignMode::Mandatory),
                additional_certificates: Some(vec![u.clone()]),
                ..Default::default()
            },
        );
        let p = Policy::new(c.clone()).unwrap();
        assert!(p.signs_anywhere());
        let s = p.settings_for("ann@corp.test");
        assert_eq!(s.matched, "ann@corp.test");
        assert_eq!(s.mode, Mode::Off);
        assert_eq!(
            s.smime_cipher,
            SmimeCipherName::Aes256Gcm,
            "from the domain"
        );
        assert!(!s.auto_select);
        assert_eq!(s.sign, SignMode::Mandatory);
        assert_eq!(
            s.additional_certificates,
            vec![g.to_uppercase(), d.to_uppercase(), u.to_uppercase()]
        );
        let s = p.settings_for("bob@corp.test");
        assert_eq!((s.matched.as_str(), s.mode), ("corp.test", Mode::Mandatory));
        assert!(s.auto_select);
        assert_eq!(s.sign, SignMode::Off);

        let mut twice = c.clone();
        twice
            .users
            .insert("ann@corp.test".into(), DomainPolicy::default());
        let e = Policy::new(twice).unwrap_err();
        assert!(e.contains("the same address as another entry"), "{e}");
        let mut bad = c;
        bad.users
            .insert("corp.test".into(), DomainPolicy::default());
        let e = Policy::new(bad).unwrap_err();
        assert_eq!(
            e,
            "policy.users.\"corp.test\": not an address (user@domain)"
        );
    }

    /// Signing: off by default and nowhere on; a domain turns it on (and
    /// `signs_anywhere` sees it), sign_unavailable inherits on its own.
    #[test]
    fn signing_settings_inherit() {
        let p = Policy::new(PolicyConfig::default()).unwrap();
        assert!(!p.signs_anywhere());
        assert_eq!(p.settings_for("a@x.test").sign, SignMode::Off);
        let mut c = PolicyConfig {
            sign_unavailable: SignUnavailable::Reject,
            ..Default::default()
        };
        c.domains.insert(
            "corp.test".into(),
            DomainPolicy {
                sign: Some(SignMode::Mandatory),
                ..Default::default()
            },
        );
        c.domains.insert(
            "*.corp.test".into(),
            DomainPolicy {
                sign: Some(SignMode::Opportunistic),
                sign_unavailable: Some(SignUnavailable::Defer),
                ..Default::default()
            },
        );
        let p = Policy::new(c).unwrap();
        assert!(p.signs_anywhere());
        let s = p.settings_for("ceo@corp.test");
        assert_eq!(
            (s.sign, s.sign_unavailable),
            (SignMode::Mandatory, SignUnavailable::Reject)
        );
        let s = p.settings_for("dev@lab.corp.test");
        assert_eq!(
            (s.sign, s.sign_unavailable),
            (SignMode::Opportunistic, SignUnavailable::Defer)
        );
        assert_eq!(p.settings_for("a@other.test").sign, SignMode::Off);
    }

    /// Additional keys: a domain's are added to the global ones (any case
    /// in the file, upper case in the settings); malformed ones name their key.
    #[test]
    fn additional_keys_add_up_and_are_checked() {
        let a = "ab".repeat(32);
        let b = "CD".repeat(32);
        let mut c = PolicyConfig {
            additional_certificates: vec![a.clone()],
            additional_pgp_keys: vec!["ef".repeat(20)],
            ..Default::default()
        };
        c.domains.insert(
            "esc.test".into(),
            DomainPolicy {
                additional_certificates: Some(vec![b.clone(), a.to_uppercase()]),
                ..Default::default()
            },
        );
        let p = Policy::new(c.clone()).unwrap();
        let s = p.settings_for("x@esc.test");
        assert_eq!(s.additional_certificates, vec![a.to_uppercase(), b.clone()]);
        assert_eq!(s.additional_pgp_keys, vec!["EF".repeat(20)]);
        assert_eq!(
            p.settings_for("x@other.test").additional_certificates,
            vec![a.to_uppercase()]
        );
        c.domains.get_mut("esc.test").unwrap().additional_pgp_keys = Some(vec!["xyz".into()]);
        let e = c.validate().unwrap_err();
        assert!(
            e.starts_with("policy.domains.\"esc.test\".additional_pgp_keys: \"xyz\" is not an OpenPGP fingerprint"),
            "{e}"
        );
        // auto_select: on by default, off per domain.
        let mut d = PolicyConfig::default();
        d.domains.insert(
            "noauto.test".into(),
            DomainPolicy {
                auto_select: Some(false),
                ..Default::default()
            },
        );
        let p = Policy::new(d).unwrap();
        assert!(p.settings_for("a@other.test").auto_select);
        assert!(!p.settings_for("a@noauto.test").auto_select);
        c.additional_certificates = vec!["12".into()];
        assert!(c
            .validate()
            .unwrap_err()
            .starts_with("policy.additional_certificates"));
    }
}
