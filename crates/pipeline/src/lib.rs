//! The pipeline: what happens to a message between the SMTP listener and the relay.
//!
//! It implements the listener's [`Handler`]: at RCPT it asks the key resolver and
//! the policy for that recipient's decision (and refuses the recipient when
//! policy says so); at the end of DATA it groups the recipients by decision
//! ([`group`]), builds one output message per group ([`build`]: encrypted, or the
//! original bytes), hands each to the relay, folds the upstream's answers into
//! the one reply the client gets ([`outcome`]), and writes the audit row.

mod bcc;
pub mod build;
pub mod group;
pub mod outcome;
mod queue_id;
mod recipient;
pub mod trace;

pub use recipient::RecipientDecision;

use outcome::Origin;
use sealgate_crypto::mime::{header_value_unfolded, HeaderLimits, Message};
use sealgate_keys::Resolver;
use sealgate_policy::Policy;
use sealgate_relay::{Delivery, Outbound, Relay};
use sealgate_smtp_server::{ClientInfo, Envelope, Handler, Reply};
use sealgate_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Longest client-supplied header value written to logs and the audit table.
const MAX_LOGGED_VALUE: usize = 256;

/// Longest wait for one audit row to be written.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Knobs of the pipeline that come from the config.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Longest time a recipient's key lookup may take before the recipient is
    /// deferred (4.4.3).
    pub lookup_timeout: Duration,
    /// Longest time all copies of one message may take before the client is
    /// answered; copies not relayed by then count as temporary failures.
    pub message_timeout: Duration,
    /// The name in sealgate's own `Received:` field.
    pub hostname: String,
    /// A message already carrying more `Received:` fields is refused (loop).
    pub max_hops: usize,
    /// Bounds on the header section (`smtp.max_header_size`,
    /// `smtp.max_header_fields`); beyond either, 552 5.3.4.
    pub header_limits: HeaderLimits,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            lookup_timeout: Duration::from_secs(30),
            message_timeout: Duration::from_secs(540),
            hostname: "localhost".into(),
            max_hops: 50,
            header_limits: HeaderLimits {
                max_bytes: 1 << 20,
                max_fields: 10_000,
            },
        }
    }
}

/// Everything a message passes through after the listener.
pub struct Pipeline {
    policy: Policy,
    resolver: Arc<Resolver>,
    relay: Arc<dyn Relay>,
    store: Store,
    options: PipelineOptions,
}

impl Pipeline {
    pub fn new(
        policy: Policy,
        resolver: Arc<Resolver>,
        relay: Arc<dyn Relay>,
        store: Store,
        options: PipelineOptions,
    ) -> Pipeline {
        Pipeline {
            policy,
            resolver,
            relay,
            store,
            options,
        }
    }
}

#[async_trait::async_trait]
impl Handler for Pipeline {
    type Token = RecipientDecision;

    async fn recipient(
        &self,
        client: &ClientInfo,
        sender: &str,
        address: &str,
    ) -> Result<RecipientDecision, Reply> {
        let decision = recipient::decide(
            &self.policy,
            &self.resolver,
            self.options.lookup_timeout,
            address,
        )
        .await;
        match &decision {
            Ok(d) => {
                tracing::debug!(peer = %client.peer, sender, recipient = address, decision = %d.summary(), "recipient accepted")
            }
            Err(r) => {
                tracing::info!(peer = %client.peer, sender, recipient = address, reply = %r, "recipient refused")
            }
        }
        decision
    }

    async fn message(&self, envelope: Envelope<RecipientDecision>, data: Vec<u8>) -> Reply {
        let queue_id = queue_id::next();
        let received_at = sealgate_store::now_unix();
        // The one split of this message; everything below reads it.
        let parsed = match Message::parse_limited(&data, self.options.header_limits) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(queue_id = %queue_id, peer = %envelope.client.peer, size = data.len(), "message refused: {e}");
                return Reply::new(
                    552,
                    (5, 3, 4),
                    format!("{queue_id}: message header too big: {e}"),
                );
            }
        };
        // Client-supplied: bounded and without control characters before it
        // reaches a log line or the audit table.
        let message_id = parsed
            .header("Message-ID")
            .map(|h| trace::log_safe(&header_value_unfolded(h), MAX_LOGGED_VALUE));
        let hops = trace::hops(&parsed);
        if hops > self.options.max_hops {
            let reply = Reply::new(
                554,
                (5, 4, 6),
                format!(
                    "Too many hops ({hops} Received: fields, limit {}): mail loop?",
                    self.options.max_hops
                ),
            );
            tracing::warn!(queue_id = %queue_id, message_id = message_id.as_deref().unwrap_or("-"), hops, "message refused: too many hops");
            return reply;
        }
        let now = std::time::SystemTime::now();
        let outgoing = bcc::strip(&data, &parsed);
        let groups = group::plan(&envelope, &parsed);
        // What every encrypted copy is made of, split once for all of them.
        let parts = groups
            .iter()
            .any(|g| matches!(g.kind, group::GroupKind::Encrypt { .. }))
            .then(|| Arc::new(parsed.parts(bcc::is_bcc)));
        let mut results = Vec::with_capacity(groups.len());
        let deadline = tokio::time::Instant::now() + self.options.message_timeout;
        for g in &groups {
            let attempt = async {
                if let group::GroupKind::Refused { reason } = &g.kind {
                    return (
                        vec![Delivery::Permanent(reason.clone()); g.members.len()],
                        Origin::Policy,
                    );
                }
                match build::build(g, &outgoing, parts.as_ref()).await {
                    Ok(bytes) => {
                        let recipients: Vec<String> = g
                            .members
                            .iter()
                            .map(|&i| envelope.recipients[i].address.clone())
                            .collect();
                        let single = (recipients.len() == 1).then(|| recipients[0].as_str());
                        let mut copy = trace::received(
                            &envelope,
                            &self.options.hostname,
                            &queue_id,
                            single,
                            now,
                        );
                        copy.extend_from_slice(&bytes);
                        let deliveries = self
                            .relay
                            .send(Outbound {
                                sender: &envelope.sender,
                                recipients: &recipients,
                                body_8bitmime: envelope.body_8bitmime,
                                smtputf8: envelope.smtputf8,
                                data: &copy,
                            })
                            .await;
                        (deliveries, Origin::Upstream)
                    }
                    Err(e) => {
                        let reason = format!("encryption failed: {}", e.reason);
                        let d = if e.permanent {
                            Delivery::Permanent(reason)
                        } else {
                            Delivery::Transient(reason)
                        };
                        (vec![d; g.members.len()], Origin::Encryption)
                    }
                }
            };
            let (deliveries, origin) = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(d) => d,
                Err(_) => (
                    vec![
                        Delivery::Transient(format!(
                            "not relayed within relay.message_timeout_secs ({} s)",
                            self.options.message_timeout.as_secs()
                        ));
                        g.members.len()
                    ],
                    Origin::Upstream,
                ),
            };
            tracing::info!(
                queue_id = %queue_id,
                copy = %group::describe(g, &envelope),
                deliveries = ?deliveries,
                "relayed copy"
            );
            results.push((g, deliveries, origin));
        }
        let out = outcome::fold(&queue_id, &envelope, &results);
        tracing::info!(
            queue_id = %queue_id,
            message_id = message_id.as_deref().unwrap_or("-"),
            peer = %envelope.client.peer,
            sender = %envelope.sender,
            size = data.len(),
            recipients = %out.log_summary(&envelope),
            outcome = %out.outcome,
            reply = %out.reply,
            "message handled"
        );
        // The audit row never holds the reply: once the upstream answered,
        // the client hears it at once; the row is written beside, bounded.
        let record = out.audit_record(&queue_id, message_id, received_at, &envelope);
        let store = self.store.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(AUDIT_TIMEOUT, store.record_audit(&record)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(queue_id = %record.id, "cannot write the audit row: {e}")
                }
                Err(_) => tracing::error!(
                    queue_id = %record.id,
                    "the audit row was not written within {} s; dropped",
                    AUDIT_TIMEOUT.as_secs()
                ),
            }
        });
        out.reply
    }
}
