//! One SMTP session: the ESMTP state machine (RFC 5321 and extensions).
//!
//! A session moves through [`Phase`]s: connected (no HELO yet), greeted, and in
//! a mail transaction. Commands are read with a bounded line reader and
//! answered in order; replies are flushed when no more pipelined input is
//! waiting, and always before waiting on DATA content; before waiting on the
//! handler, and when replies pile up under pipelining, they are handed to the
//! socket without waiting, and a client that leaves more than
//! `MAX_UNREAD_REPLIES` of them unread gets `UNREAD_GRACE` to read them, then
//! is disconnected (it must not pin a session, or grow its output, by writing
//! commands and never reading the answers). The
//! SMTP-level checks (sequencing, limits, access, TLS, AUTH) happen here; what
//! to do with recipients and messages is the [`Handler`]'s business.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smtp_proto::{MailFrom, RcptTo, Request};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;
use tracing::{debug, info, warn};

use crate::access::network_allowed;
use crate::address::{self, AddressError, PathCommand, Verb};
use crate::anvil::Anvil;
use crate::budget::{Budget, Reservation};
use crate::config::MAX_COMMAND_LINE;
use crate::data::DataReader;
use crate::line::{Connection, Line, Progress, MAX_UNREAD_REPLIES};
use crate::stream::Stream;
use crate::{ClientInfo, DsnRet, Envelope, Handler, Recipient, Reply, ServerConfig};

mod bdat;
mod sasl;

/// Unknown, malformed or out-of-sequence commands in a row before we hang up.
const MAX_BAD_COMMANDS: u32 = 10;
/// How long a client with more than `MAX_UNREAD_REPLIES` unread replies has
/// to read them before it is disconnected.
const UNREAD_GRACE: Duration = Duration::from_secs(10);

/// Where the session is in the SMTP dialogue.
enum Phase<T> {
    /// Connected (or just after STARTTLS): HELO/EHLO required.
    Connected,
    /// Greeted, no transaction.
    Greeted,
    /// MAIL FROM accepted; collecting recipients.
    Mail(Transaction<T>),
}

/// A mail transaction in progress.
struct Transaction<T> {
    sender: String,
    body_8bitmime: bool,
    smtputf8: bool,
    ret: Option<DsnRet>,
    envid: Option<String>,
    /// The message so far, when it comes in BDAT chunks (RFC 3030), and the
    /// in-flight bytes it holds.
    chunks: Option<Box<(DataReader, Reservation)>>,
    recipients: Vec<Recipient<T>>,
    /// RCPT commands handed to the handler, accepted or refused: bounded by
    /// max_recipients too, so refused recipients cannot make one transaction
    /// run unlimited key lookups.
    attempts: usize,
}

/// What the session loop does after a command.
enum Flow {
    Continue,
    /// Flush the queued replies, then close.
    Close,
    /// Close at once (the stream is dead or in an unknown state).
    Abort,
}

pub(crate) struct Session<H: Handler> {
    conn: Connection,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
    client: ClientInfo,
    phase: Phase<H::Token>,
    bad_commands: u32,
    auth_failures: u32,
    /// Per-client counters shared by the listener's sessions (AUTH budget).
    anvil: Arc<Anvil>,
    budget: Budget,
    shutdown: watch::Receiver<bool>,
}

/// Runs a session on an accepted connection until it ends. Never panics on
/// client input; I/O errors just end the session.
pub(crate) async fn run<H: Handler>(
    tcp: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    handler: Arc<H>,
    anvil: Arc<Anvil>,
    budget: Budget,
    shutdown: watch::Receiver<bool>,
) {
    info!(%peer, "connect");
    let mut session = Session {
        conn: Connection::new(Stream::Plain(tcp)),
        config,
        handler,
        client: ClientInfo {
            peer,
            helo: String::new(),
            esmtp: false,
            tls: false,
            authenticated_as: None,
        },
        phase: Phase::Connected,
        bad_commands: 0,
        auth_failures: 0,
        anvil,
        budget,
        shutdown,
    };
    let _counted = session.config.metrics.as_ref().map(|m| m.session());
    if let Err(e) = session.serve().await {
        debug!(%peer, error = %e, "session I/O error");
    }
    let _ = timeout(std::time::Duration::from_secs(5), session.conn.shutdown()).await;
    info!(%peer, "disconnect");
}

async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    // An error means the listener is gone: treat that as shutdown too.
    let _ = rx.wait_for(|&stop| stop).await;
}

/// RCPT TO's NOTIFY flags as the text the queue keeps; only NOTIFY is
/// supported of the RCPT parameters.
fn notify_of(flags: u64) -> Result<Option<String>, Reply> {
    use smtp_proto::{
        RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS,
    };
    let known = RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY | RCPT_NOTIFY_NEVER;
    if flags & !known != 0 {
        return Err(reply(555, (5, 5, 4), "Unsupported RCPT TO parameter"));
    }
    if flags == 0 {
        return Ok(None);
    }
    if flags & RCPT_NOTIFY_NEVER != 0 {
        if flags != RCPT_NOTIFY_NEVER {
            return Err(reply(501, (5, 5, 4), "NOTIFY=NEVER cannot be combined"));
        }
        return Ok(Some("NEVER".into()));
    }
    let names = [
        (RCPT_NOTIFY_SUCCESS, "SUCCESS"),
        (RCPT_NOTIFY_FAILURE, "FAILURE"),
        (RCPT_NOTIFY_DELAY, "DELAY"),
    ];
    Ok(Some(
        names
            .iter()
            .filter(|(f, _)| flags & f != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(","),
    ))
}

fn reply(code: u16, status: (u8, u16, u16), text: impl Into<String>) -> Reply {
    Reply::new(code, status, text)
}

/// Maps a smtp-proto parse error to our answer.
fn parse_error_reply(error: smtp_proto::Error) -> Reply {
    use smtp_proto::Error as E;
    match error {
        E::UnknownCommand => reply(500, (5, 5, 2), "Unknown command"),
        E::SyntaxError { syntax } => reply(501, (5, 5, 4), format!("Syntax: {syntax}")),
        // address.rs reads the paths, so smtp-proto only sees `<>`; kept for
        // completeness, with the code address.rs uses.
        E::InvalidSenderAddress => reply(553, (5, 1, 7), "Bad sender address syntax"),
        E::InvalidRecipientAddress => reply(553, (5, 1, 3), "Bad recipient address syntax"),
        E::InvalidParameter { param } => reply(
            501,
            (5, 5, 4),
            format!("Invalid value for parameter {param}"),
        ),
        E::UnsupportedParameter { param } => {
            let shown: String = param
                .chars()
                .filter(|c| c.is_ascii_graphic())
                .take(64)
                .collect();
            reply(555, (5, 5, 4), format!("Unsupported parameter {shown}"))
        }
        E::NeedsMoreData { .. } | E::ResponseTooLong | E::InvalidResponse { .. } => {
            reply(500, (5, 5, 2), "Syntax error")
        }
    }
}

/// The address as address.rs read it. `None` if smtp-proto found a MAIL or
/// RCPT command where address.rs found none (smtp-proto tolerates CRs between
/// the words, say): such a command is refused, its address never taken from
/// smtp-proto.
fn address_of(path: Option<PathCommand>, verb: Verb) -> Option<Result<String, AddressError>> {
    path.and_then(|p| (p.verb == verb).then_some(p.address))
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

impl<H: Handler> Session<H> {
    async fn serve(&mut self) -> io::Result<()> {
        let greeting = format!("220 {} ESMTP sealgate", self.config.hostname);
        self.conn.queue_raw(&greeting);
        loop {
            if self.conn.should_flush() {
                match self.flush_or_read().await? {
                    Progress::Flushed => {}
                    // The client closed its side: its replies still go out.
                    Progress::Received(0) => self.flush().await?,
                    // Still pipelining: read on before waiting for the write.
                    Progress::Received(_) => continue,
                }
            } else if self.conn.output_piled_up() {
                self.send_ready().await?;
            }
            let read = tokio::select! {
                biased;
                _ = wait_shutdown(&mut self.shutdown) => None,
                r = timeout(self.config.command_timeout, self.conn.read_line(MAX_COMMAND_LINE)) => Some(r),
            };
            let flow = match read {
                None => {
                    let text = format!("{} Service shutting down", self.config.hostname);
                    self.conn.queue(&reply(421, (4, 3, 2), text));
                    Flow::Close
                }
                Some(Err(_elapsed)) => self.timed_out(),
                Some(Ok(line)) => match line? {
                    Line::Eof => return Ok(()),
                    Line::TooLong => self.error(reply(500, (5, 5, 2), "Line too long")),
                    Line::Complete(bytes) => self.command(&bytes).await?,
                },
            };
            match flow {
                Flow::Continue => {}
                Flow::Close => return self.flush().await,
                Flow::Abort => return Ok(()),
            }
        }
    }

    /// Writes queued replies, bounded by the command timeout (a client that
    /// does not read must not pin the session forever), or by `UNREAD_GRACE`
    /// if it already left more than `MAX_UNREAD_REPLIES` unread.
    async fn flush(&mut self) -> io::Result<()> {
        if self.conn.unread_replies() > MAX_UNREAD_REPLIES {
            self.send_ready().await?;
        }
        match timeout(self.config.command_timeout, self.conn.flush()).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timeout")),
        }
    }

    /// Writes queued replies before waiting for the next command, unless more
    /// commands arrive first; bounded like [`flush`](Self::flush).
    async fn flush_or_read(&mut self) -> io::Result<Progress> {
        if self.conn.unread_replies() > MAX_UNREAD_REPLIES {
            self.send_ready().await?;
        }
        match timeout(self.config.command_timeout, self.conn.flush_or_read()).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "write timeout")),
        }
    }

    /// Hands queued replies to the socket without waiting for the client to
    /// read them. If more than `MAX_UNREAD_REPLIES` stay queued, the client
    /// is not reading: it gets `UNREAD_GRACE` to catch up, else the session
    /// ends (no 421: the client would not read it either).
    async fn send_ready(&mut self) -> io::Result<()> {
        self.conn.write_ready().await?;
        let unread = self.conn.unread_replies();
        if unread <= MAX_UNREAD_REPLIES {
            return Ok(());
        }
        match timeout(UNREAD_GRACE, self.conn.flush()).await {
            Ok(result) => result,
            Err(_) => {
                warn!(peer = %self.client.peer, unread, "client does not read its replies, closing");
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client does not read its replies",
                ))
            }
        }
    }

    fn timed_out(&mut self) -> Flow {
        info!(peer = %self.client.peer, "timeout");
        let text = format!("{} Error: timeout exceeded", self.config.hostname);
        self.conn.queue(&reply(421, (4, 4, 2), text));
        Flow::Close
    }

    /// A successful command: resets the error counter.
    fn ok(&mut self, reply: Reply) -> Flow {
        self.bad_commands = 0;
        self.conn.queue(&reply);
        Flow::Continue
    }

    /// A refusal that is not the client's fault (limits, handler decisions).
    fn refuse(&mut self, reply: Reply) -> Flow {
        self.conn.queue(&reply);
        Flow::Continue
    }

    /// A client error; too many in a row end the session.
    fn error(&mut self, reply: Reply) -> Flow {
        self.bad_commands += 1;
        if self.bad_commands >= MAX_BAD_COMMANDS {
            warn!(peer = %self.client.peer, "too many errors, closing");
            let text = format!("{} Error: too many errors", self.config.hostname);
            self.conn.queue(&Reply::new(421, (4, 7, 0), text));
            return Flow::Close;
        }
        debug!(peer = %self.client.peer, code = reply.code, "command refused");
        self.conn.queue(&reply);
        Flow::Continue
    }

    async fn command(&mut self, line: &[u8]) -> io::Result<Flow> {
        // The path of MAIL and RCPT is read by address.rs (smtp-proto would
        // unquote it); smtp-proto parses the rest, with `<>` in its place.
        let path = address::path_command(line);
        let parsed = match &path {
            Some(p) => Request::parse(&mut p.neutral.iter()).map(Request::into_owned),
            None => Request::parse(&mut line.iter()).map(Request::into_owned),
        };
        let request = match parsed {
            Ok(request) => request,
            Err(e) => {
                if let Some(PathCommand {
                    verb,
                    address: Err(bad),
                    ..
                }) = &path
                {
                    return Ok(self.error(bad.reply(*verb)));
                }
                return Ok(self.error(parse_error_reply(e)));
            }
        };
        debug!(peer = %self.client.peer, command = request.name(), "command");
        Ok(match request {
            Request::Ehlo { host } => self.helo(host, true),
            Request::Helo { host } => self.helo(host, false),
            Request::Mail { from } => self.mail(from, address_of(path, Verb::Mail)).await,
            Request::Rcpt { to } => self.rcpt(to, address_of(path, Verb::Rcpt)).await?,
            Request::Data => self.data().await?,
            Request::StartTls => self.starttls().await?,
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response).await?,
            Request::Rset => {
                if let Phase::Mail(_) = self.phase {
                    self.phase = Phase::Greeted;
                }
                self.ok(reply(250, (2, 0, 0), "Ok"))
            }
            Request::Noop { .. } => self.ok(reply(250, (2, 0, 0), "Ok")),
            Request::Vrfy { .. } => self.ok(reply(
                252,
                (2, 5, 0),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => self.ok(reply(
                214,
                (2, 0, 0),
                "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS AUTH",
            )),
            Request::Quit => {
                let text = format!("{} closing connection", self.config.hostname);
                self.conn.queue(&reply(221, (2, 0, 0), text));
                Flow::Close
            }
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size as u64, is_last).await?,
            Request::Expn { .. } => self.error(reply(502, (5, 5, 1), "EXPN not supported")),
            Request::Lhlo { .. } => self.error(reply(500, (5, 5, 2), "Unknown command")),
            Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.error(reply(502, (5, 5, 1), "Command not implemented"))
            }
        })
    }

    fn helo(&mut self, host: String, extended: bool) -> Flow {
        if has_control(&host) {
            return self.error(reply(501, (5, 5, 4), "Invalid domain"));
        }
        self.phase = Phase::Greeted;
        self.client.helo = host;
        self.client.esmtp = extended;
        self.bad_commands = 0;
        let config = &self.config;
        if !extended {
            self.conn.queue_raw(&format!("250 {}", config.hostname));
            return Flow::Continue;
        }
        let mut lines = vec![
            config.hostname.clone(),
            "PIPELINING".to_string(),
            format!("SIZE {}", config.max_message_size),
            "8BITMIME".to_string(),
            "SMTPUTF8".to_string(),
            "ENHANCEDSTATUSCODES".to_string(),
            "DSN".to_string(),
            "CHUNKING".to_string(),
        ];
        if config.tls.is_some() && !self.client.tls {
            lines.push("STARTTLS".to_string());
        }
        if !config.auth_users.is_empty() && (self.client.tls || !config.require_auth_over_tls) {
            lines.push("AUTH PLAIN LOGIN".to_string());
        }
        lines.push("HELP".to_string());
        let last = lines.len() - 1;
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.conn.queue_raw(&format!("250{sep}{line}"));
        }
        Flow::Continue
    }

    /// `address`: the canonical sender from address.rs (`""` for `<>`).
    async fn mail(
        &mut self,
        from: MailFrom<String>,
        address: Option<Result<String, AddressError>>,
    ) -> Flow {
        match self.phase {
            Phase::Connected => {
                return self.error(reply(503, (5, 5, 1), "Send HELO/EHLO first"));
            }
            Phase::Mail(_) => return self.error(reply(503, (5, 5, 1), "Nested MAIL command")),
            Phase::Greeted => {}
        }
        let sender = match address {
            Some(Ok(sender)) => sender,
            Some(Err(bad)) => return self.error(bad.reply(Verb::Mail)),
            None => {
                return self.error(reply(501, (5, 5, 4), "Syntax: MAIL FROM:<address>"));
            }
        };
        const SUPPORTED: u64 = smtp_proto::MAIL_BODY_7BIT
            | smtp_proto::MAIL_BODY_8BITMIME
            | smtp_proto::MAIL_SMTPUTF8
            | smtp_proto::MAIL_RET_FULL
            | smtp_proto::MAIL_RET_HDRS;
        // AUTH= (RFC 4954 §5) is accepted and ignored; everything else we do
        // not advertise (BINARYMIME, REQUIRETLS, ...) is refused.
        if from.flags & !SUPPORTED != 0
            || from.trans_id.is_some()
            || from.by != 0
            || from.solicit.is_some()
            || from.mtrk.is_some()
            || from.hold_for != 0
            || from.hold_until != 0
            || from.mt_priority != 0
        {
            return self.error(reply(555, (5, 5, 4), "Unsupported MAIL FROM parameter"));
        }
        if from.size > self.config.max_message_size {
            return self.refuse(reply(
                552,
                (5, 3, 4),
                "Message size exceeds fixed maximum message size",
            ));
        }
        let smtputf8 = from.flags & smtp_proto::MAIL_SMTPUTF8 != 0;
        if !sender.is_ascii() && !smtputf8 {
            return self.refuse(reply(553, (5, 6, 7), "Non-ASCII address requires SMTPUTF8"));
        }
        let ret = match (
            from.flags & smtp_proto::MAIL_RET_FULL != 0,
            from.flags & smtp_proto::MAIL_RET_HDRS != 0,
        ) {
            (true, true) => return self.error(reply(501, (5, 5, 4), "RET given twice")),
            (true, false) => Some(DsnRet::Full),
            (false, true) => Some(DsnRet::Hdrs),
            (false, false) => None,
        };
        // xtext can encode any byte: a decoded CR or LF would end up in a
        // DSN's header or the upstream dialogue.
        if from.env_id.as_deref().is_some_and(has_control) {
            return self.error(reply(501, (5, 5, 4), "ENVID holds a control character"));
        }
        if let Err(refusal) = self.handler.transaction(&self.client, &sender).await {
            info!(peer = %self.client.peer, %sender, code = refusal.code, "transaction refused at MAIL FROM");
            return self.refuse(refusal);
        }
        debug!(peer = %self.client.peer, %sender, "MAIL FROM accepted");
        self.phase = Phase::Mail(Transaction {
            sender,
            body_8bitmime: from.flags & smtp_proto::MAIL_BODY_8BITMIME != 0,
            smtputf8,
            ret,
            envid: from.env_id,
            chunks: None,
            recipients: Vec::new(),
            attempts: 0,
        });
        self.ok(reply(250, (2, 1, 0), "Ok"))
    }

    /// `address`: the canonical recipient from address.rs.
    async fn rcpt(
        &mut self,
        to: RcptTo<String>,
        address: Option<Result<String, AddressError>>,
    ) -> io::Result<Flow> {
        let Phase::Mail(tx) = &self.phase else {
            return Ok(self.error(reply(503, (5, 5, 1), "Need MAIL command")));
        };
        if tx.chunks.is_some() {
            return Ok(self.error(reply(503, (5, 5, 1), "BDAT in progress: RCPT not allowed")));
        }
        let address = match address {
            Some(Ok(address)) => address,
            Some(Err(bad)) => return Ok(self.error(bad.reply(Verb::Rcpt))),
            None => {
                return Ok(self.error(reply(501, (5, 5, 4), "Syntax: RCPT TO:<address>")));
            }
        };
        let notify = match notify_of(to.flags) {
            Ok(n) => n,
            Err(r) => return Ok(self.error(r)),
        };
        if to.rrvs != 0 {
            return Ok(self.error(reply(555, (5, 5, 4), "Unsupported RCPT TO parameter")));
        }
        if to.orcpt.as_deref().is_some_and(has_control) {
            return Ok(self.error(reply(501, (5, 5, 4), "ORCPT holds a control character")));
        }
        let orcpt = to.orcpt.map(|o| format!("rfc822;{o}"));
        if !address.is_ascii() && !tx.smtputf8 {
            return Ok(self.refuse(reply(553, (5, 6, 7), "Non-ASCII address requires SMTPUTF8")));
        }
        if tx.attempts >= self.config.max_recipients {
            return Ok(self.refuse(reply(452, (4, 5, 3), "Too many recipients")));
        }
        if self.client.authenticated_as.is_none()
            && !network_allowed(&self.config.allowed_networks, self.client.peer.ip())
        {
            warn!(peer = %self.client.peer, rcpt = %address, "relay access denied");
            let text = format!("<{address}>: Relay access denied");
            return Ok(self.error(reply(554, (5, 7, 1), text)));
        }
        let sender = tx.sender.clone();
        if let Phase::Mail(tx) = &mut self.phase {
            tx.attempts += 1;
        }
        // Earlier replies go out before a possibly slow lookup, but without
        // waiting for a client that does not read them.
        self.send_ready().await?;
        match self
            .handler
            .recipient(&self.client, &sender, &address)
            .await
        {
            Ok(token) => {
                debug!(peer = %self.client.peer, rcpt = %address, "recipient accepted");
                if let Phase::Mail(tx) = &mut self.phase {
                    tx.recipients.push(Recipient {
                        address,
                        token,
                        notify,
                        orcpt,
                    });
                }
                Ok(self.ok(reply(250, (2, 1, 5), "Ok")))
            }
            Err(refusal) => {
                info!(peer = %self.client.peer, rcpt = %address, code = refusal.code, "recipient refused");
                Ok(self.refuse(refusal))
            }
        }
    }

    async fn data(&mut self) -> io::Result<Flow> {
        match &self.phase {
            Phase::Mail(tx) if tx.chunks.is_some() => {
                return Ok(self.error(reply(503, (5, 5, 1), "BDAT in progress: DATA not allowed")));
            }
            Phase::Mail(tx) if tx.recipients.is_empty() => {
                return Ok(self.error(reply(554, (5, 5, 1), "No valid recipients")));
            }
            Phase::Mail(_) => {}
            _ => return Ok(self.error(reply(503, (5, 5, 1), "Need MAIL command"))),
        }
        if self.budget.exhausted() {
            return Ok(self.refuse(reply(
                452,
                (4, 3, 1),
                "Too much mail in flight, try again later",
            )));
        }
        self.conn.queue_raw("354 End data with <CR><LF>.<CR><LF>");
        self.flush().await?;
        let mut reservation = self.budget.reservation();

        let config = &self.config;
        let mut reader = DataReader::new(
            config.max_message_size,
            config.max_line_length,
            config.bare_lf,
        );
        let deadline = tokio::time::Instant::now() + config.data_deadline;
        loop {
            if self.conn.has_buffered() {
                let (used, done) = reader.feed(self.conn.buffered());
                if !reader.is_failed() && !reservation.take(used) {
                    reader.over_budget();
                }
                self.conn.consume(used);
                if done {
                    break;
                }
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match timeout(self.config.data_timeout.min(left), self.conn.fill()).await {
                Err(_) => return Ok(self.timed_out()),
                Ok(Ok(0)) => {
                    info!(peer = %self.client.peer, "connection lost during DATA");
                    return Ok(Flow::Abort);
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }

        Ok(self.complete(reader, reservation).await)
    }

    /// The end of a message (DATA's final dot, or the last BDAT chunk):
    /// hands it to the handler and queues the one reply.
    async fn complete(&mut self, reader: DataReader, reservation: Reservation) -> Flow {
        self.bad_commands = 0;
        let Phase::Mail(tx) = std::mem::replace(&mut self.phase, Phase::Greeted) else {
            return Flow::Continue; // checked by the callers
        };
        let answer = match reader.finish() {
            Err(refusal) => {
                warn!(peer = %self.client.peer, code = refusal.code, reason = %refusal.text, "message refused");
                refusal
            }
            Ok(body) => {
                let size = body.len();
                let recipients = tx.recipients.len();
                let envelope = Envelope {
                    client: self.client.clone(),
                    sender: tx.sender,
                    recipients: tx.recipients,
                    body_8bitmime: tx.body_8bitmime,
                    smtputf8: tx.smtputf8,
                    ret: tx.ret,
                    envid: tx.envid,
                };
                let answer = self.handler.message(envelope, body).await;
                debug!(peer = %self.client.peer, size, recipients, code = answer.code, "DATA answered");
                answer
            }
        };
        // The bytes are the handler's now (or gone): back to the budget.
        drop(reservation);
        self.conn.queue(&answer);
        Flow::Continue
    }

    async fn starttls(&mut self) -> io::Result<Flow> {
        if self.client.tls {
            return Ok(self.error(reply(503, (5, 5, 1), "TLS already active")));
        }
        let config = self.config.clone();
        let Some(acceptor) = config.tls.as_ref() else {
            return Ok(self.error(reply(502, (5, 5, 1), "STARTTLS not available")));
        };
        self.conn
            .queue(&reply(220, (2, 0, 0), "Ready to start TLS"));
        self.flush().await?;
        // Anything pipelined after STARTTLS arrived in plaintext and must not
        // be acted upon inside TLS (CVE-2011-0411).
        self.conn.discard_buffered();
        let plain = self.conn.take_stream();
        match timeout(config.command_timeout, plain.start_tls(acceptor)).await {
            Ok(Ok((tls, description))) => {
                self.conn.set_stream(tls);
                self.client.tls = true;
                self.client.helo.clear();
                self.client.esmtp = false;
                self.client.authenticated_as = None;
                self.phase = Phase::Connected;
                self.bad_commands = 0;
                info!(peer = %self.client.peer, tls = %description, "TLS established");
                Ok(Flow::Continue)
            }
            Ok(Err(e)) => {
                warn!(peer = %self.client.peer, error = %e, "TLS handshake failed");
                Ok(Flow::Abort)
            }
            Err(_) => {
                warn!(peer = %self.client.peer, "TLS handshake timed out");
                Ok(Flow::Abort)
            }
        }
    }
}
