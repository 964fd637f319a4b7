//! `incoming.decrypt` for PGP/MIME: mail encrypted to an internal recipient
//! whose OpenPGP secret key sealgate holds (`sealgate keys import-secret`)
//! is decrypted for the recipients the encryption names by such a key, and
//! marked:
//!
//! - `X-Sealgate-Decrypted: by sealgate with OpenPGP key FPR; user id ...`
//! - `X-Sealgate-Signature: valid; signer FPR (...)`, `not verified (no key
//!   of the signer ...)` or `invalid (...)` when it was signed, checked
//!   against the OpenPGP keys bound to the From address; a valid signature
//!   by a bound key sets that binding's `sign_used`.
//!
//! Inline PGP and mail no held key opens pass unchanged.

use crate::decrypting::{clean, LiveDecryptor, DECRYPTED, SIGNATURE};
use sealgate_crypto::decrypt_pgp::PgpSignature;
use sealgate_crypto::inspect::Encryption;
use sealgate_crypto::mime::Message;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::Cert;
use std::sync::Arc;
use std::time::SystemTime;

impl LiveDecryptor {
    /// The held key the encryption names, for the first recipient that has
    /// one, and which recipients such a key names.
    async fn find_pgp(
        &self,
        encryption: &Encryption,
        recipients: &[String],
    ) -> Result<Option<(String, Vec<usize>)>, String> {
        let mut found = None;
        let mut members = Vec::new();
        let now = SystemTime::now();
        for (i, r) in recipients.iter().enumerate() {
            let held = self
                .trust
                .pgp_secrets_for(r)
                .await
                .map_err(|e| e.to_string())?;
            if let Some(c) = held.iter().find(|c| names(encryption, c, now)) {
                members.push(i);
                found.get_or_insert_with(|| c.fingerprint().to_hex());
            }
        }
        Ok(found.map(|f| (f, members)))
    }

    /// The OpenPGP keys bound to `address`, to check a signature with.
    async fn signers_of(&self, address: &str) -> Vec<Cert> {
        let keys = match self.store.keys_for(address).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("the signer's keys cannot be read: {e}");
                return Vec::new();
            }
        };
        keys.iter()
            .filter(|k| k.kind == sealgate_store::KeyKind::Pgp)
            .filter_map(|k| Cert::from_bytes(k.data.as_bytes()).ok())
            .collect()
    }

    pub(crate) async fn decrypt_pgp(
        &self,
        queue_id: &str,
        message: &Arc<Vec<u8>>,
        recipients: &[String],
        encryption: &Encryption,
    ) -> Option<(Vec<u8>, Vec<usize>)> {
        if Message::parse(message).pgp_mime_payload().is_none() {
            tracing::info!(
                queue_id,
                "incoming inline-PGP mail not decrypted (only PGP/MIME is)"
            );
            return None;
        }
        let (fpr, members) = match self.find_pgp(encryption, recipients).await {
            Ok(Some(f)) => f,
            Ok(None) => {
                tracing::info!(
                    queue_id,
                    "incoming PGP/MIME mail not decrypted: sealgate holds no key it is encrypted to"
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(queue_id, "incoming PGP/MIME mail not decrypted: {e}");
                return None;
            }
        };
        let secret = match self.trust.pgp_secret(&fpr, &self.kek).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(queue_id, fingerprint = %fpr, "incoming PGP/MIME mail not decrypted: {e}");
                return None;
            }
        };
        let author = sealgate_harvest::pgp::author(message);
        let signers = match &author {
            Some(a) => self.signers_of(a).await,
            None => Vec::new(),
        };
        let job_message = message.clone();
        let job_signers = signers.clone();
        let job_secret = secret.clone();
        let decrypted = self
            .on_cpu(queue_id, "PGP/MIME", &fpr, move || {
                sealgate_crypto::decrypt_pgp::decrypt_pgp(&job_message, &job_secret, &job_signers)
            })
            .await?;
        let uid = secret
            .userids()
            .next()
            .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
            .unwrap_or_default();
        let mut marks = vec![format!(
            "{DECRYPTED}: by sealgate with OpenPGP key {fpr}; user id {}\r\n",
            clean(&uid)
        )];
        match &decrypted.signature {
            PgpSignature::None => {}
            PgpSignature::Valid(signer) => {
                let signer = signer.to_hex();
                let level = self.record_signature(author.as_deref(), &signer).await;
                marks.push(format!(
                    "{SIGNATURE}: valid; signer OpenPGP key {signer}{}\r\n",
                    level.map_or(String::new(), |l| format!(" (bound to the sender at level {l})"))
                ));
            }
            PgpSignature::UnknownSigner(ids) => marks.push(format!(
                "{SIGNATURE}: not verified (sealgate has no key of the signer {}); the From address's keys do not include it\r\n",
                clean(&ids.join(", "))
            )),
            PgpSignature::Invalid(why) => {
                marks.push(format!("{SIGNATURE}: invalid ({})\r\n", clean(why)))
            }
        }
        tracing::info!(queue_id, fingerprint = %fpr, recipients = members.len(), "incoming PGP/MIME mail decrypted");
        Some((
            sealgate_crypto::decrypt::rebuild(message, &marks, &decrypted.entity),
            members,
        ))
    }

    /// Sets `sign_used` on the sender's binding to the signing key, and
    /// returns that binding's level (none when the key is not bound to the
    /// sender: the signature is good, but says nothing about From).
    async fn record_signature(&self, author: Option<&str>, signer: &str) -> Option<String> {
        let author = author?;
        let bindings = self.store.bindings(author).await.ok()?;
        let b = bindings.iter().find(|b| b.fingerprint == signer)?;
        let marked = self
            .store
            .bind(
                &sealgate_store::NewBinding {
                    address: author,
                    fingerprint: signer,
                    kind: "pgp",
                    level: b.level,
                    source: &b.source,
                    sign_used: true,
                },
                sealgate_store::now_unix(),
            )
            .await;
        if let Err(e) = marked {
            tracing::warn!("sign_used not recorded: {e}");
        }
        Some(b.level.to_string())
    }
}

/// Whether the encryption names one of `cert`'s encryption subkeys, valid
/// now or not (an old message may use a subkey since expired).
fn names(encryption: &Encryption, cert: &Cert, now: SystemTime) -> bool {
    if encryption.names_pgp(cert, now) {
        return true;
    }
    let Encryption::OpenPgp { recipients } = encryption else {
        return false;
    };
    recipients.iter().flatten().any(|r| {
        cert.keys()
            .filter(|k| k.key().pk_algo().for_encryption())
            .any(|k| k.key().key_handle().aliases(r))
    })
}
