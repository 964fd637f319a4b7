//! Grouping recipients into output messages.
//!
//! The To/Cc recipients that get the same method, cipher and padding share
//! one encrypted output message, encrypted to the union of their keys (and
//! their additional keys): one encryption per message, as mail clients do
//! (`copy_per_recipient` gives such a recipient a copy of its own). A
//! recipient that the message's To and Cc headers do not name (a
//! Bcc recipient, as far as the gateway can tell) gets an encrypted copy of its
//! own, so that no other copy lists its key and it sees nobody else's. Plaintext
//! recipients share one copy: it is the original message, exactly what the
//! sending MTA would have delivered.
//!
//! Mail whose content is already encrypted ([`Message::encryption`]: the
//! OpenPGP packets or the CMS content type, never a label) goes unchanged to
//! every recipient, except to a recipient whose mode is `mandatory` when the
//! encryption names none of that recipient's keys: such a recipient gets the
//! message encrypted again to its own keys, or is refused (554 5.7.1) when
//! its `foreign_encryption` setting is `reject`.

use crate::RecipientDecision;
use sealgate_crypto::inspect::Encryption;
use sealgate_crypto::mime::Message;
use sealgate_crypto::smime::{RsaPadding, SmimeCipher};
use sealgate_keys::{Method, RecipientKey};
use sealgate_policy::{Decision, ForeignEncryption, Mode, SmimeCipherName};
use sealgate_smtp_server::Envelope;
use std::collections::HashSet;
use std::time::SystemTime;

/// What an output message is.
#[derive(Debug, Clone)]
pub enum GroupKind {
    /// The original bytes, because policy says plaintext.
    Plain,
    /// The original bytes, because the message is already encrypted.
    PassThrough,
    Encrypt {
        method: Method,
        keys: Vec<RecipientKey>,
        smime_cipher: SmimeCipher,
        smime_rsa_padding: RsaPadding,
        /// PGP/MIME or inline PGP (PGP copies only).
        pgp_form: PgpForm,
        /// Header protection with this outer Subject.
        protect: Option<String>,
    },
    /// Nothing is sent: policy refuses these recipients at DATA.
    Refused { reason: String },
    /// Not delivered: the sender gets a failure DSN with the reason
    /// (`no_key_action = "bounce"`); never plaintext.
    Bounced { reason: String },
    /// Kept in the queue until a usable key appears (`no_key_action =
    /// "hold"`): the original bytes, one recipient per copy, encrypted by
    /// the queue's delivery once the key is found (`crate::release`).
    Held { reason: String },
}

/// How a PGP copy is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgpForm {
    /// PGP/MIME (RFC 3156).
    Mime,
    /// Inline PGP: the text of a text/plain message, armored (`pgp-inline`).
    Inline,
    /// `pgp-inline` was asked for, but the message is not text/plain:
    /// PGP/MIME instead (logged).
    MimeInsteadOfInline,
}

/// One output message: its kind and the envelope recipients (indices into
/// `Envelope::recipients`).
#[derive(Debug, Clone)]
pub struct Group {
    pub kind: GroupKind,
    pub members: Vec<usize>,
    /// True for a Bcc recipient's own copy.
    pub bcc: bool,
}

/// Plans the output messages for a received message.
pub fn plan(envelope: &Envelope<RecipientDecision>, parsed: &Message<'_>) -> Vec<Group> {
    let encryption = parsed.encryption();
    let now = SystemTime::now();
    let visible = visible_addresses(parsed);
    let text_plain = is_text_plain(parsed);
    let mut groups: Vec<(Option<String>, Group)> = Vec::new();
    for (i, rcpt) in envelope.recipients.iter().enumerate() {
        if encryption.is_encrypted() {
            let keys: &[RecipientKey] = match &rcpt.token.decision {
                Decision::Encrypt { keys, .. } => keys,
                Decision::Plain { .. } | Decision::Bounce { .. } | Decision::Hold { .. } => &[],
            };
            let own = keys.iter().any(|k| names(&encryption, k, now));
            if rcpt.token.mode != Mode::Mandatory || keys.is_empty() || own {
                push(
                    &mut groups,
                    Some("pass-through".into()),
                    i,
                    GroupKind::PassThrough,
                    false,
                );
                continue;
            }
            if rcpt.token.foreign_encryption == ForeignEncryption::Reject {
                let reason = format!(
                    "<{}>: the message is already encrypted, but not to a key of this recipient, whose policy ({}) makes encryption mandatory",
                    rcpt.address, rcpt.token.policy
                );
                push(&mut groups, None, i, GroupKind::Refused { reason }, false);
                continue;
            }
            // Encrypted, but not for this recipient: encrypt it again.
        }
        match &rcpt.token.decision {
            Decision::Bounce { reason } => push(
                &mut groups,
                None,
                i,
                GroupKind::Bounced {
                    reason: format!(
                        "<{}>: recipient requires encryption: {reason}",
                        rcpt.address
                    ),
                },
                false,
            ),
            // Each held recipient waits alone: its key, once found, is
            // nobody else's.
            Decision::Hold { reason } => push(
                &mut groups,
                None,
                i,
                GroupKind::Held {
                    reason: reason.clone(),
                },
                false,
            ),
            Decision::Plain { .. } => push(
                &mut groups,
                Some("plain".into()),
                i,
                GroupKind::Plain,
                false,
            ),
            Decision::Encrypt {
                method,
                smime_cipher,
                ..
            } => {
                let Some(kind) = encrypting(&rcpt.token.decision, text_plain) else {
                    continue;
                };
                let GroupKind::Encrypt {
                    smime_rsa_padding: padding,
                    pgp_form,
                    protect,
                    keys,
                    ..
                } = &kind
                else {
                    continue;
                };
                // SEIPDv2 (RFC 9580) only when every key of the copy
                // reads it: a recipient without it gets a copy apart
                // rather than downgrading everyone's.
                let seipd2 = *method == Method::Pgp
                    && keys.iter().all(|k| match k {
                        RecipientKey::Pgp(c) => sealgate_crypto::pgp::supports_seipdv2(c, now),
                        RecipientKey::Smime(_) => false,
                    });
                if !visible.contains(&rcpt.address.to_lowercase()) {
                    push(&mut groups, None, i, kind, true);
                } else if rcpt.token.copy_per_recipient {
                    push(&mut groups, None, i, kind, false);
                } else {
                    // One copy for the To/Cc recipients of the same method,
                    // cipher and padding, encrypted to all their keys: they
                    // see each other's addresses already.
                    let key = format!(
                        "{method}|{smime_cipher:?}|{padding:?}|{pgp_form:?}|{protect:?}|{seipd2}"
                    );
                    push(&mut groups, Some(key), i, kind, false);
                }
            }
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// The copy an encrypting decision calls for (`None` for any other), for a
/// message whose root entity is text/plain or not.
pub(crate) fn encrypting(decision: &Decision, text_plain: bool) -> Option<GroupKind> {
    let Decision::Encrypt {
        method,
        keys,
        smime_cipher,
        smime_rsa_padding,
        pgp_inline,
        header_protection,
        ..
    } = decision
    else {
        return None;
    };
    let pgp_form = match (*method, *pgp_inline, text_plain) {
        (Method::Pgp, true, true) => PgpForm::Inline,
        (Method::Pgp, true, false) => PgpForm::MimeInsteadOfInline,
        _ => PgpForm::Mime,
    };
    Some(GroupKind::Encrypt {
        pgp_form,
        // Inline PGP has no entity to carry protected header fields.
        protect: header_protection
            .clone()
            .filter(|_| pgp_form != PgpForm::Inline),
        method: *method,
        keys: keys.clone(),
        smime_cipher: cipher(*smime_cipher),
        smime_rsa_padding: match smime_rsa_padding {
            sealgate_policy::RsaPaddingName::Pkcs1 => RsaPadding::Pkcs1,
            sealgate_policy::RsaPaddingName::Oaep => RsaPadding::Oaep,
        },
    })
}

/// Whether the message's encryption names `key` (one of its valid
/// encryption subkeys, or the certificate's issuer and serial or SKI).
fn names(encryption: &Encryption, key: &RecipientKey, now: SystemTime) -> bool {
    match key {
        RecipientKey::Pgp(cert) => encryption.names_pgp(cert, now),
        RecipientKey::Smime(x509) => encryption.names_x509(x509),
    }
}

/// Adds recipient `i` to the group with the same key, or opens a new group
/// (always, when `key` is None).
fn push(
    groups: &mut Vec<(Option<String>, Group)>,
    key: Option<String>,
    i: usize,
    kind: GroupKind,
    bcc: bool,
) {
    if let Some(k) = &key {
        if let Some((_, g)) = groups.iter_mut().find(|(gk, _)| gk.as_ref() == Some(k)) {
            g.members.push(i);
            // A shared encrypted copy is encrypted to every member's keys.
            if let (GroupKind::Encrypt { keys, .. }, GroupKind::Encrypt { keys: more, .. }) =
                (&mut g.kind, kind)
            {
                for k in more {
                    let f = k.fingerprint();
                    if !keys.iter().any(|have| have.fingerprint() == f) {
                        keys.push(k);
                    }
                }
            }
            return;
        }
    }
    groups.push((
        key,
        Group {
            kind,
            members: vec![i],
            bcc,
        },
    ));
}

/// `encrypt pgp [FPR] to <a>, <b>` / `plain to <c>` for the relay log line.
pub fn describe(group: &Group, envelope: &Envelope<RecipientDecision>) -> String {
    let to = group
        .members
        .iter()
        .map(|&i| format!("<{}>", envelope.recipients[i].address))
        .collect::<Vec<_>>()
        .join(", ");
    match &group.kind {
        GroupKind::Plain => format!("plain to {to}"),
        GroupKind::PassThrough => format!("already encrypted, unchanged, to {to}"),
        GroupKind::Refused { .. } => {
            format!("refused (already encrypted, not to the mandatory recipient's keys): {to}")
        }
        GroupKind::Bounced { .. } => {
            format!("bounced (mandatory, no usable key; the sender gets a report): {to}")
        }
        GroupKind::Held { .. } => {
            format!("held until a usable key is found (mandatory, no usable key yet): {to}")
        }
        GroupKind::Encrypt {
            method,
            keys,
            pgp_form,
            protect,
            ..
        } => {
            let mut additional: Vec<&str> = group
                .members
                .iter()
                .flat_map(|&i| envelope.recipients[i].token.additional.iter())
                .map(String::as_str)
                .collect();
            additional.sort();
            additional.dedup();
            let form = match pgp_form {
                PgpForm::Mime => "",
                PgpForm::Inline => " inline",
                PgpForm::MimeInsteadOfInline => {
                    " as PGP/MIME (pgp-inline asked, but the message is not text/plain)"
                }
            };
            format!(
                "encrypt {method}{form} [{}]{}{}{} to {to}",
                keys.iter()
                    .map(|k| k.fingerprint())
                    .collect::<Vec<_>>()
                    .join(","),
                if additional.is_empty() {
                    String::new()
                } else {
                    format!(" (additional keys: {})", additional.join(","))
                },
                if protect.is_some() {
                    " (headers protected)"
                } else {
                    ""
                },
                if group.bcc { " (Bcc copy)" } else { "" }
            )
        }
    }
}

/// What a copy is, as the queue records it.
pub fn method_label(group: &Group) -> &'static str {
    match &group.kind {
        GroupKind::Plain => "plain",
        GroupKind::PassThrough => "pass-through",
        GroupKind::Refused { .. } => "refused",
        GroupKind::Bounced { .. } => "bounced",
        GroupKind::Held { .. } => sealgate_queue::KEY_WAIT,
        GroupKind::Encrypt {
            pgp_form: PgpForm::Inline,
            ..
        } => "pgp-inline",
        GroupKind::Encrypt { method, .. } => method.as_str(),
    }
}

/// Whether the message's root entity is text/plain (what inline PGP can
/// carry): no Content-Type (RFC 2045's default) or `text/plain`.
pub fn is_text_plain(parsed: &Message<'_>) -> bool {
    parsed
        .content_type()
        .mime_type
        .eq_ignore_ascii_case("text/plain")
}

/// The policy's cipher choice as the encryptor's parameter.
fn cipher(c: SmimeCipherName) -> SmimeCipher {
    match c {
        // `auto` is settled per recipient at RCPT (recipient::decide); CBC
        // is what every client reads.
        SmimeCipherName::Aes256Cbc | SmimeCipherName::Auto => SmimeCipher::Aes256Cbc,
        SmimeCipherName::Aes256Gcm => SmimeCipher::Aes256Gcm,
    }
}

/// Lower-cased addresses in the To and Cc header fields. The fields come
/// from the message's one split ([`Message::headers`]); mail-parser reads
/// only their values, as RFC 5322 address lists (groups, comments, quoted
/// display names).
pub fn visible_addresses(parsed: &Message<'_>) -> HashSet<String> {
    header_addresses(parsed, &["To", "Cc"])
        .into_iter()
        .collect()
}

/// Every address (lower-case, in order) in the fields named `names`; the
/// addresses inside display names and comments are not addresses.
pub fn header_addresses(parsed: &Message<'_>, names: &[&str]) -> Vec<String> {
    parsed.addresses(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_addresses_from_to_and_cc() {
        let raw = b"From: s@example.org\r\nTo: \"Bob <x@y>\" <Alice@Example.org>, carol@example.org\r\nCc: Team: dave@example.org;\r\nSubject: hi\r\n\r\nbody\r\n";
        let v = visible_addresses(&Message::parse(raw));
        assert!(v.contains("alice@example.org"));
        assert!(v.contains("carol@example.org"));
        assert!(v.contains("dave@example.org"));
        // An address inside a display name is not a recipient.
        assert!(!v.contains("x@y"));
    }
}
