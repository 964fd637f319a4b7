//! `[relay]` configuration.

use serde::Deserialize;
use std::path::PathBuf;

/// How to protect the connection to the upstream MTA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP (only for a trusted loopback or LAN hop).
    None,
    /// STARTTLS, required: an upstream that does not offer it is a temporary failure.
    Starttls,
    /// Implicit TLS from the first byte (port 465 style).
    Tls,
}

fn default_upstream() -> String {
    "127.0.0.1:25".into()
}
fn default_tls() -> TlsMode {
    TlsMode::Starttls
}
fn yes() -> bool {
    true
}
fn default_timeout() -> u64 {
    60
}

/// `[relay]`: where and how sealgate hands mail on. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// host:port of the next MTA.
    #[serde(default = "default_upstream")]
    pub upstream: String,
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
    /// Verify the upstream's certificate and host name.
    #[serde(default = "yes")]
    pub tls_verify: bool,
    /// Extra CA certificate (PEM) to trust for the upstream, beside the system store.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// AUTH user name for the upstream (AUTH is used only over TLS).
    #[serde(default)]
    pub auth_user: Option<String>,
    #[serde(default)]
    pub auth_password: Option<String>,
    /// Seconds allowed for the connection and for each SMTP command.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Seconds allowed for sending the message content and reading the reply.
    #[serde(default = "default_data_timeout")]
    pub data_timeout_secs: u64,
    /// The name sealgate gives in EHLO; `smtp.hostname` when unset.
    #[serde(default)]
    pub helo_name: Option<String>,
    /// Seconds all copies of one message may take together before the client
    /// gets its DATA reply (451 for copies not relayed by then). Keep it below
    /// the sending MTA's wait for that reply (Postfix: smtp_data_done_timeout,
    /// 600 s).
    #[serde(default = "default_message_timeout")]
    pub message_timeout_secs: u64,
    /// Connections to the upstream at once (deliveries beyond wait); idle
    /// ones are kept and reused, with RSET in between.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_max_connections() -> usize {
    20
}

fn default_message_timeout() -> u64 {
    540
}

fn default_data_timeout() -> u64 {
    300
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("upstream", &self.upstream)
            .field("tls", &self.tls)
            .field("tls_verify", &self.tls_verify)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("auth_user", &self.auth_user)
            .field(
                "auth_password",
                &self.auth_password.as_ref().map(|_| "<redacted>"),
            )
            .field("timeout_secs", &self.timeout_secs)
            .field("data_timeout_secs", &self.data_timeout_secs)
            .field("helo_name", &self.helo_name)
            .field("message_timeout_secs", &self.message_timeout_secs)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            upstream: default_upstream(),
            tls: default_tls(),
            tls_verify: true,
            tls_ca_file: None,
            auth_user: None,
            auth_password: None,
            timeout_secs: default_timeout(),
            data_timeout_secs: default_data_timeout(),
            helo_name: None,
            message_timeout_secs: default_message_timeout(),
            max_connections: default_max_connections(),
        }
    }
}

impl RelayConfig {
    /// The EHLO name: `helo_name`, else `localhost` (the daemon fills in
    /// `smtp.hostname` before it builds the relay).
    pub fn helo_name(&self) -> &str {
        self.helo_name.as_deref().unwrap_or("localhost")
    }

    /// Host and port of `upstream`, or an error naming the key.
    pub fn host_port(&self) -> Result<(String, u16), String> {
        let bad = || {
            format!(
                "relay.upstream: {:?} is not host:port (e.g. \"127.0.0.1:25\" or \"[::1]:25\")",
                self.upstream
            )
        };
        let (host, port) = self.upstream.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok((host.to_string(), port))
    }

    /// Checks the values serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.host_port()?;
        if self.auth_user.is_some() != self.auth_password.is_some() {
            return Err("relay.auth_user and relay.auth_password: set both or neither".into());
        }
        if self.auth_user.is_some() && self.tls == TlsMode::None {
            return Err("relay.auth_user: AUTH needs relay.tls = \"starttls\" or \"tls\"".into());
        }
        if self.timeout_secs == 0 || self.data_timeout_secs == 0 || self.message_timeout_secs == 0 {
            return Err(
                "relay.timeout_secs / relay.data_timeout_secs / relay.message_timeout_secs: must be at least 1"
                    .into(),
            );
        }
        if self.max_connections == 0 {
            return Err("relay.max_connections: must be at least 1".into());
        }
        if let Some(name) = &self.helo_name {
            let ok = !name.is_empty()
                && name.len() <= 255
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
            if !ok {
                return Err(format!(
                    "relay.helo_name: {name:?} is not a host name or address literal"
                ));
            }
        }
        if let Some(ca) = &self.tls_ca_file {
            if !ca.is_file() {
                return Err(format!(
                    "relay.tls_ca_file: {} is not a readable file",
                    ca.display()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_forms() {
        let mut c = RelayConfig::default();
        assert_eq!(c.host_port().unwrap(), ("127.0.0.1".into(), 25));
        c.upstream = "[::1]:2525".into();
        assert_eq!(c.host_port().unwrap(), ("::1".into(), 2525));
        c.upstream = "mx.example.org".into();
        assert!(c.host_port().unwrap_err().contains("relay.upstream"));
        c.upstream = "mx:0".into();
        assert!(c.validate().is_err());
        c.auth_password = Some("hunter2".into());
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
