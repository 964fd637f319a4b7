//! Wiring of `incoming.decrypt`: S/MIME mail on the incoming listener,
//! encrypted to an internal recipient whose private key sealgate holds
//! (imported from PKCS#12, sealed under the key-encryption key), is
//! decrypted for the recipients the encryption names by such a key, and
//! marked:
//!
//! - `X-Sealgate-Decrypted: certificate SHA256:...; subject ...`
//! - `X-Sealgate-Signature: valid|not trusted (...)|invalid (...); ...`
//!   when the decrypted message is S/MIME-signed.
//!
//! PGP/MIME mail is decrypted the same way with a held OpenPGP secret key
//! ([`crate::decrypting_pgp`]).
//!
//! Both fields are removed from every incoming message first, so none can
//! arrive forged. A message that cannot be decrypted (no held key, a
//! damaged body, a key that does not open) goes on unchanged.

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use sealgate_crypto::inspect::Encryption;
use sealgate_crypto::mime::Message;
use sealgate_pipeline::incoming::Decryptor;
use sealgate_trust::{Kek, LiveTrust, Purpose, TrustStore};
use std::sync::Arc;

pub(crate) const DECRYPTED: &str = "X-Sealgate-Decrypted";
pub(crate) const SIGNATURE: &str = "X-Sealgate-Signature";

pub struct LiveDecryptor {
    pub trust: TrustStore,
    /// Where the keys of a signer of decrypted OpenPGP mail are looked up
    /// (the keys bound to the From address).
    pub store: sealgate_store::Store,
    pub live: Arc<LiveTrust>,
    pub kek: Kek,
    /// Longest a decryption may take (`relay.message_timeout_secs`); past
    /// it the message goes on unchanged.
    pub timeout: std::time::Duration,
}

/// A header value from certificate text: no control characters, bounded.
pub(crate) fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

impl LiveDecryptor {
    /// Runs the decryption `job` on the CPU pool within the timeout; `None`
    /// (logged, naming the `kind` of mail and the `key`) when it fails.
    pub(crate) async fn on_cpu<T, E>(
        &self,
        queue_id: &str,
        kind: &str,
        key: &str,
        job: impl FnOnce() -> Result<T, E> + Send + 'static,
    ) -> Option<T>
    where
        T: Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let done = tokio::time::timeout(self.timeout, sealgate_crypto::cpu::run(move |_| job()))
            .await
            .unwrap_or_else(|_| Err("decryption timed out".into()));
        match done {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::warn!(queue_id, key, "incoming {kind} mail not decrypted: {e}");
                None
            }
            Err(e) => {
                tracing::warn!(queue_id, key, "incoming {kind} mail not decrypted: {e}");
                None
            }
        }
    }

    /// The held key's certificate the encryption names, for the first
    /// recipient that has one, and which recipients it names.
    async fn find(
        &self,
        encryption: &Encryption,
        recipients: &[String],
    ) -> Result<Option<(X509, String, Vec<usize>)>, String> {
        let mut found: Option<(X509, String)> = None;
        let mut members = Vec::new();
        for (i, r) in recipients.iter().enumerate() {
            let certs = self
                .trust
                .keyed_certs_for(r)
                .await
                .map_err(|e| e.to_string())?;
            for c in certs {
                let Ok(x) = X509::from_der(&c.der) else {
                    continue;
                };
                if encryption.names_x509(&x) {
                    members.push(i);
                    if found.is_none() {
                        found = Some((x, c.info.sha256.clone()));
                    }
                    break;
                }
            }
        }
        Ok(found.map(|(x, sha)| (x, sha, members)))
    }
}

#[async_trait::async_trait]
impl Decryptor for LiveDecryptor {
    fn marking_fields(&self) -> &'static [&'static str] {
        &[DECRYPTED, SIGNATURE]
    }

    async fn decrypt(
        &self,
        queue_id: &str,
        message: &Arc<Vec<u8>>,
        recipients: &[String],
    ) -> Option<(Vec<u8>, Vec<usize>)> {
        let encryption = Message::parse(message).encryption();
        match encryption {
            Encryption::Cms { .. } => {
                self.decrypt_smime(queue_id, message, recipients, &encryption)
                    .await
            }
            Encryption::OpenPgp { .. } => {
                self.decrypt_pgp(queue_id, message, recipients, &encryption)
                    .await
            }
            Encryption::None => None,
        }
    }
}

impl LiveDecryptor {
    async fn decrypt_smime(
        &self,
        queue_id: &str,
        message: &Arc<Vec<u8>>,
        recipients: &[String],
        encryption: &Encryption,
    ) -> Option<(Vec<u8>, Vec<usize>)> {
        let (cert, sha, members) = match self.find(encryption, recipients).await {
            Ok(Some(f)) => f,
            Ok(None) => {
                tracing::info!(
                    queue_id,
                    "incoming S/MIME mail not decrypted: sealgate holds no key it is encrypted to"
                );
                return None;
            }
            Err(e) => {
                tracing::warn!(queue_id, "incoming S/MIME mail not decrypted: {e}");
                return None;
            }
        };
        let key: PKey<Private> = match self.trust.private_key(&sha, &self.kek).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(queue_id, certificate = %sha, "incoming S/MIME mail not decrypted: {e}");
                return None;
            }
        };
        let job_message = message.clone();
        let job_cert = cert.clone();
        let entity = self
            .on_cpu(queue_id, "S/MIME", &sha, move || {
                sealgate_crypto::decrypt::decrypt_entity(&job_message, &job_cert, &key)
            })
            .await?;
        let subject = sealgate_trust::CertInfo::of(&cert)
            .map(|i| i.subject)
            .unwrap_or_default();
        let mut marks = vec![format!(
            "{DECRYPTED}: by sealgate with certificate SHA256:{sha}; subject {}\r\n",
            clean(&subject)
        )];
        match sealgate_crypto::signed::verify(&entity) {
            Ok(signed) => {
                let verifier = self.live.snapshot();
                let s = &signed.signers[0].cert;
                let who = sealgate_trust::CertInfo::of(s)
                    .map(|i| {
                        format!(
                            "signer {}; certificate SHA256:{}",
                            clean(&i.subject),
                            i.sha256
                        )
                    })
                    .unwrap_or_default();
                let status = verifier
                    .verify_for(s, &signed.certificates, true, Purpose::Sign)
                    .status;
                let verdict = if status.is_valid() {
                    "valid".to_string()
                } else {
                    format!("not trusted ({})", clean(&status.to_string()))
                };
                marks.push(format!("{SIGNATURE}: {verdict}; {who}\r\n"));
            }
            Err(sealgate_crypto::signed::SignedError::NotSigned) => {}
            Err(e) => marks.push(format!(
                "{SIGNATURE}: invalid ({})\r\n",
                clean(&e.to_string())
            )),
        }
        tracing::info!(queue_id, certificate = %sha, recipients = members.len(), "incoming S/MIME mail decrypted");
        Some((
            sealgate_crypto::decrypt::rebuild(message, &marks, &entity),
            members,
        ))
    }
}
