//! The CA configuration (`sealgate ca config show|set`), kept in the store
//! so that every instance issues alike: the seed's "CA configuration" page.

use crate::params::{KeySpec, SigAlg};
use crate::CaError;
use serde::{Deserialize, Serialize};

/// Every CA setting with its value (the default where none is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaConfig {
    /// The common name of a request that gives none; `{email}` is the
    /// request's address.
    pub default_common_name: String,
    /// Validity of new end-user certificates, in days.
    pub validity_days: u32,
    /// Key of new end-user certificates.
    pub key: KeySpec,
    /// Signature algorithm of new certificates and CRLs.
    pub signature_algorithm: SigAlg,
    /// The sender of certificate mail; sealgate never encrypts mail from it.
    pub ca_email: Option<String>,
    /// Length of generated PKCS#12 passwords (12 to 64).
    pub password_length: u32,
    /// Keep generated PKCS#12 passwords for the users (sealed).
    pub store_password: bool,
    /// New certificates carry a CRL distribution point.
    pub add_crl_distribution_point: bool,
    /// The distribution point URL; `{ca}` is the CA's thumbprint, as the
    /// admin listener publishes it at `/crl/{ca}.crl`.
    pub crl_distribution_point_url: Option<String>,
    /// `builtin` (issued at once, by the default CA) or `csr` (a pending
    /// request with a PKCS#10 for an external CA).
    pub default_handler: String,
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig {
            default_common_name: "{email}".into(),
            validity_days: 1095,
            key: KeySpec::Rsa3072,
            signature_algorithm: SigAlg::Sha256,
            ca_email: None,
            password_length: 16,
            store_password: false,
            add_crl_distribution_point: false,
            crl_distribution_point_url: None,
            default_handler: "builtin".into(),
        }
    }
}

/// The setting names, in the order `config show` lists them.
pub const SETTINGS: &[&str] = &[
    "default_common_name",
    "validity_days",
    "key",
    "signature_algorithm",
    "ca_email",
    "password_length",
    "store_password",
    "add_crl_distribution_point",
    "crl_distribution_point_url",
    "default_handler",
];

/// The request handlers there are.
pub const HANDLERS: &[&str] = &["builtin", "csr"];

impl CaConfig {
    /// The configuration with the stored `(name, JSON value)` rows over the
    /// defaults. A row this version does not read is an error naming it.
    pub fn from_rows(rows: &[(String, String)]) -> Result<CaConfig, CaError> {
        let mut c = CaConfig::default();
        for (name, value) in rows {
            let v: serde_json::Value = serde_json::from_str(value)
                .map_err(|e| CaError::Invalid(format!("stored CA setting {name}: {e}")))?;
            let text = match &v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            c.set(name, &text)?;
        }
        Ok(c)
    }

    /// Sets `name` from what an admin typed, checked; the JSON to store.
    pub fn set(&mut self, name: &str, value: &str) -> Result<serde_json::Value, CaError> {
        let v = value.trim();
        let bool_of = |v: &str| -> Result<bool, CaError> {
            match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" | "1" => Ok(true),
                "false" | "no" | "off" | "0" => Ok(false),
                _ => Err(CaError::Invalid(format!(
                    "{name}: give true or false, not {v:?}"
                ))),
            }
        };
        let json = match name {
            "default_common_name" => {
                self.default_common_name = crate::params::subject_text(name, v)?;
                serde_json::json!(self.default_common_name)
            }
            "validity_days" => {
                let d: u32 = v.parse().map_err(|_| {
                    CaError::Invalid(format!("{name}: {v:?} is not a number of days"))
                })?;
                self.validity_days = crate::params::validity_days(d)?;
                serde_json::json!(self.validity_days)
            }
            "key" => {
                self.key = KeySpec::parse(v)?;
                serde_json::json!(self.key.name())
            }
            "signature_algorithm" => {
                self.signature_algorithm = SigAlg::parse(v)?;
                serde_json::json!(self.signature_algorithm.name())
            }
            "ca_email" => {
                self.ca_email = if v.is_empty() {
                    None
                } else {
                    Some(crate::params::email(v)?)
                };
                serde_json::json!(self.ca_email)
            }
            "password_length" => {
                let n: u32 = v.parse().unwrap_or(0);
                if !(12..=64).contains(&n) {
                    return Err(CaError::Invalid(format!(
                        "{name}: give 12 to 64 characters, not {v:?}"
                    )));
                }
                self.password_length = n;
                serde_json::json!(n)
            }
            "store_password" => {
                self.store_password = bool_of(v)?;
                serde_json::json!(self.store_password)
            }
            "add_crl_distribution_point" => {
                self.add_crl_distribution_point = bool_of(v)?;
                serde_json::json!(self.add_crl_distribution_point)
            }
            "crl_distribution_point_url" => {
                self.crl_distribution_point_url = if v.is_empty() {
                    None
                } else {
                    crate::build::check_url(&v.replace("{ca}", "X"))?;
                    Some(v.to_string())
                };
                serde_json::json!(self.crl_distribution_point_url)
            }
            "default_handler" => {
                if !HANDLERS.contains(&v) {
                    return Err(CaError::Invalid(format!(
                        "{name}: {v:?} is not a request handler; the handlers are: {}",
                        HANDLERS.join(", ")
                    )));
                }
                self.default_handler = v.to_string();
                serde_json::json!(v)
            }
            _ => {
                return Err(CaError::Invalid(format!(
                    "{name:?} is not a CA setting; the settings are: {}",
                    SETTINGS.join(", ")
                )))
            }
        };
        Ok(json)
    }

    /// The distribution point for the CA `ca` (its thumbprint), when new
    /// certificates are to carry one.
    pub fn crl_url_for(&self, ca: &str) -> Option<String> {
        self.crl_distribution_point_url
            .as_ref()
            .filter(|_| self.add_crl_distribution_point)
            .map(|u| u.replace("{ca}", ca))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_and_name_the_choices() {
        let mut c = CaConfig::default();
        assert!(c
            .set("key", "rsa1024")
            .unwrap_err()
            .to_string()
            .contains("refused"));
        assert!(c.set("signature_algorithm", "sha1").is_err());
        assert!(c
            .set("default_handler", "acme")
            .unwrap_err()
            .to_string()
            .contains("builtin, csr"));
        assert!(c
            .set("nope", "1")
            .unwrap_err()
            .to_string()
            .contains("default_common_name"));
        assert!(c.set("password_length", "8").is_err());
        assert!(c.set("crl_distribution_point_url", "ftp://x").is_err());
        c.set(
            "crl_distribution_point_url",
            "http://pki.example.com/crl/{ca}.crl",
        )
        .unwrap();
        assert_eq!(
            c.crl_url_for("AB"),
            None,
            "off until add_crl_distribution_point"
        );
        c.set("add_crl_distribution_point", "yes").unwrap();
        assert_eq!(
            c.crl_url_for("AB").as_deref(),
            Some("http://pki.example.com/crl/AB.crl")
        );
        let rows = vec![("key".to_string(), "\"p384\"".to_string())];
        assert_eq!(CaConfig::from_rows(&rows).unwrap().key, KeySpec::EcP384);
    }
}
