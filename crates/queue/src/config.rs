//! `[queue]`: how many deliveries run at once, how long an instance owns a
//! copy, when a waiting recipient is tried again, and when it is given up.

use serde::Deserialize;
use std::time::Duration;

/// `[queue]` as written in the TOML file (durations as `"30s"`, `"5m"`,
/// `"4h"`, `"5d"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Deliveries running at once, in total.
    pub concurrency: usize,
    /// Seconds a claimed copy belongs to one instance; renewed while it is
    /// being delivered. Another instance takes it over once it runs out.
    pub lease_secs: u64,
    /// Waits between attempts; the last one repeats.
    pub retry_schedule: Vec<String>,
    /// A recipient still not delivered this long after arrival fails
    /// (4.4.7) and its sender gets a failure DSN.
    pub max_age: String,
    /// One delay DSN once a recipient has waited this long; "0" turns it off.
    pub delay_warning_after: String,
    /// Below this much free space where the queue lives, MAIL FROM gets
    /// 452 4.3.1 (bytes; SQLite only: a PostgreSQL server's disk is not
    /// ours to see).
    pub min_free_space: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            concurrency: 32,
            lease_secs: 60,
            retry_schedule: ["1m", "5m", "15m", "30m", "1h", "2h", "4h"]
                .map(String::from)
                .to_vec(),
            max_age: "5d".into(),
            delay_warning_after: "4h".into(),
            min_free_space: 1 << 30,
        }
    }
}

/// The checked form of [`QueueConfig`].
#[derive(Debug, Clone)]
pub struct Schedule {
    pub concurrency: usize,
    pub lease: Duration,
    pub retry: Vec<Duration>,
    pub max_age: Duration,
    pub delay_warning_after: Option<Duration>,
    pub min_free_space: u64,
}

impl QueueConfig {
    /// Checks every value; the error names the key.
    pub fn schedule(&self) -> Result<Schedule, String> {
        if self.concurrency == 0 {
            return Err("queue.concurrency: must be at least 1".into());
        }
        if self.lease_secs < 5 {
            return Err("queue.lease_secs: must be at least 5".into());
        }
        if self.retry_schedule.is_empty() {
            return Err("queue.retry_schedule: needs at least one wait, e.g. [\"5m\"]".into());
        }
        let retry = self
            .retry_schedule
            .iter()
            .map(|s| {
                parse_duration(s)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| format!("queue.retry_schedule: {s:?} is not a duration of at least 1s (e.g. \"30s\", \"5m\", \"4h\", \"1d\")"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let max_age = parse_duration(&self.max_age)
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                format!(
                    "queue.max_age: {:?} is not a duration of at least 1s (e.g. \"5d\")",
                    self.max_age
                )
            })?;
        let delay = parse_duration(&self.delay_warning_after).ok_or_else(|| {
            format!(
                "queue.delay_warning_after: {:?} is not a duration (e.g. \"4h\"; \"0\" turns it off)",
                self.delay_warning_after
            )
        })?;
        Ok(Schedule {
            concurrency: self.concurrency,
            lease: Duration::from_secs(self.lease_secs),
            retry,
            max_age,
            delay_warning_after: (!delay.is_zero()).then_some(delay),
            min_free_space: self.min_free_space,
        })
    }
}

impl Schedule {
    /// The wait after the `attempts`-th failed attempt (1-based).
    pub fn wait_after(&self, attempts: u32) -> Duration {
        let i = (attempts.max(1) as usize - 1).min(self.retry.len() - 1);
        self.retry[i]
    }
}

pub use sealgate_store::parse_duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_wait_repeats() {
        let s = QueueConfig::default().schedule().unwrap();
        assert_eq!(s.wait_after(1), Duration::from_secs(60));
        assert_eq!(s.wait_after(7), Duration::from_secs(4 * 3600));
        assert_eq!(s.wait_after(100), Duration::from_secs(4 * 3600));
        assert_eq!(s.max_age, Duration::from_secs(5 * 86_400));
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |f: fn(&mut QueueConfig)| {
            let mut c = QueueConfig::default();
            f(&mut c);
            c.schedule().unwrap_err()
        };
        assert!(bad(|c| c.retry_schedule = vec!["5x".into()]).starts_with("queue.retry_schedule"));
        assert!(bad(|c| c.retry_schedule = vec![]).starts_with("queue.retry_schedule"));
        assert!(bad(|c| c.max_age = "0".into()).starts_with("queue.max_age"));
        assert!(
            bad(|c| c.delay_warning_after = "soon".into()).starts_with("queue.delay_warning_after")
        );
        assert!(bad(|c| c.concurrency = 0).starts_with("queue.concurrency"));
        let off = QueueConfig {
            delay_warning_after: "0".into(),
            ..Default::default()
        };
        assert_eq!(off.schedule().unwrap().delay_warning_after, None);
    }
}
