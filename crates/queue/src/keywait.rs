//! Copies held for a key (`no_key_action = "hold"`): a mandatory recipient
//! without a usable key is accepted, and its copy (the message as received,
//! one recipient per copy) waits in the queue as method [`KEY_WAIT`]. On
//! each attempt of the retry schedule the delivery asks a [`KeyWait`] (the
//! pipeline's, wired by the binary) to look the recipient's key up again.
//! Once it is found the copy is encrypted, its plaintext replaced in the
//! store under the lease's fencing token, and only then relayed; the
//! recipient whose key does not appear within the hold's maximum age gets
//! a failure DSN (5.7.1), which never carries the body.
//!
//! The plaintext of a held copy rests in the queue while it waits, as a
//! plain recipient's copy does; it is never relayed.

use std::time::Duration;

/// The method of a copy held for a key.
pub const KEY_WAIT: &str = "key-wait";

/// A held copy, as the key lookup sees it.
pub struct Held<'a> {
    /// Its queue id, for the log.
    pub queue_id: &'a str,
    /// The envelope sender.
    pub sender: &'a str,
    pub recipient: &'a str,
    /// The copy as queued: the message as received, with sealgate's
    /// `Received:` field.
    pub data: &'a [u8],
}

/// What a new look at a held recipient's keys found.
pub enum Lookup {
    /// A usable key: the copy as it is to be delivered now (its method,
    /// `pgp` or `smime`, and its bytes), and which keys it was encrypted
    /// to, for the log.
    Encrypted {
        method: String,
        data: Vec<u8>,
        keys: String,
    },
    /// Still no usable key (or a source failed): why, for `queue show` and
    /// the DSN.
    NotYet(String),
}

/// Looks a held recipient's keys up again and encrypts its copy.
#[async_trait::async_trait]
pub trait KeyWait: Send + Sync {
    async fn lookup(&self, held: Held<'_>) -> Lookup;
    /// How long a recipient is held before it gets a failure DSN
    /// (`policy.hold_max_age`), read at every attempt so that a reloaded
    /// policy applies to held mail too.
    fn max_age(&self) -> Duration;
}
