//! The AUTH command (RFC 4954): the SASL PLAIN/LOGIN exchange on the wire.
//!
//! Kept apart from the main state machine because it is the one place where
//! the session reads lines that are not commands (334 challenges) and where
//! credentials pass through: nothing here logs them, and checking them runs
//! on a blocking thread (PBKDF2 is deliberately slow), at most one per CPU at
//! a time (`auth::check_credentials_bounded`).
//!
//! Failures are bounded twice: per session (`max_auth_failures`, then
//! `421 4.7.0` and close) and per client address over all its sessions
//! (`auth_failure_limit` per `auth_failure_window`, kept by `anvil.rs`); a
//! client whose budget is used up gets `454 4.7.0` at once, and no password
//! check runs for it.

use std::io;

use tokio::time::timeout;
use tracing::{info, warn};

use super::{reply, Flow, Phase, Session};
use crate::auth::{self, SaslError};
use crate::config::MAX_COMMAND_LINE;
use crate::line::Line;
use crate::{Handler, Reply};

/// Outcome of a SASL exchange that did not yield credentials.
enum SaslStop {
    Reply(Reply),
    Flow(Flow),
}

impl<H: Handler> Session<H> {
    pub(super) async fn auth(&mut self, mechanism: u64, initial: String) -> io::Result<Flow> {
        let config = self.config.clone();
        if config.auth_users.is_empty() {
            return Ok(self.error(reply(502, (5, 5, 1), "AUTH not available")));
        }
        if let Phase::Connected = self.phase {
            return Ok(self.error(reply(503, (5, 5, 1), "Send EHLO first")));
        }
        if !self.client.tls && config.require_auth_over_tls {
            return Ok(self.error(reply(
                538,
                (5, 7, 11),
                "Encryption required for requested authentication mechanism",
            )));
        }
        if self.client.authenticated_as.is_some() {
            return Ok(self.error(reply(503, (5, 5, 1), "Already authenticated")));
        }
        if let Phase::Mail(_) = self.phase {
            return Ok(self.error(reply(
                503,
                (5, 5, 1),
                "AUTH not permitted during a mail transaction",
            )));
        }
        let ip = self.client.peer.ip();
        if !self.anvil.auth_allowed(ip) {
            return Ok(self.rate_limited());
        }
        let credentials = match mechanism {
            smtp_proto::AUTH_PLAIN => self.sasl_plain(initial).await?,
            smtp_proto::AUTH_LOGIN => self.sasl_login(initial).await?,
            _ => Err(SaslStop::Reply(reply(
                504,
                (5, 5, 4),
                "Unrecognized authentication type",
            ))),
        };
        let (user, password) = match credentials {
            Ok(c) => c,
            Err(SaslStop::Reply(r)) => return Ok(self.error(r)),
            Err(SaslStop::Flow(f)) => return Ok(f),
        };
        // Reserved before the check, so parallel sessions of one client
        // cannot run more checks than its budget has failures left.
        let Some(attempt) = self.anvil.begin_auth(ip) else {
            return Ok(self.rate_limited());
        };
        let verified = auth::check_credentials_bounded(
            config.clone(),
            user.clone(),
            password,
            config.command_timeout,
        )
        .await;
        match verified {
            None => {
                drop(attempt);
                warn!(peer = %self.client.peer, "password checks busy, AUTH deferred");
                return Ok(self.refuse(reply(
                    454,
                    (4, 7, 0),
                    "Temporary authentication failure, try again later",
                )));
            }
            Some(true) => {
                drop(attempt);
                info!(peer = %self.client.peer, user = %user, "authenticated");
                self.client.authenticated_as = Some(user);
                self.auth_failures = 0;
                return Ok(self.ok(reply(235, (2, 7, 0), "Authentication successful")));
            }
            Some(false) => attempt.failed(),
        }
        self.auth_failures += 1;
        warn!(peer = %self.client.peer, "authentication failed");
        if self.auth_failures >= config.max_auth_failures.max(1) {
            let text = format!(
                "{} Error: too many authentication failures",
                self.config.hostname
            );
            self.conn.queue(&reply(421, (4, 7, 0), text));
            return Ok(Flow::Close);
        }
        Ok(self.refuse(reply(535, (5, 7, 8), "Authentication credentials invalid")))
    }

    /// The client address has used up its AUTH failure budget: refused
    /// without a password check (and counted as a bad command).
    fn rate_limited(&mut self) -> Flow {
        warn!(peer = %self.client.peer, "AUTH refused: too many recent failures from this address");
        self.error(reply(
            454,
            (4, 7, 0),
            "Too many failed authentications from your address, try again later",
        ))
    }

    async fn sasl_plain(
        &mut self,
        initial: String,
    ) -> io::Result<Result<(String, String), SaslStop>> {
        let token = if initial.is_empty() {
            match self.sasl_step("").await? {
                Ok(token) => token,
                Err(stop) => return Ok(Err(stop)),
            }
        } else {
            initial
        };
        if auth::is_cancel(&token) {
            return Ok(Err(cancelled()));
        }
        Ok(auth::decode_plain(&token).map_err(sasl_error))
    }

    async fn sasl_login(
        &mut self,
        initial: String,
    ) -> io::Result<Result<(String, String), SaslStop>> {
        let user_token = if initial.is_empty() {
            match self.sasl_step("VXNlcm5hbWU6").await? {
                Ok(token) => token,
                Err(stop) => return Ok(Err(stop)),
            }
        } else {
            initial
        };
        if auth::is_cancel(&user_token) {
            return Ok(Err(cancelled()));
        }
        let user = match auth::decode_text(&user_token) {
            Ok(user) if !user.is_empty() => user,
            Ok(_) => return Ok(Err(sasl_error(SaslError::Malformed))),
            Err(e) => return Ok(Err(sasl_error(e))),
        };
        let pass_token = match self.sasl_step("UGFzc3dvcmQ6").await? {
            Ok(token) => token,
            Err(stop) => return Ok(Err(stop)),
        };
        if auth::is_cancel(&pass_token) {
            return Ok(Err(cancelled()));
        }
        Ok(auth::decode_text(&pass_token)
            .map(|pass| (user, pass))
            .map_err(sasl_error))
    }

    /// Sends a 334 challenge and reads the client's response line.
    async fn sasl_step(&mut self, challenge: &str) -> io::Result<Result<String, SaslStop>> {
        self.conn.queue_raw(&format!("334 {challenge}"));
        self.flush().await?;
        let line = match timeout(
            self.config.command_timeout,
            self.conn.read_line(MAX_COMMAND_LINE),
        )
        .await
        {
            Err(_) => return Ok(Err(SaslStop::Flow(self.timed_out()))),
            Ok(line) => line?,
        };
        Ok(match line {
            Line::Eof => Err(SaslStop::Flow(Flow::Abort)),
            Line::TooLong => Err(SaslStop::Reply(reply(
                500,
                (5, 5, 6),
                "Authentication exchange line is too long",
            ))),
            Line::Complete(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Ok(text.trim_end().to_string()),
                Err(_) => Err(sasl_error(SaslError::Base64)),
            },
        })
    }
}

fn cancelled() -> SaslStop {
    SaslStop::Reply(reply(501, (5, 0, 0), "Authentication cancelled"))
}

fn sasl_error(error: SaslError) -> SaslStop {
    SaslStop::Reply(match error {
        SaslError::Base64 => reply(501, (5, 5, 2), "Invalid base64 data"),
        SaslError::Malformed => reply(501, (5, 5, 2), "Malformed authentication data"),
    })
}
