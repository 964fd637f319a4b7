//! Trace information (RFC 5321 §4.4): the `Received:` field sealgate puts at
//! the top of every copy it relays, and the hop count that stops mail loops
//! (a message that already carries more `Received:` fields than
//! `smtp.max_hops` is refused with 554 5.4.6, as Postfix's hopcount_limit does).

use sealgate_crypto::mime::Message;
use sealgate_smtp_server::{Envelope, Reply};
use std::time::SystemTime;

/// How many `Received:` fields the message's header carries.
pub fn hops(message: &Message<'_>) -> usize {
    message
        .headers()
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Received"))
        .count()
}

/// The `Received:` field for one copy, CRLF-terminated and folded:
/// `from <helo> ([ip]) by <hostname> (sealgate) with <protocol> id <queue id>
/// [for <rcpt>]; <date>`. The address is `[192.0.2.1]` or
/// `[IPv6:2001:db8::1]` (RFC 5321 4.1.3; an IPv4-mapped address is written
/// as IPv4). The protocol follows RFC 3848: SMTP after HELO; ESMTP, ESMTPS,
/// ESMTPA, ESMTPSA after EHLO; UTF8SMTP[S][A] for SMTPUTF8. The HELO text is
/// the client's, so it goes in reduced to printable ASCII ([`clean_helo`]).
pub fn received<T>(
    envelope: &Envelope<T>,
    hostname: &str,
    queue_id: &str,
    single_recipient: Option<&str>,
    now: SystemTime,
) -> Vec<u8> {
    let c = &envelope.client;
    let protocol = if !c.esmtp {
        // HELO: no extensions, so neither TLS, AUTH nor SMTPUTF8.
        String::from("SMTP")
    } else {
        let mut p = String::from(if envelope.smtputf8 {
            "UTF8SMTP"
        } else {
            "ESMTP"
        });
        if c.tls {
            p.push('S');
        }
        if c.authenticated_as.is_some() {
            p.push('A');
        }
        p
    };
    let helo = clean_helo(&c.helo);
    let mut field = format!(
        "Received: from {} ({})\r\n\tby {} (sealgate) with {protocol} id {queue_id}",
        if helo.is_empty() { "unknown" } else { &helo },
        address_literal(c.peer.ip()),
        clean(hostname),
    );
    if let Some(r) = single_recipient {
        field.push_str(&format!("\r\n\tfor <{}>", clean(r)));
    }
    field.push_str(&format!(";\r\n\t{}\r\n", rfc5322_date(now)));
    field.into_bytes()
}

/// The reply to a header section beyond `smtp.max_header_size` /
/// `max_header_fields` (both listeners).
pub(crate) fn header_too_big(queue_id: &str, e: &impl std::fmt::Display) -> Reply {
    Reply::new(
        552,
        (5, 3, 4),
        format!("{queue_id}: message header too big: {e}"),
    )
}

/// The reply to a message with more than `max_hops` `Received:` fields.
pub(crate) fn too_many_hops(hops: usize, max_hops: usize) -> Reply {
    Reply::new(
        554,
        (5, 4, 6),
        format!("Too many hops ({hops} Received: fields, limit {max_hops}): mail loop?"),
    )
}

/// A client-supplied value as it may appear in a log line or the audit
/// table: control characters (ESC, CR, LF, DEL, C1 controls) removed, at most
/// `max` characters; a cut value ends in `...`.
pub fn log_safe(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .filter(|c| !c.is_control())
        .take(max + 1)
        .collect();
    if out.chars().count() > max {
        out = out.chars().take(max).collect();
        out.push_str("...");
    }
    out
}

/// Longest HELO text written into the field (a domain is at most 255).
const MAX_HELO: usize = 255;

/// The HELO/EHLO argument as it may appear in the field: printable ASCII
/// only, without the characters that would open or close a comment or end
/// the tokens part (`(`, `)`, `\\`, `;`), at most [`MAX_HELO`] characters.
pub fn clean_helo(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '(' | ')' | '\\' | ';'))
        .take(MAX_HELO)
        .collect()
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]`.
pub fn address_literal(ip: std::net::IpAddr) -> String {
    match ip.to_canonical() {
        std::net::IpAddr::V4(v4) => format!("[{v4}]"),
        std::net::IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    }
}

/// Keeps a value on one header line: no control characters, no `;` (it would
/// end the tokens part), at most 200 characters.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() && *c != ';')
        .take(200)
        .collect()
}

/// `Sun, 22 Nov 2026 05:41:06 +0000` (RFC 5322 §3.3), in UTC.
pub fn rfc5322_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {d:02} {} {y} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian calendar
/// (Howard Hinnant's civil_from_days algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates() {
        let at = |s: u64| rfc5322_date(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(at(1_795_326_066), "Sun, 22 Nov 2026 05:41:06 +0000");
        assert_eq!(at(4102444799), "Thu, 31 Dec 2099 23:59:59 +0000");
        // 2100 is not a leap year.
        assert_eq!(at(4107542400), "Mon, 01 Mar 2100 00:00:00 +0000");
    }

    #[test]
    fn hop_count_and_cleaning() {
        let raw = b"Received: a\r\nreceived: b\r\n\tfolded\r\nSubject: x\r\n\r\nReceived: not a header\r\n";
        assert_eq!(hops(&Message::parse(raw)), 2);
        assert_eq!(clean("evil\r\nInjected: yes; x"), "evilInjected: yes x");
    }

    /// Issue 6 item 9: before, an IPv6 peer was written `[2001:db8::1]`, a
    /// HELO session said ESMTP, and the HELO text went in with non-ASCII,
    /// comment characters and no bound but 200 characters.
    #[test]
    fn address_literals_and_helo_text() {
        assert_eq!(address_literal("192.0.2.1".parse().unwrap()), "[192.0.2.1]");
        assert_eq!(
            address_literal("2001:db8::1".parse().unwrap()),
            "[IPv6:2001:db8::1]"
        );
        assert_eq!(
            address_literal("::ffff:192.0.2.7".parse().unwrap()),
            "[192.0.2.7]"
        );
        assert_eq!(clean_helo("mail.example.org"), "mail.example.org");
        assert_eq!(clean_helo("[192.0.2.1]"), "[192.0.2.1]");
        assert_eq!(
            clean_helo("evil (by trusted.example) é\u{1b}[31m; x"),
            "evilbytrusted.example[31mx"
        );
        assert_eq!(clean_helo(&"a".repeat(5000)).len(), MAX_HELO);
    }

    /// Issue 6 item 14: a Message-ID with terminal escapes and no bound
    /// reached the log and the audit table as sent.
    #[test]
    fn logged_values_are_bounded_and_without_controls() {
        assert_eq!(log_safe("<a@b>", 256), "<a@b>");
        assert_eq!(
            log_safe("<x\u{1b}[2J\u{1b}]0;pwned\u{7}\r\n\u{9b}@evil>", 256),
            "<x[2J]0;pwned@evil>"
        );
        let long = log_safe(&"m".repeat(10_000), 256);
        assert_eq!(long.len(), 259);
        assert!(long.ends_with("..."));
    }
}
