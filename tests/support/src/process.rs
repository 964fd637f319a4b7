//! Child processes of the tests: started, watched, and always stopped.
//!
//! Every peer is a real program started by the test. [`ChildGuard`] owns such a
//! program, captures its output (for panic messages) and stops it by its own
//! pid when dropped, also when the test fails and unwinds. The helpers here
//! put a timeout on every wait, so that a test never hangs forever on a peer.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How much of a child's output [`ChildGuard`] keeps (the newest bytes).
const OUTPUT_KEEP: usize = 512 * 1024;

/// How long [`ChildGuard`]'s Drop waits after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A child process that is killed (SIGTERM to its process group, then SIGKILL
/// after 5 s) and reaped when the guard is dropped.
///
/// [`ChildGuard::spawn`] runs the command in its own process group, with
/// stdout and stderr captured into one buffer (see [`ChildGuard::output`]) and
/// stdin a pipe that stays open for the life of the guard. A child that reads
/// its stdin therefore sees EOF when the test process goes away, even if it
/// dies without running destructors (`tests/support/sink.py` exits then).
pub struct ChildGuard {
    name: String,
    pid: u32,
    child: Mutex<ChildState>,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<Vec<u8>>>,
}

struct ChildState {
    child: Child,
    status: Option<ExitStatus>,
}

impl ChildGuard {
    /// Spawns `cmd` as `name` (used in messages). Overrides the command's
    /// stdin/stdout/stderr as described on [`ChildGuard`].
    ///
    /// # Panics
    /// If the program cannot be started.
    pub fn spawn(mut cmd: Command, name: &str) -> ChildGuard {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {:?}: {e}", cmd.get_program()));
        let output = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            capture(out, Arc::clone(&output));
        }
        if let Some(err) = child.stderr.take() {
            capture(err, Arc::clone(&output));
        }
        ChildGuard {
            name: name.to_string(),
            pid: child.id(),
            stdin: child.stdin.take(),
            child: Mutex::new(ChildState {
                child,
                status: None,
            }),
            output,
        }
    }

    /// The child's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The name given to [`ChildGuard::spawn`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything the child wrote to stdout and stderr so far (interleaved,
    /// at most the newest 512 KiB, lossy UTF-8).
    pub fn output(&self) -> String {
        let buf = self.output.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// The last `lines` lines of [`ChildGuard::output`], for messages.
    pub fn output_tail(&self, lines: usize) -> String {
        tail(&self.output(), lines)
    }

    /// The exit status if the child has exited (it is reaped then), else None.
    pub fn try_wait(&self) -> Option<ExitStatus> {
        let mut st = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if st.status.is_none() {
            st.status = st.child.try_wait().ok().flatten();
        }
        st.status
    }

    /// Waits until the child's output contains `needle`. Fails early if the
    /// child exits first; the error carries the output tail.
    pub fn wait_for_output(&self, needle: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.try_wait() {
                // The pipes may still hold the last words.
                thread::sleep(Duration::from_millis(50));
                if self.output().contains(needle) {
                    return Ok(());
                }
                return Err(format!(
                    "{} exited ({}) before printing {needle:?}; output:\n{}",
                    self.name,
                    describe(status),
                    self.output_tail(40)
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} did not print {needle:?} within {timeout:?}; output:\n{}",
                    self.name,
                    self.output_tail(40)
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let mut st = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if st.status.is_some() {
            return;
        }
        // The leader is not reaped yet, so its pid (= pgid) cannot be reused.
        signal_group(self.pid, libc::SIGTERM);
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = st.child.try_wait() {
                st.status = Some(status);
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        // SIGKILL whatever is left of the group (grandchildren too) right away.
        signal_group(self.pid, libc::SIGKILL);
        if st.status.is_none() {
            st.status = st.child.wait().ok();
        }
    }
}

fn signal_group(pgid: u32, sig: libc::c_int) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid) {
        if pgid > 1 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(-pgid, sig);
            }
        }
    }
}

/// Sends `sig` (e.g. `libc::SIGTERM`) to the single process `pid`.
pub fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        if pid > 1 {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }
}

/// Copies a child's pipe into `buf` (keeping the newest [`OUTPUT_KEEP`] bytes)
/// on a background thread until EOF.
fn capture(mut pipe: impl Read + Send + 'static, buf: Arc<Mutex<Vec<u8>>>) {
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
                    b.extend_from_slice(&chunk[..n]);
                    if b.len() > OUTPUT_KEEP {
                        let excess = b.len() - OUTPUT_KEEP;
                        b.drain(..excess);
                    }
                }
            }
        }
    });
}

/// True if process `pid` exists and is not a zombie (reads `/proc`).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => match stat.rfind(')') {
            Some(i) => !matches!(stat[i + 1..].trim_start().chars().next(), Some('Z' | 'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// Waits until a TCP connection to 127.0.0.1:`port` succeeds.
pub fn wait_for_port(port: u16, timeout: Duration) -> Result<(), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = left.clamp(Duration::from_millis(10), Duration::from_millis(500));
        if TcpStream::connect_timeout(&addr, attempt).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "nothing accepted connections on 127.0.0.1:{port} within {timeout:?}"
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` (every 20 ms) until it returns true; `what` names the condition
/// in the error after `timeout`. `f` is called at least once.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut f: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd` to completion with stdin closed and output captured, killing its
/// process group if it takes longer than `timeout`. Returns the output
/// whatever the exit status; Err only if it cannot start or times out.
///
/// Output goes to anonymous temp files rather than pipes, so a daemon that
/// the command leaves behind holding them open (`postfix start`) does not
/// delay the return.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let files =
        tempfile::tempfile().and_then(|out| Ok((out.try_clone()?, tempfile::tempfile()?, out)));
    let (out, err, out_reader) = files.map_err(|e| format!("{what}: temp file: {e}"))?;
    let err_reader = err
        .try_clone()
        .map_err(|e| format!("{what}: temp file: {e}"))?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(20));
            }
            Ok(None) | Err(_) => {
                signal_group(child.id(), libc::SIGKILL);
                let _ = child.wait();
                break None;
            }
        }
    };
    let (stdout, stderr) = (read_all(out_reader), read_all(err_reader));
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(format!(
            "{what} did not finish within {timeout:?} (killed); stdout:\n{}\nstderr:\n{}",
            tail(&String::from_utf8_lossy(&stdout), 20),
            tail(&String::from_utf8_lossy(&stderr), 20)
        )),
    }
}

fn read_all(mut file: std::fs::File) -> Vec<u8> {
    use std::io::Seek;
    let mut buf = Vec::new();
    if file.rewind().is_ok() {
        let _ = file.read_to_end(&mut buf);
    }
    buf
}

/// Like [`run_with_timeout`], but also Err (with stderr and stdout) unless the
/// command exits 0. Returns stdout as (lossy) UTF-8.
pub fn run_ok(cmd: Command, timeout: Duration) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let out = run_with_timeout(cmd, timeout)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{what} failed ({}); stderr:\n{}\nstdout:\n{}",
            describe(out.status),
            tail(&String::from_utf8_lossy(&out.stderr), 30),
            tail(&String::from_utf8_lossy(&out.stdout), 30)
        ))
    }
}

/// "exit code 1" / "killed by signal 9".
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
