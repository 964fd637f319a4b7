//! Readiness: the checks behind `/readyz`, passed in by the caller so that
//! this crate knows nothing of the store or the queue.

use async_trait::async_trait;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// One condition the gateway needs to do its work (e.g. "store": the
/// database answers; "queue": the queue writer is alive; "disk": free space
/// above `queue.min_free_space`).
///
/// `check` runs on every `/readyz` request, concurrently with the other
/// checks and bounded by [`crate::Limits::check_timeout`]: keep it cheap
/// (one `SELECT 1`, one `statvfs`). Its error text is shown on the
/// unauthenticated `/readyz`: say what failed, never a secret (no URL with a
/// password, no key material).
#[async_trait]
pub trait ReadinessCheck: Send + Sync + 'static {
    /// Short, stable name shown on `/readyz` (e.g. `store`).
    fn name(&self) -> &str;

    /// `Ok` when ready; `Err(why)` when not.
    async fn check(&self) -> Result<(), String>;
}

/// A [`ReadinessCheck`] from a name and an async closure; see [`check_fn`].
pub struct FnCheck<F> {
    name: String,
    f: F,
}

#[async_trait]
impl<F, Fut> ReadinessCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self) -> Result<(), String> {
        (self.f)().await
    }
}

/// A boxed check from an async closure:
/// `check_fn("store", move || { let s = store.clone(); async move { s.ping().await.map_err(|e| e.to_string()) } })`.
pub fn check_fn<F, Fut>(name: impl Into<String>, f: F) -> Box<dyn ReadinessCheck>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Box::new(FnCheck {
        name: name.into(),
        f,
    })
}

/// The answer of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub name: String,
    pub result: Result<(), String>,
}

/// Runs every check at once, each bounded by `limit` (a check that takes
/// longer, or panics, fails). Results come back in the order of `checks`.
pub(crate) async fn run_all(
    checks: &Arc<[Box<dyn ReadinessCheck>]>,
    limit: Duration,
) -> Vec<CheckResult> {
    let mut set = JoinSet::new();
    for i in 0..checks.len() {
        let checks = Arc::clone(checks);
        set.spawn(async move {
            let result = match tokio::time::timeout(limit, checks[i].check()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {} ms", limit.as_millis())),
            };
            (i, result)
        });
    }
    let mut results: Vec<Option<Result<(), String>>> = vec![None; checks.len()];
    while let Some(joined) = set.join_next().await {
        if let Ok((i, result)) = joined {
            results[i] = Some(result);
        }
    }
    checks
        .iter()
        .zip(results)
        .map(|(check, result)| CheckResult {
            name: check.name().to_owned(),
            result: result.unwrap_or_else(|| Err("the check panicked".into())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slow_and_panicking_checks_fail_and_order_is_kept() {
        let checks: Arc<[Box<dyn ReadinessCheck>]> = vec![
            check_fn("slow", || async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(())
            }),
            check_fn("ok", || async { Ok(()) }),
            check_fn("panics", || async { panic!("boom") }),
            check_fn("fails", || async { Err("disk full".to_string()) }),
        ]
        .into();
        let started = std::time::Instant::now();
        let results = run_all(&checks, Duration::from_millis(200)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        let names: Vec<_> = results.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["slow", "ok", "panics", "fails"]);
        assert_eq!(
            results[0].result,
            Err("no answer within 200 ms".to_string())
        );
        assert_eq!(results[1].result, Ok(()));
        assert_eq!(results[2].result, Err("the check panicked".to_string()));
        assert_eq!(results[3].result, Err("disk full".to_string()));
    }
}
