//! Queue ids: short, unique, sortable by time; they name a message in logs,
//! replies and the audit table.

use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `<unix millis in hex><4 random hex><counter>`, e.g. `19a8f0c2e11A3F20007`.
pub fn next() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut r = [0u8; 2];
    let _ = openssl::rand::rand_bytes(&mut r);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff;
    format!("{millis:X}{:02X}{:02X}{n:04X}", r[0], r[1])
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique() {
        let a = super::next();
        let b = super::next();
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
