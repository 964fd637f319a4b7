//! The incoming path (`[incoming]`): a second SMTP listener for mail from
//! outside (the MX hosts hand it over), whose messages are queued unchanged
//! and relayed to the internal MTA, `incoming.upstream`; off by default.
//! This file holds its settings and builds its listener; the handler is
//! `sealgate_pipeline::incoming`.

use crate::config::{parse_networks, Settings};
use anyhow::{Context, Result};
use serde::Deserialize;
use std::net::SocketAddr;

/// `[incoming]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncomingSettings {
    /// `""` (the default): no incoming listener.
    pub listen: String,
    /// The only clients it takes mail from: the MX hosts.
    pub allowed_networks: Vec<String>,
    /// The internal MTA (`host:port`) that gets the mail; needed with
    /// `listen`. The other `[relay]` settings (TLS, timeouts, connections)
    /// apply to it too.
    pub upstream: String,
    /// Decrypt S/MIME mail for internal recipients whose private key
    /// sealgate holds (docs/harvesting.md).
    pub decrypt: bool,
}

impl Default for IncomingSettings {
    fn default() -> Self {
        IncomingSettings {
            listen: String::new(),
            allowed_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            upstream: String::new(),
            decrypt: false,
        }
    }
}

impl IncomingSettings {
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    pub fn listen_addr(&self) -> std::result::Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "incoming.listen: {:?} is not an IP address and port (e.g. \"127.0.0.1:10027\"), or \"\" for none",
                self.listen
            )
        })
    }

    pub fn validate(&self, settings: &Settings) -> std::result::Result<(), String> {
        parse_networks("incoming.allowed_networks", &self.allowed_networks)?;
        if !self.enabled() {
            return Ok(());
        }
        let addr = self.listen_addr()?;
        if settings.listen_addr().ok() == Some(addr) {
            return Err(format!(
                "incoming.listen: {addr} is smtp.listen too; the incoming listener needs a port of its own"
            ));
        }
        if self.upstream.is_empty() {
            return Err(
                "incoming.upstream: the internal MTA (host:port) that gets incoming mail is needed with incoming.listen"
                    .into(),
            );
        }
        if self.allowed_networks.is_empty() {
            return Err("incoming.allowed_networks: name the MX hosts that hand mail over (an empty list takes mail from nobody)".into());
        }
        Ok(())
    }

    /// The relay to `incoming.upstream`: `[relay]` with that upstream.
    pub fn relay_config(&self, settings: &Settings) -> sealgate_relay::RelayConfig {
        let mut r = settings.relay.clone();
        r.upstream = self.upstream.clone();
        r
    }

    /// The incoming listener's config: `[smtp]`'s limits and TLS, its own
    /// networks, no AUTH (only the MX hosts connect).
    pub fn server_config(&self, settings: &Settings) -> Result<sealgate_smtp_server::ServerConfig> {
        let mut c = crate::wiring::server_config(settings)?;
        c.allowed_networks = parse_networks("incoming.allowed_networks", &self.allowed_networks)
            .map_err(anyhow::Error::msg)?;
        c.auth_users.clear();
        Ok(c)
    }

    /// Binds the listener.
    pub async fn bind(&self) -> Result<tokio::net::TcpListener> {
        let addr = self.listen_addr().map_err(anyhow::Error::msg)?;
        tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("incoming.listen: cannot listen on {addr}"))
    }
}
