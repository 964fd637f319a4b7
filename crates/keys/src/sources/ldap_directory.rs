//! S/MIME certificates from an LDAP user directory: the S/Notify "LDAP
//! directory" and "external LDAP" sources (`[[keys.ldap]]` in the config).
//!
//! A lookup searches `(&(<mail attribute>=<address>)<filter>)` under the base
//! DN and reads `userSMIMECertificate` (a DER PKCS#7 bundle: only the
//! certificates that name the address are kept) and then `userCertificate`
//! (DER, or base64/PEM text). Referrals are followed up to a hop limit, and
//! only to the configured host or a host in `referral_hosts`; there sealgate
//! binds anonymously unless `referral_credentials = true`, uses TLS whenever
//! the configured connection does, and never sends the bind password over an
//! unencrypted connection. A plain `ldap://` source without StartTLS needs
//! `allow_insecure = true`. One bound connection is kept
//! and reused; every network step is bounded by the timeout. Whether a
//! certificate may be used (validity, KeyUsage, trust) is the resolver's
//! business ([`crate::usable`]), not this source's.

use crate::load::parse_x509;
use crate::source::Source;
use crate::sources::ldap_common::{
    decode_value, open, parse_ldap_url, search, tls_connector, values, ConnSpec, Found, LdapUrl,
    Pool,
};
use crate::RecipientKey;
use ldap3::Scope;
use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

const ATTRIBUTES: [&str; 4] = [
    "userSMIMECertificate",
    "userSMIMECertificate;binary",
    "userCertificate;binary",
    "userCertificate",
];

fn yes() -> bool {
    true
}
fn mail() -> String {
    "mail".to_string()
}
fn three() -> u8 {
    3
}
fn ten() -> u64 {
    10
}

/// One `[[keys.ldap]]` entry.
#[derive(Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LdapDirectoryConfig {
    /// Used in precedence lists as `ldap:<name>`.
    pub name: String,
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// StartTLS on an `ldap://` URL.
    #[serde(default)]
    pub starttls: bool,
    /// Verify the server certificate (ldaps and StartTLS).
    #[serde(default = "yes")]
    pub tls_verify: bool,
    /// Extra trusted CA certificates (PEM) for ldaps and StartTLS.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Simple bind DN; anonymous when absent.
    #[serde(default)]
    pub bind_dn: Option<String>,
    /// Simple bind password (never printed by Debug or logged).
    #[serde(default)]
    pub bind_password: Option<String>,
    /// Where to search (subtree).
    pub base_dn: String,
    /// Extra filter ANDed with `(<mail_attribute>=<address>)`, e.g.
    /// `(objectClass=inetOrgPerson)`.
    #[serde(default)]
    pub filter: Option<String>,
    /// The attribute holding the address.
    #[serde(default = "mail")]
    pub mail_attribute: String,
    /// Follow referrals and search result references.
    #[serde(default = "yes")]
    pub follow_referrals: bool,
    /// How many referral hops to follow at most.
    #[serde(default = "three")]
    pub max_referral_hops: u8,
    /// Hosts besides the configured one that referrals may lead to
    /// (`host` for any port, or `host:port`); others are ignored.
    #[serde(default)]
    pub referral_hosts: Vec<String>,
    /// Bind with `bind_dn` on referral targets too (default: anonymously).
    #[serde(default)]
    pub referral_credentials: bool,
    /// Allow an `ldap://` URL without StartTLS (queries and answers travel
    /// in clear; logged at start). Never allows a bind password.
    #[serde(default)]
    pub allow_insecure: bool,
    /// Bound for each of connect (with TLS), bind and search.
    #[serde(default = "ten")]
    pub timeout_secs: u64,
    /// Its certificates need a path to a root of the root store (the
    /// default). `false` declares the directory authoritative: its
    /// certificates are used without one (validity, revocation, the CTL's
    /// black list and the usages still apply), as S/Notify uses them.
    #[serde(default = "yes")]
    pub require_chain: bool,
}

impl fmt::Debug for LdapDirectoryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapDirectoryConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("starttls", &self.starttls)
            .field("tls_verify", &self.tls_verify)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("bind_dn", &self.bind_dn)
            .field(
                "bind_password",
                &self.bind_password.as_ref().map(|_| "<redacted>"),
            )
            .field("base_dn", &self.base_dn)
            .field("filter", &self.filter)
            .field("mail_attribute", &self.mail_attribute)
            .field("follow_referrals", &self.follow_referrals)
            .field("max_referral_hops", &self.max_referral_hops)
            .field("referral_hosts", &self.referral_hosts)
            .field("referral_credentials", &self.referral_credentials)
            .field("allow_insecure", &self.allow_insecure)
            .field("timeout_secs", &self.timeout_secs)
            .field("require_chain", &self.require_chain)
            .finish()
    }
}

impl LdapDirectoryConfig {
    /// A plain `ldap://` URL without StartTLS (allowed by `allow_insecure`).
    pub fn is_unencrypted(&self) -> bool {
        !self.starttls && self.url.trim().to_ascii_lowercase().starts_with("ldap://")
    }

    /// Checks the entry; errors name the key, e.g. `keys.ldap[corp].url: ...`.
    pub fn validate(&self) -> Result<(), String> {
        let key = |field: &str| format!("keys.ldap[{}].{field}", self.name);
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "{}: must be non-empty and use only letters, digits, '-', '_' and '.'",
                key("name")
            ));
        }
        let url = parse_ldap_url(&self.url).map_err(|e| format!("{}: {e}", key("url")))?;
        if url.dn.is_some() {
            return Err(format!(
                "{}: give only scheme, host and port (the base DN is base_dn)",
                key("url")
            ));
        }
        if self.starttls && url.secure {
            return Err(format!(
                "{}: StartTLS is for ldap:// URLs; ldaps:// is TLS already",
                key("starttls")
            ));
        }
        let encrypted = url.secure || self.starttls;
        if !encrypted && !self.allow_insecure {
            return Err(format!(
                "{}: {} is unencrypted: queries and certificates travel in clear; use ldaps://, \
                 set starttls = true, or set allow_insecure = true",
                key("url"),
                self.url
            ));
        }
        if !encrypted && self.bind_dn.is_some() {
            return Err(format!(
                "{}: the bind password is never sent over an unencrypted connection; \
                 use ldaps:// or starttls = true",
                key("bind_dn")
            ));
        }
        for h in &self.referral_hosts {
            if parse_ldap_url(&format!("ldap://{h}")).is_err() || h.contains(['/', '@', '?']) {
                return Err(format!(
                    "{}: {h:?} is not a host or host:port",
                    key("referral_hosts")
                ));
            }
        }
        if self.base_dn.trim().is_empty() {
            return Err(format!("{}: must not be empty", key("base_dn")));
        }
        if self.mail_attribute.is_empty()
            || !self
                .mail_attribute
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ';'))
        {
            return Err(format!(
                "{}: not an attribute name: {:?}",
                key("mail_attribute"),
                self.mail_attribute
            ));
        }
        if let Some(filter) = &self.filter {
            let f = filter.trim();
            if !(f.starts_with('(') && f.ends_with(')')) {
                return Err(format!(
                    "{}: must be a parenthesized LDAP filter, e.g. (objectClass=inetOrgPerson)",
                    key("filter")
                ));
            }
            ldap3::parse_filter(format!("(&(mail=x){f})"))
                .map_err(|_| format!("{}: not a valid LDAP filter: {f}", key("filter")))?;
        }
        match (&self.bind_dn, &self.bind_password) {
            (None, Some(_)) => {
                return Err(format!("{}: set without bind_dn", key("bind_password")))
            }
            (Some(dn), _) if dn.trim().is_empty() => {
                return Err(format!("{}: must not be empty when set", key("bind_dn")))
            }
            _ => {}
        }
        if self.timeout_secs == 0 || self.timeout_secs > 600 {
            return Err(format!(
                "{}: must be between 1 and 600 seconds",
                key("timeout_secs")
            ));
        }
        if let Some(ca) = &self.tls_ca_file {
            if !ca.is_file() {
                return Err(format!(
                    "{}: no such file: {}",
                    key("tls_ca_file"),
                    ca.display()
                ));
            }
        }
        Ok(())
    }
}

/// An LDAP user directory as a key source (S/MIME certificates).
pub struct LdapDirectory {
    config: LdapDirectoryConfig,
    url: LdapUrl,
    pool: Pool,
}

impl LdapDirectory {
    /// Validates the config and prepares the TLS settings; connects lazily.
    pub fn new(config: LdapDirectoryConfig) -> Result<LdapDirectory, String> {
        config.validate()?;
        let url = parse_ldap_url(&config.url)?;
        let needs_tls = url.secure || config.starttls;
        let connector = if needs_tls || config.follow_referrals {
            Some(
                tls_connector(config.tls_verify, config.tls_ca_file.as_deref())
                    .map_err(|e| format!("keys.ldap[{}].tls_ca_file: {e}", config.name))?,
            )
        } else {
            None
        };
        let spec = ConnSpec {
            starttls: config.starttls,
            connector,
            timeout: Duration::from_secs(config.timeout_secs),
            bind: config
                .bind_dn
                .clone()
                .map(|dn| (dn, config.bind_password.clone().unwrap_or_default())),
        };
        Ok(LdapDirectory {
            pool: Pool::new(url.server.clone(), spec),
            url,
            config,
        })
    }

    fn filter_for(&self, address: &str) -> String {
        let escaped = ldap3::ldap_escape(address);
        format!(
            "(&({}={escaped}){})",
            self.config.mail_attribute,
            self.config.filter.as_deref().map(str::trim).unwrap_or("")
        )
    }

    /// A referral may lead to the configured host (any port) or to a host
    /// in `referral_hosts` (`host`, or exactly `host:port`).
    fn referral_allowed(&self, target: &LdapUrl) -> bool {
        if target.host == self.url.host {
            return true;
        }
        self.config.referral_hosts.iter().any(|h| {
            url::Url::parse(&format!("ldap://{h}")).is_ok_and(|u| {
                let host = u.host_str().unwrap_or("").trim_matches(['[', ']']);
                host.eq_ignore_ascii_case(&target.host) && u.port().is_none_or(|p| p == target.port)
            })
        })
    }

    /// How to connect to a referral target: with TLS whenever the configured
    /// connection has it (StartTLS on an `ldap://` referral), and with the
    /// bind credentials only if `referral_credentials` is set and the
    /// connection is encrypted; anonymously otherwise.
    fn referral_spec(&self, target: &LdapUrl) -> ConnSpec {
        let spec = self.pool.spec();
        let encrypted_here = self.url.secure || self.config.starttls;
        let starttls = !target.secure && encrypted_here;
        let encrypted = target.secure || starttls;
        ConnSpec {
            starttls,
            connector: spec.connector.clone(),
            timeout: spec.timeout,
            bind: if self.config.referral_credentials && encrypted {
                spec.bind.clone()
            } else {
                None
            },
        }
    }

    /// Follows referral URLs breadth-first, up to the hop limit; returns the
    /// entries found on the other servers.
    async fn follow(
        &self,
        mut pending: Vec<String>,
        filter: &str,
    ) -> Result<Vec<ldap3::SearchEntry>, String> {
        let mut entries = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut hop: u8 = 0;
        let spec = self.pool.spec();
        while !pending.is_empty() {
            if !self.config.follow_referrals {
                tracing::debug!(
                    source = %self.name(),
                    count = pending.len(),
                    "ignoring LDAP referrals (follow_referrals = false)"
                );
                break;
            }
            if hop >= self.config.max_referral_hops {
                tracing::warn!(
                    source = %self.name(),
                    referrals = ?pending,
                    "LDAP referral hop limit ({}) reached; ignoring further referrals",
                    self.config.max_referral_hops
                );
                break;
            }
            hop += 1;
            let mut next = Vec::new();
            for r in std::mem::take(&mut pending) {
                if !seen.insert(r.clone()) {
                    continue;
                }
                let target = match parse_ldap_url(&r) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::warn!(source = %self.name(), referral = %r, "ignoring unusable referral: {e}");
                        continue;
                    }
                };
                if !self.referral_allowed(&target) {
                    tracing::warn!(
                        source = %self.name(),
                        referral = %r,
                        "not following an LDAP referral to a host that is neither the configured one nor in referral_hosts"
                    );
                    continue;
                }
                let referral_spec = self.referral_spec(&target);
                tracing::debug!(
                    source = %self.name(),
                    referral = %r,
                    hop,
                    tls = target.secure || referral_spec.starttls,
                    bind = if referral_spec.bind.is_some() { "credentials" } else { "anonymous" },
                    "following LDAP referral"
                );
                let base = target
                    .dn
                    .clone()
                    .unwrap_or_else(|| self.config.base_dn.clone());
                let scope = target.scope.unwrap_or(Scope::Subtree);
                let conn = open(&target.server, &referral_spec)
                    .await
                    .map_err(|e| format!("referral {r}: {}", e.message))?;
                let mut ldap = conn.ldap.clone();
                let found = search(&mut ldap, &base, scope, filter, &ATTRIBUTES, spec.timeout)
                    .await
                    .map_err(|e| format!("referral {r}: {}", e.message))?;
                let _ = tokio::time::timeout(spec.timeout, ldap.unbind()).await;
                drop(conn);
                entries.extend(found.entries);
                next.extend(found.refs);
            }
            pending = next;
        }
        Ok(entries)
    }
}

#[async_trait::async_trait]
impl Source for LdapDirectory {
    fn name(&self) -> String {
        format!("ldap:{}", self.config.name)
    }

    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        let filter = self.filter_for(address);
        let base = self.config.base_dn.as_str();
        let timeout = self.pool.spec().timeout;
        let found: Found = self
            .pool
            .run(|mut ldap| {
                let filter = filter.clone();
                async move {
                    search(
                        &mut ldap,
                        base,
                        Scope::Subtree,
                        &filter,
                        &ATTRIBUTES,
                        timeout,
                    )
                    .await
                }
            })
            .await
            .map_err(|e| format!("{}: {e}", self.config.url))?;
        let mut entries = found.entries;
        if !found.refs.is_empty() {
            entries.extend(self.follow(found.refs, &filter).await?);
        }
        certificates(&entries, address).map_err(|e| {
            tracing::warn!(source = %self.name(), "{e}");
            e
        })
    }
}

/// The certificates of the entries: from `userSMIMECertificate` those naming
/// `address`, then everything in `userCertificate`; deduplicated. Values that
/// do not parse are skipped with a warning; if nothing parsed and something
/// failed, the answer is unknown (bad data).
fn certificates(
    entries: &[ldap3::SearchEntry],
    address: &str,
) -> Result<Vec<RecipientKey>, String> {
    let address = address.to_lowercase();
    let mut out: Vec<RecipientKey> = Vec::new();
    let mut seen = HashSet::new();
    let mut bad = Vec::new();
    for entry in entries {
        for value in values(entry, "userSMIMECertificate") {
            match parse_value(&value) {
                Ok(keys) => {
                    for k in keys {
                        if k.names(&address) && seen.insert(k.fingerprint()) {
                            out.push(k);
                        }
                    }
                }
                Err(e) => bad.push(format!("{}: userSMIMECertificate: {e}", entry.dn)),
            }
        }
        for value in values(entry, "userCertificate") {
            match parse_value(&value) {
                Ok(keys) => {
                    for k in keys {
                        if seen.insert(k.fingerprint()) {
                            out.push(k);
                        }
                    }
                }
                Err(e) => bad.push(format!("{}: userCertificate: {e}", entry.dn)),
            }
        }
    }
    for b in &bad {
        tracing::warn!("unreadable certificate in the directory: {b}");
    }
    if out.is_empty() && !bad.is_empty() {
        return Err(format!("bad data: {}", bad.join("; ")));
    }
    Ok(out)
}

/// A certificate value: DER (certificate or PKCS#7), PEM, or base64 text.
fn parse_value(value: &[u8]) -> Result<Vec<RecipientKey>, String> {
    parse_x509(value).or_else(|first| {
        let decoded = decode_value(value);
        if decoded != value {
            parse_x509(&decoded)
        } else {
            Err(first)
        }
    })
}
