//! Per-client counters, after Postfix's anvil: concurrent sessions and recent
//! AUTH failures per client address (invariant 7, "Bounded").
//!
//! A client is its IP address; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`,
//! a listener on `[::]`) counts as the IPv4 address. IPv6 clients are counted
//! per address, not per prefix, so a client spreading over its /64 is bounded
//! only by the global limits (`max_connections`, and the password checks
//! running at once, see `auth.rs`).
//!
//! The table is bounded: an entry exists while its client has a session or
//! AUTH failures inside the window; expired entries are swept once per window,
//! and past [`MAX_TRACKED`] clients the failures of a departing client are
//! forgotten rather than kept (they cost a password check each, which the
//! global bound on checks makes far too slow to fill the table in one window).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::ServerConfig;

/// Most client addresses kept in the table.
const MAX_TRACKED: usize = 65_536;

/// The counters of all clients; one per listener, shared by its sessions.
pub(crate) struct Anvil {
    max_sessions: usize,
    failure_limit: usize,
    window: Duration,
    table: Mutex<Table>,
}

struct Table {
    clients: HashMap<IpAddr, Client>,
    next_sweep: Instant,
}

#[derive(Default)]
struct Client {
    sessions: usize,
    /// Password checks running now for this client (they count against the
    /// failure budget until they end, so parallel sessions cannot overdraw it).
    checking: usize,
    /// When the recent AUTH failures happened, oldest first.
    failures: VecDeque<Instant>,
}

impl Client {
    fn forget_old(&mut self, now: Instant, window: Duration) {
        while self
            .failures
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            self.failures.pop_front();
        }
    }

    fn idle(&self) -> bool {
        self.sessions == 0 && self.checking == 0 && self.failures.is_empty()
    }
}

/// `now + window`, without overflowing on an absurd window.
fn after(now: Instant, window: Duration) -> Instant {
    now.checked_add(window)
        .or_else(|| now.checked_add(Duration::from_secs(86_400)))
        .unwrap_or(now)
}

/// The address a client is counted under.
fn key(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl Anvil {
    pub(crate) fn new(config: &ServerConfig) -> Arc<Anvil> {
        Arc::new(Anvil {
            max_sessions: config.max_connections_per_client,
            failure_limit: config.auth_failure_limit,
            window: config.auth_failure_window,
            table: Mutex::new(Table {
                clients: HashMap::new(),
                next_sweep: after(Instant::now(), config.auth_failure_window),
            }),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Nothing under this lock can panic; a poisoned lock still holds
        // consistent counters.
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now >= table.next_sweep {
            let window = self.window;
            table.clients.retain(|_, c| {
                c.forget_old(now, window);
                !c.idle()
            });
            table.next_sweep = after(now, window);
        }
        table
    }

    /// Counts a new session from `ip`, or `None` when the client already has
    /// `max_connections_per_client` sessions.
    pub(crate) fn connect(self: &Arc<Self>, ip: IpAddr) -> Option<SessionSlot> {
        let ip = key(ip);
        let mut table = self.table();
        let client = table.clients.entry(ip).or_default();
        if client.sessions >= self.max_sessions {
            let idle = client.idle();
            if idle {
                table.clients.remove(&ip);
            }
            return None;
        }
        client.sessions += 1;
        Some(SessionSlot {
            anvil: self.clone(),
            ip,
        })
    }

    /// Whether `ip` has AUTH failures left in its budget (failures inside the
    /// window plus checks running).
    pub(crate) fn auth_allowed(&self, ip: IpAddr) -> bool {
        let ip = key(ip);
        let now = Instant::now();
        let mut table = self.table();
        match table.clients.get_mut(&ip) {
            Some(client) => {
                client.forget_old(now, self.window);
                client.failures.len() + client.checking < self.failure_limit
            }
            None => self.failure_limit > 0,
        }
    }

    /// Reserves one password check for `ip` if its budget allows one.
    pub(crate) fn begin_auth(self: &Arc<Self>, ip: IpAddr) -> Option<AuthAttempt> {
        let ip = key(ip);
        let now = Instant::now();
        let mut table = self.table();
        let client = table.clients.entry(ip).or_default();
        client.forget_old(now, self.window);
        if client.failures.len() + client.checking >= self.failure_limit {
            if client.idle() {
                table.clients.remove(&ip);
            }
            return None;
        }
        client.checking += 1;
        Some(AuthAttempt {
            anvil: self.clone(),
            ip,
            failed: false,
        })
    }
}

/// One session of a client; dropping it ends the count.
pub(crate) struct SessionSlot {
    anvil: Arc<Anvil>,
    ip: IpAddr,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut table = self.anvil.table();
        let crowded = table.clients.len() > MAX_TRACKED;
        if let Some(client) = table.clients.get_mut(&self.ip) {
            client.sessions = client.sessions.saturating_sub(1);
            if crowded && client.sessions == 0 {
                client.failures.clear();
            }
            if client.idle() {
                table.clients.remove(&self.ip);
            }
        }
    }
}

/// A password check in progress, counted against its client's budget; it
/// counts as a failure only if [`failed`](Self::failed) is called.
pub(crate) struct AuthAttempt {
    anvil: Arc<Anvil>,
    ip: IpAddr,
    failed: bool,
}

impl AuthAttempt {
    /// The password was wrong (or the user unknown): one failure recorded.
    pub(crate) fn failed(mut self) {
        self.failed = true;
    }
}

impl Drop for AuthAttempt {
    fn drop(&mut self) {
        let limit = self.anvil.failure_limit;
        let mut table = self.anvil.table();
        if let Some(client) = table.clients.get_mut(&self.ip) {
            client.checking = client.checking.saturating_sub(1);
            if self.failed {
                client.failures.push_back(Instant::now());
                while client.failures.len() > limit {
                    client.failures.pop_front();
                }
            }
            if client.idle() {
                table.clients.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anvil(sessions: usize, failures: usize, window: Duration) -> Arc<Anvil> {
        Anvil::new(&ServerConfig {
            max_connections_per_client: sessions,
            auth_failure_limit: failures,
            auth_failure_window: window,
            ..ServerConfig::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sessions_are_counted_per_address() {
        let a = anvil(2, 10, Duration::from_secs(60));
        let one = a.connect(ip("192.0.2.1")).unwrap();
        // The same client through an IPv4-mapped IPv6 address.
        let two = a.connect(ip("::ffff:192.0.2.1")).unwrap();
        assert!(a.connect(ip("192.0.2.1")).is_none());
        let other = a.connect(ip("192.0.2.2")).unwrap();
        drop(one);
        let three = a.connect(ip("192.0.2.1")).unwrap();
        drop(two);
        drop(three);
        drop(other);
        assert!(a.table().clients.is_empty());
    }

    #[test]
    fn failures_and_running_checks_use_the_budget() {
        let a = anvil(20, 2, Duration::from_secs(60));
        let peer = ip("2001:db8::1");
        let _slot = a.connect(peer).unwrap();
        let first = a.begin_auth(peer).unwrap();
        let second = a.begin_auth(peer).unwrap();
        // Two checks running: the budget is taken until they end.
        assert!(!a.auth_allowed(peer));
        assert!(a.begin_auth(peer).is_none());
        drop(second); // succeeded: not a failure
        assert!(a.auth_allowed(peer));
        first.failed();
        a.begin_auth(peer).unwrap().failed();
        assert!(!a.auth_allowed(peer));
        assert!(a.begin_auth(peer).is_none());
        // Another client is not affected.
        assert!(a.auth_allowed(ip("2001:db8::2")));
    }

    #[test]
    fn failures_expire_with_the_window() {
        let a = anvil(20, 1, Duration::from_millis(50));
        let peer = ip("192.0.2.7");
        let slot = a.connect(peer).unwrap();
        a.begin_auth(peer).unwrap().failed();
        assert!(!a.auth_allowed(peer));
        drop(slot);
        // The failure outlives the session...
        assert!(!a.auth_allowed(peer));
        std::thread::sleep(Duration::from_millis(120));
        // ...but not the window, and the sweep empties the table.
        assert!(a.auth_allowed(peer));
        assert!(a.table().clients.is_empty());
    }
}
