//! Delivery status notifications (RFC 3464 inside RFC 6522's
//! `multipart/report`): what the sender gets when a recipient failed for
//! good or has waited long.
//!
//! A report carries a readable part, the machine-readable
//! `message/delivery-status` part, and the header of the copy that was
//! queued (`text/rfc822-headers`). The body comes back only with RET=FULL and
//! only from a copy that was sent in the clear anyway: the body of an
//! encrypted copy, and the plaintext it was made from, never appear in a
//! report. Reports go out from `MAILER-DAEMON@<smtp.hostname>` with the null
//! sender, through the queue like any message.

use crate::model::Ret;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::date::Date;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::MimePart;
use mail_builder::MessageBuilder;

/// Longest header section returned in a report; cut at a field boundary.
const MAX_RETURNED_HEADER: usize = 64 << 10;

/// Why a report is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// Recipients failed for good (Action: failed).
    Failed,
    /// Recipients are still waiting (Action: delayed).
    Delayed,
    /// Recipients who asked for a success notice were handed to an upstream
    /// that does not do DSN (Action: relayed).
    Relayed,
}

/// One recipient's block of a report.
#[derive(Debug, Clone)]
pub struct RecipientReport {
    pub address: String,
    /// ORCPT as the client gave it (`rfc822;a@example.org`).
    pub orcpt: Option<String>,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    /// What the next hop said, or why sealgate gave up.
    pub diagnostic: Option<String>,
    /// The next hop's name, when it answered.
    pub remote_mta: Option<String>,
    /// Unix milliseconds.
    pub last_attempt: Option<i64>,
    /// For delayed recipients: when sealgate gives up (Unix ms).
    pub will_retry_until: Option<i64>,
}

/// Everything a report says.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    pub kind: ReportKind,
    /// `smtp.hostname`: Reporting-MTA and the From domain.
    pub reporting_mta: &'a str,
    /// The queue id of the original message.
    pub queue_id: &'a str,
    /// The original envelope sender: where the report goes.
    pub to: &'a str,
    pub envid: Option<&'a str>,
    /// The client that handed the message over (`[addr] (helo)`).
    pub received_from: &'a str,
    /// Unix milliseconds.
    pub arrival: i64,
    pub recipients: Vec<RecipientReport>,
    /// The copy as queued (its header section is returned).
    pub copy: &'a [u8],
    /// The copy went out in the clear (plain or pass-through): only then may
    /// RET=FULL return it whole.
    pub copy_is_clear: bool,
    pub ret: Option<Ret>,
}

/// The status and diagnostic for a recipient refused with `text` by the next
/// hop (an SMTP reply), or failed for another reason.
pub fn status_of(text: &str, permanent: bool) -> String {
    match sealgate_relay::enhanced_status(text) {
        Some((c, s, d)) if (c == 5) == permanent && c != 2 => format!("{c}.{s}.{d}"),
        _ if permanent => "5.0.0".into(),
        _ => "4.0.0".into(),
    }
}

/// Builds the report as a message (CRLF line endings).
pub fn build(r: &Report<'_>) -> Vec<u8> {
    let (subject, action, opening) = match r.kind {
        ReportKind::Failed => (
            "Undelivered Mail Returned to Sender",
            "failed",
            "Your message could not be delivered to the recipients below. sealgate gave up; it will not try again.",
        ),
        ReportKind::Delayed => (
            "Delayed Mail (still being retried)",
            "delayed",
            "Your message has not been delivered yet to the recipients below. sealgate keeps trying; you do not need to send it again.",
        ),
        ReportKind::Relayed => (
            "Successful Mail Delivery Report",
            "relayed",
            "Your message was handed on for the recipients below, to a mail system that does not report delivery itself.",
        ),
    };
    let mut text = format!(
        "This is the mail system at host {host}.\r\n\r\n{opening}\r\n\r\nQueue id: {id}\r\n\r\n",
        host = r.reporting_mta,
        id = r.queue_id,
    );
    for rc in &r.recipients {
        text.push_str(&format!("<{}>: ", rc.address));
        match &rc.diagnostic {
            Some(d) => text.push_str(&one_line(d)),
            None => text.push_str(&rc.status),
        }
        text.push_str("\r\n");
    }

    let mut status = String::new();
    status.push_str(&format!("Reporting-MTA: dns; {}\r\n", r.reporting_mta));
    if let Some(e) = r.envid {
        status.push_str(&format!("Original-Envelope-Id: {}\r\n", one_line(e)));
    }
    status.push_str(&format!(
        "Received-From-MTA: dns; {}\r\n",
        one_line(r.received_from)
    ));
    status.push_str(&format!("Arrival-Date: {}\r\n", rfc822_date(r.arrival)));
    for rc in &r.recipients {
        status.push_str("\r\n");
        if let Some(o) = &rc.orcpt {
            status.push_str(&format!("Original-Recipient: {}\r\n", one_line(o)));
        }
        let addr_type = if rc.address.is_ascii() {
            "rfc822"
        } else {
            "utf-8"
        };
        status.push_str(&format!(
            "Final-Recipient: {addr_type}; {}\r\n",
            one_line(&rc.address)
        ));
        status.push_str(&format!("Action: {action}\r\n"));
        status.push_str(&format!("Status: {}\r\n", rc.status));
        if let Some(m) = &rc.remote_mta {
            status.push_str(&format!("Remote-MTA: dns; {}\r\n", one_line(m)));
        }
        if let Some(d) = &rc.diagnostic {
            status.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", one_line(d)));
        }
        if let Some(t) = rc.last_attempt {
            status.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc822_date(t)));
        }
        if let Some(t) = rc.will_retry_until {
            status.push_str(&format!("Will-Retry-Until: {}\r\n", rfc822_date(t)));
        }
    }

    let full = r.ret == Some(Ret::Full) && r.copy_is_clear && r.kind == ReportKind::Failed;
    let returned = if full {
        MimePart::new(ContentType::new("message/rfc822"), r.copy.to_vec())
            .transfer_encoding(if r.copy.is_ascii() { "7bit" } else { "8bit" })
    } else {
        let header = header_section(r.copy);
        MimePart::new(ContentType::new("text/rfc822-headers"), header.to_vec())
            .transfer_encoding(if header.is_ascii() { "7bit" } else { "8bit" })
    };
    let status_part = MimePart::new(
        ContentType::new("message/delivery-status"),
        status.into_bytes(),
    )
    .transfer_encoding(if r.recipients.iter().all(|x| x.address.is_ascii()) {
        "7bit"
    } else {
        "8bit"
    });
    let report = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        vec![
            MimePart::new(
                ContentType::new("text/plain").attribute("charset", "us-ascii"),
                text.into_bytes(),
            )
            .transfer_encoding("7bit"),
            status_part,
            returned,
        ],
    );
    let from = format!("MAILER-DAEMON@{}", r.reporting_mta);
    MessageBuilder::new()
        .from(("Mail Delivery System", from.as_str()))
        .to(r.to)
        .subject(subject)
        .message_id(format!("{}.dsn@{}", r.queue_id, r.reporting_mta))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .body(report)
        .write_to_vec()
        .unwrap_or_default()
}

/// The header section of a message: up to and including the blank line,
/// at most [`MAX_RETURNED_HEADER`] bytes, cut after a whole field.
pub(crate) fn header_section(m: &[u8]) -> &[u8] {
    let end = m
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(m.len(), |i| i + 2);
    if end <= MAX_RETURNED_HEADER {
        return &m[..end];
    }
    // The last line end within the limit that starts a new field (not a
    // folded continuation).
    let cut = (0..MAX_RETURNED_HEADER - 1)
        .rev()
        .find(|&i| &m[i..i + 2] == b"\r\n" && !matches!(m.get(i + 2), Some(b' ' | b'\t')))
        .map_or(0, |i| i + 2);
    &m[..cut]
}

fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn rfc822_date(ms: i64) -> String {
    Date::new(ms / 1000).to_rfc822()
}
