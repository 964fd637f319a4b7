//! The relay towards the upstream MTA, driven by [`crate::client::Client`]
//! so that we choose the MAIL parameters, see every recipient's reply, and
//! drop the connection after anything but a clean reply.
//!
//! Connections are kept: at most `relay.max_connections` at once, and one
//! that ended its transaction in step goes back to an idle list. The next
//! copy takes it with an RSET in between (no new TCP, TLS or AUTH); one
//! that fails that RSET, or idled longer than [`IDLE_FOR`], is dropped and a
//! fresh one is opened. RCPT commands are pipelined when the upstream
//! offers PIPELINING.

use crate::client::{has_bare_lf, Client, Extensions, Failure, TlsSettings};
use crate::config::{RelayConfig, TlsMode};
use crate::{Delivery, Outbound, Relay};
use base64::Engine as _;
use std::time::Duration;

/// Longest an idle connection is kept for reuse.
const IDLE_FOR: Duration = Duration::from_secs(20);

/// Relays over SMTP to `relay.upstream`.
pub struct SmtpRelay {
    config: RelayConfig,
    host: String,
    port: u16,
    tls: Option<TlsSettings>,
    /// Connections at once.
    slots: tokio::sync::Semaphore,
    /// Connections in step, waiting for the next copy.
    idle: std::sync::Mutex<Vec<Session>>,
}

/// A connection past EHLO (and STARTTLS, AUTH), ready for MAIL.
struct Session {
    client: Client,
    ext: Extensions,
    since: std::time::Instant,
}

impl SmtpRelay {
    /// Checks the config and prepares the TLS settings.
    pub fn new(config: RelayConfig) -> Result<SmtpRelay, String> {
        config.validate()?;
        let (host, port) = config.host_port()?;
        let tls = match config.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Tls => Some(TlsSettings::new(
                config.tls_verify,
                config.tls_ca_file.as_deref(),
            )?),
        };
        Ok(SmtpRelay {
            slots: tokio::sync::Semaphore::new(config.max_connections),
            idle: std::sync::Mutex::new(Vec::new()),
            config,
            host,
            port,
            tls,
        })
    }

    /// A failed step as a delivery verdict: a 5xx reply is permanent, a 4xx
    /// reply and every broken connection temporary.
    fn verdict(&self, what: &str, f: Failure) -> Delivery {
        match f {
            Failure::Refused(r) if r.code >= 500 => {
                Delivery::Permanent(format!("{what}: {}", r.text()))
            }
            Failure::Refused(r) => Delivery::Transient(format!("{what}: {}", r.text())),
            Failure::Broken(why) => Delivery::Transient(format!(
                "upstream {} during {what}: {why}",
                self.config.upstream
            )),
        }
    }

    /// EHLO, falling back to HELO (no extensions) if EHLO is not known.
    async fn hello(&self, c: &mut Client) -> Result<Extensions, Delivery> {
        let name = self.config.helo_name();
        match c.command(&format!("EHLO {name}"), 2).await {
            Ok(r) => Ok(Extensions::from_ehlo(&r)),
            Err(Failure::Refused(r)) if matches!(r.code, 500 | 502) => c
                .command(&format!("HELO {name}"), 2)
                .await
                .map(|_| Extensions::default())
                .map_err(|f| self.verdict("HELO", f)),
            Err(f) => Err(self.verdict("EHLO", f)),
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
        if has_bare_lf(msg.data) {
            return Err(Delivery::Permanent(
                "554 5.6.0 the copy has a bare LF line ending; not relayed".into(),
            ));
        }
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| Delivery::Transient("relay closed".into()))?;
        let mut session = self.session().await?;
        let (results, in_step) = self.transaction(&mut session, msg, refused).await?;
        if in_step {
            session.since = std::time::Instant::now();
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < self.config.max_connections {
                idle.push(session);
            }
        }
        Ok(results)
    }

    /// A kept connection (after a successful RSET), else a new one.
    async fn session(&self) -> Result<Session, Delivery> {
        loop {
            let kept = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.pop()
            };
            let Some(mut s) = kept else { break };
            if s.since.elapsed() > IDLE_FOR {
                s.client.quit().await;
                continue;
            }
            if s.client.command("RSET", 2).await.is_ok() {
                return Ok(s);
            }
        }
        self.open().await
    }

    /// Connects, greets, and does STARTTLS and AUTH as configured.
    async fn open(&self) -> Result<Session, Delivery> {
        let t = Duration::from_secs(self.config.timeout_secs);
        let implicit = match self.config.tls {
            TlsMode::Tls => self.tls.as_ref(),
            _ => None,
        };
        let mut c = Client::connect(&self.host, self.port, t, implicit)
            .await
            .map_err(|f| self.verdict("connect", f))?;
        let mut ext = self.hello(&mut c).await?;
        if self.config.tls == TlsMode::Starttls {
            if !ext.has("STARTTLS") {
                return Err(Delivery::Transient(format!(
                    "upstream {} does not offer STARTTLS and relay.tls = \"starttls\"",
                    self.config.upstream
                )));
            }
            let tls = self.tls.as_ref().expect("TLS settings exist for starttls");
            c.starttls(&self.host, tls)
                .await
                .map_err(|f| self.verdict("STARTTLS", f))?;
            ext = self.hello(&mut c).await?;
        }
        if let (Some(user), Some(pass)) = (&self.config.auth_user, &self.config.auth_password) {
            self.auth(&mut c, &ext, user, pass).await?;
        }

        Ok(Session {
            client: c,
            ext,
            since: std::time::Instant::now(),
        })
    }

    /// One transaction on `session`: the verdicts, and whether the
    /// connection is still in step (it may be kept).
    async fn transaction(
        &self,
        session: &mut Session,
        msg: &Outbound<'_>,
        refused: Vec<Option<Delivery>>,
    ) -> Result<(Vec<Delivery>, bool), Delivery> {
        let Session { client: c, ext, .. } = session;
        let mut params = String::new();
        if let Some(limit) = ext.size_limit() {
            if msg.data.len() as u64 > limit {
                return Err(Delivery::Permanent(format!(
                    "552 5.3.4 the copy ({} bytes) is larger than upstream {}'s SIZE limit ({limit})",
                    msg.data.len(),
                    self.config.upstream
                )));
            }
        }
        if ext.has("SIZE") {
            params.push_str(&format!(" SIZE={}", msg.data.len()));
        }
        let eight = msg.body_8bitmime || !msg.data.is_ascii();
        if eight {
            if ext.has("8BITMIME") {
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
            if ext.has("SMTPUTF8") {
                params.push_str(" SMTPUTF8");
            } else if !ascii || !msg.data.is_ascii() {
                return Err(Delivery::Permanent(format!(
                    "553 5.6.7 upstream {} does not support SMTPUTF8",
                    self.config.upstream
                )));
            }
        }
        let dsn = msg.dsn.filter(|_| ext.has("DSN"));
        if let Some(d) = dsn {
            if let Some(ret) = d.ret.filter(|r| matches!(*r, "FULL" | "HDRS")) {
                params.push_str(&format!(" RET={ret}"));
            }
            if let Some(envid) = d.envid {
                params.push_str(&format!(" ENVID={}", xtext(envid)));
            }
        }
        c.command(&format!("MAIL FROM:<{}>{params}", msg.sender), 2)
            .await
            .map_err(|f| self.verdict("MAIL FROM", f))?;
        // The RCPT lines of the recipients not refused here, and whether a
        // success notice would be ours to send.
        let mut lines = Vec::new();
        let mut ours = Vec::new();
        for (i, (rcpt, refused)) in msg.recipients.iter().zip(&refused).enumerate() {
            if refused.is_some() {
                continue;
            }
            let notify = msg.dsn.and_then(|d| d.notify.get(i).cloned().flatten());
            let mut rcpt_params = String::new();
            if let Some(d) = dsn {
                if let Some(n) = notify.as_deref().filter(|n| is_notify(n)) {
                    rcpt_params.push_str(&format!(" NOTIFY={n}"));
                }
                if let Some(o) = d.orcpt.get(i).and_then(|o| o.as_deref()) {
                    if let Some(addr) = o.strip_prefix("rfc822;") {
                        rcpt_params.push_str(&format!(" ORCPT=rfc822;{}", xtext(addr)));
                    }
                }
            }
            // Without DSN upstream, a requested success notice is ours.
            ours.push(
                dsn.is_none()
                    && notify
                        .as_deref()
                        .is_some_and(|n| n.split(',').any(|k| k == "SUCCESS")),
            );
            lines.push(format!("RCPT TO:<{rcpt}>{rcpt_params}"));
        }
        let replies: Vec<Result<(), Failure>> = if ext.has("PIPELINING") {
            match c.pipeline(&lines).await {
                Ok(replies) => replies
                    .into_iter()
                    .map(|r| {
                        if r.code / 100 == 2 {
                            Ok(())
                        } else {
                            Err(Failure::Refused(r))
                        }
                    })
                    .collect(),
                Err(f) => {
                    // Out of step: nothing was delivered; every recipient
                    // not refused for good is deferred.
                    let failure = self.verdict("RCPT TO", f);
                    let results = refused
                        .into_iter()
                        .map(|r| r.unwrap_or_else(|| failure.clone()))
                        .collect();
                    return Ok((results, false));
                }
            }
        } else {
            let mut replies = Vec::with_capacity(lines.len());
            for line in &lines {
                match c.command(line, 2).await {
                    Err(Failure::Broken(why)) => {
                        let failure = self.verdict("RCPT TO", Failure::Broken(why));
                        let results = refused
                            .into_iter()
                            .map(|r| r.unwrap_or_else(|| failure.clone()))
                            .collect();
                        return Ok((results, false));
                    }
                    r => replies.push(r.map(|_| ())),
                }
            }
            replies
        };
        let mut answers = replies.into_iter().zip(ours);
        let mut results = Vec::with_capacity(msg.recipients.len());
        for refused in refused {
            if let Some(r) = refused {
                results.push(r);
                continue;
            }
            match answers.next() {
                Some((Ok(()), true)) => results.push(Delivery::Relayed),
                Some((Ok(()), false)) => results.push(Delivery::Accepted),
                Some((Err(f), _)) => results.push(self.verdict("RCPT TO", f)),
                None => results.push(Delivery::Transient("no reply to RCPT TO".into())),
            }
        }
        if !results.iter().any(Delivery::is_accepted) {
            // The transaction stays open: the next copy's RSET ends it.
            return Ok((results, true));
        }
        let data_timeout = Duration::from_secs(self.config.data_timeout_secs);
        let in_step = match c.data(msg.data, data_timeout).await {
            Ok(_) => true,
            Err(f) => {
                // The failure applies to every recipient the upstream had
                // accepted; a broken connection is simply dropped.
                let in_step = matches!(f, Failure::Refused(_));
                let failure = self.verdict("DATA", f);
                for r in results.iter_mut().filter(|r| r.is_accepted()) {
                    *r = failure.clone();
                }
                in_step
            }
        };
        Ok((results, in_step))
    }

    /// AUTH PLAIN, else LOGIN, over TLS only (the config requires TLS).
    async fn auth(
        &self,
        c: &mut Client,
        ext: &Extensions,
        user: &str,
        pass: &str,
    ) -> Result<(), Delivery> {
        if !c.is_tls() {
            return Err(Delivery::Transient(
                "AUTH is configured but the connection is not encrypted".into(),
            ));
        }
        let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
        let mechs = ext.auth_mechanisms();
        let result = if mechs.iter().any(|m| m == "PLAIN") {
            let token = b64(format!("\0{user}\0{pass}").as_bytes());
            c.command(&format!("AUTH PLAIN {token}"), 2).await
        } else if mechs.iter().any(|m| m == "LOGIN") {
            async {
                c.command("AUTH LOGIN", 3).await?;
                c.command(&b64(user.as_bytes()), 3).await?;
                c.command(&b64(pass.as_bytes()), 2).await
            }
            .await
        } else {
            return Err(Delivery::Transient(format!(
                "upstream {} offers no AUTH mechanism sealgate speaks (PLAIN, LOGIN)",
                self.config.upstream
            )));
        };
        // The reply never contains the password; the command is not logged.
        result.map(|_| ()).map_err(|f| self.verdict("AUTH", f))
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

/// RFC 3461 §4: xtext, every byte outside `!`..`~` and `+` `=` as `+XX`;
/// so nothing a client put in ENVID or ORCPT can add a parameter or a line.
fn xtext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// A NOTIFY value as the listener keeps it: `NEVER`, or keywords only.
fn is_notify(n: &str) -> bool {
    n == "NEVER"
        || n.split(',')
            .all(|k| matches!(k, "SUCCESS" | "FAILURE" | "DELAY"))
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

#[cfg(test)]
mod tests {
    use super::{check_path, is_notify, xtext, Verb};

    #[test]
    fn dsn_values_cannot_add_parameters_or_lines() {
        assert_eq!(xtext("a b+c=d\r\nRSET"), "a+20b+2Bc+3Dd+0D+0ARSET");
        assert_eq!(xtext("Bob@Example.COM"), "Bob@Example.COM");
        assert!(is_notify("NEVER") && is_notify("SUCCESS,DELAY"));
        assert!(!is_notify("SUCCESS ORCPT=x") && !is_notify(""));
    }

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
}
