//! Keys and certificates kept in the database, and the addresses they serve.

use crate::{now_unix, Result, Store, StoreError};
use sqlx::Row;

/// What a stored key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Pgp,
    Smime,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Pgp => "pgp",
            KeyKind::Smime => "smime",
        }
    }

    pub fn parse(s: &str) -> Option<KeyKind> {
        match s {
            "pgp" => Some(KeyKind::Pgp),
            "smime" => Some(KeyKind::Smime),
            _ => None,
        }
    }
}

/// One key or certificate with its bindings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub fingerprint: String,
    pub kind: KeyKind,
    /// Armored OpenPGP certificate or PEM X.509 certificate (public material only).
    pub data: String,
    pub source: String,
    /// Lower-cased addresses this key is used for.
    pub addresses: Vec<String>,
    pub expires_at: Option<i64>,
    pub created_at: i64,
    pub refreshed_at: i64,
}

impl Store {
    /// Inserts or updates a key (same fingerprint: data, source, expiry and the
    /// address list are replaced).
    pub async fn put_key(&self, key: &StoredKey) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let now = now_unix();
        sqlx::query(
            "INSERT INTO keys (fingerprint, kind, data, source, expires_at, created_at, refreshed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (fingerprint) DO UPDATE SET
               kind = excluded.kind, data = excluded.data, source = excluded.source,
               expires_at = excluded.expires_at, refreshed_at = excluded.refreshed_at",
        )
        .bind(&key.fingerprint)
        .bind(key.kind.as_str())
        .bind(&key.data)
        .bind(&key.source)
        .bind(key.expires_at)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM key_addresses WHERE fingerprint = $1")
            .bind(&key.fingerprint)
            .execute(&mut *tx)
            .await?;
        let mut addresses: Vec<String> = key.addresses.iter().map(|a| a.to_lowercase()).collect();
        addresses.sort();
        addresses.dedup();
        for address in &addresses {
            sqlx::query("INSERT INTO key_addresses (address, fingerprint) VALUES ($1, $2)")
                .bind(address)
                .bind(&key.fingerprint)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every key bound to `address` (compared lower-cased), any kind, with all
    /// of each key's addresses. One query: this runs for every RCPT.
    pub async fn keys_for(&self, address: &str) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query(
            "SELECT k.fingerprint, k.kind, k.data, k.source, k.expires_at, k.created_at,
                    k.refreshed_at, b.address
             FROM key_addresses a
             JOIN keys k ON k.fingerprint = a.fingerprint
             JOIN key_addresses b ON b.fingerprint = k.fingerprint
             WHERE a.address = $1
             ORDER BY k.fingerprint, b.address",
        )
        .bind(address.to_lowercase())
        .fetch_all(&self.pool)
        .await?;
        fold_rows(rows)
    }

    /// One key by fingerprint.
    pub async fn key(&self, fingerprint: &str) -> Result<Option<StoredKey>> {
        let rows = sqlx::query(
            "SELECT k.fingerprint, k.kind, k.data, k.source, k.expires_at, k.created_at,
                    k.refreshed_at, b.address
             FROM keys k LEFT JOIN key_addresses b ON b.fingerprint = k.fingerprint
             WHERE k.fingerprint = $1
             ORDER BY b.address",
        )
        .bind(fingerprint)
        .fetch_all(&self.pool)
        .await?;
        Ok(fold_rows(rows)?.pop())
    }

    /// Every stored key, ordered by fingerprint.
    pub async fn list_keys(&self) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query(
            "SELECT k.fingerprint, k.kind, k.data, k.source, k.expires_at, k.created_at,
                    k.refreshed_at, b.address
             FROM keys k LEFT JOIN key_addresses b ON b.fingerprint = k.fingerprint
             ORDER BY k.fingerprint, b.address",
        )
        .fetch_all(&self.pool)
        .await?;
        fold_rows(rows)
    }

    /// Removes the key with this fingerprint; returns whether it existed.
    pub async fn remove_key(&self, fingerprint: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM key_addresses WHERE fingerprint = $1")
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

/// Folds rows of (key columns..., address), ordered by fingerprint, into keys
/// with their address lists (a NULL address: a key without bindings).
fn fold_rows(rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<StoredKey>> {
    let mut out: Vec<StoredKey> = Vec::new();
    for row in rows {
        let fingerprint: String = row.try_get(0)?;
        let address: Option<String> = row.try_get(7)?;
        if out.last().is_none_or(|k| k.fingerprint != fingerprint) {
            let kind: String = row.try_get(1)?;
            out.push(StoredKey {
                fingerprint,
                kind: KeyKind::parse(&kind)
                    .ok_or_else(|| StoreError::Data(format!("unknown key kind {kind:?}")))?,
                data: row.try_get(2)?,
                source: row.try_get(3)?,
                addresses: Vec::new(),
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
