//! Folding what happened to each recipient at the end of DATA into the single
//! reply the SMTP client gets, and into the audit row.
//!
//! A recipient's copy was queued (`Delivery::Accepted` here means "queued"),
//! or could not be built (policy refused it, or encryption failed). When any
//! copy was queued the client gets 250 and the others get a DSN from the
//! queue. When none was: 451 if any failure was temporary (the client tries
//! again later), else 554 with the enhanced status code of the reason, so the
//! client bounces. Replies carry the queue id and a generic reason only:
//! library errors go to the log.

use crate::group::{Group, GroupKind};
use crate::RecipientDecision;
use sealgate_relay::{enhanced_status, Delivery};
use sealgate_smtp_server::{Envelope, Reply};
use sealgate_store::{AuditRecipient, AuditRecord};

/// Who decided a copy's deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The copy was queued; the queue reports on its delivery.
    Queue,
    /// Policy refused the copy before anything was sent (its reason names
    /// the recipient and no internals).
    Policy,
    /// The copy could not be encrypted (its reason is for the log only).
    Encryption,
    /// The policy bounces the recipient (`no_key_action = "bounce"`): the
    /// message is accepted and the sender gets a failure DSN with the
    /// reason, which names the recipient and no internals.
    Bounce,
}

/// The verdict for a whole message.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub reply: Reply,
    /// `queued`, `deferred` or `rejected`.
    pub outcome: &'static str,
    /// Per envelope recipient: decision label and delivery.
    pub recipients: Vec<(String, Delivery)>,
}

/// Folds the deliveries of every group.
pub fn fold(
    queue_id: &str,
    envelope: &Envelope<RecipientDecision>,
    results: &[(&Group, Vec<Delivery>, Origin)],
) -> Outcome {
    let n = envelope.recipients.len();
    let mut per: Vec<(String, Delivery)> =
        vec![("none".into(), Delivery::Transient("not attempted".into())); n];
    // Who decided each recipient's delivery.
    let mut origin = vec![Origin::Queue; n];
    for (group, deliveries, by) in results {
        for &i in &group.members {
            origin[i] = *by;
        }
        let label = match group.kind {
            GroupKind::Plain => "plain",
            GroupKind::PassThrough => "pass-through",
            GroupKind::Encrypt { .. } => "encrypt",
            GroupKind::Refused { .. } => "refused",
            GroupKind::Bounced { .. } => "bounced",
            GroupKind::Held { .. } => "held",
        };
        for (&i, d) in group.members.iter().zip(deliveries) {
            per[i] = (label.to_string(), d.clone());
        }
    }
    let first = |want: fn(&Delivery) -> Option<&String>| {
        per.iter()
            .enumerate()
            .find_map(|(i, (_, d))| want(d).map(|r| (i, r.clone())))
    };
    let transient = first(|d| match d {
        Delivery::Transient(r) => Some(r),
        _ => None,
    });
    let permanent = first(|d| match d {
        Delivery::Permanent(r) => Some(r),
        _ => None,
    });
    let count = |f: fn(&Delivery) -> bool| per.iter().filter(|(_, d)| f(d)).count();
    let queued = count(|d| d.is_accepted());
    // A bounced recipient is taken (its DSN is queued), as a queued one is.
    let bounced = origin.iter().filter(|o| **o == Origin::Bounce).count();
    let (reply, outcome) = if queued + bounced > 0 {
        let text = if queued == n {
            format!("Ok: queued as {queue_id}")
        } else {
            format!(
                "Ok: queued as {queue_id} for {queued} of {n} recipient(s); the sender gets a report for the others"
            )
        };
        (Reply::new(250, (2, 0, 0), text), "queued")
    } else if let Some((i, _reason)) = transient {
        let k = count(|d| matches!(d, Delivery::Transient(_)));
        (
            Reply::new(
                451,
                (4, 3, 0),
                // The reason (upstream host, library error) goes to the log only.
                one_line(&format!(
                    "{queue_id}: {k} of {n} recipient(s) not delivered yet, try again later (first: <{}>)",
                    envelope.recipients[i].address
                )),
            ),
            "deferred",
        )
    } else if let Some((i, reason)) = permanent {
        let k = count(|d| matches!(d, Delivery::Permanent(_)));
        let first = &envelope.recipients[i].address;
        let (text, status) = match origin[i] {
            // The reason names the recipient already. (A bounce is taken,
            // not refused: not reached.)
            Origin::Policy | Origin::Bounce => (
                format!("{queue_id}: {k} of {n} recipient(s) refused ({reason})"),
                (5, 7, 1),
            ),
            // The library's text (a subject DN, a key type) goes to the log.
            Origin::Encryption => (
                format!(
                    "{queue_id}: {k} of {n} recipient(s) refused: the message cannot be encrypted to their key (first: <{first}>)"
                ),
                (5, 7, 5),
            ),
            // Not reached: a queued copy's recipients count as queued.
            Origin::Queue => (
                format!("{queue_id}: {k} of {n} recipient(s) refused (first: <{first}>)"),
                enhanced_status(&reason)
                    .filter(|s| s.0 == 5)
                    .unwrap_or((5, 0, 0)),
            ),
        };
        (Reply::new(554, status, one_line(&text)), "rejected")
    } else {
        // No recipient at all: the listener never calls with none.
        (
            Reply::new(554, (5, 5, 0), format!("{queue_id}: no recipients")),
            "rejected",
        )
    };
    Outcome {
        reply,
        outcome,
        recipients: per,
    }
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

fn delivery_text(d: &Delivery) -> String {
    match d {
        Delivery::Accepted | Delivery::Relayed => "queued".into(),
        Delivery::Transient(r) => format!("deferred: {}", one_line(r)),
        Delivery::Permanent(r) => format!("failed: {}", one_line(r)),
    }
}

impl Outcome {
    /// `<addr> decision [method fingerprints] -> delivery; ...` for the log line.
    pub fn log_summary(&self, envelope: &Envelope<RecipientDecision>) -> String {
        envelope
            .recipients
            .iter()
            .zip(&self.recipients)
            .map(|(r, (label, d))| {
                let keys = if label == "encrypt" {
                    format!(
                        " {} [{}]",
                        r.token.method().map(|m| m.as_str()).unwrap_or("-"),
                        r.token.fingerprints().join(",")
                    )
                } else {
                    String::new()
                };
                format!("<{}> {label}{keys} -> {}", r.address, delivery_text(d))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The audit row; no content, only decisions and fingerprints.
    pub fn audit_record(
        &self,
        queue_id: &str,
        message_id: Option<String>,
        received_at: i64,
        envelope: &Envelope<RecipientDecision>,
    ) -> AuditRecord {
        let recipients = envelope
            .recipients
            .iter()
            .zip(&self.recipients)
            .map(|(r, (label, d))| AuditRecipient {
                address: r.address.clone(),
                decision: label.clone(),
                method: if label == "encrypt" {
                    r.token.method().map(|m| m.as_str().to_string())
                } else {
                    None
                },
                fingerprints: if label == "encrypt" {
                    r.token.fingerprints()
                } else {
                    Vec::new()
                },
                outcome: delivery_text(d),
            })
            .collect();
        AuditRecord {
            id: queue_id.to_string(),
            message_id,
            received_at,
            client: format!("{} [{}]", envelope.client.peer.ip(), envelope.client.helo),
            sender: envelope.sender.clone(),
            recipients,
            outcome: self.outcome.to_string(),
            reply: self.reply.to_string(),
        }
    }
}
