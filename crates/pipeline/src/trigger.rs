//! Encrypt-by-subject at the end of DATA (`sealgate_policy::trigger`): when
//! the sender's trigger fires, every recipient that would get the message
//! in plaintext is decided again as mandatory (a key is looked up for a
//! recipient whose mode is `off`), and held or bounced (its
//! `no_key_action`; `reject` bounces) when no usable key exists;
//! the matched text leaves the Subject. A key source that fails for such a
//! recipient defers the whole message (`451 4.4.3`): never plaintext, never
//! a lost recipient.

use crate::recipient::{decide_as, RecipientDecision};
use crate::Pipeline;
use sealgate_crypto::mime::{header_value_unfolded, Message};
use sealgate_policy::Decision;
use sealgate_smtp_server::{Envelope, Reply};

/// Applies the trigger: `Ok(Some(bytes))` when the Subject was cleaned (the
/// message to go on with), `Ok(None)` when the bytes stay.
pub(crate) async fn apply(
    p: &Pipeline,
    queue_id: &str,
    envelope: &mut Envelope<RecipientDecision>,
    data: &[u8],
) -> Result<Option<Vec<u8>>, Reply> {
    let Ok(parsed) = Message::parse_limited(data, p.options.header_limits) else {
        // The caller refuses the message for its header section.
        return Ok(None);
    };
    let Some(sender) = crate::sign::signer_address(&parsed, &envelope.sender) else {
        return Ok(None);
    };
    let subject_field = parsed.header("Subject");
    let subject = subject_field.map(header_value_unfolded);
    let fields: Vec<(String, String)> = parsed
        .headers()
        .iter()
        .map(|h| (h.name.to_string(), header_value_unfolded(h)))
        .collect();
    let Some(triggered) = p.policy.trigger_for(&sender, subject.as_deref(), &fields) else {
        return Ok(None);
    };
    tracing::info!(queue_id, sender = %sender, why = %triggered.why, "trigger: the message is mandatory for every recipient");
    for r in envelope.recipients.iter_mut() {
        if !matches!(r.token.decision, Decision::Plain { .. }) {
            continue;
        }
        match decide_as(
            &p.policy,
            &p.resolver,
            p.additional.as_ref(),
            p.capabilities.as_ref(),
            p.options.lookup_timeout,
            &r.address,
            true,
        )
        .await
        {
            Ok(d) => r.token = d,
            Err(reply) => {
                tracing::warn!(queue_id, recipient = %r.address, reply = %reply, "trigger: no decision for a recipient; the message is deferred");
                return Err(Reply::new(
                    451,
                    (4, 4, 3),
                    format!(
                        "<{}>: key lookup failed for a recipient of a message that must be encrypted, try again later",
                        r.address
                    ),
                ));
            }
        }
    }
    let (Some(clean), Some(field)) = (triggered.clean_subject, subject_field) else {
        return Ok(None);
    };
    // The Subject field alone is rewritten; every other byte stays.
    let start = field.raw.as_ptr() as usize - data.as_ptr() as usize;
    let end = start + field.raw.len();
    let eol: &[u8] = if field.raw.ends_with(b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let clean: String = clean.chars().filter(|c| !c.is_control()).collect();
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&data[..start]);
    out.extend_from_slice(format!("{}: {clean}", field.name).as_bytes());
    out.extend_from_slice(eol);
    out.extend_from_slice(&data[end..]);
    Ok(Some(out))
}
