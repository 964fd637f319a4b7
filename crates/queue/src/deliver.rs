//! Delivery: the workers that relay queued copies, the scanner that claims
//! what is due, and the upstream's health.
//!
//! A copy reaches a worker in one of two ways: at once, leased by the
//! instance that queued it (the fast path: most mail leaves within
//! milliseconds of its 250), or claimed by the scanner when its next attempt
//! is due or another instance's lease ran out. At most `queue.concurrency`
//! copies are in delivery at once; a worker renews its lease while the
//! upstream is slow. While the upstream accepts nothing, copies are not
//! tried one by one: they wait for the next probe, and the log says so once
//! when it goes down and once when it is back.

use crate::dsn::{self, RecipientReport, Report, ReportKind};
use crate::keywait::{Held, Lookup, KEY_WAIT};
use crate::model::{wants, MessageKind, NewCopy, NewMessage, NewRecipient, Ret, State};
use crate::sql::{self, DueRecipient, Loaded, RcptUpdate};
use crate::writer::{Generated, Op, StoredCopy};
use crate::{ms, now_ms, Inner, Job, Schedule};
use sealgate_metrics::{DeliveryResult, DsnKind, QueueState};
use sealgate_relay::{Delivery, DsnParams, Outbound, Relay};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch, Semaphore};

/// Longest sleep of the scanner when nothing is due: how soon it notices
/// work from `sealgate queue flush` or a lease another instance lost.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// The running delivery side; [`Workers::shutdown`] stops it (dropping it
/// does not).
pub struct Workers {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    slots: Arc<Semaphore>,
    concurrency: usize,
}

impl Workers {
    /// Stops taking copies, waits up to `grace` for the deliveries under
    /// way, and gives back the leases of copies not started.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.inner.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        let all = self.concurrency as u32;
        match tokio::time::timeout(grace, self.slots.acquire_many(all)).await {
            Ok(_) => {}
            Err(_) => tracing::warn!(
                "deliveries still under way after {} s; their copies are tried again (at the next start, or by another instance)",
                grace.as_secs()
            ),
        }
        let released = sqlx::query(
            "UPDATE queue_copy SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1",
        )
        .bind(&self.inner.instance)
        .execute(self.inner.store.durable_pool())
        .await;
        if let Err(e) = released {
            tracing::warn!("cannot give back this instance's leases: {e}");
        }
    }
}

/// Where copies go: a relay and its name in DSNs (Remote-MTA).
pub struct Upstream {
    pub relay: Arc<dyn Relay>,
    pub name: String,
}

pub(crate) fn start(inner: Arc<Inner>, outbound: Upstream, incoming: Option<Upstream>) -> Workers {
    let stop_rx = inner.stop.subscribe();
    let concurrency = inner.schedule.concurrency;
    let slots = Arc::new(Semaphore::new(concurrency));
    let route = |u: Upstream| Route {
        relay: u.relay,
        remote_mta: u.name,
        health: Health::default(),
    };
    let ctx = Arc::new(Ctx {
        inner: inner.clone(),
        outbound: route(outbound),
        incoming: incoming.map(route),
    });
    let job_rx = inner
        .job_rx
        .lock()
        .expect("job receiver lock")
        .take()
        .expect("Queue::start is called once");
    let dispatch = tokio::spawn(dispatch(
        ctx.clone(),
        job_rx,
        slots.clone(),
        stop_rx.clone(),
    ));
    let sample = tokio::spawn(sample(inner.clone(), stop_rx.clone()));
    let scan = tokio::spawn(scan(ctx, slots.clone(), stop_rx));
    Workers {
        inner,
        tasks: vec![dispatch, scan, sample],
        slots,
        concurrency,
    }
}

struct Ctx {
    inner: Arc<Inner>,
    outbound: Route,
    /// `None` when the incoming listener is off.
    incoming: Option<Route>,
}

/// One upstream and what the workers know about it.
struct Route {
    relay: Arc<dyn Relay>,
    /// The upstream's name in DSNs (Remote-MTA).
    remote_mta: String,
    health: Health,
}

impl Ctx {
    /// The route of a message of `kind`; `None` for incoming mail when no
    /// incoming upstream is configured (it waits, deferred).
    fn route(&self, kind: MessageKind) -> Option<&Route> {
        if kind.incoming() {
            self.incoming.as_ref()
        } else {
            Some(&self.outbound)
        }
    }
}

/// Hands jobs to workers as slots free up.
async fn dispatch(
    ctx: Arc<Ctx>,
    mut jobs: tokio::sync::mpsc::UnboundedReceiver<Job>,
    slots: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let job = tokio::select! {
            j = jobs.recv() => match j { Some(j) => j, None => return },
            _ = stop.changed() => return,
        };
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore open"),
            _ = stop.changed() => return,
        };
        ctx.inner.backlog.fetch_sub(1, Ordering::Relaxed);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            attempt(&ctx, job).await;
            drop(permit);
        });
    }
}

/// Claims due copies for free slots; sleeps until the next one is due.
async fn scan(ctx: Arc<Ctx>, slots: Arc<Semaphore>, mut stop: watch::Receiver<bool>) {
    let inner = &ctx.inner;
    loop {
        if *stop.borrow() {
            return;
        }
        let free = slots
            .available_permits()
            .saturating_sub(inner.backlog.load(Ordering::Relaxed));
        let mut claimed = 0;
        if free > 0 {
            let now = now_ms();
            let until = now.saturating_add(ms(inner.schedule.lease));
            let result = async {
                let mut conn = inner.store.durable_pool().acquire().await?;
                sql::claim(
                    &mut conn,
                    inner.store.backend(),
                    &inner.instance,
                    now,
                    until,
                    free as i64,
                )
                .await
            }
            .await;
            match result {
                Ok(jobs) => {
                    claimed = jobs.len();
                    for (copy_id, token) in jobs {
                        inner.push(Job {
                            copy_id,
                            token,
                            leased_at: std::time::Instant::now(),
                            preloaded: None,
                        });
                    }
                }
                Err(e) => tracing::warn!("queue scan failed: {e}"),
            }
        }
        if claimed > 0 && claimed == free {
            continue;
        }
        let wait = match sql::next_due(inner.store.pool()).await {
            Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(1, 1000) as u64),
            _ => SCAN_INTERVAL,
        };
        tokio::select! {
            _ = tokio::time::sleep(wait.min(SCAN_INTERVAL)) => {}
            _ = inner.wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// How often the queue gauges of /metrics are refreshed.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// Sets the queue length by state and the age of the oldest message.
async fn sample(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    loop {
        match sql::census(inner.store.pool()).await {
            Ok(c) => {
                let m = &inner.metrics;
                m.set_queue_length(QueueState::Queued, c.queued);
                m.set_queue_length(QueueState::Deferred, c.deferred);
                m.set_queue_length(QueueState::Held, c.held);
                let age = c.oldest.map_or(0, |t| (now_ms() - t).max(0));
                m.set_oldest_queued_age(Duration::from_millis(age as u64));
            }
            Err(e) => tracing::debug!("queue census failed: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(SAMPLE_INTERVAL) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Whether the upstream takes mail: when every recipient of a copy failed
/// for now (no connection, TLS, a 4xx to MAIL), the upstream counts as down
/// until a probe gets through.
#[derive(Default)]
struct Health {
    state: Mutex<HealthState>,
}

#[derive(Default)]
struct HealthState {
    /// Since when (Unix ms), if down.
    down_since: Option<i64>,
    /// The next copy tried after this time is the probe.
    probe_at: i64,
}

impl Health {
    /// `Some(t)`: do not try now, wait until `t`. `None`: go (possibly as
    /// the probe).
    fn gate(&self, now: i64, interval: i64) -> Option<i64> {
        let mut s = self.state.lock().expect("health lock");
        s.down_since?;
        if now < s.probe_at {
            return Some(s.probe_at);
        }
        s.probe_at = now.saturating_add(interval);
        None
    }

    fn record(&self, upstream: &str, deliveries: &[Delivery], now: i64, interval: i64) {
        let all_transient = !deliveries.is_empty()
            && deliveries
                .iter()
                .all(|d| matches!(d, Delivery::Transient(_)));
        let mut s = self.state.lock().expect("health lock");
        if all_transient {
            if s.down_since.is_none() {
                s.down_since = Some(now);
                let why = match &deliveries[0] {
                    Delivery::Transient(t) => t.as_str(),
                    _ => "",
                };
                tracing::warn!(
                    upstream,
                    error = %why,
                    "upstream not accepting mail; queued messages wait and are tried again every {} s",
                    interval / 1000
                );
            }
            s.probe_at = now.saturating_add(interval);
        } else if let Some(since) = s.down_since.take() {
            tracing::info!(
                upstream,
                down_secs = (now - since) / 1000,
                "upstream accepting mail again"
            );
        }
    }
}

/// One delivery attempt of one copy, from load to the written result.
async fn attempt(ctx: &Ctx, mut job: Job) {
    let inner = &ctx.inner;
    // A job that waited for a worker for a good part of its lease first
    // makes sure the copy is still ours, and for a whole lease more: else
    // another instance may deliver it at the same time.
    if job.leased_at.elapsed() > inner.schedule.lease / 3 {
        let until = now_ms().saturating_add(ms(inner.schedule.lease));
        match sql::renew(
            inner.store.durable_pool(),
            &job.copy_id,
            &inner.instance,
            job.token,
            until,
        )
        .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(copy = %job.copy_id, "copy taken over by another instance before it was tried here");
                return;
            }
            Err(e) => {
                tracing::warn!(copy = %job.copy_id, "cannot renew the lease; leaving the copy: {e}");
                return;
            }
        }
    }
    let now = now_ms();
    let read = match job.preloaded.take() {
        // Just committed by this instance: what the store would say.
        Some(p) => Ok(Some(p.into_loaded())),
        None => sql::load(inner.store.pool(), &job.copy_id, now).await,
    };
    let mut loaded = match read {
        Ok(Some(l)) => l,
        Ok(None) => return,
        Err(e) => {
            // The lease runs out and the copy is tried again.
            tracing::warn!(copy = %job.copy_id, "cannot read a queued copy: {e}");
            return;
        }
    };
    let probe = ms(inner.schedule.retry[0]).min(10_000);
    if loaded.due.is_empty() {
        finish(ctx, &job, now, Vec::new(), false, Vec::new()).await;
        return;
    }
    if loaded.method == KEY_WAIT && !key_wait(ctx, &job, &mut loaded, now).await {
        return;
    }
    let route = ctx.route(loaded.kind);
    if let Some(until) = route.and_then(|r| r.health.gate(now, probe)) {
        let updates = loaded
            .due
            .iter()
            .map(|r| RcptUpdate {
                seq: r.seq,
                state: r.state,
                attempts: r.attempts,
                next_attempt_at: until,
                last_error: None,
                attempted: false,
            })
            .collect();
        finish(ctx, &job, now, updates, false, Vec::new()).await;
        return;
    }
    let recipients: Vec<String> = loaded.due.iter().map(|r| r.address.clone()).collect();
    let notify: Vec<Option<String>> = loaded.due.iter().map(|r| r.notify.clone()).collect();
    let orcpt: Vec<Option<String>> = loaded.due.iter().map(|r| r.orcpt.clone()).collect();
    let deliveries = match route {
        Some(route) => {
            let send = route.relay.send(Outbound {
                sender: &loaded.sender,
                recipients: &recipients,
                body_8bitmime: loaded.body_8bitmime,
                smtputf8: loaded.smtputf8,
                data: &loaded.data,
                dsn: Some(DsnParams {
                    ret: loaded.ret.map(Ret::as_str),
                    envid: loaded.envid.as_deref(),
                    notify: &notify,
                    orcpt: &orcpt,
                }),
            });
            let deliveries = with_renewal(inner, &job, send).await;
            route
                .health
                .record(&route.remote_mta, &deliveries, now_ms(), probe);
            deliveries
        }
        None => {
            vec![
                Delivery::Transient("incoming mail and no incoming.upstream is configured".into());
                recipients.len()
            ]
        }
    };
    record(ctx, &job, &loaded, &deliveries, now_ms()).await;
}

/// Writes what an attempt did to each due recipient (new states, the
/// reports they call for), logs it and counts it.
async fn record(ctx: &Ctx, job: &Job, loaded: &Loaded, deliveries: &[Delivery], now: i64) {
    let (updates, delay_sent, reports) = outcome(ctx, loaded, deliveries, now);
    log_attempt(job, loaded, deliveries, &updates);
    let counted: Vec<State> = updates.iter().map(|u| u.state).collect();
    let kinds: Vec<DsnKind> = reports.iter().map(|g| g.kind).collect();
    if finish(ctx, job, now, updates, delay_sent, reports).await {
        let m = &ctx.inner.metrics;
        for state in counted {
            match state {
                State::Delivered => m.delivered(Duration::from_millis(
                    u64::try_from(now - loaded.received_at).unwrap_or(0),
                )),
                State::Deferred => m.delivery(DeliveryResult::Deferred),
                State::Failed => m.delivery(DeliveryResult::Failed),
                State::Queued | State::Held => {}
            }
        }
        for k in kinds {
            m.dsn_sent(k);
        }
    }
}

/// The attempt of a copy held for its recipient's key ([`crate::keywait`]):
/// the key is looked up again. True when it was found: the copy is
/// encrypted, stored so (the plaintext is gone from the store), and
/// `loaded` is now that copy, to be relayed. Otherwise the recipient waits
/// on the retry schedule, or fails once the hold's maximum age (or
/// `queue.max_age`) has passed, and that is written here.
async fn key_wait(ctx: &Ctx, job: &Job, l: &mut Loaded, now: i64) -> bool {
    let inner = &ctx.inner;
    let (found, max_age) = match inner.key_wait.get() {
        Some(k) if l.due.len() == 1 => {
            let held = Held {
                queue_id: &l.message_id,
                sender: &l.sender,
                recipient: &l.due[0].address,
                data: &l.data,
            };
            (k.lookup(held).await, k.max_age())
        }
        Some(k) => (
            Lookup::NotYet("internal: a held copy has more than one recipient".into()),
            k.max_age(),
        ),
        None => (
            Lookup::NotYet("the key lookup for held mail is not running".into()),
            inner.schedule.max_age,
        ),
    };
    match found {
        Lookup::Encrypted { method, data, keys } => {
            let (answer, rx) = oneshot::channel();
            let op = Op::Rewrite {
                copy_id: job.copy_id.clone(),
                owner: inner.instance.clone(),
                token: job.token,
                method: method.clone(),
                data,
                answer,
            };
            // The writer hands the bytes back by dropping them: read the
            // stored copy again, as a scanned job does.
            if inner.writer.send(op).await.is_err() {
                return false;
            }
            match rx.await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    tracing::warn!(copy = %job.copy_id, "the lease ran out while a held copy was encrypted; the instance that owns it now looks again");
                    return false;
                }
                Ok(Err(e)) => {
                    tracing::error!(copy = %job.copy_id, "cannot store the encrypted form of a held copy (tried again after its lease): {e}");
                    return false;
                }
                Err(_) => return false,
            }
            tracing::info!(queue_id = %l.message_id, copy = %job.copy_id, recipient = %l.due[0].address, method = %method, keys = %keys, "held copy encrypted: a usable key was found");
            let mut conn = match inner.store.pool().acquire().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(copy = %job.copy_id, "cannot read an encrypted held copy: {e}");
                    return false;
                }
            };
            match sql::copy_data(&mut conn, &job.copy_id).await {
                Ok(data) => {
                    l.data = data;
                    l.method = method;
                    true
                }
                Err(e) => {
                    tracing::warn!(copy = %job.copy_id, "cannot read an encrypted held copy: {e}");
                    false
                }
            }
        }
        Lookup::NotYet(why) => {
            let give_up = l.received_at.saturating_add(ms(max_age)).min(l.expires_at);
            let d = if now >= give_up {
                Delivery::Permanent(format!(
                    "5.7.1 no usable encryption key was found within policy.hold_max_age ({} s): {why}",
                    max_age.as_secs()
                ))
            } else {
                Delivery::Transient(format!(
                    "4.7.1 held until a usable encryption key is found: {why}"
                ))
            };
            // The hold's end is the time limit of this copy.
            l.expires_at = give_up;
            let deliveries = vec![d; l.due.len()];
            record(ctx, job, l, &deliveries, now).await;
            false
        }
    }
}

/// Runs `send` while renewing the lease every third of its length.
async fn with_renewal(
    inner: &Inner,
    job: &Job,
    send: impl std::future::Future<Output = Vec<Delivery>>,
) -> Vec<Delivery> {
    tokio::pin!(send);
    let every = inner.schedule.lease / 3;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            d = &mut send => return d,
            _ = tick.tick() => {
                let until = now_ms().saturating_add(ms(inner.schedule.lease));
                match sql::renew(inner.store.durable_pool(), &job.copy_id, &inner.instance, job.token, until).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(copy = %job.copy_id, "lease lost during delivery; another instance owns the copy now"),
                    Err(e) => tracing::warn!(copy = %job.copy_id, "cannot renew the lease: {e}"),
                }
            }
        }
    }
}

/// New recipient states from the deliveries, and the reports they call for.
fn outcome(
    ctx: &Ctx,
    l: &Loaded,
    deliveries: &[Delivery],
    now: i64,
) -> (Vec<RcptUpdate>, bool, Vec<Generated>) {
    let s = &ctx.inner.schedule;
    // A held copy's recipient was not refused by an upstream.
    let mta = if l.method == KEY_WAIT {
        None
    } else {
        ctx.route(l.kind).map(|r| r.remote_mta.as_str())
    };
    let mut updates = Vec::with_capacity(l.due.len());
    let mut failed = Vec::new();
    let mut delayed = Vec::new();
    let mut relayed = Vec::new();
    for (r, d) in l.due.iter().zip(deliveries) {
        let attempts = r.attempts + 1;
        let (state, next, error) = match d {
            Delivery::Accepted => (State::Delivered, now, None),
            Delivery::Relayed => {
                relayed.push(report_for(mta, r, "2.0.0".into(), None, now, None));
                (State::Delivered, now, None)
            }
            Delivery::Permanent(t) => {
                if wants(r.notify.as_deref(), "FAILURE") {
                    failed.push(report_for(
                        mta,
                        r,
                        dsn::status_of(t, true),
                        Some(t.clone()),
                        now,
                        None,
                    ));
                }
                (State::Failed, now, Some(t.clone()))
            }
            Delivery::Transient(t) if now >= l.expires_at => {
                let why = format!(
                    "gave up after queue.max_age ({} s); last error: {t}",
                    s.max_age.as_secs()
                );
                if wants(r.notify.as_deref(), "FAILURE") {
                    failed.push(report_for(
                        mta,
                        r,
                        "4.4.7".into(),
                        Some(why.clone()),
                        now,
                        None,
                    ));
                }
                (State::Failed, now, Some(why))
            }
            Delivery::Transient(t) => {
                let wait = ms(s.wait_after(u32::try_from(attempts).unwrap_or(u32::MAX)));
                let next = now.saturating_add(wait).min(l.expires_at);
                if wants(r.notify.as_deref(), "DELAY") {
                    delayed.push(report_for(
                        mta,
                        r,
                        dsn::status_of(t, false),
                        Some(t.clone()),
                        now,
                        Some(l.expires_at),
                    ));
                }
                (State::Deferred, next, Some(t.clone()))
            }
        };
        updates.push(RcptUpdate {
            seq: r.seq,
            state,
            attempts,
            next_attempt_at: next,
            last_error: error,
            attempted: true,
        });
    }
    let reportable = l.kind.reported() && !l.sender.is_empty();
    let mut reports = Vec::new();
    if reportable && !failed.is_empty() {
        reports.push(generated(ctx, l, ReportKind::Failed, failed, now));
    }
    if reportable && !relayed.is_empty() {
        reports.push(generated(ctx, l, ReportKind::Relayed, relayed, now));
    }
    let delay_due = l.delay_dsn_at.is_some_and(|t| now >= t)
        && updates.iter().any(|u| u.state == State::Deferred);
    if delay_due && reportable && !delayed.is_empty() {
        reports.push(generated(ctx, l, ReportKind::Delayed, delayed, now));
    }
    (updates, delay_due, reports)
}

fn report_for(
    remote_mta: Option<&str>,
    r: &DueRecipient,
    status: String,
    diagnostic: Option<String>,
    now: i64,
    until: Option<i64>,
) -> RecipientReport {
    RecipientReport {
        address: r.address.clone(),
        orcpt: r.orcpt.clone(),
        status,
        diagnostic,
        remote_mta: remote_mta.map(str::to_string),
        last_attempt: Some(now),
        will_retry_until: until,
    }
}

/// A report on a loaded copy, as a message of its own.
fn generated(
    ctx: &Ctx,
    l: &Loaded,
    kind: ReportKind,
    recipients: Vec<RecipientReport>,
    now: i64,
) -> Generated {
    let report = Report {
        kind,
        reporting_mta: &ctx.inner.hostname,
        queue_id: &l.message_id,
        to: &l.sender,
        envid: l.envid.as_deref(),
        received_from: &l.client,
        arrival: l.received_at,
        recipients,
        copy: &l.data,
        copy_is_clear: matches!(l.method.as_str(), "plain" | "pass-through"),
        ret: l.ret,
    };
    report_message(&ctx.inner.schedule, &report, now)
}

/// A report as a message of its own: from the null sender to the original
/// sender, never reported on itself.
pub(crate) fn report_message(schedule: &Schedule, report: &Report<'_>, now: i64) -> Generated {
    let bytes = dsn::build(report);
    let tag = match report.kind {
        ReportKind::Failed => "F",
        ReportKind::Delayed => "W",
        ReportKind::Relayed => "S",
    };
    let id = format!("{}D{tag}{now:X}", report.queue_id);
    Generated {
        kind: match report.kind {
            ReportKind::Failed => DsnKind::Failed,
            ReportKind::Delayed => DsnKind::Delayed,
            ReportKind::Relayed => DsnKind::Relayed,
        },
        expires_at: now.saturating_add(ms(schedule.max_age)),
        message: NewMessage {
            id: id.clone(),
            received_at: now,
            sender: String::new(),
            envid: None,
            ret: None,
            body_8bitmime: !bytes.is_ascii(),
            smtputf8: !report.to.is_ascii(),
            client: "sealgate".into(),
            kind: MessageKind::Dsn,
        },
        copy: StoredCopy {
            id: format!("{id}.0"),
            copy: NewCopy {
                method: "dsn".into(),
                recipients: vec![NewRecipient {
                    seq: 0,
                    address: report.to.to_string(),
                    orcpt: None,
                    notify: Some("NEVER".into()),
                }],
                data: bytes,
            },
        },
    }
}

/// One line per recipient, by its new state (a recipient whose time ran
/// out is "failed" though the upstream only said "later").
fn log_attempt(job: &Job, l: &Loaded, deliveries: &[Delivery], updates: &[RcptUpdate]) {
    for ((r, d), u) in l.due.iter().zip(deliveries).zip(updates) {
        let why = match d {
            Delivery::Transient(t) | Delivery::Permanent(t) => t.as_str(),
            Delivery::Accepted | Delivery::Relayed => "",
        };
        match u.state {
            State::Delivered => {
                tracing::info!(queue_id = %l.message_id, copy = %job.copy_id, recipient = %r.address, method = %l.method, "delivered")
            }
            State::Failed => {
                tracing::warn!(queue_id = %l.message_id, copy = %job.copy_id, recipient = %r.address, error = %u.last_error.as_deref().unwrap_or(why), "failed")
            }
            _ => {
                tracing::info!(queue_id = %l.message_id, copy = %job.copy_id, recipient = %r.address, attempts = u.attempts, error = %why, "deferred")
            }
        }
    }
}

/// Hands the result to the writer and waits for it; true once written. A
/// lost lease is logged.
async fn finish(
    ctx: &Ctx,
    job: &Job,
    now: i64,
    updates: Vec<RcptUpdate>,
    delay_dsn_sent: bool,
    reports: Vec<Generated>,
) -> bool {
    let inner = &ctx.inner;
    let has_reports = !reports.is_empty();
    let (answer, rx) = oneshot::channel();
    let op = Op::Finish {
        copy_id: job.copy_id.clone(),
        owner: inner.instance.clone(),
        token: job.token,
        now,
        updates,
        delay_dsn_sent,
        reports,
        answer,
    };
    if inner.writer.send(op).await.is_err() {
        return false;
    }
    match rx.await {
        Ok(Ok(true)) => {
            if has_reports {
                inner.wake.notify_one();
            }
            true
        }
        Ok(Ok(false)) => {
            tracing::warn!(
                copy = %job.copy_id,
                "the lease ran out during delivery; the result is left to the instance that owns the copy now"
            );
            false
        }
        Ok(Err(e)) => {
            tracing::error!(copy = %job.copy_id, "cannot write a delivery result (the copy is tried again after its lease): {e}");
            false
        }
        Err(_) => false,
    }
}
