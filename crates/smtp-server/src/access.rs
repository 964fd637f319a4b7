//! Relay access control (invariant 3, "No open relay").
//!
//! A client may hand us mail only if its address is in one of the configured
//! networks, or if it authenticated over TLS. The network half of that rule is
//! this one function, kept apart so it can be tested on its own.

use std::net::IpAddr;

/// Whether `ip` lies in one of `networks`. IPv4-mapped IPv6 addresses
/// (`::ffff:a.b.c.d`, seen on dual-stack listeners) are checked as IPv4.
pub(crate) fn network_allowed(networks: &[ipnet::IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    networks.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn v4_inside_and_outside() {
        let n = nets(&["10.0.0.0/8", "192.168.1.0/24"]);
        assert!(network_allowed(&n, "10.1.2.3".parse().unwrap()));
        assert!(network_allowed(&n, "192.168.1.200".parse().unwrap()));
        assert!(!network_allowed(&n, "192.168.2.1".parse().unwrap()));
        assert!(!network_allowed(&n, "127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn v6_and_mapped() {
        let n = nets(&["127.0.0.0/8", "2001:db8::/32"]);
        assert!(network_allowed(&n, "::ffff:127.0.0.1".parse().unwrap()));
        assert!(network_allowed(&n, "2001:db8::1".parse().unwrap()));
        assert!(!network_allowed(&n, "::1".parse().unwrap()));
    }

    #[test]
    fn empty_list_allows_nobody() {
        assert!(!network_allowed(&[], "127.0.0.1".parse().unwrap()));
    }
}
