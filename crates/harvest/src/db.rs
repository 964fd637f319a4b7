//! The harvest tables (`migrations/20261205000001_harvest.sql`): the
//! capabilities an address announced, and the harvest log. Bindings are the
//! store's (`sealgate_store::Binding`).

use sqlx::{AnyPool, Row};

/// Most rows kept in `harvest_log`; older ones are pruned as new ones come.
pub const LOG_ROWS: i64 = 10_000;

/// One row of the harvest log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    /// Unix seconds.
    pub at: i64,
    pub queue_id: String,
    pub message_id: Option<String>,
    pub address: Option<String>,
    pub kind: String,
    pub outcome: String,
    pub fingerprint: Option<String>,
    pub reason: String,
}

/// Remembers the capabilities `address` announced last.
pub async fn set_capabilities(
    pool: &AnyPool,
    address: &str,
    sha256: &str,
    capabilities: Option<&[u8]>,
    aes256_gcm: bool,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO smime_capability (address, sha256, capabilities, aes256_gcm, seen_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (address) DO UPDATE SET sha256 = $2, capabilities = $3, aes256_gcm = $4, seen_at = $5",
    )
    .bind(address)
    .bind(sha256)
    .bind(capabilities.map(<[u8]>::to_vec))
    .bind(i64::from(aes256_gcm))
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether the capabilities `address` announced last list AES-256-GCM.
pub async fn reads_gcm(pool: &AnyPool, address: &str) -> Result<bool, sqlx::Error> {
    let row = sqlx::query("SELECT aes256_gcm FROM smime_capability WHERE address = $1")
        .bind(address)
        .fetch_optional(pool)
        .await?;
    Ok(match row {
        Some(r) => r.try_get::<i64, _>(0)? == 1,
        None => false,
    })
}

/// The Autocrypt state of an address (`autocrypt_peer`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AutocryptPeer {
    pub address: String,
    pub fingerprint: String,
    /// `mutual` or `nopreference`.
    pub prefer_encrypt: String,
    /// Effective date of the message the header came in (Unix seconds).
    pub message_date: i64,
    pub updated_at: i64,
}

/// The Autocrypt state of `address`, if a header was accepted.
pub async fn autocrypt_peer(
    pool: &AnyPool,
    address: &str,
) -> Result<Option<AutocryptPeer>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT fingerprint, prefer_encrypt, message_date, updated_at FROM autocrypt_peer
         WHERE address = $1",
    )
    .bind(address)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(AutocryptPeer {
            address: address.to_string(),
            fingerprint: r.try_get(0)?,
            prefer_encrypt: r.try_get(1)?,
            message_date: r.try_get(2)?,
            updated_at: r.try_get(3)?,
        })
    })
    .transpose()
}

/// The Autocrypt state of every address (or of `address`), by address.
pub async fn autocrypt_peers(
    pool: &AnyPool,
    address: Option<&str>,
) -> Result<Vec<AutocryptPeer>, sqlx::Error> {
    const SELECT: &str =
        "SELECT address, fingerprint, prefer_encrypt, message_date, updated_at FROM autocrypt_peer";
    let rows = match address {
        // SELECT is a constant: nothing from outside in the text.
        Some(a) => {
            sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE address = $1")))
                .bind(a)
                .fetch_all(pool)
                .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} ORDER BY address")))
                .fetch_all(pool)
                .await?
        }
    };
    rows.iter()
        .map(|r| {
            Ok(AutocryptPeer {
                address: r.try_get(0)?,
                fingerprint: r.try_get(1)?,
                prefer_encrypt: r.try_get(2)?,
                message_date: r.try_get(3)?,
                updated_at: r.try_get(4)?,
            })
        })
        .collect()
}

/// Records an accepted Autocrypt header.
pub async fn set_autocrypt_peer(pool: &AnyPool, p: &AutocryptPeer) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO autocrypt_peer (address, fingerprint, prefer_encrypt, message_date, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (address) DO UPDATE SET fingerprint = $2, prefer_encrypt = $3,
           message_date = $4, updated_at = $5",
    )
    .bind(&p.address)
    .bind(&p.fingerprint)
    .bind(&p.prefer_encrypt)
    .bind(p.message_date)
    .bind(p.updated_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Adds a log row and prunes beyond [`LOG_ROWS`].
pub async fn log(pool: &AnyPool, e: &LogEntry) -> Result<(), sqlx::Error> {
    let id = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
        & 0x00ff_ffff_ffff_ffff)
        * 128
        + i64::from(rand_u8() & 0x7f);
    sqlx::query(
        "INSERT INTO harvest_log (id, at, queue_id, message_id, address, kind, outcome, fingerprint, reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(e.at)
    .bind(&e.queue_id)
    .bind(&e.message_id)
    .bind(&e.address)
    .bind(&e.kind)
    .bind(&e.outcome)
    .bind(&e.fingerprint)
    .bind(&e.reason)
    .execute(pool)
    .await?;
    // Every hundredth row: keep the newest LOG_ROWS.
    if id % 100 == 0 {
        sqlx::query(
            "DELETE FROM harvest_log WHERE id < (SELECT MIN(id) FROM
               (SELECT id FROM harvest_log ORDER BY id DESC LIMIT $1) AS newest)",
        )
        .bind(LOG_ROWS)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// The newest `limit` log rows, for `address` or all.
pub async fn recent(
    pool: &AnyPool,
    address: Option<&str>,
    limit: i64,
) -> Result<Vec<LogEntry>, sqlx::Error> {
    const COLUMNS: &str = "at, queue_id, message_id, address, kind, outcome, fingerprint, reason";
    let rows = match address {
        Some(a) => {
            // COLUMNS is a constant: nothing from outside in the text.
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM harvest_log WHERE address = $1 ORDER BY id DESC LIMIT $2"
            )))
            .bind(a)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM harvest_log ORDER BY id DESC LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter()
        .map(|r| {
            Ok(LogEntry {
                at: r.try_get(0)?,
                queue_id: r.try_get(1)?,
                message_id: r.try_get(2)?,
                address: r.try_get(3)?,
                kind: r.try_get(4)?,
                outcome: r.try_get(5)?,
                fingerprint: r.try_get(6)?,
                reason: r.try_get(7)?,
            })
        })
        .collect()
}

fn rand_u8() -> u8 {
    let mut b = [0u8; 1];
    let _ = openssl::rand::rand_bytes(&mut b);
    b[0]
}
