//! The durable queue's performance goal (issue 7), measured in one run on
//! one machine. Prints numbers; asserts nothing but that the runs worked
//! (these machines are shared and noisy: figures move by tens of percent).
//!
//! 1. sealgate with the durable queue, PGP, 10 KB, one recipient, 50
//!    sessions (`smtp-source` → `sealgate serve` → `smtp-sink`), against
//!    Postfix relaying the same load unencrypted (`smtp-source` → Postfix
//!    with its own queue → `smtp-sink`): messages accepted per second (a
//!    250 from each means "on disk") and the ratio; also the time until
//!    each had delivered everything.
//! 2. The rise of sealgate's peak RSS for one 25 MB PGP message.
//! 3. Fan-out: one 10 KB message to 100 recipients with keys, msgs/s.
//!
//! The resolver's cached lookups per second are printed by
//! `cargo bench -p sealgate-keys --bench resolver`.
//!
//!   cargo bench -p sealgate --bench queue [-- [MESSAGES] [ratio] [rss] [fanout]]
//!
//! Naming one or more of `ratio`, `rss`, `fanout` runs only those parts.

use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::{smtp_send, Postfix};
use sealgate_testkit::process::{wait_for_port, ChildGuard};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sealgate");
const SESSIONS: &str = "50";
const SIZE: &str = "10240";

fn smtp_sink() -> (ChildGuard, u16) {
    let port = free_port();
    let mut cmd = Command::new("smtp-sink");
    // smtp-sink drops privileges when run as root.
    if is_root() {
        cmd.args(["-u", "nobody"]);
    }
    cmd.arg(format!("127.0.0.1:{port}")).arg("512");
    let child = ChildGuard::spawn(cmd, "smtp-sink");
    wait_for_port(port, Duration::from_secs(10)).expect("smtp-sink listens");
    (child, port)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// smtp-source: `n` messages to `rcpt` (with `per` recipients each, the
/// address prefixed by a number when `per` > 1); seconds taken.
fn source(port: u16, n: usize, rcpt: &str, per: usize) -> f64 {
    source_with(port, n, rcpt, per, None)
}

/// [`source`], sending the message in `file` (headers and body) when given.
fn source_with(port: u16, n: usize, rcpt: &str, per: usize, file: Option<&Path>) -> f64 {
    let t = Instant::now();
    let mut cmd = Command::new("smtp-source");
    cmd.args(["-s", SESSIONS, "-m", &n.to_string()])
        .args(["-r", &per.to_string()])
        .args(["-f", "sender@bench.test", "-t", rcpt]);
    match file {
        Some(f) => cmd.arg("-F").arg(f),
        None => cmd.args(["-l", SIZE]),
    };
    let out = cmd
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run smtp-source (Debian package postfix)");
    assert!(
        out.status.success(),
        "smtp-source: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed().as_secs_f64()
}

struct Gateway {
    child: ChildGuard,
    port: u16,
    dir: tempfile::TempDir,
}

impl Gateway {
    fn start(upstream: u16, keyring: &Path, smime_cert: &Path) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("sealgate.toml");
        std::fs::write(
            &config,
            format!(
                "[smtp]\nlisten = \"127.0.0.1:{port}\"\nmax_connections = 256\nmax_connections_per_client = 256\n\
                 [relay]\nupstream = \"127.0.0.1:{upstream}\"\ntls = \"none\"\n\
                 [store]\nurl = \"sqlite://{d}/data/sealgate.db\"\n\
                 [keys]\npgp_keyrings = [\"{ring}\"]\nsmime_certificates = [\"{cert}\"]\n\
                 [admin]\nlisten = \"\"\n[log]\nlevel = \"warn\"\n",
                d = dir.path().display(),
                ring = keyring.display(),
                cert = smime_cert.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir.path())
            .arg("--config")
            .arg(&config)
            .arg("serve");
        let child = ChildGuard::spawn(cmd, "sealgate");
        wait_for_port(port, Duration::from_secs(30)).expect("sealgate listens");
        Gateway { child, port, dir }
    }

    /// Seconds until the queue is empty.
    fn drain(&self) -> f64 {
        let t = Instant::now();
        loop {
            let out = Command::new(BIN)
                .current_dir(self.dir.path())
                .args(["--config", "sealgate.toml", "queue", "list", "--json"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && text.trim() == "[]" {
                return t.elapsed().as_secs_f64();
            }
            assert!(
                t.elapsed() < Duration::from_secs(600),
                "queue never drained"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(5000);
    let parts = ["ratio", "rss", "fanout"];
    let all = !args.iter().any(|a| parts.contains(&a.as_str()));
    let run = |part: &str| all || args.iter().any(|a| a == part);
    let work = tempfile::tempdir().unwrap();
    let gpg = GnupgHome::new();
    gpg.gen_key("Bench <pgp@bench.test>", "future-default");
    // smtp-source numbers the recipients of `-r 100`; from 0 or 1.
    for i in 0..=if run("fanout") { 100 } else { -1 } {
        gpg.gen_key(&format!("Fan <{i}fan@bench.test>"), "future-default");
    }
    let ca = sealgate_testkit::pki::TestCa::new("Bench CA");
    let smime = ca.issue(sealgate_testkit::pki::CertOptions {
        email: Some("smime@bench.test".into()),
        ..Default::default()
    });
    let cert = work.path().join("smime.pem");
    std::fs::write(&cert, &smime.cert_pem).unwrap();
    let ring = work.path().join("keys.asc");
    std::fs::write(&ring, gpg.export_armored("bench.test")).unwrap();
    println!(
        "queue benchmark: {n} messages of {SIZE} bytes, {SESSIONS} sessions, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let (_sink, sink_port) = smtp_sink();
    if run("ratio") {
        // 1. sealgate (durable queue, PGP) against Postfix (its queue, plain).
        let gw = Gateway::start(sink_port, &ring, &cert);
        let secs = source(gw.port, n, "pgp@bench.test", 1);
        let drained = gw.drain();
        let sealgate_rate = n as f64 / secs;
        let sealgate_total = n as f64 / (secs + drained);
        drop(gw);

        let (_sink2, sink2_port) = smtp_sink();
        let postfix = Postfix::start_with_config(sink2_port, &[("default_process_limit", "200")]);
        let secs = source(postfix.port(), n, "x@open.test", 1);
        let t = Instant::now();
        postfix
            .wait_for_queue_empty(Duration::from_secs(600))
            .expect("Postfix drains");
        let drained = t.elapsed().as_secs_f64();
        let postfix_rate = n as f64 / secs;
        let postfix_total = n as f64 / (secs + drained);
        drop(postfix);
        println!(
            "{:<44} {:>12} {:>18}",
            "case", "accepted/s", "accepted+sent/s"
        );
        println!(
            "{:<44} {sealgate_rate:>12.0} {sealgate_total:>18.0}",
            "sealgate, durable queue, PGP"
        );
        println!(
            "{:<44} {postfix_rate:>12.0} {postfix_total:>18.0}",
            "Postfix, its queue, unencrypted"
        );
        println!(
            "ratio sealgate/Postfix: {:.2} accepted, {:.2} accepted+sent (target >= 2.0)",
            sealgate_rate / postfix_rate,
            sealgate_total / postfix_total
        );
    }

    if run("rss") {
        // 2. Peak RSS for one 25 MB message, PGP then S/MIME (VmHWM only
        // rises: the S/MIME figure is measured on a fresh gateway).
        let line = format!("{}\r\n", "q".repeat(76));
        let body = format!(
            "Subject: big\r\n\r\n{}",
            line.repeat(25 * 1024 * 1024 / line.len())
        );
        for (method, rcpt) in [("PGP", "pgp@bench.test"), ("S/MIME", "smime@bench.test")] {
            let gw = Gateway::start(sink_port, &ring, &cert);
            let idle = gw.peak_rss();
            smtp_send(gw.port, "sender@bench.test", &[rcpt], body.as_bytes())
                .expect("25 MB message accepted");
            gw.drain();
            let peak = gw.peak_rss();
            println!(
                "peak RSS for one {} MB {method} message: {} MB above idle ({} MB), {:.1}x its size (target <= 3x)",
                body.len() >> 20,
                (peak - idle) >> 20,
                idle >> 20,
                (peak - idle) as f64 / body.len() as f64
            );
        }
    }

    if run("fanout") {
        // 3. Fan-out: one message to 100 recipients with keys; first with
        // the recipients only in the envelope (each is a Bcc to the
        // gateway: a copy each, as every copy was before copies were
        // shared), then with all of them in To (one shared copy).
        let m = (n / 20).max(50);
        let to: Vec<String> = (0..=100).map(|i| format!("{i}fan@bench.test")).collect();
        // smtp-source sends the file line by line with CRLF: LF here.
        let line = format!("{}\n", "f".repeat(76));
        let msg = work.path().join("fanout.eml");
        std::fs::write(
            &msg,
            format!(
                "From: sender@bench.test\nTo: {}\nSubject: fan-out\n\n{}",
                to.join(",\n "),
                line.repeat(10 * 1024 / line.len())
            ),
        )
        .unwrap();
        for (case, file) in [
            ("a copy per recipient (Bcc)", None),
            ("To: one shared copy", Some(msg.as_path())),
        ] {
            let gw = Gateway::start(sink_port, &ring, &cert);
            let secs = source_with(gw.port, m, "fan@bench.test", 100, file);
            let drained = gw.drain();
            println!(
                "fan-out, 100 recipients with keys per message, {case}: {:.1} msgs/s accepted, {:.1} accepted+sent ({m} messages)",
                m as f64 / secs,
                m as f64 / (secs + drained)
            );
        }
    }
}
