//! A real Postfix as the *sending* MTA in the tests, relaying to the gateway.
//!
//! Each [`Postfix`] is a complete, private Postfix instance: its own config
//! directory, queue and data directories and maillog in a temp dir, listening
//! on its own loopback port, with `relayhost = [127.0.0.1]:<relay_port>`
//! (the gateway under test). Postfix's SMTP client uses STARTTLS, PIPELINING,
//! SIZE, 8BITMIME, SMTPUTF8 and DSN whenever the server offers them, which
//! makes it a demanding conformance peer. It does not send BDAT: Postfix
//! 3.7's client has no CHUNKING (only its server has). Many instances can run at the
//! same time. Dropping the handle runs `postfix stop` and makes sure the
//! master process is gone (SIGKILL by its pid if needed).
//!
//! Also here: [`smtp_send`], a small blocking SMTP client over
//! `std::net::TcpStream`, usable against any SMTP server (Postfix, the
//! gateway, the sink).

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::process::{
    pid_alive, run_ok, run_with_timeout, signal, tail, wait_for_port, wait_until,
};

/// The `myhostname` of every test Postfix (appears in its Received headers).
pub const HOSTNAME: &str = "postfix-test.localdomain";

/// How long a Postfix command (start, stop, postqueue) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A running private Postfix instance; stopped when dropped.
pub struct Postfix {
    dir: tempfile::TempDir,
    port: u16,
    relay_port: u16,
    master_pid: u32,
}

impl Postfix {
    /// Starts a Postfix relaying everything to `[127.0.0.1]:relay_port`.
    ///
    /// Takes about 0.25 s. Retried on another port if its port was taken.
    ///
    /// Postfix behaviour worth knowing (3.7): it prepends one `Received:`
    /// header (`from <helo> (unknown [127.0.0.1]) by postfix-test.localdomain
    /// (Postfix) with ESMTP|UTF8SMTP id ...`); it appends `Message-Id:` and
    /// `Date:` if the message lacks them; it passes `BODY=8BITMIME` and
    /// `SMTPUTF8` to the relayhost only if the submitting client gave them
    /// (an undeclared 8-bit body goes out undeclared); a 5xx RCPT reply
    /// bounces (and the bounce, from `<>`, is relayed to the gateway too);
    /// a 4xx stays deferred, retried every few seconds.
    ///
    /// # Panics
    /// If it does not come up (the message has Postfix's output and maillog).
    pub fn start(relay_port: u16) -> Postfix {
        Postfix::start_with_config(relay_port, &[])
    }

    /// Like [`Postfix::start`], with extra `main.cf` settings that replace
    /// (or add to) the defaults, e.g. `[("smtp_tls_security_level", "encrypt")]`.
    ///
    /// # Panics
    /// If it does not come up (the message has Postfix's output and maillog).
    pub fn start_with_config(relay_port: u16, extra: &[(&str, &str)]) -> Postfix {
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("sealgate-postfix-")
                .tempdir()
                .expect("postfix: cannot create temp dir");
            let port = free_port();
            setup_dirs(dir.path(), port, relay_port, extra);
            let etc = dir.path().join("etc");
            let mut cmd = Command::new("postfix");
            cmd.arg("-c").arg(&etc).arg("start");
            let out = run_with_timeout(cmd, COMMAND_TIMEOUT)
                .unwrap_or_else(|e| panic!("postfix start: {e}{}", log_of(dir.path())));
            let log = read_lossy(&dir.path().join("maillog"));
            if !out.status.success() {
                let msg = format!(
                    "postfix start failed ({}):\n{}{}",
                    crate::process::describe(out.status),
                    String::from_utf8_lossy(&out.stderr),
                    log_of(dir.path())
                );
                if log.contains("Address already in use") {
                    last_error = msg;
                    continue; // someone took the port: retry elsewhere
                }
                panic!("{msg}");
            }
            let pid_file = dir.path().join("queue/pid/master.pid");
            let mut master_pid = 0;
            let found = wait_until(Duration::from_secs(10), "master.pid", || {
                master_pid = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(0);
                master_pid != 0
            });
            let postfix = Postfix {
                dir,
                port,
                relay_port,
                master_pid,
            };
            if let Err(e) = found.and_then(|()| wait_for_port(port, Duration::from_secs(20))) {
                panic!("postfix did not come up: {e}{}", log_of(postfix.dir.path()));
            }
            return postfix;
        }
        panic!("postfix: no usable port in 5 attempts: {last_error}");
    }

    /// The port Postfix's smtpd listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The relayhost port given at start.
    pub fn relay_port(&self) -> u16 {
        self.relay_port
    }

    /// The pid of the master process.
    pub fn master_pid(&self) -> u32 {
        self.master_pid
    }

    /// The instance's config directory (`main.cf`, `master.cf`).
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    /// Changes `main.cf` settings (`postconf -e`) and reloads Postfix. The
    /// reload is asynchronous: new settings apply to processes started after it.
    ///
    /// # Panics
    /// If postconf or the reload fails.
    pub fn set_config(&self, settings: &[(&str, &str)]) {
        let mut cmd = Command::new("postconf");
        cmd.arg("-c").arg(self.config_dir()).arg("-e");
        for (k, v) in settings {
            cmd.arg(format!("{k}={v}"));
        }
        if let Err(e) = run_ok(cmd, COMMAND_TIMEOUT) {
            panic!("postconf -e: {e}");
        }
        backdate_config(&self.config_dir());
        if let Err(e) = run_ok(self.postfix_cmd("reload"), COMMAND_TIMEOUT) {
            panic!("postfix reload: {e}{}", log_of(self.dir.path()));
        }
    }

    /// Submits a message over SMTP to this Postfix (see [`smtp_send`]).
    pub fn send(&self, from: &str, to: &[&str], message: &[u8]) -> Result<(), String> {
        smtp_send(self.port, from, to, message)
    }

    /// Runs `swaks --server 127.0.0.1:<port>` with `args` (60 s timeout).
    ///
    /// # Panics
    /// If swaks cannot be started or times out.
    pub fn send_swaks(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("swaks");
        cmd.arg("--server")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(args);
        run_with_timeout(cmd, COMMAND_TIMEOUT).unwrap_or_else(|e| panic!("swaks: {e}"))
    }

    /// The queue (`postqueue -j`): one JSON object per message, with
    /// `queue_name`, `queue_id`, `sender`, and `recipients[]` each carrying
    /// `address` and, for deferred mail, `delay_reason`.
    ///
    /// # Panics
    /// If postqueue fails.
    pub fn queue(&self) -> Vec<serde_json::Value> {
        let mut cmd = Command::new("postqueue");
        cmd.arg("-c").arg(self.config_dir()).arg("-j");
        let out = run_ok(cmd, COMMAND_TIMEOUT).unwrap_or_else(|e| panic!("postqueue -j: {e}"));
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("postqueue -j line {l:?}: {e}"))
            })
            .collect()
    }

    /// Asks Postfix to retry all deferred mail now (`postqueue -f`).
    ///
    /// # Panics
    /// If postqueue fails.
    pub fn flush(&self) {
        let mut cmd = Command::new("postqueue");
        cmd.arg("-c").arg(self.config_dir()).arg("-f");
        if let Err(e) = run_ok(cmd, COMMAND_TIMEOUT) {
            panic!("postqueue -f: {e}");
        }
    }

    /// The whole maillog so far (`""` before the first entry).
    pub fn maillog(&self) -> String {
        read_lossy(&self.dir.path().join("maillog"))
    }

    /// Waits until the queue is empty (everything delivered or bounced).
    /// The error shows the queue and the maillog tail.
    pub fn wait_for_queue_empty(&self, timeout: Duration) -> Result<(), String> {
        let mut last = Vec::new();
        wait_until(timeout, "an empty Postfix queue", || {
            last = self.queue();
            last.is_empty()
        })
        .map_err(|e| {
            let queue: Vec<String> = last.iter().map(|v| v.to_string()).collect();
            format!(
                "{e}; queue:\n{}{}",
                queue.join("\n"),
                log_of(self.dir.path())
            )
        })
    }

    /// Waits until the maillog contains `needle` (e.g. `"status=sent"`,
    /// `"status=bounced"`) and returns the whole maillog. The error has its tail.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let mut log = String::new();
        wait_until(
            timeout,
            &format!("{needle:?} in the Postfix maillog"),
            || {
                log = self.maillog();
                log.contains(needle)
            },
        )
        .map(|()| log.clone())
        .map_err(|e| format!("{e}{}", log_of(self.dir.path())))
    }

    fn postfix_cmd(&self, action: &str) -> Command {
        let mut cmd = Command::new("postfix");
        cmd.arg("-c").arg(self.config_dir()).arg(action);
        cmd
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = run_with_timeout(self.postfix_cmd("stop"), Duration::from_secs(20));
        let pid = self.master_pid;
        if pid == 0 {
            return;
        }
        if wait_until(Duration::from_secs(5), "postfix master exit", || {
            !pid_alive(pid)
        })
        .is_err()
        {
            signal(pid, libc::SIGKILL);
            let _ = wait_until(Duration::from_secs(5), "postfix master exit", || {
                !pid_alive(pid)
            });
        }
    }
}

/// Creates `etc/` (main.cf, master.cf), `queue/` and `data/` under `dir`.
fn setup_dirs(dir: &Path, port: u16, relay_port: u16, extra: &[(&str, &str)]) {
    use std::os::unix::fs::PermissionsExt;
    let d = dir.display();
    // Postfix's unprivileged daemons (user postfix) must reach the queue.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    for sub in ["etc", "queue", "data"] {
        std::fs::create_dir(dir.join(sub)).expect("postfix: mkdir");
    }
    let (uid, gid) = postfix_user();
    std::os::unix::fs::chown(dir.join("data"), Some(uid), Some(gid)).expect("chown data dir");

    let mut settings: Vec<(String, String)> = [
        ("compatibility_level", "3.6".to_string()),
        ("queue_directory", format!("{d}/queue")),
        ("data_directory", format!("{d}/data")),
        ("meta_directory", "/etc/postfix".to_string()),
        ("myhostname", HOSTNAME.to_string()),
        ("mydomain", "localdomain".to_string()),
        ("myorigin", "$myhostname".to_string()),
        ("inet_interfaces", "127.0.0.1".to_string()),
        ("inet_protocols", "ipv4".to_string()),
        ("mydestination", String::new()),
        ("mynetworks", "127.0.0.0/8".to_string()),
        ("alias_maps", String::new()),
        ("alias_database", String::new()),
        ("local_recipient_maps", String::new()),
        (
            "local_transport",
            "error:local delivery disabled".to_string(),
        ),
        (
            "smtpd_relay_restrictions",
            "permit_mynetworks, reject_unauth_destination".to_string(),
        ),
        ("relayhost", format!("[127.0.0.1]:{relay_port}")),
        ("smtp_tls_security_level", "may".to_string()),
        ("smtp_tls_loglevel", "1".to_string()),
        ("smtputf8_enable", "yes".to_string()),
        ("smtp_host_lookup", "native".to_string()),
        ("smtp_dns_support_level", "disabled".to_string()),
        ("lmtp_dns_support_level", "disabled".to_string()),
        ("smtpd_peername_lookup", "no".to_string()),
        ("smtp_connect_timeout", "5s".to_string()),
        ("queue_run_delay", "2s".to_string()),
        ("minimal_backoff_time", "2s".to_string()),
        ("maximal_backoff_time", "10s".to_string()),
        ("smtpd_error_sleep_time", "0".to_string()),
        ("in_flow_delay", "0".to_string()),
        ("message_size_limit", "52428800".to_string()),
        ("mailbox_size_limit", "0".to_string()),
        ("biff", "no".to_string()),
        ("maillog_file", format!("{d}/maillog")),
        ("maillog_file_prefixes", d.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in extra {
        match settings.iter_mut().find(|(key, _)| key == k) {
            Some(entry) => entry.1 = v.to_string(),
            None => settings.push((k.to_string(), v.to_string())),
        }
    }
    let main_cf: String = settings
        .iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    std::fs::write(dir.join("etc/main.cf"), main_cf).expect("write main.cf");

    // The stock services, all chroot n, plus our own smtpd port.
    let master_cf = format!(
        "\
127.0.0.1:{port} inet n - n - - smtpd
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
"
    );
    std::fs::write(dir.join("etc/master.cf"), master_cf).expect("write master.cf");
    backdate_config(&dir.join("etc"));
}

/// Postfix commands wait (re-reading it every 300 ms, for ~1.5 s) until a
/// freshly modified `main.cf` looks settled; give the files an old mtime.
fn backdate_config(etc: &Path) {
    let past = std::time::SystemTime::now() - Duration::from_secs(60);
    for name in ["main.cf", "master.cf"] {
        let file = std::fs::File::options().append(true).open(etc.join(name));
        if let Err(e) = file.and_then(|f| f.set_modified(past)) {
            panic!("postfix: cannot set mtime of {name}: {e}");
        }
    }
}

/// uid and gid of the `postfix` user (from /etc/passwd).
fn postfix_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == "postfix")
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
        })
        .expect("no postfix user in /etc/passwd (is postfix installed?)")
}

fn read_lossy(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// "\nmaillog tail:\n..." for messages.
fn log_of(dir: &Path) -> String {
    format!(
        "\nPostfix maillog tail:\n{}",
        tail(&read_lossy(&dir.join("maillog")), 30)
    )
}

/// Sends one message over SMTP to 127.0.0.1:`port`: EHLO, MAIL FROM, RCPT TO
/// for each of `to`, DATA, QUIT.
///
/// The message gets CRLF line endings (a bare LF becomes CRLF), a final CRLF
/// if missing, and dot-stuffing. MAIL FROM carries `BODY=8BITMIME` if the
/// message has 8-bit bytes and `SMTPUTF8` if an address or the header
/// section has non-ASCII bytes, each only if the server offers it.
/// Err carries the command and the server's reply on any reply outside
/// 2xx/3xx (or on a network error). Every read and write has a 60 s timeout.
pub fn smtp_send(port: u16, from: &str, to: &[&str], message: &[u8]) -> Result<(), String> {
    smtp_send_impl(port, from, to, message, None)
}

/// Like [`smtp_send`], but MAIL FROM gets exactly `mail_params` (e.g.
/// `["BODY=8BITMIME", "SMTPUTF8"]`), whatever the server offers.
pub fn smtp_send_with_params(
    port: u16,
    from: &str,
    to: &[&str],
    message: &[u8],
    mail_params: &[&str],
) -> Result<(), String> {
    smtp_send_impl(port, from, to, message, Some(mail_params))
}

fn smtp_send_impl(
    port: u16,
    from: &str,
    to: &[&str],
    message: &[u8],
    mail_params: Option<&[&str]>,
) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    let timeout = Some(Duration::from_secs(60));
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(timeout)
        .map_err(|e| e.to_string())?;
    let mut client = Client {
        reader: BufReader::new(stream.try_clone().map_err(|e| e.to_string())?),
        writer: stream,
        started: Instant::now(),
    };
    client.expect("greeting", None, 2)?;
    let ehlo = client.expect("EHLO", Some(b"EHLO client.localdomain\r\n"), 2)?;
    let offers = |ext: &str| {
        ehlo.lines().skip(1).any(|l| {
            l.get(4..)
                .is_some_and(|e| e.split_whitespace().next() == Some(ext))
        })
    };
    let params: Vec<String> = match mail_params {
        Some(p) => p.iter().map(|s| s.to_string()).collect(),
        None => {
            let mut p = Vec::new();
            if !message.is_ascii() && offers("8BITMIME") {
                p.push("BODY=8BITMIME".to_string());
            }
            let (head, _) = crate::sink::split_message(message);
            let utf8 = !from.is_ascii() || to.iter().any(|t| !t.is_ascii()) || !head.is_ascii();
            if utf8 && offers("SMTPUTF8") {
                p.push("SMTPUTF8".to_string());
            }
            p
        }
    };
    let mut mail = format!("MAIL FROM:<{from}>");
    for p in &params {
        mail.push(' ');
        mail.push_str(p);
    }
    mail.push_str("\r\n");
    client.expect("MAIL FROM", Some(mail.as_bytes()), 2)?;
    for rcpt in to {
        client.expect(
            "RCPT TO",
            Some(format!("RCPT TO:<{rcpt}>\r\n").as_bytes()),
            2,
        )?;
    }
    client.expect("DATA", Some(b"DATA\r\n"), 3)?;
    client.expect("end of data", Some(&encode_data(message)), 2)?;
    let _ = client.send(b"QUIT\r\n");
    Ok(())
}

/// CRLF line endings, a final CRLF, dot-stuffing, and the final ".\r\n".
fn encode_data(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 8);
    let mut at_line_start = true;
    for (i, &b) in message.iter().enumerate() {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && (i == 0 || message[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    started: Instant,
}

impl Client {
    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer
            .write_all(bytes)
            .and_then(|()| self.writer.flush())
            .map_err(|e| format!("write: {e}"))
    }

    /// Sends `command` (if any), reads the (multi-line) reply, and checks
    /// that its first digit is `class` (or 2/3). Returns the reply text.
    fn expect(&mut self, what: &str, command: Option<&[u8]>, class: u8) -> Result<String, String> {
        if let Some(c) = command {
            self.send(c).map_err(|e| format!("{what}: {e}"))?;
        }
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => {
                    return Err(format!(
                        "{what}: connection closed; reply so far: {reply:?}"
                    ))
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(format!(
                        "{what}: read after {:?}: {e}; reply so far: {reply:?}",
                        self.started.elapsed()
                    ))
                }
            }
            reply.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        let first = reply.as_bytes().first().copied().unwrap_or(b'0');
        if first == b'0' + class {
            Ok(reply)
        } else {
            Err(format!("{what}: {}", reply.trim_end()))
        }
    }
}
