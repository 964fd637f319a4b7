//! `[trust]`: how certificates are judged and how CRLs are kept fresh.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a certificate whose CA publishes a CRL distribution point, but
/// whose CRL sealgate has no valid copy of, is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CrlMissing {
    /// Used (the download failures are logged).
    #[default]
    Allow,
    /// Not valid until a valid CRL is in the store.
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// Also trust the operating system's root bundle (OpenSSL's default
    /// paths, `SSL_CERT_FILE`/`SSL_CERT_DIR`). Off by default: the root
    /// store starts empty.
    pub system_roots: bool,
    pub crl_missing: CrlMissing,
    /// How often `serve` downloads the CRLs of every distribution point
    /// (`"6h"`, `"30m"`, ...; `"0"` turns it off).
    pub crl_refresh_interval: String,
    /// The largest CRL accepted from a distribution point.
    pub crl_max_bytes: usize,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            system_roots: false,
            crl_missing: CrlMissing::Allow,
            crl_refresh_interval: "6h".into(),
            crl_max_bytes: 16 << 20,
        }
    }
}

impl TrustConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        self.refresh_interval()?;
        if self.crl_max_bytes == 0 {
            return Err("trust.crl_max_bytes: must be more than 0".into());
        }
        Ok(())
    }

    /// `None` when the periodic refresh is off.
    pub fn refresh_interval(&self) -> Result<Option<Duration>, String> {
        match sealgate_store::parse_duration(&self.crl_refresh_interval) {
            Some(d) if d.is_zero() => Ok(None),
            Some(d) => Ok(Some(d)),
            None => Err(format!(
                "trust.crl_refresh_interval: {:?} is not a duration (like \"6h\", \"30m\", \"90s\"; \"0\" turns it off)",
                self.crl_refresh_interval
            )),
        }
    }

    /// The options the trust stage runs with.
    pub fn options(&self) -> crate::TrustOptions {
        crate::TrustOptions {
            crl_missing_deny: self.crl_missing == CrlMissing::Deny,
            system_roots: self.system_roots,
        }
    }
}
