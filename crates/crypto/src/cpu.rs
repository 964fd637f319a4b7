//! CPU-heavy work (encryption, parsing and verifying keys) runs here, off the
//! async workers, on a pool bounded by the number of CPUs.
//!
//! tokio's blocking pool alone would start up to 512 threads, so a burst of
//! large messages or key-server answers could run hundreds of encryptions at
//! once. [`run`] first takes one of `available_parallelism()` permits (a
//! waiting job costs no thread), then runs the job on the blocking pool. The
//! caller's future owns the job: when it is dropped (a message timed out, a
//! lookup hit its deadline), a job still waiting never starts, and a running
//! one sees [`Cancel::is_cancelled`] and stops at its next check.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// Tells a running job that nobody waits for its result any more.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token that is never cancelled (for callers without a deadline).
    pub fn never() -> Cancel {
        Cancel::default()
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Sets the job's token when the caller's future goes away.
struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// How many jobs run at once: the number of CPUs.
pub fn limit() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(limit()))
}

/// Runs `job` on the bounded pool and returns its result; `Err` only if the
/// job panicked (its panic text). Must be called inside a tokio runtime.
pub async fn run<T, F>(job: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&Cancel) -> T + Send + 'static,
{
    let cancel = Cancel::default();
    let _guard = CancelOnDrop(cancel.clone());
    let permit = permits()
        .acquire()
        .await
        .map_err(|_| "the CPU pool is closed".to_string())?;
    let handle = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job(&cancel)
    });
    handle.await.map_err(|e| format!("CPU job failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_limit_jobs_run_at_once() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..limit() * 4)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(run(move |_| {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        for j in jobs {
            j.await.unwrap().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most >= 1 && most <= limit(), "{most} > {}", limit());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_caller_cancels_its_running_job() {
        let (tx, rx) = std::sync::mpsc::channel();
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let fut = run(move |cancel| {
            s.store(true, Ordering::SeqCst);
            // Work that would go on for a minute unless cancelled.
            for _ in 0..6000 {
                if cancel.is_cancelled() {
                    tx.send("cancelled").unwrap();
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            tx.send("finished").unwrap();
        });
        let r = tokio::time::timeout(Duration::from_millis(200), fut).await;
        assert!(r.is_err(), "the caller gave up");
        assert!(started.load(Ordering::SeqCst));
        let got = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap();
        assert_eq!(got, Ok("cancelled"));
    }
}
