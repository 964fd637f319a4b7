//! Every statement the queue runs, on either backend. Writes take a
//! connection (the writer's transaction); reads take the store's read pool.
//!
//! Ownership of a copy is a lease (`lease_owner`, `lease_until`) with a
//! fencing token (`lease_token`, raised by every claim): whatever a delivery
//! writes afterwards carries the token it was claimed with, so an instance
//! that stalled past its lease cannot overwrite the new owner's work.

use crate::model::{MessageKind, NewCopy, NewMessage, Ret, State};
use crate::script::Script;
use sealgate_store::Backend;
use sqlx::{AnyConnection, AnyPool, Row};

/// Largest piece of a copy in one row.
pub(crate) const CHUNK: usize = 1 << 20;

const INSERT_CHUNK: &str = "INSERT INTO queue_chunk (copy_id, seq, data) VALUES ($1, $2, $3)";

type Result<T> = std::result::Result<T, sqlx::Error>;

fn flags(m: &NewMessage) -> i64 {
    i64::from(m.body_8bitmime) | (i64::from(m.smtputf8) << 1)
}

/// Writes a copy, its chunks and its recipients, not claimable yet
/// ([`complete_message`] makes the copies of a message claimable). The
/// statements go into `script` (run by the caller); only a copy of more
/// than one chunk is written here at once, a chunk at a time, so that it
/// is never held twice.
pub(crate) async fn insert_copy(
    conn: &mut AnyConnection,
    backend: Backend,
    script: &mut Script,
    message_id: &str,
    copy_id: &str,
    copy: &NewCopy,
    now: i64,
) -> Result<()> {
    script.push(
        "INSERT INTO queue_copy (id, message_id, method, size, created_at, active, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, 0, $6)",
        vec![
            copy_id.into(),
            message_id.into(),
            copy.method.as_str().into(),
            (copy.data.len() as i64).into(),
            now.into(),
            now.into(),
        ],
    );
    if copy.data.len() <= CHUNK {
        script.push(
            INSERT_CHUNK,
            vec![copy_id.into(), 0.into(), copy.data.as_slice().into()],
        );
    } else {
        std::mem::take(script).run(&mut *conn, backend).await?;
        insert_chunks(conn, copy_id, &copy.data).await?;
    }
    for r in &copy.recipients {
        script.push(
            "INSERT INTO queue_rcpt (copy_id, seq, address, orcpt, notify, state, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6)",
            vec![
                copy_id.into(),
                i64::from(r.seq).into(),
                r.address.as_str().into(),
                r.orcpt.as_deref().into(),
                r.notify.as_deref().into(),
                now.into(),
            ],
        );
    }
    Ok(())
}

/// Writes the message row and makes its copies claimable (statements into
/// `script`). With `lease`, the copies are leased to `(owner, until)` at
/// once (this instance delivers them right away) and get token 1.
pub(crate) fn complete_message(
    script: &mut Script,
    m: &NewMessage,
    expires_at: i64,
    delay_dsn_at: Option<i64>,
    lease: Option<(&str, i64)>,
) {
    script.push(
        "INSERT INTO queue_message (id, received_at, expires_at, sender, envid, ret, flags, client, kind)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        vec![
            m.id.as_str().into(),
            m.received_at.into(),
            expires_at.into(),
            m.sender.as_str().into(),
            m.envid.as_deref().into(),
            m.ret.map(Ret::as_str).into(),
            flags(m).into(),
            m.client.as_str().into(),
            m.kind.as_str().into(),
        ],
    );
    let (owner, until) = match lease {
        Some((o, u)) => (Some(o), u),
        None => (None, 0),
    };
    script.push(
        "UPDATE queue_copy SET active = 1, delay_dsn_at = $2, lease_owner = $3,
           lease_until = $4, lease_token = lease_token + 1
         WHERE message_id = $1",
        vec![
            m.id.as_str().into(),
            delay_dsn_at.into(),
            owner.into(),
            until.into(),
        ],
    );
}

/// Claims up to `limit` copies that are due and not leased (or whose lease
/// ran out); returns `(copy id, token)`.
pub(crate) async fn claim(
    conn: &mut AnyConnection,
    backend: Backend,
    owner: &str,
    now: i64,
    until: i64,
    limit: i64,
) -> Result<Vec<(String, i64)>> {
    // PostgreSQL: instances skip each other's locked rows instead of
    // waiting on them. SQLite has one writer at a time anyway.
    const PG: &str =
        "UPDATE queue_copy SET lease_owner = $1, lease_until = $2, lease_token = lease_token + 1
         WHERE id IN (SELECT id FROM queue_copy
                      WHERE active = 1 AND next_attempt_at <= $3 AND lease_until < $3
                      ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED)
         RETURNING id, lease_token";
    const SQLITE: &str =
        "UPDATE queue_copy SET lease_owner = $1, lease_until = $2, lease_token = lease_token + 1
         WHERE id IN (SELECT id FROM queue_copy
                      WHERE active = 1 AND next_attempt_at <= $3 AND lease_until < $3
                      ORDER BY next_attempt_at LIMIT $4)
         RETURNING id, lease_token";
    let sql = match backend {
        Backend::Postgres => PG,
        Backend::Sqlite => SQLITE,
    };
    let rows = sqlx::query(sql)
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Extends a lease still held with `token`; false if it is not ours any more.
pub(crate) async fn renew(
    pool: &AnyPool,
    copy_id: &str,
    owner: &str,
    token: i64,
    until: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE queue_copy SET lease_until = $4
         WHERE id = $1 AND lease_owner = $2 AND lease_token = $3",
    )
    .bind(copy_id)
    .bind(owner)
    .bind(token)
    .bind(until)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A copy as a delivery needs it.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub message_id: String,
    pub kind: MessageKind,
    pub sender: String,
    pub envid: Option<String>,
    pub ret: Option<Ret>,
    pub body_8bitmime: bool,
    pub smtputf8: bool,
    pub received_at: i64,
    pub expires_at: i64,
    pub client: String,
    pub method: String,
    pub delay_dsn_at: Option<i64>,
    /// The recipients due now, in envelope order.
    pub due: Vec<DueRecipient>,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(crate) struct DueRecipient {
    pub seq: i64,
    pub address: String,
    pub orcpt: Option<String>,
    pub notify: Option<String>,
    pub state: State,
    pub attempts: i64,
}

/// Reads a copy, its recipients due at `now`, and its bytes; `None` when the
/// copy is gone (deleted by an admin meanwhile).
pub(crate) async fn load(pool: &AnyPool, copy_id: &str, now: i64) -> Result<Option<Loaded>> {
    let Some(row) = sqlx::query(
        "SELECT m.id, m.kind, m.sender, m.envid, m.ret, m.flags, m.received_at, m.expires_at,
                m.client, c.method, c.delay_dsn_at
         FROM queue_copy c JOIN queue_message m ON m.id = c.message_id WHERE c.id = $1",
    )
    .bind(copy_id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let flags: i64 = row.try_get(5)?;
    let kind: String = row.try_get(1)?;
    let ret: Option<String> = row.try_get(4)?;
    let due = sqlx::query(
        "SELECT seq, address, orcpt, notify, attempts, state FROM queue_rcpt
         WHERE copy_id = $1 AND state IN ('queued', 'deferred') AND next_attempt_at <= $2
         ORDER BY seq",
    )
    .bind(copy_id)
    .bind(now)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| {
        Ok(DueRecipient {
            seq: r.try_get(0)?,
            address: r.try_get(1)?,
            orcpt: r.try_get(2)?,
            notify: r.try_get(3)?,
            attempts: r.try_get(4)?,
            state: State::parse(&r.try_get::<String, _>(5)?).unwrap_or(State::Deferred),
        })
    })
    .collect::<Result<Vec<_>>>()?;
    let data = if due.is_empty() {
        Vec::new()
    } else {
        let mut conn = pool.acquire().await?;
        copy_data(&mut conn, copy_id).await?
    };
    Ok(Some(Loaded {
        message_id: row.try_get(0)?,
        kind: MessageKind::parse(&kind),
        sender: row.try_get(2)?,
        envid: row.try_get(3)?,
        ret: ret.as_deref().and_then(Ret::parse),
        body_8bitmime: flags & 1 != 0,
        smtputf8: flags & 2 != 0,
        received_at: row.try_get(6)?,
        expires_at: row.try_get(7)?,
        client: row.try_get(8)?,
        method: row.try_get(9)?,
        delay_dsn_at: row.try_get(10)?,
        due,
        data,
    }))
}

/// The bytes of a copy, read one chunk at a time into one buffer sized
/// for the copy: never the copy twice (or three times) in memory.
pub(crate) async fn copy_data(conn: &mut AnyConnection, copy_id: &str) -> Result<Vec<u8>> {
    let size: i64 = sqlx::query_scalar("SELECT size FROM queue_copy WHERE id = $1")
        .bind(copy_id)
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or(0);
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    for seq in 0i64.. {
        let chunk: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT data FROM queue_chunk WHERE copy_id = $1 AND seq = $2")
                .bind(copy_id)
                .bind(seq)
                .fetch_optional(&mut *conn)
                .await?;
        match chunk {
            Some(c) => data.extend_from_slice(&c),
            None => break,
        }
    }
    Ok(data)
}

/// What one attempt did to one recipient.
#[derive(Debug, Clone)]
pub(crate) struct RcptUpdate {
    pub seq: i64,
    pub state: State,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    /// False when the attempt was not made (the upstream is known to be
    /// down): the recipient only waits longer.
    pub attempted: bool,
}

/// Writes the result of an attempt, if the lease is still ours: recipient
/// states, then the copy's next attempt, or its removal once no recipient
/// waits. Returns false (and writes nothing) when the lease was lost.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn finish(
    conn: &mut AnyConnection,
    backend: Backend,
    copy_id: &str,
    owner: &str,
    token: i64,
    now: i64,
    updates: &[RcptUpdate],
    delay_dsn_sent: bool,
) -> Result<bool> {
    let released = sqlx::query(
        "UPDATE queue_copy SET lease_owner = NULL, lease_until = 0
         WHERE id = $1 AND lease_owner = $2 AND lease_token = $3",
    )
    .bind(copy_id)
    .bind(owner)
    .bind(token)
    .execute(&mut *conn)
    .await?;
    if released.rows_affected() != 1 {
        return Ok(false);
    }
    let mut script = Script::new();
    for u in updates {
        // A recipient an admin held meanwhile stays held if it only has to
        // wait; one the attempt delivered or failed for good is done (a
        // release must not send it again). A deleted one is gone.
        script.push(
            "UPDATE queue_rcpt SET state = $3, attempts = $4, next_attempt_at = $5,
               last_attempt_at = CASE WHEN $7 = 1 THEN $6 ELSE last_attempt_at END,
               last_error = COALESCE($8, last_error)
             WHERE copy_id = $1 AND seq = $2
               AND (state IN ('queued', 'deferred')
                    OR (state = 'held' AND $3 IN ('delivered', 'failed')))",
            vec![
                copy_id.into(),
                u.seq.into(),
                u.state.as_str().into(),
                u.attempts.into(),
                u.next_attempt_at.into(),
                now.into(),
                i64::from(u.attempted).into(),
                u.last_error.as_deref().into(),
            ],
        );
    }
    if delay_dsn_sent {
        script.push(
            "UPDATE queue_copy SET delay_dsn_at = NULL WHERE id = $1",
            vec![copy_id.into()],
        );
    }
    settle_into(&mut script, copy_id);
    script.run(conn, backend).await?;
    Ok(true)
}

/// Replaces a copy's bytes and method (a held copy, now encrypted), if the
/// lease is still ours; false (nothing written) when it was lost. The old
/// chunks go in the same transaction: the plaintext is gone once it
/// commits.
pub(crate) async fn rewrite(
    conn: &mut AnyConnection,
    copy_id: &str,
    owner: &str,
    token: i64,
    method: &str,
    data: &[u8],
) -> Result<bool> {
    let owned = sqlx::query(
        "UPDATE queue_copy SET method = $4, size = $5
         WHERE id = $1 AND lease_owner = $2 AND lease_token = $3",
    )
    .bind(copy_id)
    .bind(owner)
    .bind(token)
    .bind(method)
    .bind(data.len() as i64)
    .execute(&mut *conn)
    .await?;
    if owned.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query("DELETE FROM queue_chunk WHERE copy_id = $1")
        .bind(copy_id)
        .execute(&mut *conn)
        .await?;
    insert_chunks(conn, copy_id, data).await?;
    Ok(true)
}

/// Writes `data` as the chunks of `copy_id`, one statement per chunk.
async fn insert_chunks(conn: &mut AnyConnection, copy_id: &str, data: &[u8]) -> Result<()> {
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        sqlx::query(INSERT_CHUNK)
            .bind(copy_id)
            .bind(i as i64)
            .bind(chunk)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// After its recipients changed: a copy with waiting recipients is due at
/// the earliest of them; one with only held recipients sleeps; one with
/// none left is removed, and with its last copy the message.
pub(crate) async fn settle(
    conn: &mut AnyConnection,
    backend: Backend,
    copy_id: &str,
) -> Result<()> {
    let mut script = Script::new();
    settle_into(&mut script, copy_id);
    script.run(conn, backend).await?;
    Ok(())
}

/// [`settle`] as statements that decide for themselves (no read first), so
/// that they go with the statements before them in one script.
fn settle_into(script: &mut Script, copy_id: &str) {
    for sql in [
        "UPDATE queue_copy SET active = 1, next_attempt_at =
           (SELECT MIN(next_attempt_at) FROM queue_rcpt
            WHERE copy_id = $1 AND state IN ('queued', 'deferred'))
         WHERE id = $1 AND EXISTS
           (SELECT 1 FROM queue_rcpt WHERE copy_id = $1 AND state IN ('queued', 'deferred'))",
        "UPDATE queue_copy SET active = 0 WHERE id = $1
           AND NOT EXISTS (SELECT 1 FROM queue_rcpt WHERE copy_id = $1 AND state IN ('queued', 'deferred'))
           AND EXISTS (SELECT 1 FROM queue_rcpt WHERE copy_id = $1 AND state = 'held')",
        // Nothing left to do: the message goes with its last copy, then
        // the copy with its chunks and recipients.
        "DELETE FROM queue_message WHERE id = (SELECT message_id FROM queue_copy WHERE id = $1)
           AND NOT EXISTS (SELECT 1 FROM queue_rcpt WHERE copy_id = $1 AND state IN ('queued', 'deferred', 'held'))
           AND NOT EXISTS (SELECT 1 FROM queue_copy c WHERE c.message_id = queue_message.id AND c.id <> $1)",
        "DELETE FROM queue_chunk WHERE copy_id = $1
           AND NOT EXISTS (SELECT 1 FROM queue_rcpt WHERE copy_id = $1 AND state IN ('queued', 'deferred', 'held'))",
        "DELETE FROM queue_copy WHERE id = $1
           AND NOT EXISTS (SELECT 1 FROM queue_rcpt WHERE copy_id = $1 AND state IN ('queued', 'deferred', 'held'))",
        "DELETE FROM queue_rcpt WHERE copy_id = $1
           AND NOT EXISTS (SELECT 1 FROM queue_copy WHERE id = $1)",
    ] {
        script.push(sql, vec![copy_id.into()]);
    }
}

/// Deletes a copy with its chunks and recipients, and its message once no
/// copy of it is left.
pub(crate) async fn remove_copy(conn: &mut AnyConnection, copy_id: &str) -> Result<()> {
    let message: Option<String> =
        sqlx::query_scalar("SELECT message_id FROM queue_copy WHERE id = $1")
            .bind(copy_id)
            .fetch_optional(&mut *conn)
            .await?;
    for sql in [
        "DELETE FROM queue_chunk WHERE copy_id = $1",
        "DELETE FROM queue_rcpt WHERE copy_id = $1",
        "DELETE FROM queue_copy WHERE id = $1",
    ] {
        sqlx::query(sql).bind(copy_id).execute(&mut *conn).await?;
    }
    if let Some(m) = message {
        sqlx::query(
            "DELETE FROM queue_message WHERE id = $1
               AND NOT EXISTS (SELECT 1 FROM queue_copy WHERE message_id = $1)",
        )
        .bind(m)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// At start: removes copies whose message never completed (older than
/// `orphan_before`), and with `release_leases` (a single instance: nobody
/// else can be delivering) frees every lease. Returns (orphans, leases).
pub(crate) async fn recover(
    conn: &mut AnyConnection,
    orphan_before: i64,
    release_leases: bool,
) -> Result<(u64, u64)> {
    let orphans: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM queue_copy c WHERE created_at < $1
           AND NOT EXISTS (SELECT 1 FROM queue_message m WHERE m.id = c.message_id)",
    )
    .bind(orphan_before)
    .fetch_all(&mut *conn)
    .await?;
    for id in &orphans {
        remove_copy(conn, id).await?;
    }
    let mut leases = 0;
    if release_leases {
        leases = sqlx::query(
            "UPDATE queue_copy SET lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL",
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();
    }
    Ok((orphans.len() as u64, leases))
}

/// When the next copy can be claimed (Unix ms: due, and its lease run
/// out), if any is waiting.
pub(crate) async fn next_due(pool: &AnyPool) -> Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT MIN(CASE WHEN next_attempt_at > lease_until THEN next_attempt_at
                         ELSE lease_until + 1 END)
         FROM queue_copy WHERE active = 1",
    )
    .fetch_one(pool)
    .await
}

/// Recipients waiting by state, and the arrival of the oldest message.
pub(crate) struct Census {
    pub queued: u64,
    pub deferred: u64,
    pub held: u64,
    pub oldest: Option<i64>,
}

pub(crate) async fn census(pool: &AnyPool) -> Result<Census> {
    let row = sqlx::query(
        "SELECT COUNT(CASE WHEN state = 'queued' THEN 1 END),
                COUNT(CASE WHEN state = 'deferred' THEN 1 END),
                COUNT(CASE WHEN state = 'held' THEN 1 END)
         FROM queue_rcpt",
    )
    .fetch_one(pool)
    .await?;
    let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(received_at) FROM queue_message")
        .fetch_one(pool)
        .await?;
    let n = |i| row.try_get::<i64, _>(i).map(|v| v.max(0) as u64);
    Ok(Census {
        queued: n(0)?,
        deferred: n(1)?,
        held: n(2)?,
        oldest,
    })
}
