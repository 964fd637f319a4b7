//! The queue: where a message waits, durably, between "250" and the upstream.
//!
//! The pipeline builds every copy of a message (encrypted for its group's
//! keys, or the original bytes for plain recipients) and hands them to the
//! queue; the client hears 250 only once they are committed to the store
//! (fsynced: SQLite `synchronous = FULL`, PostgreSQL `synchronous_commit`).
//! So plaintext rests in the queue only for recipients who get it in the
//! clear anyway. Delivery workers then relay each copy, keep each
//! recipient's state (queued, deferred, delivered, failed, held), retry on
//! `queue.retry_schedule`, give up after `queue.max_age`, and queue the DSNs
//! ([`dsn`]). Several instances can share one PostgreSQL database: a copy is
//! delivered by whoever holds its lease, and a fencing token keeps an
//! instance that lost its lease from writing over the new owner's work.
//!
//! Files: [`admin`] (list, show, flush, hold, release, delete, bounce),
//! [`config`] (`[queue]`), [`model`] (what is stored), `sql.rs`
//! (every statement), `writer.rs` (group commit), `deliver.rs` (workers,
//! scanner, upstream health), [`keywait`] (copies held until their
//! recipient's key is found), [`dsn`] (reports).

pub mod admin;
pub mod config;
mod deliver;
pub mod dsn;
mod id;
pub mod keywait;
pub mod model;
mod script;
mod sql;
mod writer;

pub use config::{QueueConfig, Schedule};
pub use deliver::{Upstream, Workers};
pub use id::next as next_id;
pub use keywait::{Held, KeyWait, Lookup, KEY_WAIT};
pub use model::{MessageKind, NewCopy, NewMessage, NewRecipient, Ret, State};

use sealgate_metrics::Metrics;
use sealgate_store::{AuditRecord, Store};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Notify};
use writer::{Op, StoredCopy};

/// Why something could not be queued. The client gets 452 4.3.1; the text
/// is for the log.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot write to the queue: {0}")]
    Write(String),
    #[error("cannot read the queue: {0}")]
    Read(String),
    #[error("the queue is shutting down")]
    Closed,
    #[error("no message {0:?} in the queue")]
    NotFound(String),
}

/// Takes `<db>.lock` exclusively for as long as the file stays open; an
/// error naming the file if another process holds it.
fn lock_single_instance(db: &std::path::Path) -> Result<std::fs::File, QueueError> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = std::path::PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| QueueError::Write(format!("cannot open {}: {e}", path.display())))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |_| {
            QueueError::Write(format!(
                "another sealgate already runs on this SQLite store ({} is locked); a SQLite store serves one instance, use PostgreSQL for several",
                path.display()
            ))
        },
    )?;
    Ok(file)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A copy ready for a worker: its id and the fencing token it is leased with.
pub(crate) struct Job {
    pub copy_id: String,
    pub token: i64,
    /// When the lease was taken: a job that waited long for a worker renews
    /// it first (or drops the job if another instance took the copy).
    pub leased_at: std::time::Instant,
    /// The copy as just committed, when this instance queued it and it is
    /// small: its first attempt needs not read it back.
    pub preloaded: Option<Preloaded>,
}

/// A copy the delivery takes from memory. Its bytes count against
/// [`PRELOAD_BUDGET`] until it is dropped, so that jobs waiting for a
/// worker hold a bounded amount of memory.
pub(crate) struct Preloaded {
    loaded: Option<Box<sql::Loaded>>,
    charge: usize,
    inner: std::sync::Weak<Inner>,
}

impl Preloaded {
    /// The copy, for its attempt (which `queue.concurrency` bounds): it
    /// stops counting against the budget.
    pub(crate) fn into_loaded(mut self) -> sql::Loaded {
        *self.loaded.take().expect("taken once")
    }
}

impl Drop for Preloaded {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner
                .preloaded_bytes
                .fetch_sub(self.charge, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Most bytes of preloaded copies held at once; beyond it, jobs read
/// their copy from the store as the scanner's do.
const PRELOAD_BUDGET: usize = 32 << 20;

pub(crate) struct Inner {
    pub store: Store,
    pub schedule: Schedule,
    /// `smtp.hostname`: Reporting-MTA of DSNs.
    pub hostname: String,
    /// This process's name in `lease_owner`.
    pub instance: String,
    pub writer: mpsc::Sender<Op>,
    /// Copies this instance leased at once when they were queued.
    pub jobs: mpsc::UnboundedSender<Job>,
    pub job_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    /// Jobs sent and not yet started.
    pub backlog: std::sync::atomic::AtomicUsize,
    /// Bytes held by [`Preloaded`] copies.
    pub preloaded_bytes: std::sync::atomic::AtomicUsize,
    /// Something may be due: a DSN was queued, or the scanner should look.
    pub wake: Notify,
    /// Set at shutdown: workers and scanner stop taking copies.
    pub stop: tokio::sync::watch::Sender<bool>,
    pub metrics: Metrics,
    /// Looks held recipients' keys up again ([`Queue::set_key_wait`]);
    /// until it is set, held copies only wait.
    pub key_wait: std::sync::OnceLock<Arc<dyn KeyWait>>,
    /// SQLite: the lock file held while this instance runs.
    _lock: Option<std::fs::File>,
}

impl Inner {
    /// Hands a leased copy to the workers.
    pub(crate) fn push(&self, job: Job) {
        self.backlog
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.jobs.send(job).is_err() {
            self.backlog
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A handle on the queue; cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

impl Queue {
    /// Opens the queue on `store` and recovers it: copies of messages that
    /// never completed are removed and, on SQLite (one instance only), every
    /// lease is released. Starts the writer; [`Queue::start`] starts delivery.
    pub async fn open(
        store: Store,
        schedule: Schedule,
        hostname: &str,
        metrics: Metrics,
    ) -> Result<Queue, QueueError> {
        let single = store.backend() == sealgate_store::Backend::Sqlite;
        // SQLite is for one instance: a second one on the same file would
        // release the first one's leases at start and deliver its copies too.
        let lock = match store.sqlite_path() {
            Some(db) => Some(lock_single_instance(db)?),
            None => None,
        };
        let mut conn = store
            .durable_pool()
            .acquire()
            .await
            .map_err(|e| QueueError::Write(e.to_string()))?;
        // Another instance may be writing a message right now on PostgreSQL:
        // only copies an hour old are surely abandoned.
        let orphan_before = if single {
            i64::MAX
        } else {
            now_ms() - 3_600_000
        };
        let (orphans, leases) = sql::recover(&mut conn, orphan_before, single)
            .await
            .map_err(|e| QueueError::Write(e.to_string()))?;
        drop(conn);
        if orphans > 0 || leases > 0 {
            tracing::info!(
                incomplete_copies_removed = orphans,
                leases_released = leases,
                "queue recovered"
            );
        }
        let mut r = [0u8; 4];
        let _ = openssl::rand::rand_bytes(&mut r);
        let instance = format!(
            "{hostname}/{}/{:02x}{:02x}{:02x}{:02x}",
            std::process::id(),
            r[0],
            r[1],
            r[2],
            r[3]
        );
        let (jobs, job_rx) = mpsc::unbounded_channel();
        Ok(Queue {
            inner: Arc::new(Inner {
                writer: writer::spawn(store.clone()),
                store,
                schedule,
                hostname: hostname.to_string(),
                instance,
                jobs,
                job_rx: std::sync::Mutex::new(Some(job_rx)),
                backlog: Default::default(),
                preloaded_bytes: Default::default(),
                wake: Notify::new(),
                stop: tokio::sync::watch::channel(false).0,
                metrics,
                key_wait: std::sync::OnceLock::new(),
                _lock: lock,
            }),
        })
    }

    /// Starts the delivery workers and the scanner, relaying through `relay`.
    pub fn start(&self, relay: Arc<dyn sealgate_relay::Relay>, remote_mta: &str) -> Workers {
        self.start_routes(
            Upstream {
                relay,
                name: remote_mta.to_string(),
            },
            None,
        )
    }

    /// [`Queue::start`] with a second upstream for incoming mail
    /// ([`MessageKind::Incoming`]).
    pub fn start_routes(&self, outbound: Upstream, incoming: Option<Upstream>) -> Workers {
        deliver::start(self.inner.clone(), outbound, incoming)
    }

    /// Who looks the keys of held recipients up again (the pipeline); set
    /// once, before [`Queue::start`] (a second call is ignored).
    pub fn set_key_wait(&self, key_wait: Arc<dyn KeyWait>) {
        let _ = self.inner.key_wait.set(key_wait);
    }

    /// Begins queuing a message; add its copies, then commit.
    pub fn draft(&self, message: NewMessage) -> Draft {
        Draft {
            queue: self.clone(),
            message,
            pending: None,
            copies: 0,
            failed: Vec::new(),
            header: Vec::new(),
        }
    }

    pub fn schedule(&self) -> &Schedule {
        &self.inner.schedule
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Free bytes where the queue lives: the SQLite file's file system;
    /// `None` on PostgreSQL (the server's disk is not ours to see) or if it
    /// cannot be read.
    pub fn free_space(&self) -> Option<u64> {
        let path = self.inner.store.sqlite_path()?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => std::path::Path::new("."),
        };
        let st = rustix::fs::statvfs(dir).ok()?;
        Some(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Whether a new message may be taken: `Err` (for 452 4.3.1) when the
    /// queue's disk is below `queue.min_free_space` or the writer is gone.
    pub fn accepting(&self) -> Result<(), String> {
        if self.inner.writer.is_closed() {
            return Err("the queue writer has stopped".into());
        }
        match self.free_space() {
            Some(free) if free < self.inner.schedule.min_free_space => Err(format!(
                "{free} bytes free where the queue lives, below queue.min_free_space ({})",
                self.inner.schedule.min_free_space
            )),
            _ => Ok(()),
        }
    }

    /// For `/readyz`: the queue's tables answer a write on the durable pool
    /// (one that changes nothing), and [`Queue::accepting`] holds.
    pub async fn check_writable(&self) -> Result<(), String> {
        self.accepting()?;
        sqlx::query("UPDATE queue_copy SET active = active WHERE id = ''")
            .execute(self.inner.store.durable_pool())
            .await
            .map_err(|e| format!("queue not writable: {e}"))?;
        Ok(())
    }

    /// Writes a message's audit row beside the flow: the reply never waits
    /// for it. On SQLite it goes through the queue's one writer (two writers
    /// would fight over the database lock); on PostgreSQL it is written on
    /// its own connection, bounded by [`AUDIT_TIMEOUT`].
    pub fn audit(&self, record: AuditRecord) {
        if self.inner.store.backend() == sealgate_store::Backend::Sqlite {
            if let Err(e) = self.inner.writer.try_send(Op::Audit(Box::new(record))) {
                let id = match &e {
                    mpsc::error::TrySendError::Full(Op::Audit(r))
                    | mpsc::error::TrySendError::Closed(Op::Audit(r)) => r.id.clone(),
                    _ => String::new(),
                };
                tracing::error!(queue_id = %id, "the queue writer is busy; audit row dropped");
            }
            return;
        }
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(AUDIT_TIMEOUT, store.record_audit(&record)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(queue_id = %record.id, "cannot write the audit row: {e}")
                }
                Err(_) => tracing::error!(
                    queue_id = %record.id,
                    "the audit row was not written within {} s; dropped",
                    AUDIT_TIMEOUT.as_secs()
                ),
            }
        });
    }
}

impl Queue {
    /// `copy` of `m`, just committed, as its first delivery would read it
    /// from the store; `None` when [`PRELOAD_BUDGET`] is spent (the
    /// delivery then reads it).
    ///
    /// The copy is leased to this instance from its commit on, so what an
    /// admin does to it meanwhile is what they do to a delivery under way
    /// (a hold or a delete does not stop it), as for any leased copy.
    fn preload(
        &self,
        m: &NewMessage,
        c: writer::StoredCopy,
        expires_at: i64,
        delay_dsn_at: Option<i64>,
        received_at: i64,
    ) -> Option<Preloaded> {
        use std::sync::atomic::Ordering;
        let inner = &self.inner;
        let charge = c.copy.data.len();
        let before = inner.preloaded_bytes.fetch_add(charge, Ordering::Relaxed);
        if before + charge > PRELOAD_BUDGET {
            inner.preloaded_bytes.fetch_sub(charge, Ordering::Relaxed);
            return None;
        }
        let due = c
            .copy
            .recipients
            .into_iter()
            .map(|r| sql::DueRecipient {
                seq: i64::from(r.seq),
                address: r.address,
                orcpt: r.orcpt,
                notify: r.notify,
                attempts: 0,
                state: State::Queued,
            })
            .collect();
        Some(Preloaded {
            loaded: Some(Box::new(sql::Loaded {
                message_id: m.id.clone(),
                kind: m.kind,
                sender: m.sender.clone(),
                envid: m.envid.clone(),
                ret: m.ret,
                body_8bitmime: m.body_8bitmime,
                smtputf8: m.smtputf8,
                received_at,
                expires_at,
                client: m.client.clone(),
                method: c.copy.method,
                delay_dsn_at,
                due,
                data: c.copy.data,
            })),
            charge,
            inner: Arc::downgrade(inner),
        })
    }
}

/// Longest wait for one audit row written beside the flow.
pub const AUDIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A message being queued. At most one built copy is held here: adding the
/// next one writes the previous one first (staged, invisible to delivery
/// until [`Draft::commit`]). A draft dropped without commit leaves staged
/// copies that the next start removes (on PostgreSQL: once they are an
/// hour old).
pub struct Draft {
    queue: Queue,
    message: NewMessage,
    pending: Option<StoredCopy>,
    copies: usize,
    /// Recipients whose copy could not be built: they get a failure DSN.
    failed: Vec<dsn::RecipientReport>,
    /// The original header section, returned in that DSN.
    header: Vec<u8>,
}

impl Draft {
    /// Adds a copy.
    pub async fn add(&mut self, copy: NewCopy) -> Result<(), QueueError> {
        if let Some(previous) = self.pending.take() {
            let (answer, rx) = oneshot::channel();
            self.queue
                .inner
                .writer
                .send(Op::Stage {
                    message_id: self.message.id.clone(),
                    copy: previous,
                    answer,
                })
                .await
                .map_err(|_| QueueError::Closed)?;
            rx.await
                .map_err(|_| QueueError::Closed)?
                .map_err(QueueError::Write)?;
        }
        self.pending = Some(StoredCopy {
            id: format!("{}.{}", self.message.id, self.copies),
            copy,
        });
        self.copies += 1;
        Ok(())
    }

    /// Records a recipient whose copy could not be built; if the message is
    /// queued, its sender gets a failure DSN for it (unless the sender is
    /// null or NOTIFY says otherwise). `original` is the message as
    /// received: only its header section is kept.
    pub fn fail(&mut self, recipient: dsn::RecipientReport, notify: Option<&str>, original: &[u8]) {
        if !model::wants(notify, "FAILURE") {
            return;
        }
        if self.header.is_empty() {
            self.header = dsn::header_section(original).to_vec();
        }
        self.failed.push(recipient);
    }

    /// How many copies were added.
    pub fn len(&self) -> usize {
        self.copies
    }

    pub fn is_empty(&self) -> bool {
        self.copies == 0
    }

    /// Writes the message durably and hands its copies to this instance's
    /// workers. When this returns `Ok`, the message survives a crash.
    pub async fn commit(self) -> Result<(), QueueError> {
        let inner = &self.queue.inner;
        let s = &inner.schedule;
        let received = self.message.received_at;
        let expires_at = received.saturating_add(ms(s.max_age));
        let delay_dsn_at = s
            .delay_warning_after
            .map(|d| received.saturating_add(ms(d)));
        let now = now_ms();
        let until = now.saturating_add(ms(s.lease));
        let mut reports = Vec::new();
        if !self.failed.is_empty()
            && !self.message.sender.is_empty()
            && self.message.kind.reported()
        {
            let report = dsn::Report {
                kind: dsn::ReportKind::Failed,
                reporting_mta: &inner.hostname,
                queue_id: &self.message.id,
                to: &self.message.sender,
                envid: self.message.envid.as_deref(),
                received_from: &self.message.client,
                arrival: received,
                recipients: self.failed,
                copy: &self.header,
                copy_is_clear: false,
                ret: None,
            };
            reports.push(deliver::report_message(&inner.schedule, &report, now));
        }
        let has_reports = !reports.is_empty();
        // What a delivery reads of the message, in case the last copy
        // comes back from the writer to be delivered from memory.
        let meta = self.message.clone();
        let (answer, rx) = oneshot::channel();
        inner
            .writer
            .send(Op::Complete {
                copy_ids: (0..self.copies)
                    .map(|i| format!("{}.{i}", self.message.id))
                    .collect(),
                message: self.message,
                last: self.pending,
                expires_at,
                delay_dsn_at,
                reports,
                lease: (inner.instance.clone(), until),
                answer,
            })
            .await
            .map_err(|_| QueueError::Closed)?;
        let done = rx
            .await
            .map_err(|_| QueueError::Closed)?
            .map_err(QueueError::Write)?;
        let mut last = done.last;
        for copy_id in done.ids {
            let preloaded = match last.take() {
                Some(c) if c.id == copy_id => {
                    self.queue
                        .preload(&meta, c, expires_at, delay_dsn_at, received)
                }
                other => {
                    last = other;
                    None
                }
            };
            // The first claim of a copy has token 1.
            inner.push(Job {
                copy_id,
                token: 1,
                leased_at: std::time::Instant::now(),
                preloaded,
            });
        }
        if has_reports {
            inner.metrics.dsn_sent(sealgate_metrics::DsnKind::Failed);
            inner.wake.notify_one();
        }
        Ok(())
    }
}
