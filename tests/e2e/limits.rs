//! Bounded disk and memory (issue 7 item 7) through the real binary: a full
//! disk is answered 452 4.3.1, never 250, and accepting resumes when space
//! returns; the in-flight budget turns some of many large concurrent
//! messages away with 452 while every session ends cleanly and the
//! gateway's memory stays bounded.

use crate::gateway::Gateway;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::Sink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A small tmpfs, unmounted when dropped (the gateway must be gone first).
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("fs");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs to mount a small tmpfs (run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs {
            dir,
            _parent: parent,
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// Fills the file system of `dir` with `name` until at most `leave` bytes
/// are free.
fn fill(dir: &Path, name: &str, leave: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(dir.join(name)).unwrap();
    let block = vec![0u8; 64 << 10];
    loop {
        let st = free_bytes(dir);
        if st <= leave {
            break;
        }
        let n = ((st - leave) as usize).min(block.len());
        if f.write_all(&block[..n]).is_err() {
            break;
        }
    }
    let _ = f.sync_all();
}

fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

fn config(sink: u16, store: &str, extra: &str) -> String {
    format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n{extra}\n[relay]\nupstream = \"127.0.0.1:{sink}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\n"
    )
}

#[test]
fn a_full_disk_gets_452_never_250_and_accepting_resumes() {
    let fs = Tmpfs::mount("24m");
    let sink = Sink::start();
    let store = format!("sqlite://{}/s.db", fs.dir.display());
    let min_free = "[queue]\nmin_free_space = 4194304\n";
    let mut gw = Gateway::start(
        &config(sink.port(), &store, "").replace("[relay]", &format!("{min_free}[relay]")),
    );
    let msg = |n: u32| {
        format!(
            "Subject: d{n}\r\nMessage-ID: <d{n}@apps.test>\r\n\r\n{}\r\n",
            "x".repeat(200)
        )
        .into_bytes()
    };
    smtp_send(gw.port, "a@apps.test", &["x@open.test"], &msg(1)).unwrap();
    sink.wait_for(1, Duration::from_secs(30)).unwrap();

    // Below queue.min_free_space: MAIL FROM gets 452 4.3.1.
    fill(&fs.dir, "filler-1", 2 << 20);
    let err = smtp_send(gw.port, "a@apps.test", &["x@open.test"], &msg(2)).unwrap_err();
    assert!(err.contains("452") && err.contains("4.3.1"), "{err}");

    // With no minimum, a disk that is really full: the write fails and
    // the client hears 452 4.3.1 at the end of DATA, not 250.
    gw.restart(
        &config(sink.port(), &store, "").replace("[relay]", "[queue]\nmin_free_space = 0\n[relay]"),
    );
    fill(&fs.dir, "filler-2", 0);
    let big = format!(
        "Subject: big\r\n\r\n{}",
        format!("{}\r\n", "y".repeat(998)).repeat(3000)
    );
    let err = smtp_send(gw.port, "a@apps.test", &["x@open.test"], big.as_bytes()).unwrap_err();
    assert!(
        err.contains("452") && err.contains("4.3.1"),
        "{err}\n{}",
        gw.log()
    );

    // Space returns: mail is taken again and delivered.
    std::fs::remove_file(fs.dir.join("filler-1")).unwrap();
    std::fs::remove_file(fs.dir.join("filler-2")).unwrap();
    smtp_send(gw.port, "a@apps.test", &["x@open.test"], &msg(3)).unwrap();
    let got = sink.wait_for(2, Duration::from_secs(30)).unwrap();
    assert!(String::from_utf8_lossy(&got[1].data).contains("<d3@apps.test>"));
    drop(gw);
}

/// Peak resident memory of a process (VmHWM), bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap()
}

#[test]
fn ten_concurrent_25mb_messages_within_a_100mib_budget() {
    let sink = Sink::start();
    let gw = Gateway::start(&config(
        sink.port(),
        "sqlite://data/s.db",
        "max_inflight_bytes = 104857600",
    ));
    let line = format!("{}\r\n", "z".repeat(76));
    let body = format!(
        "Subject: big\r\n\r\n{}",
        line.repeat(25 * 1024 * 1024 / line.len())
    );
    let body = std::sync::Arc::new(body);
    let port = gw.port;
    let results: Vec<Result<(), String>> = (0..10)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                smtp_send(port, "a@apps.test", &["x@open.test"], body.as_bytes())
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let taken = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(taken >= 1, "some are taken: {refused:?}");
    assert!(
        !refused.is_empty(),
        "100 MiB cannot hold ten 25 MB messages at once"
    );
    for e in &refused {
        assert!(
            e.contains("452") && e.contains("4.3.1"),
            "a clean 452, no broken session: {e}"
        );
    }
    sink.wait_for(taken, Duration::from_secs(120))
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    let peak = peak_rss(gw.child.pid());
    eprintln!(
        "taken {taken}, refused {}, peak RSS {} MiB",
        refused.len(),
        peak >> 20
    );
    // The budget bounds what sessions hold (100 MiB); building and queuing
    // copies of the messages taken adds a few times their size.
    assert!(peak < 1200 << 20, "peak RSS {} MiB", peak >> 20);
}
