//! Crash safety: `kill -9` at random moments under load loses nothing that
//! got a 250, and two instances on one PostgreSQL take over each other's
//! work when one dies. Messages are sent straight over SMTP so that the test
//! knows exactly which ones got 250.

use crate::gateway::Gateway;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::postgres::TempDatabase;
use sealgate_testkit::sink::Sink;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn config(upstream: u16, store: &str, relay_timeout: u64) -> String {
    format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\nhostname = \"gw.test\"\n\
         [relay]\nupstream = \"127.0.0.1:{upstream}\"\ntls = \"none\"\ntimeout_secs = {relay_timeout}\n\
         [store]\nurl = \"{store}\"\n\
         [queue]\nretry_schedule = [\"1s\"]\nlease_secs = 5\nconcurrency = 8\n"
    )
}

/// Which numbered messages got 250, from whom.
#[derive(Default)]
struct Load {
    next: AtomicUsize,
    accepted: Mutex<HashMap<usize, u16>>,
}

impl Load {
    /// Sends numbered messages to `port` until `total` were tried; a failed
    /// attempt (the gateway is down) is abandoned, not counted.
    fn run(&self, port: impl Fn() -> u16, total: usize) {
        loop {
            let n = self.next.fetch_add(1, Ordering::SeqCst);
            if n >= total {
                return;
            }
            let p = port();
            let m = format!(
                "From: a@apps.test\r\nTo: x@open.test\r\nMessage-ID: <n{n}@apps.test>\r\nSubject: {n}\r\n\r\nbody {n}\r\n"
            );
            match smtp_send(p, "a@apps.test", &["x@open.test"], m.as_bytes()) {
                Ok(()) => {
                    self.accepted.lock().unwrap().insert(n, p);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// How often each numbered message reached the sink.
fn arrivals(sink: &Sink) -> HashMap<usize, usize> {
    let mut seen = HashMap::new();
    for m in sink.messages() {
        let id = m.header("Message-ID").pop().unwrap_or_default();
        if let Some(n) = id
            .strip_prefix("<n")
            .and_then(|s| s.strip_suffix("@apps.test>"))
            .and_then(|s| s.parse().ok())
        {
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    seen
}

/// Waits until every accepted message arrived; returns the arrivals.
fn wait_for_all(
    sink: &Sink,
    accepted: &HashSet<usize>,
    timeout: Duration,
    log: &dyn Fn() -> String,
) -> HashMap<usize, usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = arrivals(sink);
        let missing: Vec<_> = accepted.iter().filter(|n| !seen.contains_key(n)).collect();
        if missing.is_empty() {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{} message(s) that got 250 never arrived, e.g. {:?}\n{}",
            missing.len(),
            &missing[..missing.len().min(10)],
            log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Issue 7: several `kill -9` at random moments during a 2,000-message load,
/// each followed by a restart on the same store. Every message that got 250
/// arrives; duplicates are no more than the copies that can be in flight at
/// a kill (queue.concurrency per kill).
#[test]
fn kill_9_under_load_loses_nothing_that_got_250() {
    let sink = Sink::start();
    let gw = Arc::new(Mutex::new(Gateway::start(&config(
        sink.port(),
        "sqlite://data/s.db",
        5,
    ))));
    let port = gw.lock().unwrap().port;
    let load = Arc::new(Load::default());
    let total = 2000;
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let load = load.clone();
            std::thread::spawn(move || load.run(|| port, total))
        })
        .collect();
    // Kill at pseudo-random moments while the load runs.
    let mut kills = 0;
    let mut seed = std::process::id() as u64 ^ 0x9e37_79b9_7f4a_7c15;
    while load.next.load(Ordering::SeqCst) < total * 9 / 10 && kills < 4 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(400 + (seed >> 33) % 1200));
        let mut g = gw.lock().unwrap();
        g.kill9();
        kills += 1;
        g.start_again();
    }
    for s in senders {
        s.join().unwrap();
    }
    let accepted: HashSet<usize> = load.accepted.lock().unwrap().keys().copied().collect();
    assert!(kills >= 2, "the load ended before the kills: {kills}");
    assert!(
        accepted.len() > total / 2,
        "most messages got 250: {}",
        accepted.len()
    );
    let log = || gw.lock().unwrap().child.output_tail(60);
    let seen = wait_for_all(&sink, &accepted, Duration::from_secs(120), &log);
    std::thread::sleep(Duration::from_secs(3));
    let seen = arrivals(&sink)
        .into_iter()
        .map(|(k, v)| (k, v.max(*seen.get(&k).unwrap_or(&0))))
        .collect::<HashMap<_, _>>();
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    assert!(
        duplicates <= kills * 8,
        "{duplicates} duplicate(s) after {kills} kill(s) with concurrency 8"
    );
}

/// Issue 7: two instances on one PostgreSQL database share the load; one
/// (whose upstream accepts connections and never answers, so its copies are
/// in flight or waiting, all leased) is killed with -9. The other delivers
/// the dead one's messages once their leases run out, with no duplicates.
#[test]
fn two_instances_on_postgres_take_over_after_kill_9() {
    let db =
        TempDatabase::create().expect("PostgreSQL on 127.0.0.1:5432 is required for this test");
    let sink = Sink::start();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let mut a = Gateway::start(&config(silent_port, &db.url(), 60));
    let b = Gateway::start(&config(sink.port(), &db.url(), 5));
    let (pa, pb) = (a.port, b.port);
    let load = Arc::new(Load::default());
    let total = 400;
    let turn = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let load = load.clone();
            let turn = turn.clone();
            std::thread::spawn(move || {
                load.run(
                    || {
                        if turn.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
                            pa
                        } else {
                            pb
                        }
                    },
                    total,
                )
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let accepted_map = load.accepted.lock().unwrap().clone();
    let by_a: HashSet<usize> = accepted_map
        .iter()
        .filter(|(_, p)| **p == pa)
        .map(|(n, _)| *n)
        .collect();
    assert!(by_a.len() > 50, "A took its share: {}", by_a.len());
    let a_log = a.kill9();
    let accepted: HashSet<usize> = accepted_map.keys().copied().collect();
    let seen = wait_for_all(&sink, &accepted, Duration::from_secs(120), &|| {
        format!("A:\n{a_log}\nB:\n{}", b.child.output_tail(60))
    });
    std::thread::sleep(Duration::from_secs(3));
    let seen = arrivals(&sink)
        .into_iter()
        .map(|(k, v)| (k, v.max(*seen.get(&k).unwrap_or(&0))))
        .collect::<HashMap<_, _>>();
    assert!(
        by_a.iter().all(|n| seen.contains_key(n)),
        "B delivered what A had accepted"
    );
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    assert_eq!(
        duplicates, 0,
        "A never delivered anything, so nothing twice"
    );
    drop(silent);
}

/// Issue 7: SIGTERM stops accepting, lets a session in the middle of DATA
/// finish (its message gets 250), gives a delivery stuck on a silent
/// upstream `smtp.shutdown_grace_secs`, and exits 0. Started again on the
/// same store with a working upstream, the queued messages are delivered.
#[test]
fn sigterm_drains_and_exits_0_and_nothing_is_lost() {
    use std::io::{BufRead, BufReader, Write};
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let grace = "[smtp]\nshutdown_grace_secs = 3\n";
    let mut gw =
        Gateway::start(&config(silent_port, "sqlite://data/s.db", 60).replace("[smtp]\n", grace));
    // One message in flight towards the silent upstream.
    smtp_send(
        gw.port,
        "a@apps.test",
        &["x@open.test"],
        b"Message-ID: <n1@apps.test>\r\n\r\none\r\n",
    )
    .unwrap();
    // A session halfway through DATA.
    let stream = std::net::TcpStream::connect(("127.0.0.1", gw.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut r = BufReader::new(stream.try_clone().unwrap());
    let mut w = stream;
    let mut line = String::new();
    let mut expect = |r: &mut BufReader<std::net::TcpStream>, code: &str| loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with(code), "want {code}: {line}");
        if line.as_bytes().get(3) == Some(&b' ') {
            return line.clone();
        }
    };
    expect(&mut r, "220");
    w.write_all(b"EHLO c.test\r\n").unwrap();
    expect(&mut r, "250");
    w.write_all(b"MAIL FROM:<a@apps.test>\r\nRCPT TO:<x@open.test>\r\nDATA\r\n")
        .unwrap();
    expect(&mut r, "250");
    expect(&mut r, "250");
    expect(&mut r, "354");
    w.write_all(b"Message-ID: <n2@apps.test>\r\n\r\nhalf")
        .unwrap();
    let t = Instant::now();
    sealgate_testkit::process::signal(gw.child.pid(), 15);
    std::thread::sleep(Duration::from_millis(300));
    w.write_all(b" and the rest\r\n.\r\n").unwrap();
    let reply = expect(&mut r, "250");
    assert!(reply.contains("queued as"), "{reply}");
    drop((r, w));
    let status = gw.terminate();
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        gw.child.output()
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "stopped within the grace time"
    );
    // New connections are refused now; on restart with a working upstream
    // both messages arrive.
    let sink = Sink::start();
    let cfg = std::fs::read_to_string(&gw.config).unwrap().replace(
        &format!("127.0.0.1:{silent_port}"),
        &format!("127.0.0.1:{}", sink.port()),
    );
    std::fs::write(&gw.config, cfg).unwrap();
    gw.start_again();
    let got = sink
        .wait_for(2, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.child.output()));
    assert_eq!(got.len(), 2);
    drop(silent);
}

/// A SQLite store serves one instance: a second `sealgate serve` on the
/// same store (which would release the first one's leases at start and
/// deliver its copies too) refuses to start, naming the lock.
#[test]
fn a_second_instance_on_the_same_sqlite_store_refuses_to_start() {
    let sink = Sink::start();
    let gw = Gateway::start(&config(sink.port(), "sqlite://data/s.db", 5));
    let other = gw.dir.path().join("other.toml");
    let port = sealgate_testkit::ports::free_port();
    std::fs::write(
        &other,
        config(sink.port(), "sqlite://data/s.db", 5).replace("{port}", &port.to_string())
            + "\n[admin]\nlisten = \"\"\n",
    )
    .unwrap();
    let mut cmd = std::process::Command::new(crate::gateway::BIN);
    cmd.current_dir(gw.dir.path())
        .arg("--config")
        .arg(&other)
        .arg("serve");
    let out = sealgate_testkit::process::run_with_timeout(cmd, Duration::from_secs(30)).unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "the second instance must not run: {text}"
    );
    assert!(
        text.contains("another sealgate already runs on this SQLite store"),
        "{text}"
    );
    // The first one still works.
    smtp_send(
        gw.port,
        "a@apps.test",
        &["x@open.test"],
        b"Subject: one\r\n\r\nx\r\n",
    )
    .unwrap();
    sink.wait_for(1, Duration::from_secs(20)).unwrap();
}
