//! Releasing held mail (`no_key_action = "hold"`): the queue's
//! [`KeyWait`] seen from the pipeline. At each attempt of a held copy the
//! recipient is decided again as a mandatory one, with the same resolver,
//! policy, certificate selection and additional keys as at RCPT; when a
//! usable key has appeared (an upload, a harvested key, a directory entry)
//! the copy is encrypted to it exactly as it would have been at DATA.
//! Nothing here ever answers with plaintext: any other outcome is "not
//! yet".

use crate::recipient::{decide_as, AdditionalKeys, Capabilities, KeyUse};
use crate::{bcc, build, group};
use sealgate_crypto::mime::{HeaderLimits, Message};
use sealgate_keys::Resolver;
use sealgate_policy::{Decision, Policy};
use sealgate_queue::{Held, KeyWait, Lookup};
use std::sync::Arc;
use std::time::Duration;

/// The pipeline's key lookup for held copies.
pub struct Release {
    pub(crate) policy: Policy,
    pub(crate) resolver: Arc<Resolver>,
    pub(crate) additional: Arc<dyn AdditionalKeys>,
    pub(crate) capabilities: Arc<dyn Capabilities>,
    pub(crate) key_use: Arc<dyn KeyUse>,
    pub(crate) lookup_timeout: Duration,
    pub(crate) build_timeout: Duration,
    pub(crate) header_limits: HeaderLimits,
    pub(crate) dkim: crate::dkim::DkimKeys,
}

#[async_trait::async_trait]
impl KeyWait for Release {
    async fn lookup(&self, held: Held<'_>) -> Lookup {
        // Mandatory whatever the recipient's policy says now: the message
        // was taken on the promise that it leaves encrypted or not at all.
        let decision = match decide_as(
            &self.policy,
            &self.resolver,
            self.additional.as_ref(),
            self.capabilities.as_ref(),
            self.lookup_timeout,
            held.recipient,
            true,
        )
        .await
        {
            Ok(d) => d,
            Err(reply) => return Lookup::NotYet(reply.text),
        };
        let source = match &decision.decision {
            Decision::Encrypt { source, .. } => source.clone(),
            Decision::Bounce { reason } | Decision::Hold { reason } => {
                return Lookup::NotYet(reason.clone())
            }
            Decision::Plain { .. } => {
                return Lookup::NotYet("the policy gives no encryption key".into())
            }
        };
        let data = Arc::new(held.data.to_vec());
        let parsed = match Message::parse_limited(&data, self.header_limits) {
            Ok(p) => p,
            Err(e) => return Lookup::NotYet(format!("the held message cannot be read: {e}")),
        };
        let Some(kind) = group::encrypting(&decision.decision, group::is_text_plain(&parsed))
        else {
            return Lookup::NotYet("the policy gives no encryption key".into());
        };
        let parts = Arc::new(parsed.parts_sharing(&data, bcc::is_bcc));
        let dkim_domain = crate::dkim::signing_domain(&self.dkim, &self.policy, &parsed);
        drop(parsed);
        let g = group::Group {
            kind,
            members: vec![0],
            bcc: false,
        };
        let built =
            tokio::time::timeout(self.build_timeout, build::build(&g, &data, Some(&parts))).await;
        let bytes = match built {
            Ok(Ok(b)) => match &dkim_domain {
                Some(d) => crate::dkim::sign_copy(&self.dkim, d, held.queue_id, b)
                    .await
                    .into_owned(),
                None => b.into_owned(),
            },
            Ok(Err(e)) => {
                tracing::warn!(queue_id = held.queue_id, recipient = held.recipient, reason = %e.reason, "a held copy could not be encrypted to the key found");
                return Lookup::NotYet(
                    "the message could not be encrypted to this recipient's key".into(),
                );
            }
            Err(_) => {
                return Lookup::NotYet(format!(
                    "the copy was not built within relay.message_timeout_secs ({} s)",
                    self.build_timeout.as_secs()
                ))
            }
        };
        let method = group::method_label(&g).to_string();
        let fingerprints = decision.fingerprints();
        self.key_use
            .encrypted_to(held.recipient, &source, &fingerprints);
        Lookup::Encrypted {
            method,
            data: bytes,
            keys: fingerprints.join(","),
        }
    }

    fn max_age(&self) -> Duration {
        self.policy.hold_max_age()
    }
}
