//! `smtp.max_inflight_bytes`: one budget of message bytes held by all
//! sessions together, so that many large messages at once cannot take the
//! gateway's memory. A session takes bytes from it as DATA or BDAT content
//! arrives and gives them back once its message has been answered; a
//! message that would go over the budget is still read to its end (the
//! session stays in step) but kept nowhere, and gets `452 4.3.1`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The shared budget; cheap to clone.
#[derive(Clone)]
pub(crate) struct Budget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    used: AtomicUsize,
    metrics: Option<sealgate_metrics::Metrics>,
}

impl Budget {
    pub(crate) fn new(limit: usize, metrics: Option<sealgate_metrics::Metrics>) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                limit,
                used: AtomicUsize::new(0),
                metrics,
            }),
        }
    }

    /// Whether nothing at all is left (a new DATA is refused at once).
    pub(crate) fn exhausted(&self) -> bool {
        self.inner.used.load(Ordering::Relaxed) >= self.inner.limit
    }

    /// A reservation that holds nothing yet.
    pub(crate) fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
            refused: false,
        }
    }
}

/// Bytes one message holds; given back when dropped.
pub(crate) struct Reservation {
    budget: Budget,
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
        let mut used = inner.used.load(Ordering::Relaxed);
        loop {
            let Some(next) = used.checked_add(n).filter(|&v| v <= inner.limit) else {
                self.refused = true;
                return false;
            };
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
        drop(r1);
        assert!(!b.exhausted());
        let mut r3 = b.reservation();
        assert!(r3.take(100));
    }
}
