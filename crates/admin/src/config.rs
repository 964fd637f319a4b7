//! `[admin]` configuration: where the admin HTTP listener listens.

use serde::Deserialize;
use std::net::SocketAddr;

fn default_listen() -> String {
    "127.0.0.1:9025".into()
}

/// `[admin]`: the admin HTTP listener (`/metrics`, `/livez`, `/readyz`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// IP address and port to listen on; `""` turns the listener off. Its
    /// endpoints need no authentication, so keep it on loopback or a
    /// management network.
    #[serde(default = "default_listen")]
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: default_listen(),
        }
    }
}

impl AdminConfig {
    /// The address to listen on, or `None` when the listener is off
    /// (`listen = ""`). The error names the key.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen.parse().map(Some).map_err(|_| {
            format!(
                "admin.listen: {:?} is not an IP address and port (e.g. \"127.0.0.1:9025\"; \"\" turns the admin listener off)",
                self.listen
            )
        })
    }

    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        self.listen_addr().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<AdminConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_to_loopback_9025() {
        let config = parse("{}").unwrap();
        assert_eq!(config, AdminConfig::default());
        assert_eq!(
            config.listen_addr().unwrap(),
            Some("127.0.0.1:9025".parse().unwrap())
        );
    }

    #[test]
    fn empty_turns_it_off() {
        let config = parse(r#"{"listen": ""}"#).unwrap();
        assert_eq!(config.listen_addr().unwrap(), None);
        config.validate().unwrap();
    }

    #[test]
    fn ipv6_is_accepted() {
        let config = parse(r#"{"listen": "[::1]:9100"}"#).unwrap();
        assert_eq!(
            config.listen_addr().unwrap(),
            Some("[::1]:9100".parse().unwrap())
        );
    }

    #[test]
    fn a_bad_address_names_the_key() {
        for bad in ["localhost:9025", "127.0.0.1", "9025", " 127.0.0.1:9025"] {
            let config = AdminConfig { listen: bad.into() };
            let err = config.validate().unwrap_err();
            assert!(err.starts_with("admin.listen: "), "{err}");
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse(r#"{"listen": "127.0.0.1:9025", "lsiten": "x"}"#).unwrap_err();
        assert!(err.contains("lsiten"), "{err}");
    }
}
