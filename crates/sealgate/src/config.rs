//! The configuration: one TOML file, every key overridable from the environment
//! as `SEALGATE__SECTION__KEY`, embedded defaults when there is no file.
//!
//! Unknown keys and bad values are errors that name the key and the file; values
//! serde cannot check (addresses, networks, paths) are checked in `validate`.

use anyhow::{anyhow, Result};
use ipnet::IpNet;
use sealgate_policy::PolicyConfig;
use sealgate_queue::QueueConfig;
use sealgate_relay::RelayConfig;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub smtp: SmtpSettings,
    #[serde(default)]
    pub relay: RelayConfig,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub keys: KeysSettings,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub trust: sealgate_trust::TrustConfig,
    #[serde(default)]
    pub admin: sealgate_admin::AdminConfig,
    #[serde(default)]
    pub incoming: crate::incoming::IncomingSettings,
    #[serde(default)]
    pub harvest: sealgate_harvest::HarvestConfig,
    #[serde(default)]
    pub dns: sealgate_harvest::dkim::DnsConfig,
    /// `[[dkim.keys]]`: DKIM signing of the copies sealgate changed.
    #[serde(default)]
    pub dkim: sealgate_pipeline::dkim::DkimConfig,
    #[serde(default)]
    pub log: LogSettings,
}

/// `[smtp]`: the inbound listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    pub listen: String,
    pub hostname: String,
    pub allowed_networks: Vec<String>,
    pub max_message_size: usize,
    pub max_recipients: usize,
    pub max_line_length: usize,
    pub max_connections: usize,
    /// Concurrent sessions from one client address (421 4.7.0 beyond).
    pub max_connections_per_client: usize,
    /// Failed AUTH attempts per session before 421 4.7.0 and close.
    pub max_auth_failures: u32,
    /// Failed AUTH attempts per client address per auth_failure_window_secs;
    /// beyond, AUTH gets 454 4.7.0 without a password check.
    pub auth_failure_limit: usize,
    pub auth_failure_window_secs: u64,
    pub command_timeout_secs: u64,
    pub data_timeout_secs: u64,
    pub data_deadline_secs: u64,
    /// At SIGTERM: how long open sessions, and deliveries under way, may
    /// take to finish.
    pub shutdown_grace_secs: u64,
    /// Message bytes all sessions together may hold; a message beyond gets
    /// 452 4.3.1.
    pub max_inflight_bytes: usize,
    pub bare_lf: BareLfSetting,
    /// Messages already carrying more Received: fields are refused (554 5.4.6).
    pub max_hops: usize,
    /// Largest header section in bytes (552 5.3.4 beyond).
    pub max_header_size: usize,
    /// Most header fields (552 5.3.4 beyond).
    pub max_header_fields: usize,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub auth_users: Vec<AuthUserSetting>,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            listen: "127.0.0.1:10025".into(),
            hostname: "localhost".into(),
            allowed_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            max_message_size: 52_428_800,
            max_recipients: 1000,
            max_line_length: 4096,
            max_connections: 100,
            max_connections_per_client: 20,
            max_auth_failures: 3,
            auth_failure_limit: 10,
            auth_failure_window_secs: 60,
            command_timeout_secs: 300,
            data_timeout_secs: 300,
            data_deadline_secs: 1800,
            shutdown_grace_secs: 30,
            max_inflight_bytes: 512 << 20,
            bare_lf: BareLfSetting::Normalize,
            max_hops: 50,
            max_header_size: 1 << 20,
            max_header_fields: 10_000,
            tls_cert_file: None,
            tls_key_file: None,
            auth_users: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BareLfSetting {
    Normalize,
    Reject,
}

/// `[[smtp.auth_users]]`: a client allowed to relay after AUTH over TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthUserSetting {
    pub name: String,
    /// Made with `sealgate hash-password`.
    pub password_hash: String,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    pub url: String,
    /// The key-encryption key that seals private keys in the store (64 hex
    /// digits in a file); else `SEALGATE_KEY_ENCRYPTION_KEY`.
    pub key_encryption_key_file: Option<PathBuf>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            url: "sqlite://data/sealgate.db".into(),
            key_encryption_key_file: None,
        }
    }
}

/// `[keys]`: where keys come from, in which order, and how long answers are
/// kept. `Debug` hides the BKS passwords.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSettings {
    pub pgp_keyrings: Vec<PathBuf>,
    pub smime_certificates: Vec<PathBuf>,
    /// The certificates of `smime_certificates` need a path to a root
    /// (default); `false` declares the files authoritative.
    pub files_require_chain: bool,
    /// Passwords of BKS key stores listed in smime_certificates (integrity check only).
    pub bks_passwords: std::collections::BTreeMap<PathBuf, String>,
    pub lookup_timeout_secs: u64,
    /// Source precedence for OpenPGP keys: upload, import, files, keyservers
    /// (all of them, in order) or keyserver:<url>, wkd.
    pub pgp_sources: Vec<String>,
    /// Source precedence for S/MIME certificates: upload, import, files, ldap
    /// (all directories, in order) or ldap:<name>.
    pub smime_sources: Vec<String>,
    /// Seconds a remote answer that found keys is reused.
    pub cache_positive_secs: u64,
    /// Seconds a remote answer that found nothing is reused.
    pub cache_negative_secs: u64,
    /// Answers of remote sources kept in process memory in front of the
    /// store's lookup cache; 0 turns the memory cache off.
    pub memory_cache_entries: usize,
    /// Seconds an answer stays in memory (never past its store entry): bounds
    /// how long another process's `cache expire` goes unnoticed; 0 = off.
    pub memory_cache_secs: u64,
    /// `[[keys.ldap]]`: user directories holding S/MIME certificates.
    pub ldap: Vec<sealgate_keys::sources::ldap_directory::LdapDirectoryConfig>,
    /// OpenPGP key servers: hkp://, hkps://, http://, https:// (HKP) or
    /// ldap://, ldaps://; the unencrypted ones only as
    /// `{ url = "...", allow_insecure = true }`.
    pub keyservers: Vec<KeyserverEntry>,
    pub wkd: WkdSettings,
    /// `[keys.http]`: the HTTP client of key servers and WKD (proxy, CA, timeouts).
    pub http: sealgate_keys::sources::http::HttpConfig,
    /// Stored key-server and WKD keys are fetched again after this long
    /// (`"7d"`); `"0"` turns refreshing off.
    pub refresh_interval: String,
    /// ... and when they expire within this long (`"60d"`), once.
    pub refresh_before_expiry: String,
    /// How often due keys are looked for (`"1h"`).
    pub refresh_check_interval: String,
}

impl Default for KeysSettings {
    fn default() -> Self {
        KeysSettings {
            pgp_keyrings: Vec::new(),
            smime_certificates: Vec::new(),
            files_require_chain: true,
            bks_passwords: Default::default(),
            lookup_timeout_secs: 30,
            pgp_sources: ["upload", "import", "files", "keyservers", "wkd"]
                .map(String::from)
                .to_vec(),
            smime_sources: ["upload", "import", "files", "ldap"]
                .map(String::from)
                .to_vec(),
            cache_positive_secs: 86_400,
            cache_negative_secs: 3_600,
            memory_cache_entries: 10_000,
            memory_cache_secs: 60,
            ldap: Vec::new(),
            keyservers: Vec::new(),
            wkd: WkdSettings::default(),
            http: Default::default(),
            refresh_interval: "7d".into(),
            refresh_before_expiry: "60d".into(),
            refresh_check_interval: "1h".into(),
        }
    }
}

impl KeysSettings {
    /// The refresh settings, read; `None` when refreshing is off
    /// (`refresh_interval = "0"`). Errors name the key.
    pub fn refresh(
        &self,
    ) -> std::result::Result<Option<sealgate_keys::refresh::RefreshConfig>, String> {
        let read = |key: &str, value: &str| {
            sealgate_store::parse_duration(value).ok_or_else(|| {
                format!("keys.{key}: {value:?} is not a duration (e.g. \"30s\", \"5m\", \"4h\", \"7d\")")
            })
        };
        let interval = read("refresh_interval", &self.refresh_interval)?;
        let before_expiry = read("refresh_before_expiry", &self.refresh_before_expiry)?;
        let check_every = read("refresh_check_interval", &self.refresh_check_interval)?;
        if interval.is_zero() {
            return Ok(None);
        }
        if check_every.is_zero() {
            return Err("keys.refresh_check_interval: must be at least 1s".into());
        }
        Ok(Some(sealgate_keys::refresh::RefreshConfig {
            interval,
            before_expiry,
            check_every,
        }))
    }
}

impl std::fmt::Debug for KeysSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bks: Vec<_> = self.bks_passwords.keys().collect();
        f.debug_struct("KeysSettings")
            .field("pgp_keyrings", &self.pgp_keyrings)
            .field("smime_certificates", &self.smime_certificates)
            .field("files_require_chain", &self.files_require_chain)
            .field("bks_passwords (paths)", &bks)
            .field("lookup_timeout_secs", &self.lookup_timeout_secs)
            .field("pgp_sources", &self.pgp_sources)
            .field("smime_sources", &self.smime_sources)
            .field("cache_positive_secs", &self.cache_positive_secs)
            .field("cache_negative_secs", &self.cache_negative_secs)
            .field("memory_cache_entries", &self.memory_cache_entries)
            .field("memory_cache_secs", &self.memory_cache_secs)
            .field("ldap", &self.ldap)
            .field("keyservers", &self.keyservers)
            .field("wkd", &self.wkd)
            .field("http", &self.http)
            .field("refresh_interval", &self.refresh_interval)
            .field("refresh_before_expiry", &self.refresh_before_expiry)
            .field("refresh_check_interval", &self.refresh_check_interval)
            .finish()
    }
}

/// One `keys.keyservers` entry: a URL, or a table `{ url = "hkp://...",
/// allow_insecure = true }` for an unencrypted one. `Debug` redacts URL
/// userinfo.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum KeyserverEntry {
    Url(String),
    Table(KeyserverTable),
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyserverTable {
    pub url: String,
    /// Allow hkp://, http:// or ldap:// (logged at start).
    #[serde(default)]
    pub allow_insecure: bool,
}

impl KeyserverEntry {
    pub fn url(&self) -> &str {
        match self {
            KeyserverEntry::Url(u) => u,
            KeyserverEntry::Table(t) => &t.url,
        }
    }

    pub fn allow_insecure(&self) -> bool {
        matches!(self, KeyserverEntry::Table(t) if t.allow_insecure)
    }
}

impl std::fmt::Debug for KeyserverEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", sealgate_store::redact(self.url()))?;
        if self.allow_insecure() {
            write!(f, " (allow_insecure)")?;
        }
        Ok(())
    }
}

/// `[keys.wkd]`: the Web Key Directory (it asks the recipient's own domain, so
/// it sends the address outside the organisation; off by default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WkdSettings {
    pub enabled: bool,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `sealgate=debug,info`; RUST_LOG wins.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Keys whose environment values are comma-separated lists.
const LIST_KEYS: &[&str] = &[
    "smtp.allowed_networks",
    "keys.pgp_keyrings",
    "keys.smime_certificates",
    "keys.pgp_sources",
    "keys.smime_sources",
    "keys.keyservers",
    "policy.methods",
    "queue.retry_schedule",
];

/// The sections of `new` that differ from `running` and that only a restart
/// puts in force (all but `[policy]`, which SIGHUP applies). The key files'
/// contents are reloaded by SIGHUP; their list is a `[keys]` change.
pub fn restart_needed(running: &Settings, new: &Settings) -> Vec<&'static str> {
    let sections: [(&'static str, &dyn std::fmt::Debug, &dyn std::fmt::Debug); 13] = [
        ("smtp", &running.smtp, &new.smtp),
        ("relay", &running.relay, &new.relay),
        ("store", &running.store, &new.store),
        ("keys", &running.keys, &new.keys),
        ("queue", &running.queue, &new.queue),
        ("trust", &running.trust, &new.trust),
        ("admin", &running.admin, &new.admin),
        ("incoming", &running.incoming, &new.incoming),
        ("harvest", &running.harvest, &new.harvest),
        ("dns", &running.dns, &new.dns),
        ("dkim", &running.dkim, &new.dkim),
        ("log", &running.log, &new.log),
        (
            "policy.reload_secs",
            &running.policy.reload_secs,
            &new.policy.reload_secs,
        ),
    ];
    sections
        .into_iter()
        .filter(|(_, a, b)| format!("{a:?}") != format!("{b:?}"))
        .map(|(name, _, _)| name)
        .collect()
}

impl Settings {
    /// Reads `file` (or only the defaults when None) plus `SEALGATE__*`
    /// environment overrides, then validates.
    pub fn load(file: Option<&Path>) -> Result<Settings> {
        let origin = match file {
            Some(f) => f.display().to_string(),
            None => "the embedded defaults".into(),
        };
        let mut builder = config::Config::builder();
        if let Some(f) = file {
            if !f.is_file() {
                return Err(anyhow!("configuration file {} does not exist", f.display()));
            }
            builder = builder.add_source(
                config::File::from(f)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let mut env = config::Environment::with_prefix("SEALGATE")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",");
        for k in LIST_KEYS {
            env = env.with_list_parse_key(k);
        }
        let raw = builder
            .add_source(env)
            .build()
            .map_err(|e| anyhow!("configuration error in {origin}: {e}"))?;
        let mut settings: Settings = serde_path_to_error::deserialize(raw).map_err(|e| {
            let path = e.path().to_string();
            anyhow!(
                "configuration error in {origin} (or a SEALGATE__* environment variable): key `{path}`: {}",
                e.inner()
            )
        })?;
        // The EHLO name towards the upstream is our own host name unless set.
        if settings.relay.helo_name.is_none() {
            settings.relay.helo_name = Some(settings.smtp.hostname.clone());
        }
        settings
            .validate()
            .map_err(|e| anyhow!("configuration error in {origin}: {e}"))?;
        Ok(settings)
    }

    /// Checks what the types do not.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.listen_addr()?;
        self.networks()?;
        let s = &self.smtp;
        if s.max_inflight_bytes < s.max_message_size {
            return Err(format!(
                "smtp.max_inflight_bytes ({}) must be at least smtp.max_message_size ({}): else no message of the largest size could ever be taken",
                s.max_inflight_bytes, s.max_message_size
            ));
        }
        if s.max_message_size < 1024 {
            return Err("smtp.max_message_size: must be at least 1024 bytes".into());
        }
        if s.max_hops == 0 {
            return Err("smtp.max_hops: must be at least 1".into());
        }
        if s.max_header_size < 1000 {
            return Err("smtp.max_header_size: must be at least 1000 bytes".into());
        }
        if s.max_header_fields < 10 {
            return Err("smtp.max_header_fields: must be at least 10".into());
        }
        if s.max_recipients == 0 || s.max_connections == 0 {
            return Err("smtp.max_recipients / smtp.max_connections: must be at least 1".into());
        }
        if s.max_line_length < 1000 {
            return Err("smtp.max_line_length: must be at least 1000 (RFC 5321)".into());
        }
        for (key, value) in [
            (
                "smtp.max_connections_per_client",
                s.max_connections_per_client as u64,
            ),
            ("smtp.max_auth_failures", u64::from(s.max_auth_failures)),
            ("smtp.auth_failure_limit", s.auth_failure_limit as u64),
            ("smtp.auth_failure_window_secs", s.auth_failure_window_secs),
        ] {
            if value == 0 {
                return Err(format!("{key}: must be at least 1"));
            }
        }
        // A zero duration would make every session or message fail at once.
        for (key, value) in [
            ("smtp.command_timeout_secs", s.command_timeout_secs),
            ("smtp.data_timeout_secs", s.data_timeout_secs),
            ("smtp.data_deadline_secs", s.data_deadline_secs),
        ] {
            if value == 0 {
                return Err(format!("{key}: must be at least 1 second"));
            }
        }
        if s.data_deadline_secs < s.data_timeout_secs {
            return Err(format!(
                "smtp.data_deadline_secs ({}) must not be shorter than smtp.data_timeout_secs ({})",
                s.data_deadline_secs, s.data_timeout_secs
            ));
        }
        match (&s.tls_cert_file, &s.tls_key_file) {
            (Some(c), Some(k)) => {
                for (name, p) in [("smtp.tls_cert_file", c), ("smtp.tls_key_file", k)] {
                    if !p.is_file() {
                        return Err(format!("{name}: {} is not a readable file", p.display()));
                    }
                }
            }
            (None, None) => {}
            _ => {
                return Err("smtp.tls_cert_file and smtp.tls_key_file: set both or neither".into())
            }
        }
        if !s.auth_users.is_empty() && s.tls_cert_file.is_none() {
            return Err("smtp.auth_users: AUTH is only offered over TLS; set smtp.tls_cert_file and smtp.tls_key_file".into());
        }
        for (i, u) in s.auth_users.iter().enumerate() {
            if u.name.is_empty() || !u.password_hash.starts_with("$pbkdf2-sha256$") {
                return Err(format!(
                    "smtp.auth_users[{i}]: needs a name and a password_hash made by `sealgate hash-password`"
                ));
            }
        }
        if self.keys.lookup_timeout_secs == 0 {
            return Err("keys.lookup_timeout_secs: must be at least 1".into());
        }
        crate::sources::validate(&self.keys)?;
        self.keys.refresh()?;
        for (name, list) in [
            ("keys.pgp_keyrings", &self.keys.pgp_keyrings),
            ("keys.smime_certificates", &self.keys.smime_certificates),
        ] {
            for p in list {
                if !p.is_file() {
                    return Err(format!("{name}: {} is not a readable file", p.display()));
                }
            }
        }
        if !(self.store.url.starts_with("sqlite:")
            || self.store.url.starts_with("postgres://")
            || self.store.url.starts_with("postgresql://"))
        {
            return Err(format!(
                "store.url: {:?} is neither sqlite://PATH nor postgres://...",
                self.store.url
            ));
        }
        self.relay.validate()?;
        self.policy.validate()?;
        self.queue.schedule()?;
        self.trust.validate()?;
        self.admin.validate()?;
        self.incoming.validate(self)?;
        self.harvest.validate()?;
        self.dns.validate()?;
        Ok(())
    }

    pub fn listen_addr(&self) -> std::result::Result<SocketAddr, String> {
        self.smtp.listen.parse().map_err(|_| {
            format!(
                "smtp.listen: {:?} is not an IP address and port (e.g. \"127.0.0.1:10025\")",
                self.smtp.listen
            )
        })
    }

    /// `smtp.allowed_networks` as networks; a bare address means that host.
    pub fn networks(&self) -> std::result::Result<Vec<IpNet>, String> {
        parse_networks("smtp.allowed_networks", &self.smtp.allowed_networks)
    }
}

/// A list of networks (`192.0.2.0/24`) or hosts (a bare address) from the
/// config key `key`.
pub fn parse_networks(key: &str, list: &[String]) -> std::result::Result<Vec<IpNet>, String> {
    list.iter()
        .map(|n| {
            n.parse::<IpNet>()
                .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{key}: {n:?} is not a network (e.g. \"192.0.2.0/24\")"))
        })
        .collect()
}

/// Reads the whole config file as text (for `check-config` diagnostics).
pub fn describe(settings: &Settings) -> String {
    let s = &settings.smtp;
    format!(
        "listen {} (hostname {}), allowed networks {}, max message size {} bytes, {} recipients, STARTTLS {}, AUTH users {}\n\
         relay to {} (tls {:?}, verify {})\n\
         store {}\n\
         key files: {} OpenPGP keyring(s), {} S/MIME certificate file(s)\n\
         policy: mode {:?}, methods {:?}, S/MIME cipher {:?}, signing {:?}, {} domain and {} user override(s)\n\
         incoming: {}",
        s.listen,
        s.hostname,
        s.allowed_networks.join(", "),
        s.max_message_size,
        s.max_recipients,
        if s.tls_cert_file.is_some() { "on" } else { "off" },
        s.auth_users.len(),
        settings.relay.upstream,
        settings.relay.tls,
        settings.relay.tls_verify,
        sealgate_store::redact(&settings.store.url),
        settings.keys.pgp_keyrings.len(),
        settings.keys.smime_certificates.len(),
        settings.policy.mode,
        settings.policy.methods,
        settings.policy.smime_cipher,
        settings.policy.sign,
        settings.policy.domains.len(),
        settings.policy.users.len(),
        if settings.incoming.enabled() {
            format!(
                "listen {} for {}, relay to {}",
                settings.incoming.listen,
                settings.incoming.allowed_networks.join(", "),
                settings.incoming.upstream
            )
        } else {
            "off".to_string()
        },
    )
}
