//! The SMTP client towards the upstream MTA (lettre's connection, driven by hand
//! so that we choose the MAIL parameters and see every recipient's reply).

use crate::config::{RelayConfig, TlsMode};
use crate::{Delivery, Outbound, Relay};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::Data;
use lettre::transport::smtp::extension::{ClientId, Extension};
use lettre::transport::smtp::Error as SmtpError;
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// Relays over SMTP to `relay.upstream`, one connection per message.
pub struct SmtpRelay {
    config: RelayConfig,
    host: String,
    port: u16,
    tls: Option<TlsParameters>,
}

impl SmtpRelay {
    /// Checks the config and prepares the TLS parameters.
    pub fn new(config: RelayConfig) -> Result<SmtpRelay, String> {
        config.validate()?;
        let (host, port) = config.host_port()?;
        let tls = match config.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Tls => {
                let mut b = TlsParameters::builder(host.clone())
                    .dangerous_accept_invalid_certs(!config.tls_verify)
                    .dangerous_accept_invalid_hostnames(!config.tls_verify);
                if let Some(ca) = &config.tls_ca_file {
                    let pem = std::fs::read(ca)
                        .map_err(|e| format!("relay.tls_ca_file: {}: {e}", ca.display()))?;
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| format!("relay.tls_ca_file: {}: {e}", ca.display()))?;
                    b = b.add_root_certificate(cert);
                }
                Some(b.build().map_err(|e| format!("relay TLS setup: {e}"))?)
            }
        };
        Ok(SmtpRelay {
            config,
            host,
            port,
            tls,
        })
    }

    async fn step<T>(
        &self,
        what: &str,
        secs: u64,
        f: impl Future<Output = Result<T, SmtpError>>,
    ) -> Result<T, Delivery> {
        match tokio::time::timeout(Duration::from_secs(secs), f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(what, &e)),
            Err(_) => Err(Delivery::Transient(format!(
                "upstream {}: timeout after {secs} s during {what}",
                self.config.upstream
            ))),
        }
    }

    async fn attempt(&self, msg: &Outbound<'_>) -> Result<Vec<Delivery>, Delivery> {
        // Addresses are written into the dialogue as they are: one that is
        // not a single RFC 5321 path is refused here, never sent.
        if let Err(why) = check_path(msg.sender, Verb::Mail) {
            return Err(Delivery::Permanent(format!(
                "553 5.1.7 sender {:?} not relayed: {why}",
                msg.sender
            )));
        }
        let refused: Vec<Option<Delivery>> = msg
            .recipients
            .iter()
            .map(|r| {
                check_path(r, Verb::Rcpt).err().map(|why| {
                    Delivery::Permanent(format!("553 5.1.3 recipient {r:?} not relayed: {why}"))
                })
            })
            .collect();
        if refused.iter().all(Option::is_some) {
            return Ok(refused.into_iter().flatten().collect());
        }
        let t = self.config.timeout_secs;
        let client_id = ClientId::Domain(self.config.helo_name.clone());
        let implicit = match self.config.tls {
            TlsMode::Tls => self.tls.clone(),
            _ => None,
        };
        let mut conn = self
            .step(
                "connect",
                t,
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(Duration::from_secs(t)),
                    &client_id,
                    implicit,
                    None,
                ),
            )
            .await?;
        if self.config.tls == TlsMode::Starttls {
            if !conn.can_starttls() {
                return Err(Delivery::Transient(format!(
                    "upstream {} does not offer STARTTLS and relay.tls = \"starttls\"",
                    self.config.upstream
                )));
            }
            let params = self.tls.clone().expect("TLS parameters exist for starttls");
            self.step("STARTTLS", t, conn.starttls(params, &client_id))
                .await?;
        }
        if let (Some(user), Some(pass)) = (&self.config.auth_user, &self.config.auth_password) {
            let creds = Credentials::new(user.clone(), pass.clone());
            self.step(
                "AUTH",
                t,
                conn.auth(&[Mechanism::Plain, Mechanism::Login], &creds),
            )
            .await?;
        }

        let info = conn.server_info().clone();
        let mut params = String::new();
        let eight = msg.body_8bitmime || !msg.data.is_ascii();
        if eight {
            if info.supports_feature(Extension::EightBitMime) {
                params.push_str(" BODY=8BITMIME");
            } else if !msg.data.is_ascii() {
                return Err(Delivery::Permanent(format!(
                    "554 5.6.3 upstream {} does not support 8BITMIME for an 8-bit message",
                    self.config.upstream
                )));
            }
        }
        if msg.smtputf8 {
            let ascii = msg.sender.is_ascii() && msg.recipients.iter().all(|r| r.is_ascii());
            if info.supports_feature(Extension::SmtpUtfEight) {
                params.push_str(" SMTPUTF8");
            } else if !ascii || !msg.data.is_ascii() {
                return Err(Delivery::Permanent(format!(
                    "553 5.6.7 upstream {} does not support SMTPUTF8",
                    self.config.upstream
                )));
            }
        }
        self.step(
            "MAIL FROM",
            t,
            conn.command(Raw(format!("MAIL FROM:<{}>{params}\r\n", msg.sender))),
        )
        .await?;
        let mut results = Vec::with_capacity(msg.recipients.len());
        for (rcpt, refused) in msg.recipients.iter().zip(refused) {
            if let Some(refused) = refused {
                results.push(refused);
                continue;
            }
            let r = self
                .step(
                    "RCPT TO",
                    t,
                    conn.command(Raw(format!("RCPT TO:<{rcpt}>\r\n"))),
                )
                .await;
            results.push(match r {
                Ok(_) => Delivery::Accepted,
                Err(d) => d,
            });
        }
        if !results.iter().any(Delivery::is_accepted) {
            let _ = self.step("QUIT", t, conn.quit()).await;
            return Ok(results);
        }
        let sent = match self.step("DATA", t, conn.command(Data)).await {
            Ok(_) => {
                self.step(
                    "message content",
                    self.config.data_timeout_secs,
                    conn.message(without_final_crlf(msg.data)),
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(failure) = sent {
            // The failure applies to every recipient the upstream had accepted.
            for r in results.iter_mut().filter(|r| r.is_accepted()) {
                *r = failure.clone();
            }
            conn.abort().await;
            return Ok(results);
        }
        let _ = self.step("QUIT", t, conn.quit()).await;
        Ok(results)
    }
}

#[async_trait::async_trait]
impl Relay for SmtpRelay {
    async fn send(&self, msg: Outbound<'_>) -> Vec<Delivery> {
        // `Err` is a failure before any recipient was asked (connect, TLS,
        // AUTH, MAIL): it applies to all of them.
        match self.attempt(&msg).await {
            Ok(results) => results,
            Err(failure) => vec![failure; msg.recipients.len()],
        }
    }
}

/// lettre always ends the content with `CRLF . CRLF`, which adds an empty line
/// to a message that already ends in CRLF. Handing it the data without that
/// final CRLF makes the upstream receive exactly our bytes (byte faithfulness);
/// a message without a final CRLF gets the one SMTP requires.
fn without_final_crlf(data: &[u8]) -> &[u8] {
    data.strip_suffix(b"\r\n").unwrap_or(data)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Mail,
    Rcpt,
}

/// Whether `address`, written between `<` and `>`, is read by any RFC 5321
/// server as exactly one path and nothing else: a dot-atom or quoted-string
/// local part, `@`, a domain name or address literal; `""` (MAIL only) and
/// `postmaster` (RCPT only) without a domain. The listener hands over that
/// form (smtp-server's `address.rs`); this is the check that nothing else,
/// from any caller, can add parameters or lines to the upstream dialogue.
fn check_path(address: &str, verb: Verb) -> Result<(), &'static str> {
    if address.chars().any(char::is_control) {
        return Err("control character");
    }
    if address.is_empty() {
        return match verb {
            Verb::Mail => Ok(()),
            Verb::Rcpt => Err("empty"),
        };
    }
    let domain = if let Some(quoted) = address.strip_prefix('"') {
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    chars.next().ok_or("unbalanced quote")?;
                }
                Some((i, '"')) => break i + 1,
                Some(_) => {}
                None => return Err("unbalanced quote"),
            }
        };
        let rest = &quoted[end..];
        rest.strip_prefix('@')
            .ok_or("text after the quoted local part")?
    } else {
        let (local, domain) = match address.split_once('@') {
            Some((local, domain)) => (local, Some(domain)),
            None => (address, None),
        };
        let atext = |c: char| {
            c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) || !c.is_ascii()
        };
        if local.is_empty() || !local.chars().all(atext) {
            return Err("local part neither dot-atom nor quoted");
        }
        match domain {
            Some(domain) => domain,
            None if verb == Verb::Rcpt && local.eq_ignore_ascii_case("postmaster") => return Ok(()),
            None => return Err("no domain"),
        }
    };
    let ok = match domain.strip_prefix('[') {
        Some(literal) => literal.strip_suffix(']').is_some_and(|inner| {
            !inner.is_empty()
                && inner
                    .bytes()
                    .all(|b| (33..=126).contains(&b) && !matches!(b, b'[' | b'\\' | b']'))
        }),
        None => {
            !domain.is_empty()
                && domain
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || !c.is_ascii())
        }
    };
    if ok {
        Ok(())
    } else {
        Err("malformed domain")
    }
}

/// An SMTP command line written as is (lettre adds nothing).
struct Raw(String);

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Maps a lettre error to a delivery verdict: 5xx replies are permanent, every
/// other failure (4xx, network, TLS, protocol) is transient.
fn classify(what: &str, e: &SmtpError) -> Delivery {
    let text = format!("{what}: {e}");
    if e.is_permanent() {
        Delivery::Permanent(text)
    } else {
        Delivery::Transient(text)
    }
}

#[cfg(test)]
mod tests {
    use super::{check_path, without_final_crlf, Verb};

    #[test]
    fn only_single_rfc5321_paths_are_written() {
        for ok in [
            "a@example.org",
            "jörg@bücher.example",
            r#""a b"@example.org"#,
            r#""victim@mandatory.example> ORCPT=rfc822;x"@open.example"#,
            r#""a\"b\\"@example.org"#,
            "u@[192.0.2.1]",
            "u@[IPv6:2001:db8::1]",
            "u@example.org.",
        ] {
            assert_eq!(check_path(ok, Verb::Rcpt), Ok(()), "{ok}");
            assert_eq!(check_path(ok, Verb::Mail), Ok(()), "{ok}");
        }
        assert_eq!(check_path("", Verb::Mail), Ok(()));
        assert!(check_path("", Verb::Rcpt).is_err());
        assert_eq!(check_path("Postmaster", Verb::Rcpt), Ok(()));
        assert!(check_path("postmaster", Verb::Mail).is_err());
        for bad in [
            // What the listener handed over before addresses were kept quoted.
            "victim@mandatory.example> ORCPT=rfc822;x@open.example",
            "a b@example.org",
            "a@example.org>\r\nRSET",
            "a@example.org\r\nRCPT TO:<b@example.org",
            "a\0b@example.org",
            r#""a b@example.org"#,
            r#""a\"@example.org"#,
            r#""a"b@example.org"#,
            r#"a"b"@example.org"#,
            "a<b@example.org",
            "a@b@example.org",
            "a@exa mple.org",
            "a@[1.2.3.4",
            "a@[1 2]",
            "a@",
            "@example.org",
            "root",
        ] {
            assert!(check_path(bad, Verb::Rcpt).is_err(), "{bad}");
            assert!(check_path(bad, Verb::Mail).is_err(), "{bad}");
        }
    }

    #[test]
    fn final_crlf_is_left_to_the_terminator() {
        assert_eq!(without_final_crlf(b"a\r\nb\r\n"), b"a\r\nb");
        assert_eq!(without_final_crlf(b"a\r\n\r\n"), b"a\r\n");
        assert_eq!(without_final_crlf(b"a"), b"a");
    }
}
