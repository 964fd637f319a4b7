//! The pipeline: what happens to a message between the SMTP listener and the relay.
//!
//! It implements the listener's [`Handler`]: at RCPT it asks the key resolver and
//! the policy for that recipient's decision (and refuses the recipient when
//! policy says so); at the end of DATA it signs the message when its
//! sender's policy says so ([`sign`]), groups the recipients by decision
//! ([`group`]), builds one output message per group ([`build`]: encrypted, or the
//! original bytes), hands each to the durable queue, and answers 250 once the
//! queue has committed them with the audit row; recipients whose copy could
//! not be built get a DSN. When no copy could be built, [`outcome`] folds the
//! reasons into one refusal.

mod bcc;
pub mod build;
pub mod dkim;
pub mod group;
pub mod incoming;
pub mod outcome;
mod recipient;
pub mod release;
pub mod sign;
pub mod trace;
mod trigger;

pub use recipient::{
    AdditionalKeys, Capabilities, KeyUse, NoAdditionalKeys, NoCapabilities, NoKeyUse,
    RecipientDecision,
};
pub use sign::{NoSigningKeys, Signer, SigningKeys};

use outcome::Origin;
use sealgate_crypto::mime::{header_value_unfolded, HeaderLimits, Message};
use sealgate_keys::Resolver;
use sealgate_metrics::{CopyMethod, MessageOutcome};
use sealgate_policy::Policy;
use sealgate_queue::dsn::RecipientReport;
use sealgate_queue::{MessageKind, NewCopy, NewMessage, NewRecipient, Queue, Ret};
use sealgate_relay::Delivery;
use sealgate_smtp_server::{ClientInfo, DsnRet, Envelope, Handler, Reply};
use std::sync::Arc;
use std::time::Duration;

/// Longest client-supplied header value written to logs and the audit table.
pub(crate) const MAX_LOGGED_VALUE: usize = 256;

/// Knobs of the pipeline that come from the config.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Longest time a recipient's key lookup may take before the recipient is
    /// deferred (4.4.3).
    pub lookup_timeout: Duration,
    /// Longest time building all copies of one message may take before the
    /// client is answered; copies not built by then count as temporary
    /// failures.
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

/// Envelope senders whose mail sealgate never encrypts.
pub trait PlainSenders: Send + Sync {
    /// `sender` as given in MAIL FROM.
    fn is_plain(&self, sender: &str) -> bool;
}

/// No such senders.
pub struct NoPlainSenders;

impl PlainSenders for NoPlainSenders {
    fn is_plain(&self, _: &str) -> bool {
        false
    }
}

/// Everything a message passes through after the listener.
pub struct Pipeline {
    policy: Policy,
    resolver: Arc<Resolver>,
    additional: Arc<dyn AdditionalKeys>,
    signing: Arc<dyn SigningKeys>,
    /// `[[dkim.keys]]`: the copies sealgate changed are signed with these.
    dkim: dkim::DkimKeys,
    /// Senders whose mail is never encrypted (the CA email).
    plain_senders: Arc<dyn PlainSenders>,
    capabilities: Arc<dyn Capabilities>,
    key_use: Arc<dyn KeyUse>,
    /// Sees each queued message as received (`harvest.outgoing`).
    observer: Option<Arc<dyn incoming::Observer>>,
    queue: Queue,
    options: PipelineOptions,
}

impl Pipeline {
    pub fn new(
        policy: Policy,
        resolver: Arc<Resolver>,
        queue: Queue,
        options: PipelineOptions,
    ) -> Pipeline {
        Pipeline {
            policy,
            resolver,
            additional: Arc::new(NoAdditionalKeys),
            signing: Arc::new(NoSigningKeys),
            dkim: dkim::DkimKeys::default(),
            plain_senders: Arc::new(NoPlainSenders),
            capabilities: Arc::new(NoCapabilities),
            key_use: Arc::new(NoKeyUse),
            observer: None,
            queue,
            options,
        }
    }

    /// Encrypts copies to the additional keys `additional` provides too.
    pub fn with_additional_keys(mut self, additional: Arc<dyn AdditionalKeys>) -> Pipeline {
        self.additional = additional;
        self
    }

    /// Learns from `capabilities` which recipients read AES-GCM
    /// (`smime_cipher = "auto"`).
    pub fn with_capabilities(mut self, capabilities: Arc<dyn Capabilities>) -> Pipeline {
        self.capabilities = capabilities;
        self
    }

    /// Tells `key_use` which keys each queued copy was encrypted to.
    pub fn with_key_use(mut self, key_use: Arc<dyn KeyUse>) -> Pipeline {
        self.key_use = key_use;
        self
    }

    /// Shows each message, as received, to `observer` once it is queued
    /// (harvesting on the outbound listener). The received bytes are then
    /// held until the commit returns.
    pub fn with_observer(mut self, observer: Arc<dyn incoming::Observer>) -> Pipeline {
        self.observer = Some(observer);
        self
    }

    /// The key lookup of held copies (`no_key_action = "hold"`), for
    /// [`Queue::set_key_wait`]: the same policy, resolver and keys as this
    /// pipeline's.
    pub fn release(&self) -> Arc<release::Release> {
        Arc::new(release::Release {
            policy: self.policy.clone(),
            resolver: self.resolver.clone(),
            additional: self.additional.clone(),
            capabilities: self.capabilities.clone(),
            key_use: self.key_use.clone(),
            lookup_timeout: self.options.lookup_timeout,
            build_timeout: self.options.message_timeout,
            header_limits: self.options.header_limits,
            dkim: self.dkim.clone(),
        })
    }

    /// Never encrypts mail from the senders `senders` names (the built-in
    /// CA's `ca_email`): their recipients are decided plain at RCPT, with
    /// no key lookup, and no trigger applies.
    pub fn with_plain_senders(mut self, senders: Arc<dyn PlainSenders>) -> Pipeline {
        self.plain_senders = senders;
        self
    }

    /// DKIM-signs the copies sealgate changed with `keys` (the key of the
    /// From domain, when the sender's policy has `dkim_sign`).
    pub fn with_dkim_keys(mut self, keys: dkim::DkimKeys) -> Pipeline {
        self.dkim = keys;
        self
    }

    /// Signs mail for the senders whose policy says so with the
    /// certificates `signing` provides.
    pub fn with_signing_keys(mut self, signing: Arc<dyn SigningKeys>) -> Pipeline {
        self.signing = signing;
        self
    }
}

#[async_trait::async_trait]
impl Handler for Pipeline {
    type Token = RecipientDecision;

    async fn transaction(&self, client: &ClientInfo, sender: &str) -> Result<(), Reply> {
        self.queue.accepting().map_err(|why| {
            tracing::warn!(peer = %client.peer, sender, "transaction refused: {why}");
            Reply::new(
                452,
                (4, 3, 1),
                "Insufficient system storage, try again later",
            )
        })
    }

    async fn recipient(
        &self,
        client: &ClientInfo,
        sender: &str,
        address: &str,
    ) -> Result<RecipientDecision, Reply> {
        if self.plain_senders.is_plain(sender) {
            tracing::debug!(peer = %client.peer, sender, recipient = address, "recipient accepted: mail from the CA email is never encrypted");
            return Ok(RecipientDecision {
                decision: sealgate_policy::Decision::Plain {
                    reason: "mail from the CA email (ca_email) is never encrypted".into(),
                },
                policy: "ca_email".into(),
                mode: sealgate_policy::Mode::Off,
                foreign_encryption: Default::default(),
                copy_per_recipient: false,
                additional: Vec::new(),
            });
        }
        let decision = recipient::decide(
            &self.policy,
            &self.resolver,
            self.additional.as_ref(),
            self.capabilities.as_ref(),
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
        let queue_id = sealgate_queue::next_id();
        let received_at = sealgate_store::now_unix();
        let size = data.len();
        let mut envelope = envelope;
        let mut data = data;
        // Whether the bytes are no longer the client's (DKIM signs such
        // copies again).
        let mut changed = false;
        if self.policy.triggers_anywhere() && !self.plain_senders.is_plain(&envelope.sender) {
            match trigger::apply(self, &queue_id, &mut envelope, &data).await {
                Ok(Some(cleaned)) => {
                    data = cleaned;
                    changed = true;
                }
                Ok(None) => {}
                Err(reply) => return reply,
            }
        }
        // Shared with the encryptors, which read the body in place.
        let mut data = Arc::new(data);
        let observed = self.observer.as_ref().map(|_| data.clone());
        let deadline = tokio::time::Instant::now() + self.options.message_timeout;
        let mut signed = false;
        // The one split of this message (two when it gets signed: the
        // signed message is split again); everything below reads it.
        let parsed = loop {
            let parsed = match Message::parse_limited(&data, self.options.header_limits) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(queue_id = %queue_id, peer = %envelope.client.peer, size, "message refused: {e}");
                    return trace::header_too_big(&queue_id, &e);
                }
            };
            if signed {
                break parsed;
            }
            let hops = trace::hops(&parsed);
            if hops > self.options.max_hops {
                let message_id = parsed
                    .header("Message-ID")
                    .map(|h| trace::log_safe(&header_value_unfolded(h), MAX_LOGGED_VALUE));
                tracing::warn!(queue_id = %queue_id, message_id = message_id.as_deref().unwrap_or("-"), hops, "message refused: too many hops");
                return trace::too_many_hops(hops, self.options.max_hops);
            }
            match self
                .sign(&queue_id, &envelope.sender, &parsed, &data, deadline)
                .await
            {
                sign::Outcome::Unchanged => break parsed,
                sign::Outcome::Refused(reply) => return reply,
                sign::Outcome::Signed(bytes) => {
                    drop(parsed);
                    data = Arc::new(bytes);
                    signed = true;
                }
            }
        };
        // Client-supplied: bounded and without control characters before it
        // reaches a log line or the audit table.
        let message_id = parsed
            .header("Message-ID")
            .map(|h| trace::log_safe(&header_value_unfolded(h), MAX_LOGGED_VALUE));
        let now = std::time::SystemTime::now();
        let groups = group::plan(&envelope, &parsed);
        let changed = changed || signed;
        let dkim_domain = dkim::signing_domain(&self.dkim, &self.policy, &parsed);
        // The original bytes without Bcc, for plain copies (a copy of the
        // message only when it has a Bcc field and a plain copy needs it),
        // and the header section returned in a DSN.
        let needs_original = groups.iter().any(|g| {
            matches!(
                g.kind,
                group::GroupKind::Plain
                    | group::GroupKind::PassThrough
                    | group::GroupKind::Held { .. }
            )
        });
        let outgoing = if needs_original {
            bcc::strip(&data, &parsed)
        } else {
            std::borrow::Cow::Borrowed(&data[..])
        };
        let dsn_header = bcc::strip(&data[..data.len() - parsed.body().len()], &parsed);
        // What every encrypted copy is made of, split once for all of them;
        // the body is read in place from `data`.
        let parts = groups
            .iter()
            .any(|g| matches!(g.kind, group::GroupKind::Encrypt { .. }))
            .then(|| Arc::new(parsed.parts_sharing(&data, bcc::is_bcc)));
        let mut draft = self
            .queue
            .draft(new_message(&queue_id, &envelope, MessageKind::Mail));
        let mut results = Vec::with_capacity(groups.len());
        for g in &groups {
            let attempt = async {
                if let group::GroupKind::Refused { reason } = &g.kind {
                    return Err((Delivery::Permanent(reason.clone()), Origin::Policy));
                }
                if let group::GroupKind::Bounced { reason } = &g.kind {
                    return Err((Delivery::Permanent(reason.clone()), Origin::Bounce));
                }
                match build::build(g, &outgoing, parts.as_ref()).await {
                    Ok(bytes) => {
                        let ours = changed || matches!(g.kind, group::GroupKind::Encrypt { .. });
                        match (&dkim_domain, ours) {
                            (Some(d), true) => {
                                Ok(dkim::sign_copy(&self.dkim, d, &queue_id, bytes).await)
                            }
                            _ => Ok(bytes),
                        }
                    }
                    Err(e) => {
                        let reason = format!("encryption failed: {}", e.reason);
                        let d = if e.permanent {
                            Delivery::Permanent(reason)
                        } else {
                            Delivery::Transient(reason)
                        };
                        Err((d, Origin::Encryption))
                    }
                }
            };
            let built = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(b) => b,
                Err(_) => Err((
                    Delivery::Transient(format!(
                        "copy not built within relay.message_timeout_secs ({} s)",
                        self.options.message_timeout.as_secs()
                    )),
                    Origin::Encryption,
                )),
            };
            let (deliveries, origin) = match built {
                Ok(bytes) => {
                    let single = (g.members.len() == 1)
                        .then(|| envelope.recipients[g.members[0]].address.as_str());
                    let received =
                        trace::received(&envelope, &self.options.hostname, &queue_id, single, now);
                    let copy = prepend(received, bytes);
                    let recipients = g
                        .members
                        .iter()
                        .map(|&i| NewRecipient {
                            seq: i as u32,
                            address: envelope.recipients[i].address.clone(),
                            orcpt: envelope.recipients[i].orcpt.clone(),
                            notify: envelope.recipients[i].notify.clone(),
                        })
                        .collect();
                    let method = group::method_label(g);
                    if let Err(e) = draft
                        .add(NewCopy {
                            method: method.into(),
                            recipients,
                            data: copy,
                        })
                        .await
                    {
                        return self.queue_failure(&queue_id, &e);
                    }
                    tracing::info!(queue_id = %queue_id, copy = %group::describe(g, &envelope), "copy queued");
                    if let Some(m) = copy_method(method) {
                        self.queue.metrics().copy_built(m);
                    }
                    (vec![Delivery::Accepted; g.members.len()], Origin::Queue)
                }
                Err((d, origin)) => {
                    tracing::info!(queue_id = %queue_id, copy = %group::describe(g, &envelope), reason = ?d, "copy not built");
                    (vec![d; g.members.len()], origin)
                }
            };
            results.push((g, deliveries, origin));
        }
        // Every copy is built: what they were made of goes before the commit
        // (a large message is not held twice while the delivery starts).
        drop(parts);
        let out = outcome::fold(&queue_id, &envelope, &results);
        let counted = match out.outcome {
            "queued" => MessageOutcome::Queued,
            "deferred" => MessageOutcome::Deferred,
            _ => MessageOutcome::Rejected,
        };
        // Logged once the reply is certain (after the commit, when there is
        // one: a failed commit is logged as such and answered 452).
        let handled = |out: &outcome::Outcome| {
            tracing::info!(
                queue_id = %queue_id,
                message_id = message_id.as_deref().unwrap_or("-"),
                peer = %envelope.client.peer,
                sender = %envelope.sender,
                size,
                recipients = %out.log_summary(&envelope),
                outcome = %out.outcome,
                reply = %out.reply,
                "message handled"
            )
        };
        let record = out.audit_record(&queue_id, message_id.clone(), received_at, &envelope);
        let bounces = results.iter().any(|(_, _, o)| *o == Origin::Bounce);
        if draft.is_empty() && !bounces {
            // Nothing to queue: the client hears the refusal.
            handled(&out);
            self.queue.metrics().message_received(counted);
            self.queue.audit(record);
            return out.reply;
        }
        // Recipients whose copy failed get a DSN, queued with the rest.
        for (g, deliveries, origin) in &results {
            for (&i, d) in g.members.iter().zip(deliveries) {
                let (text, permanent) = match d {
                    Delivery::Accepted | Delivery::Relayed => continue,
                    Delivery::Permanent(t) => (t, true),
                    Delivery::Transient(t) => (t, false),
                };
                // A policy reason names the recipient and nothing internal;
                // a library's text (a subject DN, a key type) stays in the log.
                let diagnostic = match origin {
                    Origin::Policy | Origin::Bounce => text.clone(),
                    _ => "the message could not be encrypted to this recipient's key".into(),
                };
                let status = match (origin, permanent) {
                    (Origin::Bounce, _) => "5.7.1",
                    (_, true) => "5.7.5",
                    (_, false) => "4.7.5",
                };
                draft.fail(
                    RecipientReport {
                        address: envelope.recipients[i].address.clone(),
                        orcpt: envelope.recipients[i].orcpt.clone(),
                        status: status.into(),
                        diagnostic: Some(diagnostic),
                        remote_mta: None,
                        last_attempt: None,
                        will_retry_until: None,
                    },
                    envelope.recipients[i].notify.as_deref(),
                    &dsn_header,
                );
            }
        }
        // The received bytes are not needed any more: gone before the
        // commit, so that the delivery that starts with it does not hold
        // them too.
        drop((outgoing, dsn_header, parsed));
        drop(data);
        if let Err(e) = draft.commit().await {
            return self.queue_failure(&queue_id, &e);
        }
        handled(&out);
        self.queue.metrics().message_received(counted);
        self.queue.audit(record);
        if let (Some(o), Some(d)) = (&self.observer, observed) {
            o.queued(&queue_id, d);
        }
        for (g, deliveries, _) in &results {
            for (&i, d) in g.members.iter().zip(deliveries) {
                let r = &envelope.recipients[i];
                if let (Delivery::Accepted, sealgate_policy::Decision::Encrypt { source, .. }) =
                    (d, &r.token.decision)
                {
                    self.key_use
                        .encrypted_to(&r.address, source, &r.token.fingerprints());
                }
            }
        }
        out.reply
    }
}

/// The queue's message row for `envelope`.
pub(crate) fn new_message<T>(
    queue_id: &str,
    envelope: &Envelope<T>,
    kind: MessageKind,
) -> NewMessage {
    NewMessage {
        id: queue_id.to_string(),
        received_at: sealgate_queue::now_ms(),
        sender: envelope.sender.clone(),
        envid: envelope.envid.clone(),
        ret: envelope.ret.map(|r| match r {
            DsnRet::Full => Ret::Full,
            DsnRet::Hdrs => Ret::Hdrs,
        }),
        body_8bitmime: envelope.body_8bitmime,
        smtputf8: envelope.smtputf8,
        client: format!("{} [{}]", envelope.client.peer.ip(), envelope.client.helo),
        kind,
    }
}

/// `head` then `body`, as one buffer: an encrypted copy (already ours, with
/// room left in front by the encryptor) gets the head moved in without a
/// second copy of its body; the original bytes of a plain copy are copied
/// once.
fn prepend(head: Vec<u8>, body: std::borrow::Cow<'_, [u8]>) -> Vec<u8> {
    match body {
        std::borrow::Cow::Owned(mut v) => {
            let (n, len) = (head.len(), v.len());
            v.resize(len + n, 0);
            v.copy_within(0..len, n);
            v[..n].copy_from_slice(&head);
            v
        }
        std::borrow::Cow::Borrowed(b) => {
            let mut v = Vec::with_capacity(head.len() + b.len());
            v.extend_from_slice(&head);
            v.extend_from_slice(b);
            v
        }
    }
}

fn copy_method(label: &str) -> Option<CopyMethod> {
    Some(match label {
        "pgp" | "pgp-inline" => CopyMethod::Pgp,
        "smime" => CopyMethod::Smime,
        "plain" => CopyMethod::Plain,
        "pass-through" => CopyMethod::PassThrough,
        _ => return None,
    })
}

impl Pipeline {
    /// The queue could not take the message: the client keeps it and tries
    /// again (452 4.3.1: a write error or a full disk is never a 250).
    fn queue_failure(&self, queue_id: &str, e: &sealgate_queue::QueueError) -> Reply {
        tracing::error!(queue_id, "message not queued: {e}");
        self.queue
            .metrics()
            .message_received(MessageOutcome::Deferred);
        Reply::new(
            452,
            (4, 3, 1),
            format!("{queue_id}: cannot queue the message now, try again later"),
        )
    }
}
