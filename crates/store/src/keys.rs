//! Keys and certificates kept in the database (Bitmask's key documents) and
//! the addresses they are bound to (`bindings.rs`).

use crate::bindings::{bind_on, Level, NewBinding};
use crate::{now_unix, Result, Store, StoreError};
use sqlx::Row;

/// What a stored key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Pgp,
    /// An X.509 certificate (S/MIME).
    Smime,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Pgp => "pgp",
            KeyKind::Smime => "x509",
        }
    }

    pub fn parse(s: &str) -> Option<KeyKind> {
        match s {
            "pgp" => Some(KeyKind::Pgp),
            "x509" | "smime" => Some(KeyKind::Smime),
            _ => None,
        }
    }
}

/// One key or certificate with the addresses it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub fingerprint: String,
    pub kind: KeyKind,
    /// Armored OpenPGP certificate or PEM X.509 certificate (public material only).
    pub data: String,
    /// Where the key came from (`import`, `upload`, `harvest:pgp`, a remote
    /// source's name). [`Store::keys_for`] gives the source of the binding
    /// to the address asked for instead.
    pub source: String,
    /// Lower-cased addresses this key is bound to.
    pub addresses: Vec<String>,
    /// The emails the key itself names (User IDs; SAN and subject emails).
    pub uids: Vec<String>,
    /// Key size in bits, when known.
    pub length: Option<i64>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub refreshed_at: i64,
}

const KEY_COLUMNS: &str =
    "k.fingerprint, k.kind, k.data, k.source, k.expires_at, k.created_at, k.refreshed_at, k.uids, k.length";

impl Store {
    /// Inserts or updates a key and binds it to its `addresses` at `level`
    /// with the key's source (same fingerprint: data, expiry and uids are
    /// replaced; the bindings of this source to addresses no longer listed
    /// go; a binding seen again keeps the higher level, see
    /// [`Store::bind`]). Which binding is active is not changed here.
    pub async fn put_key(&self, key: &StoredKey, level: Level) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let now = now_unix();
        upsert_key(&mut *tx, key, now).await?;
        let mut addresses: Vec<String> = key.addresses.iter().map(|a| a.to_lowercase()).collect();
        addresses.sort();
        addresses.dedup();
        let old: Vec<String> =
            sqlx::query("SELECT address FROM key_binding WHERE fingerprint = $1 AND source = $2")
                .bind(&key.fingerprint)
                .bind(&key.source)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
        for gone in old.iter().filter(|a| !addresses.contains(a)) {
            sqlx::query("DELETE FROM key_binding WHERE fingerprint = $1 AND address = $2")
                .bind(&key.fingerprint)
                .bind(gone)
                .execute(&mut *tx)
                .await?;
        }
        for address in &addresses {
            bind_on(
                &mut *tx,
                &NewBinding {
                    address,
                    fingerprint: &key.fingerprint,
                    kind: key.kind.as_str(),
                    level,
                    source: &key.source,
                    sign_used: false,
                },
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Inserts or updates the key row alone (data, expiry, uids), without
    /// touching any binding: for a key a remote source served.
    pub async fn put_key_data(&self, key: &StoredKey) -> Result<()> {
        upsert_key(&self.pool, key, now_unix()).await
    }

    /// Every key bound to `address` (compared lower-cased), any kind, with all
    /// of each key's addresses; `source` is the source of the binding to
    /// `address`. One query: this runs for every RCPT.
    pub async fn keys_for(&self, address: &str) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS}, b.address, a.source
             FROM key_binding a
             JOIN keys k ON k.fingerprint = a.fingerprint
             JOIN key_binding b ON b.fingerprint = k.fingerprint
             WHERE a.address = $1
             ORDER BY k.fingerprint, b.address"
        )))
        .bind(address.to_lowercase())
        .fetch_all(&self.pool)
        .await?;
        fold_rows(rows, true)
    }

    /// One key by fingerprint.
    pub async fn key(&self, fingerprint: &str) -> Result<Option<StoredKey>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS}, b.address
             FROM keys k LEFT JOIN key_binding b ON b.fingerprint = k.fingerprint
             WHERE k.fingerprint = $1
             ORDER BY b.address"
        )))
        .bind(fingerprint)
        .fetch_all(&self.pool)
        .await?;
        Ok(fold_rows(rows, false)?.pop())
    }

    /// Every stored key, ordered by fingerprint.
    pub async fn list_keys(&self) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS}, b.address
             FROM keys k LEFT JOIN key_binding b ON b.fingerprint = k.fingerprint
             ORDER BY k.fingerprint, b.address"
        )))
        .fetch_all(&self.pool)
        .await?;
        fold_rows(rows, false)
    }

    /// OpenPGP keys a remote source served (`keyserver:...`, `wkd`) that are
    /// due to be fetched again, least recently refreshed first, at most
    /// `limit`: refreshed `interval` seconds ago or longer, or expiring
    /// within `before_expiry` seconds and not refreshed since they entered
    /// that window.
    pub async fn keys_due_for_refresh(
        &self,
        now: i64,
        interval: i64,
        before_expiry: i64,
        limit: i64,
    ) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS}, b.address
             FROM keys k LEFT JOIN key_binding b ON b.fingerprint = k.fingerprint
             WHERE k.fingerprint IN (
               SELECT fingerprint FROM keys
               WHERE kind = 'pgp' AND (source LIKE 'keyserver:%' OR source = 'wkd')
                 AND (refreshed_at <= $1
                      OR (expires_at IS NOT NULL AND expires_at <= $2
                          AND refreshed_at < expires_at - $3))
               ORDER BY refreshed_at LIMIT $4)
             ORDER BY k.refreshed_at, k.fingerprint, b.address"
        )))
        .bind(now.saturating_sub(interval))
        .bind(now.saturating_add(before_expiry))
        .bind(before_expiry)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        fold_rows(rows, false)
    }

    /// Records that the key was asked for again without news (the source no
    /// longer serves it, or is gone from the configuration).
    pub async fn touch_key(&self, fingerprint: &str) -> Result<()> {
        sqlx::query("UPDATE keys SET refreshed_at = $1 WHERE fingerprint = $2")
            .bind(now_unix())
            .bind(fingerprint)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes the key with this fingerprint and its bindings; returns
    /// whether it existed.
    pub async fn remove_key(&self, fingerprint: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM key_binding WHERE fingerprint = $1")
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM keys WHERE fingerprint = $1")
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

async fn upsert_key<'e, E>(exec: E, key: &StoredKey, now: i64) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO keys (fingerprint, kind, data, source, expires_at, created_at, refreshed_at, uids, length)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (fingerprint) DO UPDATE SET
           kind = excluded.kind, data = excluded.data, source = excluded.source,
           expires_at = excluded.expires_at, refreshed_at = excluded.refreshed_at,
           uids = excluded.uids, length = excluded.length",
    )
    .bind(&key.fingerprint)
    .bind(key.kind.as_str())
    .bind(&key.data)
    .bind(&key.source)
    .bind(key.expires_at)
    .bind(now)
    .bind(now)
    .bind(key.uids.join("\n"))
    .bind(key.length)
    .execute(exec)
    .await?;
    Ok(())
}

/// Folds rows of (key columns..., address[, binding source]), ordered by
/// fingerprint, into keys with their address lists (a NULL address: a key
/// without bindings).
fn fold_rows(rows: Vec<sqlx::any::AnyRow>, binding_source: bool) -> Result<Vec<StoredKey>> {
    let mut out: Vec<StoredKey> = Vec::new();
    for row in rows {
        let fingerprint: String = row.try_get(0)?;
        let address: Option<String> = row.try_get(9)?;
        if out.last().is_none_or(|k| k.fingerprint != fingerprint) {
            let kind: String = row.try_get(1)?;
            out.push(StoredKey {
                fingerprint,
                kind: KeyKind::parse(&kind)
                    .ok_or_else(|| StoreError::Data(format!("unknown key kind {kind:?}")))?,
                data: row.try_get(2)?,
                source: if binding_source {
                    row.try_get(10)?
                } else {
                    row.try_get(3)?
                },
                addresses: Vec::new(),
                uids: row
                    .try_get::<String, _>(7)?
                    .lines()
                    .map(str::to_string)
                    .collect(),
                length: row.try_get(8)?,
                expires_at: row.try_get(4)?,
                created_at: row.try_get(5)?,
                refreshed_at: row.try_get(6)?,
            });
        }
        if let (Some(k), Some(a)) = (out.last_mut(), address) {
            k.addresses.push(a);
        }
    }
    Ok(out)
}

impl Store {
    /// The bindings (for `address`, or all) and the keys they name, as the
    /// CLI (`keys list --json`) and the admin API show them: each binding
    /// with its level, source and use, and the key's expiry and User IDs.
    pub async fn key_report(
        &self,
        address: Option<&str>,
    ) -> Result<(Vec<serde_json::Value>, Vec<serde_json::Value>)> {
        use serde_json::json;
        let wanted = address.map(str::to_lowercase);
        let keys = self.list_keys().await?;
        let mut bindings = self.all_bindings().await?;
        if let Some(a) = &wanted {
            bindings.retain(|b| &b.address == a);
        }
        let key_of = |fpr: &str| keys.iter().find(|k| k.fingerprint == fpr);
        let b = bindings
            .iter()
            .map(|b| {
                let k = key_of(&b.fingerprint);
                json!({
                    "address": b.address, "fingerprint": b.fingerprint, "kind": b.kind,
                    "level": b.level.as_str(), "active": b.active, "source": b.source,
                    "first_seen": b.first_seen, "last_seen": b.last_seen,
                    "last_audited_at": b.last_audited_at,
                    "encr_used": b.encr_used, "sign_used": b.sign_used,
                    "expires_at": k.and_then(|k| k.expires_at),
                    "uids": k.map(|k| k.uids.clone()).unwrap_or_default(),
                    "length": k.and_then(|k| k.length),
                })
            })
            .collect();
        let k = keys
            .iter()
            .filter(|k| {
                wanted
                    .as_deref()
                    .is_none_or(|a| k.addresses.iter().any(|x| x == a))
            })
            .map(|k| {
                json!({
                    "fingerprint": k.fingerprint, "kind": k.kind.as_str(), "addresses": k.addresses,
                    "uids": k.uids, "length": k.length,
                    "source": k.source, "expires_at": k.expires_at, "refreshed_at": k.refreshed_at,
                })
            })
            .collect();
        Ok((b, k))
    }
}
