//! The parameters a certificate is made with, and the ones refused.
//!
//! The seed (CipherMail's "Create new end-user certificate" and CA pages)
//! warns against 1024-bit keys and SHA-1; sealgate refuses both, with no
//! override. Every value an admin types is read here, so that the error
//! names the valid choices.

use crate::CaError;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use serde::{Deserialize, Serialize};

/// The key of a new certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeySpec {
    #[serde(rename = "rsa2048")]
    Rsa2048,
    #[serde(rename = "rsa3072")]
    Rsa3072,
    #[serde(rename = "rsa4096")]
    Rsa4096,
    #[serde(rename = "p256")]
    EcP256,
    #[serde(rename = "p384")]
    EcP384,
}

impl KeySpec {
    /// The names the CLI and the config take.
    pub const CHOICES: &'static str = "rsa2048, rsa3072, rsa4096, p256, p384";

    /// `rsa2048`, `2048`, `RSA-3072`, `p256`, `ec-p384`, ...
    pub fn parse(text: &str) -> Result<KeySpec, CaError> {
        let t = text
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_', ' '], "");
        Ok(match t.as_str() {
            "rsa2048" | "2048" => KeySpec::Rsa2048,
            "rsa3072" | "3072" => KeySpec::Rsa3072,
            "rsa4096" | "4096" => KeySpec::Rsa4096,
            "p256" | "ecp256" | "prime256v1" | "secp256r1" => KeySpec::EcP256,
            "p384" | "ecp384" | "secp384r1" => KeySpec::EcP384,
            "rsa1024" | "1024" | "rsa512" | "512" => {
                return Err(CaError::Refused(format!(
                    "key {text:?}: keys under 2048 bits are refused (the seed warns against them; there is no override); choose one of {}",
                    KeySpec::CHOICES
                )))
            }
            _ => {
                return Err(CaError::Invalid(format!(
                    "key {text:?}: choose one of {}",
                    KeySpec::CHOICES
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            KeySpec::Rsa2048 => "rsa2048",
            KeySpec::Rsa3072 => "rsa3072",
            KeySpec::Rsa4096 => "rsa4096",
            KeySpec::EcP256 => "p256",
            KeySpec::EcP384 => "p384",
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096)
    }

    /// A new private key of this kind.
    pub fn generate(self) -> Result<PKey<Private>, CaError> {
        use openssl::ec::{EcGroup, EcKey};
        use openssl::nid::Nid;
        use openssl::rsa::Rsa;
        Ok(match self {
            KeySpec::Rsa2048 => PKey::from_rsa(Rsa::generate(2048)?)?,
            KeySpec::Rsa3072 => PKey::from_rsa(Rsa::generate(3072)?)?,
            KeySpec::Rsa4096 => PKey::from_rsa(Rsa::generate(4096)?)?,
            KeySpec::EcP256 | KeySpec::EcP384 => {
                let nid = if self == KeySpec::EcP256 {
                    Nid::X9_62_PRIME256V1
                } else {
                    Nid::SECP384R1
                };
                let group = EcGroup::from_curve_name(nid)?;
                PKey::from_ec_key(EcKey::generate(&group)?)?
            }
        })
    }

    /// What a public key (of a CSR) is, or why it is refused.
    pub fn of_key<T: openssl::pkey::HasPublic>(
        key: &openssl::pkey::PKeyRef<T>,
    ) -> Result<KeySpec, CaError> {
        use openssl::pkey::Id;
        match key.id() {
            Id::RSA => match key.bits() {
                b if b < 2048 => Err(CaError::Refused(format!(
                    "an RSA key of {b} bits: keys under 2048 bits are refused"
                ))),
                b if b < 3072 => Ok(KeySpec::Rsa2048),
                b if b < 4096 => Ok(KeySpec::Rsa3072),
                _ => Ok(KeySpec::Rsa4096),
            },
            Id::EC => {
                let ec = key.ec_key()?;
                match ec.group().curve_name() {
                    Some(openssl::nid::Nid::X9_62_PRIME256V1) => Ok(KeySpec::EcP256),
                    Some(openssl::nid::Nid::SECP384R1) => Ok(KeySpec::EcP384),
                    other => Err(CaError::Refused(format!(
                        "an EC key on {other:?}: only P-256 and P-384 are taken"
                    ))),
                }
            }
            other => Err(CaError::Refused(format!(
                "a {other:?} key: only RSA (2048 bits or more) and EC P-256/P-384 are taken"
            ))),
        }
    }
}

/// The signature hash of a new certificate or CRL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigAlg {
    #[serde(rename = "sha256")]
    Sha256,
    #[serde(rename = "sha384")]
    Sha384,
    #[serde(rename = "sha512")]
    Sha512,
}

impl SigAlg {
    pub const CHOICES: &'static str = "sha256, sha384, sha512";

    /// `sha256`, `SHA-384`, `sha512WithRSAEncryption`, ...
    pub fn parse(text: &str) -> Result<SigAlg, CaError> {
        let t = text
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_', ' '], "");
        let t = t
            .strip_suffix("withrsaencryption")
            .or_else(|| t.strip_prefix("ecdsawith"))
            .unwrap_or(&t)
            .to_string();
        Ok(match t.as_str() {
            "sha256" => SigAlg::Sha256,
            "sha384" => SigAlg::Sha384,
            "sha512" => SigAlg::Sha512,
            "sha1" | "md5" | "sha224" => {
                return Err(CaError::Refused(format!(
                    "signature algorithm {text:?} is refused (the seed warns against SHA-1; there is no override); choose one of {}",
                    SigAlg::CHOICES
                )))
            }
            _ => {
                return Err(CaError::Invalid(format!(
                    "signature algorithm {text:?}: choose one of {}",
                    SigAlg::CHOICES
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            SigAlg::Sha256 => "sha256",
            SigAlg::Sha384 => "sha384",
            SigAlg::Sha512 => "sha512",
        }
    }

    pub fn digest(self) -> MessageDigest {
        match self {
            SigAlg::Sha256 => MessageDigest::sha256(),
            SigAlg::Sha384 => MessageDigest::sha384(),
            SigAlg::Sha512 => MessageDigest::sha512(),
        }
    }
}

/// Validity in days: 1 to 36,500.
pub fn validity_days(days: u32) -> Result<u32, CaError> {
    if days == 0 || days > 36_500 {
        return Err(CaError::Invalid(format!(
            "validity {days} days: give 1 to 36500 days"
        )));
    }
    Ok(days)
}

/// A subject field value (common name, organisation, names): one line,
/// 1 to 256 characters, no control characters.
pub fn subject_text(what: &str, value: &str) -> Result<String, CaError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(CaError::Invalid(format!("{what}: must not be empty")));
    }
    if v.chars().count() > 256 {
        return Err(CaError::Invalid(format!(
            "{what}: at most 256 characters (got {})",
            v.chars().count()
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(CaError::Invalid(format!(
            "{what}: control characters are not allowed"
        )));
    }
    Ok(v.to_string())
}

/// An email address for a certificate: `local@domain`, ASCII, no spaces,
/// lower-cased domain.
pub fn email(value: &str) -> Result<String, CaError> {
    let v = value.trim();
    let ok = v.len() <= 254
        && v.is_ascii()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>\",;".contains(c))
        && v.rsplit_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'));
    if !ok {
        return Err(CaError::Invalid(format!(
            "email {value:?}: not an address (local@domain.example)"
        )));
    }
    let (l, d) = v.rsplit_once('@').unwrap_or((v, ""));
    Ok(format!("{l}@{}", d.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_choices_are_refused_and_the_choices_named() {
        for k in ["1024", "rsa1024", "RSA-512"] {
            let e = KeySpec::parse(k).unwrap_err();
            assert!(matches!(e, CaError::Refused(_)), "{k}: {e}");
        }
        let e = KeySpec::parse("dsa").unwrap_err().to_string();
        assert!(e.contains("rsa2048, rsa3072, rsa4096, p256, p384"), "{e}");
        assert_eq!(KeySpec::parse("RSA-3072").unwrap(), KeySpec::Rsa3072);
        assert_eq!(KeySpec::parse("ec-p384").unwrap(), KeySpec::EcP384);
        assert!(matches!(SigAlg::parse("SHA-1"), Err(CaError::Refused(_))));
        assert!(matches!(
            SigAlg::parse("sha1WithRSAEncryption"),
            Err(CaError::Refused(_))
        ));
        assert_eq!(
            SigAlg::parse("sha512WithRSAEncryption").unwrap(),
            SigAlg::Sha512
        );
        assert!(validity_days(0).is_err() && validity_days(36_501).is_err());
        assert!(subject_text("cn", &"x".repeat(257)).is_err());
        assert!(subject_text("cn", "a\nb").is_err());
        assert_eq!(email("Ann@Example.ORG").unwrap(), "Ann@example.org");
        assert!(email("ann").is_err() && email("a b@x.org").is_err());
    }

    #[test]
    fn csr_keys_are_judged() {
        let small = PKey::from_rsa(openssl::rsa::Rsa::generate(1024).unwrap()).unwrap();
        assert!(matches!(KeySpec::of_key(&small), Err(CaError::Refused(_))));
        let ok = KeySpec::EcP256.generate().unwrap();
        assert_eq!(KeySpec::of_key(&ok).unwrap(), KeySpec::EcP256);
    }
}
