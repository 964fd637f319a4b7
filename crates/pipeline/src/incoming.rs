//! The incoming listener's handler: mail from outside for the organisation
//! (`[incoming]`, handed over by the MX hosts), relayed unchanged to the
//! internal MTA (`incoming.upstream`) through the durable queue.
//!
//! Nothing is encrypted or refused by policy here. The message is checked
//! as on the outbound side (header limits, hop count), gets sealgate's
//! `Received:` field in front of its bytes, which are otherwise the ones
//! received, and is committed as one copy for every recipient
//! ([`MessageKind::Incoming`]) before the client hears 250. Only then is it
//! offered to the [`Observer`] (harvesting), which must not block: what it
//! does can neither delay, refuse nor alter the mail.

use crate::trace;
use sealgate_crypto::mime::{header_value_unfolded, HeaderLimits, Message};
use sealgate_metrics::MessageOutcome;
use sealgate_queue::{MessageKind, NewCopy, NewRecipient, Queue};
use sealgate_smtp_server::{ClientInfo, Envelope, Handler, Reply};
use std::sync::Arc;

/// Sees each incoming message once it is queued.
pub trait Observer: Send + Sync {
    /// Called after the commit with the message as received (without
    /// sealgate's `Received:` field). Must return at once (hand the work to
    /// a task); it cannot change what happens to the message.
    fn queued(&self, queue_id: &str, message: Arc<Vec<u8>>);
}

/// Decrypts incoming mail for internal recipients whose private key
/// sealgate holds (`incoming.decrypt`).
#[async_trait::async_trait]
pub trait Decryptor: Send + Sync {
    /// The message decrypted (with the marking fields) and the indices of
    /// the recipients who get it: those the encryption names by a key
    /// sealgate holds for them. `None`: relay it unchanged to everyone.
    async fn decrypt(
        &self,
        queue_id: &str,
        message: &Arc<Vec<u8>>,
        recipients: &[String],
    ) -> Option<(Vec<u8>, Vec<usize>)>;

    /// The header fields its marking uses: removed from every incoming
    /// message first, so that none can arrive forged.
    fn marking_fields(&self) -> &'static [&'static str];
}

/// Sees nothing.
pub struct NoObserver;

impl Observer for NoObserver {
    fn queued(&self, _: &str, _: Arc<Vec<u8>>) {}
}

/// What the incoming handler needs from the config.
#[derive(Debug, Clone)]
pub struct IncomingOptions {
    /// The name in sealgate's `Received:` field.
    pub hostname: String,
    /// A message already carrying more `Received:` fields is refused (loop).
    pub max_hops: usize,
    pub header_limits: HeaderLimits,
}

/// The handler of the incoming listener.
pub struct Incoming {
    queue: Queue,
    options: IncomingOptions,
    observer: Arc<dyn Observer>,
    decryptor: Option<Arc<dyn Decryptor>>,
}

impl Incoming {
    pub fn new(queue: Queue, options: IncomingOptions, observer: Arc<dyn Observer>) -> Incoming {
        Incoming {
            queue,
            options,
            observer,
            decryptor: None,
        }
    }

    /// Decrypts mail for the internal recipients `decryptor` holds keys of.
    pub fn with_decryptor(mut self, decryptor: Arc<dyn Decryptor>) -> Incoming {
        self.decryptor = Some(decryptor);
        self
    }
}

#[async_trait::async_trait]
impl Handler for Incoming {
    type Token = ();

    async fn transaction(&self, client: &ClientInfo, sender: &str) -> Result<(), Reply> {
        self.queue.accepting().map_err(|why| {
            tracing::warn!(peer = %client.peer, sender, listener = "incoming", "transaction refused: {why}");
            Reply::new(
                452,
                (4, 3, 1),
                "Insufficient system storage, try again later",
            )
        })
    }

    /// Every recipient: the MX hosts that may connect have decided who
    /// receives mail here.
    async fn recipient(&self, _: &ClientInfo, _: &str, _: &str) -> Result<(), Reply> {
        Ok(())
    }

    async fn message(&self, envelope: Envelope<()>, data: Vec<u8>) -> Reply {
        let queue_id = sealgate_queue::next_id();
        let size = data.len();
        let parsed = match Message::parse_limited(&data, self.options.header_limits) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(queue_id = %queue_id, peer = %envelope.client.peer, size, listener = "incoming", "message refused: {e}");
                return trace::header_too_big(&queue_id, &e);
            }
        };
        let message_id = parsed
            .header("Message-ID")
            .map(|h| trace::log_safe(&header_value_unfolded(h), crate::MAX_LOGGED_VALUE));
        let hops = trace::hops(&parsed);
        drop(parsed);
        if hops > self.options.max_hops {
            tracing::warn!(queue_id = %queue_id, hops, listener = "incoming", "message refused: too many hops");
            return trace::too_many_hops(hops, self.options.max_hops);
        }
        let mut data = Arc::new(data);
        // Copies: (bytes, recipient indices). One unless some recipients
        // get the message decrypted.
        let mut copies: Vec<(Arc<Vec<u8>>, Vec<usize>)> = Vec::new();
        if let Some(d) = &self.decryptor {
            let marks = d.marking_fields();
            let parsed = Message::parse(&data);
            let forged = parsed
                .headers()
                .iter()
                .any(|h| marks.iter().any(|m| h.name.eq_ignore_ascii_case(m)));
            let cleaned = forged.then(|| parsed.without_fields(marks));
            drop(parsed);
            if let Some(c) = cleaned {
                tracing::warn!(queue_id = %queue_id, listener = "incoming", "removed header fields only sealgate may write ({})", marks.join(", "));
                data = Arc::new(c);
            }
            let addresses: Vec<String> = envelope
                .recipients
                .iter()
                .map(|r| r.address.clone())
                .collect();
            if let Some((plain, members)) = d.decrypt(&queue_id, &data, &addresses).await {
                let rest: Vec<usize> = (0..addresses.len())
                    .filter(|i| !members.contains(i))
                    .collect();
                copies.push((Arc::new(plain), members));
                if !rest.is_empty() {
                    copies.push((data.clone(), rest));
                }
            }
        }
        if copies.is_empty() {
            copies.push((data.clone(), (0..envelope.recipients.len()).collect()));
        }
        let mut draft = self.queue.draft(crate::new_message(
            &queue_id,
            &envelope,
            MessageKind::Incoming,
        ));
        let queued = async {
            for (bytes, members) in &copies {
                let single =
                    (members.len() == 1).then(|| envelope.recipients[members[0]].address.as_str());
                let received = trace::received(
                    &envelope,
                    &self.options.hostname,
                    &queue_id,
                    single,
                    std::time::SystemTime::now(),
                );
                let mut copy = Vec::with_capacity(received.len() + bytes.len());
                copy.extend_from_slice(&received);
                copy.extend_from_slice(bytes);
                let recipients = members
                    .iter()
                    .map(|&i| {
                        let r = &envelope.recipients[i];
                        NewRecipient {
                            seq: i as u32,
                            address: r.address.clone(),
                            orcpt: r.orcpt.clone(),
                            notify: r.notify.clone(),
                        }
                    })
                    .collect();
                let method = if Arc::ptr_eq(bytes, &data) {
                    "incoming"
                } else {
                    "decrypted"
                };
                draft
                    .add(NewCopy {
                        method: method.into(),
                        recipients,
                        data: copy,
                    })
                    .await?;
            }
            draft.commit().await
        };
        if let Err(e) = queued.await {
            tracing::error!(queue_id = %queue_id, listener = "incoming", "message not queued: {e}");
            self.queue
                .metrics()
                .message_received(MessageOutcome::Deferred);
            return Reply::new(
                452,
                (4, 3, 1),
                format!("{queue_id}: cannot queue the message now, try again later"),
            );
        }
        tracing::info!(
            queue_id = %queue_id,
            message_id = message_id.as_deref().unwrap_or("-"),
            peer = %envelope.client.peer,
            sender = %envelope.sender,
            size,
            recipients = envelope.recipients.len(),
            listener = "incoming",
            "incoming message queued"
        );
        self.queue
            .metrics()
            .message_received(MessageOutcome::Queued);
        // What was delivered (decrypted, when it was: a signature inside
        // teaches the signer's certificate).
        let observed = copies.into_iter().next().map_or(data, |(b, _)| b);
        self.observer.queued(&queue_id, observed);
        Reply::new(250, (2, 0, 0), format!("Ok: queued as {queue_id}"))
    }
}
