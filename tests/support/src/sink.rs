//! An SMTP sink that stores what it receives byte-exact: the far end of the
//! gateway in the tests.
//!
//! The sink is aiosmtpd (an independent SMTP server implementation) run by
//! Debian's `/usr/bin/python3` on `tests/support/sink.py`, on its own port and
//! temporary directory. Each accepted transaction is stored as the exact data
//! bytes (after dot-unstuffing; line endings as received) plus its envelope, so
//! a test can check precisely what the gateway relayed. aiosmtpd offers
//! 8BITMIME, SMTPUTF8 and (optionally) STARTTLS, but no PIPELINING, CHUNKING
//! or DSN.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::ports::free_port;
use crate::process::{wait_for_port, wait_until, ChildGuard};

/// The Python interpreter that has aiosmtpd (the `python3` on PATH may not).
pub const PYTHON: &str = "/usr/bin/python3";

/// How a [`Sink`] answers.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// `(address, full reply)`: RCPT TO for `address` (case-insensitive) gets
    /// this reply, e.g. `("bob@example.org", "550 5.1.1 no such user")`.
    pub reject_rcpt: Vec<(String, String)>,
    /// Answer `451 4.3.0` to the end of the message data (after the final
    /// dot); such messages are not stored.
    pub temp_fail_data: bool,
    /// Offer STARTTLS with this certificate (chain) and key (PEM files).
    pub starttls: Option<(PathBuf, PathBuf)>,
    /// `(user, password)`: require AUTH (PLAIN or LOGIN, only after STARTTLS)
    /// with these credentials before MAIL.
    pub auth: Option<(String, String)>,
    /// Offer `SIZE n` and refuse larger messages (no SIZE when `None`).
    pub size_limit: Option<u64>,
    /// Listen on this port (a sink brought back where an earlier one ran);
    /// a fresh free port when `None`.
    pub port: Option<u16>,
}

/// One transaction the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkMessage {
    /// The MAIL FROM address without angle brackets (`""` for bounces).
    pub mail_from: String,
    /// The accepted RCPT TO addresses, in order, without angle brackets.
    pub rcpt_to: Vec<String>,
    /// The MAIL FROM parameters, e.g. `BODY=8BITMIME`, `SMTPUTF8`, `SIZE=123`.
    pub mail_options: Vec<String>,
    /// Parameters of the accepted RCPT TO commands (all recipients together).
    pub rcpt_options: Vec<String>,
    /// The EHLO/HELO name the client gave.
    pub helo: String,
    /// Whether the transaction ran over STARTTLS.
    pub tls: bool,
    /// The AUTH identity the client logged in with, if any.
    pub auth_user: Option<String>,
    /// The transaction's MAIL and RCPT command lines as the client wrote
    /// them, accepted or not: the verb in capitals, then the rest of the line
    /// without the line ending (bytes that are not UTF-8 as `\xNN`), e.g.
    /// `RCPT TO:<"a b"@example.org>`.
    pub commands: Vec<String>,
    /// Exactly the bytes after dot-unstuffing, CRLF line endings as received
    /// (ends with the CRLF before the final dot).
    pub data: Vec<u8>,
}

impl SinkMessage {
    /// The data as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The header section (up to, not including, the first empty line).
    pub fn headers(&self) -> &[u8] {
        let (head, _) = split_message(&self.data);
        head
    }

    /// The body (after the first empty line; empty if there is none).
    pub fn body(&self) -> &[u8] {
        let (_, body) = split_message(&self.data);
        body
    }

    /// Unfolded values of the top-level header fields named `name`
    /// (case-insensitive), in order, as (lossy) UTF-8 without the name.
    pub fn header(&self, name: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(self.headers()).into_owned();
        let mut fields: Vec<String> = Vec::new();
        for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = fields.last_mut() {
                    last.push_str(line);
                }
            } else if !line.is_empty() {
                fields.push(line.to_string());
            }
        }
        fields
            .into_iter()
            .filter_map(|f| {
                let (n, v) = f.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
            .collect()
    }
}

/// Splits a message at the first empty line (CRLF CRLF or LF LF).
pub(crate) fn split_message(data: &[u8]) -> (&[u8], &[u8]) {
    if data.starts_with(b"\r\n") {
        return (&[], &data[2..]);
    }
    for i in 0..data.len() {
        if data[i..].starts_with(b"\r\n\r\n") {
            return (&data[..i], &data[i + 4..]);
        }
        if data[i..].starts_with(b"\n\n") {
            return (&data[..i], &data[i + 2..]);
        }
    }
    (data, &[])
}

/// A running sink; stopped (by pid) when dropped.
pub struct Sink {
    port: u16,
    dir: tempfile::TempDir,
    child: ChildGuard,
}

impl Sink {
    /// Starts a sink that accepts everything.
    ///
    /// # Panics
    /// If it cannot be started (with the sink's output in the message).
    pub fn start() -> Sink {
        Sink::start_with(SinkOptions::default())
    }

    /// Starts a sink answering as `opts` says, on a fresh port (retried with
    /// another port if the first one was taken) and temp dir.
    ///
    /// # Panics
    /// If it cannot be started (with the sink's output in the message).
    pub fn start_with(opts: SinkOptions) -> Sink {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sink.py");
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("sealgate-sink-")
                .tempdir()
                .expect("sink: cannot create temp dir");
            let port = opts.port.unwrap_or_else(free_port);
            let reject: serde_json::Map<String, serde_json::Value> = opts
                .reject_rcpt
                .iter()
                .map(|(a, r)| (a.clone(), serde_json::Value::from(r.clone())))
                .collect();
            let config = serde_json::json!({
                "port": port,
                "dir": dir.path(),
                "reject_rcpt": reject,
                "temp_fail_data": opts.temp_fail_data,
                "starttls": opts.starttls.as_ref().map(|(cert, key)| serde_json::json!({
                    "cert": cert, "key": key,
                })),
                "auth": opts.auth.as_ref().map(|(user, password)| serde_json::json!({
                    "user": user, "password": password,
                })),
                "size_limit": opts.size_limit,
            });
            let mut cmd = Command::new(PYTHON);
            cmd.arg("-u").arg(&script).arg(config.to_string());
            let child = ChildGuard::spawn(cmd, &format!("sink:{port}"));
            match child.wait_for_output("READY", Duration::from_secs(20)) {
                Ok(()) => {
                    if let Err(e) = wait_for_port(port, Duration::from_secs(10)) {
                        panic!("sink: {e}; output:\n{}", child.output_tail(40));
                    }
                    return Sink { port, dir, child };
                }
                Err(e) if child.output().contains("BINDFAIL") && opts.port.is_none() => {
                    last_error = e
                }
                Err(e) => panic!("sink did not start: {e}"),
            }
        }
        panic!("sink: could not bind a port in 5 attempts: {last_error}");
    }

    /// The port the sink listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the stored messages (`NNNNNN.eml` + `.json`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The pid of the sink process.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The sink's log (aiosmtpd's session log at INFO), last `lines` lines.
    pub fn log_tail(&self, lines: usize) -> String {
        self.child.output_tail(lines)
    }

    /// All messages received so far, in arrival order.
    ///
    /// # Panics
    /// If a stored file cannot be read or parsed.
    pub fn messages(&self) -> Vec<SinkMessage> {
        let mut seqs: Vec<(u64, PathBuf)> = std::fs::read_dir(self.dir.path())
            .expect("sink: cannot read its directory")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| Some((p.file_stem()?.to_str()?.parse().ok()?, p)))
            .collect();
        seqs.sort();
        seqs.into_iter()
            .map(|(_, json)| read_message(&json))
            .collect()
    }

    /// Waits until at least `n` messages arrived; returns all of them. The
    /// error includes the sink's log tail.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<SinkMessage>, String> {
        let mut count = 0;
        let waited = wait_until(timeout, &format!("{n} message(s) at the sink"), || {
            count = self.messages().len();
            count >= n
        });
        match waited {
            Ok(()) => Ok(self.messages()),
            Err(e) => Err(format!(
                "{e} (got {count}); sink log:\n{}",
                self.child.output_tail(30)
            )),
        }
    }
}

fn read_message(json_path: &Path) -> SinkMessage {
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(json_path).unwrap_or_else(|e| panic!("sink: read {json_path:?}: {e}")),
    )
    .unwrap_or_else(|e| panic!("sink: parse {json_path:?}: {e}"));
    let eml = json_path.with_extension("eml");
    let data = std::fs::read(&eml).unwrap_or_else(|e| panic!("sink: read {eml:?}: {e}"));
    let strings = |key: &str| -> Vec<String> {
        meta[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    SinkMessage {
        mail_from: meta["mail_from"].as_str().unwrap_or_default().to_string(),
        rcpt_to: strings("rcpt_tos"),
        mail_options: strings("mail_options"),
        rcpt_options: strings("rcpt_options"),
        helo: meta["helo"].as_str().unwrap_or_default().to_string(),
        tls: meta["tls"].as_bool().unwrap_or(false),
        auth_user: meta["auth_user"].as_str().map(str::to_string),
        commands: strings("commands"),
        data,
    }
}
