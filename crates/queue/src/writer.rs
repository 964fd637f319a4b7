//! The queue writer: one task that owns every durable write and commits
//! them in batches (group commit).
//!
//! A durable commit costs an fsync, about a millisecond here, so one commit
//! per message caps a gateway at about 1,000 messages a second. Sessions and
//! delivery workers hand their writes to this task instead and wait for the
//! answer; it takes whatever has arrived (up to [`MAX_BATCH`] operations),
//! runs them in one transaction and answers them all after the one commit.
//! Nobody is answered before the commit returned, so "250 only when durable"
//! holds for every operation of the batch. If the batch fails, each
//! operation is retried alone so that one bad operation fails only itself.

use crate::model::{NewCopy, NewMessage};
use crate::script::Script;
use crate::sql::{self, RcptUpdate};
use sealgate_store::{AuditRecord, Backend, Store};
use tokio::sync::{mpsc, oneshot};

/// Most operations in one transaction.
const MAX_BATCH: usize = 64;
/// Most copy bytes in one transaction (a batch of big messages would hold
/// the write lock for long).
const MAX_BATCH_BYTES: usize = 32 << 20;

/// What a committed message answers: its copy ids, leased to this
/// instance, and the last copy back when it is small enough for the
/// delivery to take it from memory ([`PRELOAD_MAX`]).
pub(crate) struct Completed {
    pub ids: Vec<String>,
    pub last: Option<StoredCopy>,
}

/// Largest copy handed back to the delivery after its commit.
pub(crate) const PRELOAD_MAX: usize = 256 << 10;

/// A copy and the id it is stored under.
pub(crate) struct StoredCopy {
    pub id: String,
    pub copy: NewCopy,
}

/// A generated message (a DSN): its envelope and its one copy.
pub(crate) struct Generated {
    pub kind: sealgate_metrics::DsnKind,
    pub message: NewMessage,
    pub copy: StoredCopy,
    pub expires_at: i64,
}

impl Generated {
    /// Gives the message (and its one copy) another id.
    pub fn rename(&mut self, id: &str) {
        self.message.id = id.to_string();
        self.copy.id = format!("{id}.0");
    }
}

pub(crate) enum Op {
    /// A copy of a message whose other copies are still being built.
    Stage {
        message_id: String,
        copy: StoredCopy,
        answer: oneshot::Sender<Result<(), String>>,
    },
    /// The last copy (if not staged) and the message row: the message is
    /// complete and durable once this commits. Answers the copy ids, leased
    /// to this instance.
    Complete {
        message: NewMessage,
        last: Option<StoredCopy>,
        /// Every copy of the message, staged ones and `last`.
        copy_ids: Vec<String>,
        expires_at: i64,
        delay_dsn_at: Option<i64>,
        /// Reports on recipients whose copy could not be built.
        reports: Vec<Generated>,
        lease: (String, i64),
        answer: oneshot::Sender<Result<Completed, String>>,
    },
    /// An audit row (SQLite: through the one writer, so that it does not
    /// contend with the queue for the database lock). Nobody waits for it.
    Audit(Box<AuditRecord>),
    /// A held copy's bytes replaced by its encrypted form (and its method
    /// set), if the lease is still ours; answers false if it was lost
    /// (nothing written).
    Rewrite {
        copy_id: String,
        owner: String,
        token: i64,
        method: String,
        data: Vec<u8>,
        answer: oneshot::Sender<Result<bool, String>>,
    },
    /// The result of one delivery attempt; answers false if the lease was
    /// lost (nothing written).
    Finish {
        copy_id: String,
        owner: String,
        token: i64,
        now: i64,
        updates: Vec<RcptUpdate>,
        delay_dsn_sent: bool,
        reports: Vec<Generated>,
        answer: oneshot::Sender<Result<bool, String>>,
    },
}

impl Op {
    fn bytes(&self) -> usize {
        match self {
            Op::Stage { copy, .. } => copy.copy.data.len(),
            Op::Complete { last, .. } => last.as_ref().map_or(0, |c| c.copy.data.len()),
            Op::Finish { reports, .. } => reports.iter().map(|r| r.copy.copy.data.len()).sum(),
            Op::Rewrite { data, .. } => data.len(),
            Op::Audit(_) => 0,
        }
    }
}

/// Starts the writer; it stops when every sender is dropped.
pub(crate) fn spawn(store: Store) -> mpsc::Sender<Op> {
    let (tx, rx) = mpsc::channel::<Op>(1024);
    tokio::spawn(run(store, rx));
    tx
}

async fn run(store: Store, mut rx: mpsc::Receiver<Op>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut bytes = batch[0].bytes();
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(r) => {
                    bytes += r.bytes();
                    batch.push(r);
                }
                Err(_) => break,
            }
        }
        match apply_all(&store, &batch).await {
            Ok(answers) => {
                for (req, a) in batch.into_iter().zip(answers) {
                    reply(req, Ok(a));
                }
            }
            Err(e) if batch.len() == 1 => {
                let req = batch.pop().expect("one request");
                reply(req, Err(e));
            }
            Err(e) => {
                tracing::warn!(
                    operations = batch.len(),
                    "queue batch failed ({e}); writing its operations one by one"
                );
                for req in batch {
                    let one = std::slice::from_ref(&req);
                    let a = apply_all(&store, one).await.map(|mut v| v.remove(0));
                    reply(req, a);
                }
            }
        }
    }
}

/// What one applied operation answers.
enum Answer {
    Done,
    Copies(Vec<String>),
    Owned(bool),
}

/// Answers `op`. A large copy's bytes are freed before its answer is sent:
/// the caller may start delivering that copy at once, and it is then not
/// held by the writer and by the delivery at the same time. A small last
/// copy goes back with the answer, so that its delivery need not read it.
fn reply(op: Op, result: Result<Answer, String>) {
    match op {
        Op::Stage { answer, copy, .. } => {
            drop(copy);
            let _ = answer.send(result.map(|_| ()));
        }
        Op::Complete {
            answer,
            last,
            reports,
            ..
        } => {
            drop(reports);
            let last = last.filter(|c| c.copy.data.len() <= PRELOAD_MAX);
            let _ = answer.send(result.map(|a| match a {
                Answer::Copies(ids) => Completed { ids, last },
                _ => Completed {
                    ids: Vec::new(),
                    last: None,
                },
            }));
        }
        Op::Finish { answer, .. } | Op::Rewrite { answer, .. } => {
            let _ = answer.send(result.map(|a| matches!(a, Answer::Owned(true))));
        }
        Op::Audit(record) => {
            if let Err(e) = result {
                tracing::error!(queue_id = %record.id, "cannot write the audit row: {e}");
            }
        }
    }
}

async fn apply_all(store: &Store, batch: &[Op]) -> Result<Vec<Answer>, String> {
    let backend = store.backend();
    let mut tx = store
        .durable_pool()
        .begin()
        .await
        .map_err(|e| e.to_string())?;
    let mut answers = Vec::with_capacity(batch.len());
    for op in batch {
        answers.push(
            apply(&mut tx, backend, op)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    Ok(answers)
}

async fn apply(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    op: &Op,
) -> Result<Answer, sqlx::Error> {
    let now = crate::now_ms();
    let mut script = Script::new();
    match op {
        Op::Stage {
            message_id, copy, ..
        } => {
            sql::insert_copy(
                conn,
                backend,
                &mut script,
                message_id,
                &copy.id,
                &copy.copy,
                now,
            )
            .await?;
            script.run(conn, backend).await?;
            Ok(Answer::Done)
        }
        Op::Complete {
            message,
            last,
            copy_ids,
            expires_at,
            delay_dsn_at,
            reports,
            lease,
            ..
        } => {
            if last.is_none() && copy_ids.is_empty() {
                // Nothing to deliver (every recipient bounced): only the
                // reports are queued; the message itself leaves no row.
                insert_reports(conn, backend, reports, now).await?;
                return Ok(Answer::Copies(Vec::new()));
            }
            if let Some(c) = last {
                sql::insert_copy(conn, backend, &mut script, &message.id, &c.id, &c.copy, now)
                    .await?;
            }
            sql::complete_message(
                &mut script,
                message,
                *expires_at,
                *delay_dsn_at,
                Some((lease.0.as_str(), lease.1)),
            );
            script.run(conn, backend).await?;
            insert_reports(conn, backend, reports, now).await?;
            Ok(Answer::Copies(copy_ids.clone()))
        }
        Op::Audit(record) => {
            sealgate_store::write_audit(conn, record)
                .await
                .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            Ok(Answer::Done)
        }
        Op::Rewrite {
            copy_id,
            owner,
            token,
            method,
            data,
            ..
        } => Ok(Answer::Owned(
            sql::rewrite(conn, copy_id, owner, *token, method, data).await?,
        )),
        Op::Finish {
            copy_id,
            owner,
            token,
            now,
            updates,
            delay_dsn_sent,
            reports,
            ..
        } => {
            let owned = sql::finish(
                conn,
                backend,
                copy_id,
                owner,
                *token,
                *now,
                updates,
                *delay_dsn_sent,
            )
            .await?;
            if owned {
                insert_reports(conn, backend, reports, *now).await?;
            }
            Ok(Answer::Owned(owned))
        }
    }
}

/// Writes generated messages (DSNs), each with its one copy.
pub(crate) async fn insert_reports(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    reports: &[Generated],
    now: i64,
) -> Result<(), sqlx::Error> {
    for g in reports {
        let mut script = Script::new();
        sql::insert_copy(
            conn,
            backend,
            &mut script,
            &g.message.id,
            &g.copy.id,
            &g.copy.copy,
            now,
        )
        .await?;
        sql::complete_message(&mut script, &g.message, g.expires_at, None, None);
        script.run(conn, backend).await?;
    }
    Ok(())
}
