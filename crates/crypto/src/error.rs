//! The one error type of the encryption stage.
//!
//! Callers (the pipeline) only need to know that encryption failed and why, in
//! words fit for a log line and an SMTP reply; they must then refuse or defer
//! the message (fail closed). The texts never contain message content or key
//! material, only fingerprints and library error descriptions.

/// Why a message could not be encrypted.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// No certificate (S/MIME) or no OpenPGP certificate was given.
    #[error("no recipients to encrypt to")]
    NoRecipients,
    /// Inline PGP was asked for a message that is not a decodable
    /// text/plain entity.
    #[error("the message is not text/plain: inline PGP cannot carry it")]
    NotInlineable,
    /// An OpenPGP certificate has no encryption subkey that is valid now.
    #[error("OpenPGP certificate {fingerprint} has no usable encryption subkey")]
    NoEncryptionSubkey {
        /// Fingerprint of the certificate's primary key (hex).
        fingerprint: String,
    },
    /// A certificate's key is of a type CMS cannot encrypt to.
    #[error("certificate {subject} cannot be encrypted to: {reason}")]
    UnusableCertificate {
        /// The certificate's subject DN, for the log.
        subject: String,
        /// Why (key type, key length, curve).
        reason: String,
    },
    /// A signing certificate and key that cannot sign together.
    #[error("certificate {subject} cannot sign: {reason}")]
    UnusableSigner {
        /// The certificate's subject DN, for the log.
        subject: String,
        reason: String,
    },
    /// The caller gave up (the message timed out) and the work stopped.
    #[error("encryption stopped: nobody waits for it any more")]
    Cancelled,
    /// sequoia-openpgp failed.
    #[error("OpenPGP error: {0}")]
    OpenPgp(String),
    /// OpenSSL failed (CMS encryption, random numbers).
    #[error("OpenSSL error: {0}")]
    OpenSsl(String),
}

impl CryptoError {
    /// Whether the same input would fail again: no recipients, a certificate
    /// without a usable subkey, a key type that cannot be encrypted to. The
    /// caller refuses such a copy (5xx) instead of deferring it forever.
    /// Library failures (`OpenPgp`, `OpenSsl`) are not known to repeat and
    /// count as transient.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            CryptoError::NoRecipients
                | CryptoError::NoEncryptionSubkey { .. }
                | CryptoError::UnusableCertificate { .. }
                | CryptoError::UnusableSigner { .. }
        )
    }
}

impl From<openssl::error::ErrorStack> for CryptoError {
    fn from(e: openssl::error::ErrorStack) -> Self {
        CryptoError::OpenSsl(e.to_string())
    }
}
