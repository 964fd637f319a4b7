//! The clock of a background job over the store (key refresh, policy
//! following): a tick every period, ending when the stop signal turns true.

use std::time::Duration;

/// Ticks every `period` until `stop` turns true.
pub struct Periodic {
    tick: tokio::time::Interval,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Periodic {
    /// The first tick comes at once.
    pub fn new(period: Duration, stop: tokio::sync::watch::Receiver<bool>) -> Periodic {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Periodic { tick, stop }
    }

    /// Waits for the next tick: `false` once the job must stop.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.tick.tick() => {}
            _ = self.stop.changed() => return false,
        }
        !*self.stop.borrow()
    }
}
