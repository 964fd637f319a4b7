//! Deciding from content, not labels, whether a message is already encrypted.
//!
//! Mail that is already encrypted passes the gateway unchanged. A sender can
//! put any label on plaintext (`multipart/encrypted`, `smime.p7m`, an armor
//! header line), so the label only says where to look; the OpenPGP packets
//! ([`openpgp`]) or the CMS content type ([`cms`]) decide. What the
//! encryption names (PKESK key ids, CMS issuer and serial or subject key
//! identifier) is kept, so that a recipient whose policy is mandatory gets
//! the message unchanged only if it names one of that recipient's keys.

pub(crate) mod cms;
pub(crate) mod der;
pub(crate) mod openpgp;

use openssl::x509::X509Ref;
use sequoia_openpgp::{Cert, KeyHandle};
use std::time::SystemTime;

/// How a CMS RecipientInfo identifies its recipient's certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmsRecipient {
    /// The issuer's Name (DER) and the serial number (big-endian, without
    /// leading zero bytes).
    IssuerSerial { issuer: Vec<u8>, serial: Vec<u8> },
    /// The subjectKeyIdentifier.
    SubjectKeyId(Vec<u8>),
}

/// What a message's content says about its encryption.
#[derive(Debug, Clone, PartialEq)]
pub enum Encryption {
    /// Readable by anyone: not encrypted (signed-only mail included).
    None,
    /// An encrypted OpenPGP message (PGP/MIME or inline); the PKESK
    /// recipients, `None` for an anonymous ("wildcard") one.
    OpenPgp { recipients: Vec<Option<KeyHandle>> },
    /// CMS enveloped-data or authEnveloped-data, with its recipients.
    Cms { recipients: Vec<CmsRecipient> },
}

impl Encryption {
    pub fn is_encrypted(&self) -> bool {
        !matches!(self, Encryption::None)
    }

    /// True if the message is encrypted to one of the encryption keys of
    /// `cert` that are valid at `now` (the keys sealgate itself would
    /// encrypt to). An anonymous recipient names nobody.
    pub fn names_pgp(&self, cert: &Cert, now: SystemTime) -> bool {
        let Encryption::OpenPgp { recipients } = self else {
            return false;
        };
        let keys = crate::pgp::encryption_subkeys(cert, now);
        recipients
            .iter()
            .flatten()
            .any(|r| keys.iter().any(|k| k.key().key_handle().aliases(r)))
    }

    /// True if a RecipientInfo names `cert`, by issuer and serial number or
    /// by subject key identifier.
    pub fn names_x509(&self, cert: &X509Ref) -> bool {
        let Encryption::Cms { recipients } = self else {
            return false;
        };
        recipients.iter().any(|r| r.names(cert))
    }
}

/// `[0, 0, 1, 2]` -> `[1, 2]`.
pub(crate) fn strip_leading_zeros(b: &[u8]) -> &[u8] {
    let skip = b.iter().take_while(|&&x| x == 0).count();
    &b[skip..]
}
