//! `smtp.max_inflight_bytes`: one budget of message bytes held by all
//! sessions together, so that many large messages at once cannot take the
//! gateway's memory. A session takes bytes from it as DATA or BDAT content
//! arrives and gives them back once its message has been answered; a
//! message that would go over the budget is still read to its end (the
//! session stays in step) but kept nowhere, and gets `452 4.3.1`.
//!
//! The oldest message in flight may always go on, even past the budget (by
//! at most `max_message_size`): else many large messages arriving together
//! would each take a share and all of them fail, and none would ever get
//! through.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The shared budget; cheap to clone.
#[derive(Clone)]
pub(crate) struct Budget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    used: AtomicUsize,
    metrics: Option<sealgate_metrics::Metrics>,
    /// Reservations alive, by age (the smallest is the oldest).
    alive: Mutex<BTreeSet<u64>>,
    next: AtomicU64,
}

impl Budget {
    pub(crate) fn new(limit: usize, metrics: Option<sealgate_metrics::Metrics>) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                limit,
                used: AtomicUsize::new(0),
                metrics,
                alive: Mutex::new(BTreeSet::new()),
                next: AtomicU64::new(0),
            }),
        }
    }

    /// Whether nothing at all is left (a new DATA is refused at once).
    pub(crate) fn exhausted(&self) -> bool {
        self.inner.used.load(Ordering::Relaxed) >= self.inner.limit
    }

    /// A reservation that holds nothing yet.
    pub(crate) fn reservation(&self) -> Reservation {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        self.inner
            .alive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        Reservation {
            budget: self.clone(),
            id,
            bytes: 0,
            refused: false,
        }
    }
}

/// Bytes one message holds; given back when dropped.
pub(crate) struct Reservation {
    budget: Budget,
    id: u64,
    bytes: usize,
    /// The budget said no once: the message is refused, nothing more is
    /// taken for it.
    refused: bool,
}

impl Reservation {
    /// Takes `n` more bytes; false (and from then on always false) if the
    /// budget cannot give them.
    pub(crate) fn take(&mut self, n: usize) -> bool {
        if self.refused {
            return false;
        }
        let inner = &self.budget.inner;
        let oldest = || {
            inner
                .alive
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first()
                == Some(&self.id)
        };
        let mut used = inner.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(n);
            if next > inner.limit && !oldest() {
                self.refused = true;
                return false;
            }
            match inner
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => used = now,
            }
        }
        self.bytes += n;
        if let Some(m) = &inner.metrics {
            m.add_inflight_bytes(n as u64);
        }
        true
    }

    #[cfg(test)]
    fn refused(&self) -> bool {
        self.refused
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let inner = &self.budget.inner;
        inner
            .alive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        inner.used.fetch_sub(self.bytes, Ordering::AcqRel);
        if let Some(m) = &inner.metrics {
            m.sub_inflight_bytes(self.bytes as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Budget;

    #[test]
    fn the_budget_is_shared_and_given_back() {
        let b = Budget::new(100, None);
        let mut r1 = b.reservation();
        assert!(r1.take(60));
        let mut r2 = b.reservation();
        assert!(!r2.take(50), "60 + 50 > 100");
        assert!(r2.refused() && !r2.take(1), "refused stays refused");
        assert!(r1.take(40));
        assert!(b.exhausted());
        // The oldest message in flight always goes on.
        assert!(r1.take(30));
        drop(r2);
        drop(r1);
        assert!(!b.exhausted());
        let mut r3 = b.reservation();
        assert!(r3.take(100));
        let mut r4 = b.reservation();
        assert!(!r4.take(1), "r3 is older");
    }
}
