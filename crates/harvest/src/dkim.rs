//! The DKIM gate for header fields nobody signed but the sender's domain:
//! an Autocrypt field is believed only when a DKIM signature (RFC 6376)
//! vouches for it.
//!
//! The signature must pass (verified by mail-auth against the key the
//! signing domain publishes in DNS), and it must be
//! - aligned with the From domain: `d=` is that domain or a parent of it
//!   (never a bare top-level name), as DMARC's relaxed alignment would
//!   have it for a parent;
//! - over the field: its `h=` lists it;
//! - over the whole body: no `l=` (with a length, anything may follow the
//!   signed part);
//! - made with SHA-256 (RFC 8301 retired `rsa-sha1`).
//!
//! A message with more than [`MAX_SIGNATURES`] signatures is not looked at
//! (each costs a DNS query). DNS goes to `[dns] resolver` (`IP:port`), or to
//! the system's resolvers.
//! A DNS failure is a refusal like any other: the key is not learned, the
//! mail goes on.

use mail_auth::common::crypto::Algorithm;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use std::net::SocketAddr;
use std::time::Duration;

/// Most DKIM signatures a message may carry to be looked at.
pub const MAX_SIGNATURES: usize = 8;

/// `[dns]`: the resolver DKIM keys are looked up with.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// `IP:port` of a recursive resolver; `None`: /etc/resolv.conf.
    pub resolver: Option<SocketAddr>,
    /// Time for one query (each is tried twice).
    pub timeout_secs: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            resolver: None,
            timeout_secs: 5,
        }
    }
}

impl DnsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.timeout_secs == 0 || self.timeout_secs > 60 {
            return Err("dns.timeout_secs: must be from 1 to 60".into());
        }
        Ok(())
    }
}

/// Verifies DKIM signatures through one resolver.
pub struct Dkim {
    auth: MessageAuthenticator,
}

impl Dkim {
    /// A verifier using `config`'s resolver (or the system's).
    pub fn new(config: &DnsConfig) -> Result<Dkim, String> {
        config.validate()?;
        let (servers, mut opts) = match config.resolver {
            Some(addr) => {
                let connection = |mut c: ConnectionConfig| {
                    c.port = addr.port();
                    c
                };
                let ns = NameServerConfig::new(
                    addr.ip(),
                    true,
                    vec![
                        connection(ConnectionConfig::udp()),
                        connection(ConnectionConfig::tcp()),
                    ],
                );
                (
                    ResolverConfig::from_name_servers(vec![ns]),
                    ResolverOpts::default(),
                )
            }
            None => mail_auth::hickory_resolver::system_conf::read_system_conf().map_err(|e| {
                format!("dns: cannot read the system's resolver configuration: {e}")
            })?,
        };
        opts.timeout = Duration::from_secs(config.timeout_secs);
        opts.attempts = 2;
        let auth = MessageAuthenticator::new(servers, opts)
            .map_err(|e| format!("dns: cannot set up the resolver: {e}"))?;
        Ok(Dkim { auth })
    }

    /// `Ok(d=…, s=…)` when a DKIM signature of `message` passes, aligned with
    /// `author_domain`, covering header field `field`, with no `l=`, with
    /// SHA-256; else why none does.
    pub async fn vouches(
        &self,
        message: &[u8],
        author_domain: &str,
        field: &str,
    ) -> Result<String, String> {
        let signatures = sealgate_crypto::mime::Message::parse(message)
            .headers()
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("DKIM-Signature"))
            .count();
        if signatures > MAX_SIGNATURES {
            // Each would cost a DNS query and a signature check.
            return Err(format!(
                "{signatures} DKIM signatures (more than {MAX_SIGNATURES} are not looked at)"
            ));
        }
        let Some(parsed) = AuthenticatedMessage::parse(message) else {
            return Err("DKIM: the message cannot be parsed".into());
        };
        let outputs = self.auth.verify_dkim(&parsed).await;
        if outputs.is_empty() {
            return Err("no DKIM signature".into());
        }
        let mut why = Vec::new();
        for out in &outputs {
            let Some(sig) = out.signature() else {
                why.push(format!(
                    "a DKIM signature that cannot be used ({})",
                    result_text(out.result())
                ));
                continue;
            };
            let who = format!("d={} s={}", sig.d, sig.s);
            let problem = match out.result() {
                DkimResult::Pass => judge(&sig.d, &sig.h, sig.l, sig.a, author_domain, field),
                other => Some(format!("does not pass: {}", result_text(other))),
            };
            match problem {
                None => return Ok(who),
                Some(p) => why.push(format!("the DKIM signature {who} {p}")),
            }
        }
        Err(why.join("; "))
    }
}

/// Why a passing signature does not vouch for `field` of mail from
/// `author_domain`, or `None` when it does.
fn judge(
    d: &str,
    signed: &[String],
    l: u64,
    a: Algorithm,
    author_domain: &str,
    field: &str,
) -> Option<String> {
    if !aligned(d, author_domain) {
        return Some(format!(
            "is not aligned with the From domain {author_domain}"
        ));
    }
    if !signed.iter().any(|h| h.trim().eq_ignore_ascii_case(field)) {
        return Some(format!("does not cover the {field} field"));
    }
    if l != 0 {
        return Some("has l= (it signs only part of the body)".into());
    }
    if a == Algorithm::RsaSha1 {
        return Some("uses rsa-sha1".into());
    }
    None
}

/// Whether signing domain `d` may vouch for mail from `author_domain`: the
/// same domain, or a parent of it that is not a top-level name.
pub fn aligned(d: &str, author_domain: &str) -> bool {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    let from = author_domain.trim_end_matches('.').to_ascii_lowercase();
    d.contains('.') && (from == d || from.ends_with(&format!(".{d}")))
}

fn result_text(r: &DkimResult) -> String {
    match r {
        DkimResult::Pass => "pass".into(),
        DkimResult::Neutral(e) => format!("neutral: {e}"),
        DkimResult::Fail(e) => format!("fail: {e}"),
        DkimResult::PermError(e) => format!("permanent error: {e}"),
        DkimResult::TempError(e) => format!("temporary error: {e}"),
        DkimResult::None => "none".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_is_the_domain_or_a_parent() {
        assert!(aligned("partner.example", "partner.example"));
        assert!(aligned("Partner.Example.", "mail.partner.example"));
        assert!(!aligned("mail.partner.example", "partner.example"));
        assert!(!aligned("evil.example", "partner.example"));
        assert!(!aligned("rpartner.example", "partner.example"));
        assert!(!aligned("example", "partner.example"));
    }

    #[test]
    fn a_passing_signature_must_cover_the_field_and_the_whole_body() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let ok = h(&["From", "To", "autocrypt"]);
        let d = "partner.example";
        assert_eq!(judge(d, &ok, 0, Algorithm::RsaSha256, d, "Autocrypt"), None);
        assert_eq!(
            judge(d, &ok, 0, Algorithm::Ed25519Sha256, d, "Autocrypt"),
            None
        );
        let e = |r: Option<String>| r.unwrap();
        assert!(e(judge(
            "evil.example",
            &ok,
            0,
            Algorithm::RsaSha256,
            d,
            "Autocrypt"
        ))
        .contains("not aligned"));
        assert!(e(judge(
            d,
            &h(&["From"]),
            0,
            Algorithm::RsaSha256,
            d,
            "Autocrypt"
        ))
        .contains("does not cover the Autocrypt field"));
        assert!(e(judge(d, &ok, 10, Algorithm::RsaSha256, d, "Autocrypt")).contains("l="));
        assert!(e(judge(d, &ok, 0, Algorithm::RsaSha1, d, "Autocrypt")).contains("rsa-sha1"));
    }

    #[test]
    fn config_is_checked() {
        assert!(DnsConfig::default().validate().is_ok());
        let bad = DnsConfig {
            timeout_secs: 0,
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().contains("dns.timeout_secs"));
    }
}
