//! Signing outgoing mail on its sender's behalf (S/MIME, `policy.sign`).
//!
//! It runs once per message, before any copy is built, so every copy of a
//! signed message carries the signature: a plain copy is the signed
//! message, an encrypted copy encrypts it (sign, then encrypt).
//!
//! The signer is the author the recipients' clients compare the signer's
//! certificate with: the one address in `From:`, else (no `From:`, or a
//! list of authors) the envelope sender. Its policy (`sign`,
//! `sign_unavailable`, by its domain) decides; the certificate is the one
//! [`SigningKeys`] gives for it (chosen by hand, else automatically; valid
//! for signing now, with its private key in the store). A message the
//! client already signed or encrypted end to end is left as it is: the
//! signature, or the encryption, is the client's.
//!
//! `mandatory` never lets a message out unsigned: without a usable
//! certificate (or when finding it or signing failed) the message is not
//! taken: 451 4.7.5 (`sign_unavailable = "defer"`, and always when the
//! failure may pass) or 554 5.7.5 (`"reject"`).

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use sealgate_crypto::mime::Message;
use sealgate_metrics::SignResult;
use sealgate_policy::{SignMode, SignUnavailable};
use sealgate_smtp_server::Reply;
use std::sync::Arc;

/// A certificate to sign with, its private key and the intermediates that
/// travel in the signature so recipients can build the path.
pub struct Signer {
    pub cert: X509,
    pub key: PKey<Private>,
    /// Intermediates, leaf first excluded and root excluded.
    pub chain: Vec<X509>,
    /// SHA-256 thumbprint of `cert` (for the log).
    pub thumbprint: String,
    /// How it was chosen (`automatic`, `chosen for ADDRESS`), for the log.
    pub chosen: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Signer")
            .field("thumbprint", &self.thumbprint)
            .field("chosen", &self.chosen)
            .finish_non_exhaustive()
    }
}

/// Where the signing stage gets a sender's certificate and key.
#[async_trait::async_trait]
pub trait SigningKeys: Send + Sync {
    /// The signer for `address` (lower-case), `None` when it has no usable
    /// signing certificate; `Err` when that cannot be known now (a store
    /// failure, a key that does not open).
    async fn signer(&self, address: &str) -> Result<Option<Arc<Signer>>, String>;
}

/// No certificates: every sender has none (a pipeline without the trust
/// stage, as in unit tests).
pub struct NoSigningKeys;

#[async_trait::async_trait]
impl SigningKeys for NoSigningKeys {
    async fn signer(&self, _address: &str) -> Result<Option<Arc<Signer>>, String> {
        Ok(None)
    }
}

/// What the stage did.
pub(crate) enum Outcome {
    /// Go on with the message as received.
    Unchanged,
    /// Go on with these bytes: the message, signed.
    Signed(Vec<u8>),
    /// Do not take the message.
    Refused(Reply),
}

/// The address whose policy and certificate sign `parsed`.
pub(crate) fn signer_address(parsed: &Message<'_>, envelope_sender: &str) -> Option<String> {
    let from = crate::group::header_addresses(parsed, &["From"]);
    // A client-supplied address goes to the log and the store's queries:
    // one that no MTA would take is not a signer.
    let sane = |a: &str| {
        a.len() <= 254 && a.contains('@') && !a.chars().any(|c| c.is_control() || c.is_whitespace())
    };
    match from.as_slice() {
        [one] if sane(one) => Some(one.clone()),
        _ if envelope_sender.contains('@') => Some(envelope_sender.to_lowercase()),
        _ => None,
    }
}

/// True when the client signed or encrypted the message itself.
fn already_protected(parsed: &Message<'_>) -> bool {
    let ct = parsed.content_type();
    parsed.encryption().is_encrypted()
        || matches!(
            ct.mime_type.as_str(),
            "multipart/signed" | "application/pkcs7-mime" | "application/x-pkcs7-mime"
        )
}

impl crate::Pipeline {
    /// Signs `data` (parsed as `parsed`) when the signer's policy says so.
    pub(crate) async fn sign(
        &self,
        queue_id: &str,
        envelope_sender: &str,
        parsed: &Message<'_>,
        data: &Arc<Vec<u8>>,
        deadline: tokio::time::Instant,
    ) -> Outcome {
        let (policy, keys, metrics) = (&self.policy, self.signing.as_ref(), self.queue.metrics());
        if !policy.signs_anywhere() {
            return Outcome::Unchanged;
        }
        let Some(address) = signer_address(parsed, envelope_sender) else {
            return Outcome::Unchanged;
        };
        let settings = policy.settings_for(&address);
        if settings.sign == SignMode::Off {
            return Outcome::Unchanged;
        }
        if already_protected(parsed) {
            tracing::info!(queue_id, signer = %address, "not signed: the client signed or encrypted the message already");
            metrics.message_signing(SignResult::AlreadySigned);
            return Outcome::Unchanged;
        }
        let mandatory = settings.sign == SignMode::Mandatory;
        // `permanent`: the same message would be refused again (no certificate),
        // as opposed to a failure that may pass.
        let unavailable = |why: String, permanent: bool| {
            if !mandatory {
                tracing::warn!(queue_id, signer = %address, policy = %settings.matched, "sent unsigned: {why}");
                metrics.message_signing(SignResult::Unsigned);
                return Outcome::Unchanged;
            }
            tracing::warn!(queue_id, signer = %address, policy = %settings.matched, "message not taken: signing is mandatory and {why}");
            metrics.message_signing(SignResult::Refused);
            let text = format!(
                "{queue_id}: signing is mandatory for <{address}> and {}",
                if permanent {
                    "it has no usable signing certificate"
                } else {
                    "the message cannot be signed now"
                }
            );
            Outcome::Refused(
                if permanent && settings.sign_unavailable == SignUnavailable::Reject {
                    Reply::new(554, (5, 7, 5), text)
                } else {
                    Reply::new(451, (4, 7, 5), format!("{text}; try again later"))
                },
            )
        };
        // Bcc stays in the outer header (it is not signed); the copies drop it
        // as for any message.
        let parts = parsed.parts_sharing(data, |_| false);
        let attempt = async {
            let signer = match keys.signer(&address).await {
                Ok(Some(s)) => s,
                Ok(None) => return Err(("there is no usable signing certificate".into(), true)),
                Err(e) => return Err((format!("the signing certificate is unknown: {e}"), false)),
            };
            let job = signer.clone();
            match sealgate_crypto::cpu::run(move |_| {
                sealgate_crypto::sign::sign_smime_parts(&parts, &job.cert, &job.key, &job.chain)
            })
            .await
            {
                Ok(Ok(bytes)) => Ok((bytes, signer)),
                Ok(Err(e)) => Err((format!("signing failed: {e}"), e.is_permanent())),
                Err(e) => Err((format!("signing failed: {e}"), false)),
            }
        };
        match tokio::time::timeout_at(deadline, attempt).await {
            Ok(Ok((bytes, signer))) => {
                tracing::info!(queue_id, signer = %address, certificate = %signer.thumbprint, chosen = %signer.chosen, "message signed");
                metrics.message_signing(SignResult::Signed);
                Outcome::Signed(bytes)
            }
            Ok(Err((why, permanent))) => unavailable(why, permanent),
            Err(_) => unavailable(
                "signing did not finish within relay.message_timeout_secs".into(),
                false,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer_of(raw: &str, envelope: &str) -> Option<String> {
        signer_address(&Message::parse(raw.as_bytes()), envelope)
    }

    #[test]
    fn the_signer_is_the_one_author_else_the_envelope_sender() {
        let one = "From: \"Sam <ceo@corp.test>\" <Sam@Corp.test>\r\n\r\nx\r\n";
        assert_eq!(
            signer_of(one, "bounce@corp.test").as_deref(),
            Some("sam@corp.test")
        );
        let two = "From: a@corp.test, b@corp.test\r\n\r\nx\r\n";
        assert_eq!(
            signer_of(two, "list@corp.test").as_deref(),
            Some("list@corp.test")
        );
        let twice = "From: a@corp.test\r\nFrom: b@corp.test\r\n\r\nx\r\n";
        assert_eq!(
            signer_of(twice, "Env@Corp.test").as_deref(),
            Some("env@corp.test")
        );
        let none = "Subject: x\r\n\r\nx\r\n";
        assert_eq!(signer_of(none, ""), None);
        let long = format!("From: {}@corp.test\r\n\r\nx\r\n", "a".repeat(300));
        assert_eq!(signer_of(&long, "").as_deref(), None);
    }

    #[test]
    fn mail_the_client_protected_is_left_alone() {
        let signed = "Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=b\r\n\r\n--b--\r\n";
        assert!(already_protected(&Message::parse(signed.as_bytes())));
        let opaque = "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n\r\nMIIB\r\n";
        assert!(already_protected(&Message::parse(opaque.as_bytes())));
        let plain = "Content-Type: text/plain\r\n\r\nhello\r\n";
        assert!(!already_protected(&Message::parse(plain.as_bytes())));
    }
}
