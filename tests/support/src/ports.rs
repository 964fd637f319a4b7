//! Free loopback TCP ports for the test peers.
//!
//! Tests run in parallel threads and every peer (sink, Postfix, the gateway
//! under test, slapd, ...) needs its own port. [`free_port`] hands out ports that
//! were bindable a moment ago and never hands the same port out twice within
//! one test process.
//!
//! Ports are picked at random *below* the kernel's ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`): a port handed out here can then
//! not be grabbed by the kernel for an outgoing connection (or a `bind(:0)`) in
//! the window between [`free_port`] returning and the peer binding it. If no
//! such port can be found, it falls back to asking the kernel (`bind :0`).
//!
//! Several test processes may run at once on one machine (two engineers, or
//! `cargo test` and a benchmark). A port is therefore also reserved across
//! processes with a file `$TMPDIR/sealgate-test-ports/<port>` holding the pid
//! of the process that got it; a reservation whose process is gone is taken
//! over.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Lowest port ever handed out (well above the privileged and "well known"
/// service ports used on developer machines).
const LOWEST: u16 = 15000;

/// Ports handed out so far by this process.
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static SET: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    SET.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Returns a TCP port on 127.0.0.1 that was free when checked and that this
/// process has not handed out before.
///
/// The port is released before returning, so the caller must bind it soon;
/// a peer that fails to bind should retry with another `free_port()`.
///
/// # Panics
/// If no port can be bound at all (loopback unusable).
pub fn free_port() -> u16 {
    let upper = ephemeral_range_start().max(LOWEST + 1000);
    let mut set = handed_out().lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..200 {
        let port = LOWEST + (random_u64() % u64::from(upper - LOWEST)) as u16;
        if !set.contains(&port) && bindable(port) && reserve_across_processes(port) {
            set.insert(port);
            return port;
        }
    }
    // Fallback: let the kernel choose.
    for _ in 0..100 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("free_port: cannot bind 127.0.0.1:0: {e}"));
        let port = listener.local_addr().expect("local_addr").port();
        if set.insert(port) {
            return port;
        }
    }
    panic!("free_port: no free port found on 127.0.0.1");
}

/// Claims `port` for this process in the shared reservation directory.
/// False if a live process holds it; true if claimed (or if reservations
/// cannot be written at all: then the bind check alone decides).
fn reserve_across_processes(port: u16) -> bool {
    use std::io::{ErrorKind, Write};
    let dir = std::env::temp_dir().join("sealgate-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(port.to_string());
    let me = std::process::id();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut file) => {
            let _ = write!(file, "{me}");
            true
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let owner = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            match owner {
                Some(pid) if pid != me && crate::process::pid_alive(pid) => false,
                _ => std::fs::write(&path, me.to_string()).is_ok(),
            }
        }
        Err(_) => true,
    }
}

fn bindable(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// First port of the kernel's ephemeral range (32768 when unknown).
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A random 64-bit number (not cryptographic; for port picks and temporary
/// names). Mixes std's randomly keyed hasher with the time, the pid and a
/// counter, so two calls never return the same sequence.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(d) = SystemTime::now().duration_since(UNIX_EPOCH) {
        h.write_u128(d.as_nanos());
    }
    h.finish()
}
