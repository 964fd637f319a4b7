//! Building the bytes of one output message: encryption runs on the blocking
//! pool (it is CPU work); plain and pass-through groups are the original bytes.

use crate::group::{Group, GroupKind, PgpForm};
use sealgate_crypto::mime::Parts;
use sealgate_crypto::CryptoError;
use sealgate_keys::{Method, RecipientKey};
use std::borrow::Cow;
use std::sync::Arc;

/// Why a copy could not be built (the caller must then send nothing to those
/// recipients).
#[derive(Debug, Clone)]
pub struct BuildError {
    /// For the log: may name a certificate subject or a library error.
    pub reason: String,
    /// The same input would fail again ([`CryptoError::is_permanent`]): the
    /// recipients are refused (5.7.5) rather than deferred.
    pub permanent: bool,
}

impl From<CryptoError> for BuildError {
    fn from(e: CryptoError) -> Self {
        BuildError {
            permanent: e.is_permanent(),
            reason: e.to_string(),
        }
    }
}

/// The output bytes of `group`, or why encryption failed. Plain and
/// pass-through copies are `data`; encrypted ones are made from `parts`,
/// the message's outer headers and inner entity split once for every copy.
pub async fn build<'a>(
    group: &Group,
    data: &'a [u8],
    parts: Option<&Arc<Parts>>,
) -> Result<Cow<'a, [u8]>, BuildError> {
    match &group.kind {
        // A held copy is encrypted when its key is found (crate::release).
        GroupKind::Plain | GroupKind::PassThrough | GroupKind::Held { .. } => {
            Ok(Cow::Borrowed(data))
        }
        GroupKind::Refused { reason } | GroupKind::Bounced { reason } => Err(BuildError {
            reason: reason.clone(),
            permanent: true,
        }),
        GroupKind::Encrypt {
            method,
            keys,
            smime_cipher,
            smime_rsa_padding,
            pgp_form,
            protect,
        } => {
            let how = How {
                method: *method,
                cipher: *smime_cipher,
                padding: *smime_rsa_padding,
                inline: *pgp_form == PgpForm::Inline,
                protect: protect.clone(),
            };
            let keys = keys.clone();
            let parts = parts.cloned().ok_or_else(|| BuildError {
                reason: "internal: no message parts for an encrypted copy".into(),
                permanent: false,
            })?;
            // On the CPU pool; if the message times out, this future is
            // dropped and the encryption stops.
            let out = sealgate_crypto::cpu::run(move |cancel| encrypt(&how, &keys, &parts, cancel))
                .await
                .map_err(|e| BuildError {
                    reason: format!("encryption task failed: {e}"),
                    permanent: false,
                })??;
            Ok(Cow::Owned(out))
        }
    }
}

/// How one copy is encrypted.
struct How {
    method: Method,
    cipher: sealgate_crypto::smime::SmimeCipher,
    padding: sealgate_crypto::smime::RsaPadding,
    /// Inline PGP (the group found the message text/plain).
    inline: bool,
    /// Header protection with this outer Subject.
    protect: Option<String>,
}

fn encrypt(
    how: &How,
    keys: &[RecipientKey],
    parts: &Parts,
    cancel: &sealgate_crypto::cpu::Cancel,
) -> Result<Vec<u8>, CryptoError> {
    // Header protection changes only the header part of the parts; the
    // body stays shared with the received message.
    let protected;
    let parts = match &how.protect {
        Some(subject) => {
            protected = parts.protect_headers(subject);
            &protected
        }
        None => parts,
    };
    match how.method {
        Method::Pgp => {
            let certs: Vec<&sequoia_openpgp::Cert> = keys
                .iter()
                .filter_map(|k| match k {
                    RecipientKey::Pgp(c) => Some(c.as_ref()),
                    RecipientKey::Smime(_) => None,
                })
                .collect();
            if how.inline {
                match sealgate_crypto::pgp::encrypt_pgp_inline_parts(parts, &certs, cancel) {
                    // The text did not decode after all: PGP/MIME carries
                    // the entity as it is.
                    Err(CryptoError::NotInlineable) => {}
                    other => return other,
                }
            }
            sealgate_crypto::pgp::encrypt_pgp_mime_parts(parts, &certs, cancel)
        }
        Method::Smime => {
            let certs: Vec<openssl::x509::X509> = keys
                .iter()
                .filter_map(|k| match k {
                    RecipientKey::Smime(x) => Some(x.as_ref().clone()),
                    RecipientKey::Pgp(_) => None,
                })
                .collect();
            sealgate_crypto::smime::encrypt_smime_parts(
                parts,
                &certs,
                how.cipher,
                how.padding,
                cancel,
            )
        }
    }
}
