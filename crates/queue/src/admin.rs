//! The admin's view of the queue, as `postqueue` and `postsuper` give it:
//! list, show, flush, hold, release, delete, bounce. One library layer for
//! the CLI (`sealgate queue ...`) and, later, the admin HTTP API.
//!
//! These work on the store, so against a running instance too (on SQLite
//! through the file's locking, on PostgreSQL for every instance at once):
//! a change is a committed row, and the instances' scanners see it within
//! a second. Nothing here ever returns message content.

use crate::dsn::{RecipientReport, Report, ReportKind};
use crate::model::{wants, MessageKind, Ret};
use crate::writer::Generated;
use crate::{deliver, now_ms, sql, QueueError, Schedule};
use sealgate_store::Store;
use serde::Serialize;
use sqlx::Row;

/// Queues a message sealgate made itself (certificate mail from the CA):
/// its one `copy`, due at once, kept until `schedule.max_age`, in one
/// durable transaction. It works from any process on the store (the CLI
/// too, while a gateway runs): the instances' scanners deliver it within a
/// second. Returns the queue id.
pub async fn submit(
    store: &Store,
    schedule: &Schedule,
    message: crate::NewMessage,
    copy: crate::NewCopy,
) -> Result<String, QueueError> {
    let now = now_ms();
    let backend = store.backend();
    let mut tx = store.durable_pool().begin().await.map_err(write)?;
    let mut script = crate::script::Script::new();
    let copy_id = format!("{}.0", message.id);
    sql::insert_copy(
        &mut tx,
        backend,
        &mut script,
        &message.id,
        &copy_id,
        &copy,
        now,
    )
    .await
    .map_err(write)?;
    let expires = now + i64::try_from(schedule.max_age.as_millis()).unwrap_or(i64::MAX / 2);
    sql::complete_message(&mut script, &message, expires, None, None);
    script.run(&mut tx, backend).await.map_err(write)?;
    tx.commit().await.map_err(write)?;
    Ok(message.id)
}

/// Which messages `list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    /// Messages with a deferred recipient.
    Deferred,
    /// Messages with a held recipient.
    Held,
}

/// One line of `queue list`.
#[derive(Debug, Clone, Serialize)]
pub struct MessageSummary {
    pub id: String,
    /// Unix milliseconds.
    pub received_at: i64,
    pub sender: String,
    pub kind: String,
    /// Bytes of all copies.
    pub size: i64,
    pub recipients: i64,
    pub queued: i64,
    pub deferred: i64,
    pub held: i64,
    /// Unix milliseconds; `None` when nothing waits (all held).
    pub next_attempt_at: Option<i64>,
}

/// `queue show`: the envelope and every recipient's state; never content.
#[derive(Debug, Clone, Serialize)]
pub struct MessageDetail {
    pub id: String,
    pub received_at: i64,
    pub expires_at: i64,
    pub sender: String,
    pub envid: Option<String>,
    pub ret: Option<String>,
    pub client: String,
    pub kind: String,
    pub copies: Vec<CopyDetail>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopyDetail {
    pub id: String,
    pub method: String,
    pub size: i64,
    /// The instance delivering it now, if any.
    pub leased_by: Option<String>,
    pub recipients: Vec<RecipientDetail>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecipientDetail {
    pub address: String,
    pub orcpt: Option<String>,
    pub notify: Option<String>,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_attempt_at: Option<i64>,
    pub last_error: Option<String>,
}

fn read(e: sqlx::Error) -> QueueError {
    QueueError::Read(e.to_string())
}

fn write(e: sqlx::Error) -> QueueError {
    QueueError::Write(e.to_string())
}

/// The messages in the queue, oldest first.
pub async fn list(store: &Store, filter: Filter) -> Result<Vec<MessageSummary>, QueueError> {
    let rows = sqlx::query(
        "SELECT m.id, m.received_at, m.sender, m.kind,
                (SELECT CAST(COALESCE(SUM(c.size), 0) AS BIGINT) FROM queue_copy c WHERE c.message_id = m.id),
                COUNT(r.seq),
                COUNT(CASE WHEN r.state = 'queued' THEN 1 END),
                COUNT(CASE WHEN r.state = 'deferred' THEN 1 END),
                COUNT(CASE WHEN r.state = 'held' THEN 1 END),
                MIN(CASE WHEN r.state IN ('queued', 'deferred') THEN r.next_attempt_at END)
         FROM queue_message m
         JOIN queue_copy c2 ON c2.message_id = m.id
         JOIN queue_rcpt r ON r.copy_id = c2.id
         GROUP BY m.id, m.received_at, m.sender, m.kind
         ORDER BY m.received_at, m.id",
    )
    .fetch_all(store.pool())
    .await
    .map_err(read)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let s = MessageSummary {
            id: r.try_get(0).map_err(read)?,
            received_at: r.try_get(1).map_err(read)?,
            sender: r.try_get(2).map_err(read)?,
            kind: r.try_get(3).map_err(read)?,
            size: r.try_get(4).map_err(read)?,
            recipients: r.try_get(5).map_err(read)?,
            queued: r.try_get(6).map_err(read)?,
            deferred: r.try_get(7).map_err(read)?,
            held: r.try_get(8).map_err(read)?,
            next_attempt_at: r.try_get(9).map_err(read)?,
        };
        let keep = match filter {
            Filter::All => true,
            Filter::Deferred => s.deferred > 0,
            Filter::Held => s.held > 0,
        };
        if keep {
            out.push(s);
        }
    }
    Ok(out)
}

/// One message, or `None` if the id is not in the queue.
pub async fn show(store: &Store, id: &str) -> Result<Option<MessageDetail>, QueueError> {
    let pool = store.pool();
    let Some(m) = sqlx::query(
        "SELECT id, received_at, expires_at, sender, envid, ret, client, kind
         FROM queue_message WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .map_err(read)?
    else {
        return Ok(None);
    };
    let copies = sqlx::query(
        "SELECT id, method, size, lease_owner, lease_until FROM queue_copy
         WHERE message_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .map_err(read)?;
    let now = now_ms();
    let mut details = Vec::with_capacity(copies.len());
    for c in copies {
        let copy_id: String = c.try_get(0).map_err(read)?;
        let lease_until: i64 = c.try_get(4).map_err(read)?;
        let owner: Option<String> = c.try_get(3).map_err(read)?;
        let rcpts = sqlx::query(
            "SELECT address, orcpt, notify, state, attempts, next_attempt_at, last_attempt_at, last_error
             FROM queue_rcpt WHERE copy_id = $1 ORDER BY seq",
        )
        .bind(&copy_id)
        .fetch_all(pool)
        .await
        .map_err(read)?;
        let mut recipients = Vec::with_capacity(rcpts.len());
        for r in rcpts {
            let state: String = r.try_get(3).map_err(read)?;
            let waiting = matches!(state.as_str(), "queued" | "deferred");
            let next: i64 = r.try_get(5).map_err(read)?;
            recipients.push(RecipientDetail {
                address: r.try_get(0).map_err(read)?,
                orcpt: r.try_get(1).map_err(read)?,
                notify: r.try_get(2).map_err(read)?,
                state,
                attempts: r.try_get(4).map_err(read)?,
                next_attempt_at: waiting.then_some(next),
                last_attempt_at: r.try_get(6).map_err(read)?,
                last_error: r.try_get(7).map_err(read)?,
            });
        }
        details.push(CopyDetail {
            id: copy_id,
            method: c.try_get(1).map_err(read)?,
            size: c.try_get(2).map_err(read)?,
            leased_by: owner.filter(|_| lease_until > now),
            recipients,
        });
    }
    Ok(Some(MessageDetail {
        id: m.try_get(0).map_err(read)?,
        received_at: m.try_get(1).map_err(read)?,
        expires_at: m.try_get(2).map_err(read)?,
        sender: m.try_get(3).map_err(read)?,
        envid: m.try_get(4).map_err(read)?,
        ret: m.try_get(5).map_err(read)?,
        client: m.try_get(6).map_err(read)?,
        kind: m.try_get(7).map_err(read)?,
        copies: details,
    }))
}

/// The copy ids of a message (`None`: every copy in the queue).
async fn copies_of(
    conn: &mut sqlx::AnyConnection,
    id: Option<&str>,
) -> Result<Vec<String>, QueueError> {
    let q = match id {
        Some(id) => sqlx::query_scalar("SELECT id FROM queue_copy WHERE message_id = $1").bind(id),
        None => sqlx::query_scalar("SELECT id FROM queue_copy"),
    };
    q.fetch_all(&mut *conn).await.map_err(read)
}

/// Runs `sql_text` (`$1` the copy id, `$2` now) over the copies of message
/// `id` (every copy for `None`) in one durable transaction, settling each;
/// returns how many recipients it changed. `NotFound` if no such message.
async fn each_copy(
    store: &Store,
    id: Option<&str>,
    sql_text: &'static str,
) -> Result<u64, QueueError> {
    let mut tx = store.durable_pool().begin().await.map_err(write)?;
    let copies = copies_of(&mut tx, id).await?;
    if copies.is_empty() && id.is_some() {
        return Err(QueueError::NotFound(id.unwrap_or_default().to_string()));
    }
    let now = now_ms();
    let mut changed = 0;
    for c in &copies {
        changed += sqlx::query(sql_text)
            .bind(c)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(write)?
            .rows_affected();
        sql::settle(&mut tx, store.backend(), c)
            .await
            .map_err(write)?;
    }
    tx.commit().await.map_err(write)?;
    Ok(changed)
}

/// Makes every waiting recipient (of one message, or all) due now.
pub async fn flush(store: &Store, id: Option<&str>) -> Result<u64, QueueError> {
    each_copy(
        store,
        id,
        "UPDATE queue_rcpt SET next_attempt_at = $2
         WHERE copy_id = $1 AND state IN ('queued', 'deferred')",
    )
    .await
}

/// Keeps a message's waiting recipients aside until released. A copy being
/// delivered at this moment finishes its attempt: a recipient it only
/// deferred stays held; one it delivered or failed for good is done.
pub async fn hold(store: &Store, id: &str) -> Result<u64, QueueError> {
    each_copy(
        store,
        Some(id),
        "UPDATE queue_rcpt SET state = 'held', next_attempt_at = $2
         WHERE copy_id = $1 AND state IN ('queued', 'deferred')",
    )
    .await
}

/// Puts held recipients back in the queue, due now.
pub async fn release(store: &Store, id: &str) -> Result<u64, QueueError> {
    each_copy(
        store,
        Some(id),
        "UPDATE queue_rcpt SET state = CASE WHEN attempts = 0 THEN 'queued' ELSE 'deferred' END,
           next_attempt_at = $2
         WHERE copy_id = $1 AND state = 'held'",
    )
    .await
}

/// Removes a message and all its copies; nobody is told. Returns how many
/// recipients were still waiting or held.
pub async fn delete(store: &Store, id: &str) -> Result<u64, QueueError> {
    let mut tx = store.durable_pool().begin().await.map_err(write)?;
    let copies = copies_of(&mut tx, Some(id)).await?;
    if copies.is_empty() {
        return Err(QueueError::NotFound(id.to_string()));
    }
    let mut pending = 0;
    for c in &copies {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM queue_rcpt WHERE copy_id = $1 AND state IN ('queued', 'deferred', 'held')",
        )
        .bind(c)
        .fetch_one(&mut *tx)
        .await
        .map_err(read)?;
        pending += n as u64;
        sql::remove_copy(&mut tx, c).await.map_err(write)?;
    }
    tx.commit().await.map_err(write)?;
    Ok(pending)
}

/// Fails every waiting or held recipient of a message now (5.0.0, "returned
/// by the administrator") and queues the failure DSN to its sender (unless
/// the sender is null or NOTIFY says otherwise). Returns how many
/// recipients were failed.
pub async fn bounce(
    store: &Store,
    schedule: &Schedule,
    hostname: &str,
    id: &str,
) -> Result<u64, QueueError> {
    let mut tx = store.durable_pool().begin().await.map_err(write)?;
    let copies = copies_of(&mut tx, Some(id)).await?;
    if copies.is_empty() {
        return Err(QueueError::NotFound(id.to_string()));
    }
    let m = sqlx::query(
        "SELECT sender, envid, ret, received_at, client, kind FROM queue_message WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .map_err(read)?;
    let sender: String = m.try_get(0).map_err(read)?;
    let envid: Option<String> = m.try_get(1).map_err(read)?;
    let ret: Option<String> = m.try_get(2).map_err(read)?;
    let received_at: i64 = m.try_get(3).map_err(read)?;
    let client: String = m.try_get(4).map_err(read)?;
    let kind: String = m.try_get(5).map_err(read)?;
    let now = now_ms();
    let mut failed = 0;
    let mut reports: Vec<Generated> = Vec::new();
    for c in &copies {
        let rows = sqlx::query(
            "SELECT address, orcpt, notify, last_attempt_at FROM queue_rcpt
             WHERE copy_id = $1 AND state IN ('queued', 'deferred', 'held') ORDER BY seq",
        )
        .bind(c)
        .fetch_all(&mut *tx)
        .await
        .map_err(read)?;
        let mut recipients = Vec::new();
        for r in &rows {
            let notify: Option<String> = r.try_get(2).map_err(read)?;
            failed += 1;
            if wants(notify.as_deref(), "FAILURE") {
                recipients.push(RecipientReport {
                    address: r.try_get(0).map_err(read)?,
                    orcpt: r.try_get(1).map_err(read)?,
                    status: "5.0.0".into(),
                    diagnostic: Some("returned to the sender by the mail administrator".into()),
                    remote_mta: None,
                    last_attempt: r.try_get(3).map_err(read)?,
                    will_retry_until: None,
                });
            }
        }
        sqlx::query(
            "UPDATE queue_rcpt SET state = 'failed', last_error = 'bounced by the administrator'
             WHERE copy_id = $1 AND state IN ('queued', 'deferred', 'held')",
        )
        .bind(c)
        .execute(&mut *tx)
        .await
        .map_err(write)?;
        if !recipients.is_empty() && !sender.is_empty() && MessageKind::parse(&kind).reported() {
            let method: String = sqlx::query_scalar("SELECT method FROM queue_copy WHERE id = $1")
                .bind(c)
                .fetch_one(&mut *tx)
                .await
                .map_err(read)?;
            let data = sql::copy_data(&mut tx, c).await.map_err(read)?;
            let report = Report {
                kind: ReportKind::Failed,
                reporting_mta: hostname,
                queue_id: id,
                to: &sender,
                envid: envid.as_deref(),
                received_from: &client,
                arrival: received_at,
                recipients,
                copy: &data,
                copy_is_clear: matches!(method.as_str(), "plain" | "pass-through"),
                ret: ret.as_deref().and_then(Ret::parse),
            };
            let mut g = deliver::report_message(schedule, &report, now);
            // One report per copy: make the ids distinct.
            g.rename(&format!("{}{}", g.message.id, reports.len()));
            reports.push(g);
        }
        sql::settle(&mut tx, store.backend(), c)
            .await
            .map_err(write)?;
    }
    crate::writer::insert_reports(&mut tx, store.backend(), &reports, now)
        .await
        .map_err(write)?;
    tx.commit().await.map_err(write)?;
    Ok(failed)
}
