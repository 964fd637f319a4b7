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

    /// Every key bound to `address` (compared lower-cased), any kind.
    pub async fn keys_for(&self, address: &str) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query(
            "SELECT k.fingerprint FROM keys k JOIN key_addresses a ON a.fingerprint = k.fingerprint
             WHERE a.address = $1 ORDER BY k.fingerprint",
        )
        .bind(address.to_lowercase())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let fpr: String = row.try_get(0)?;
            if let Some(k) = self.key(&fpr).await? {
                out.push(k);
            }
        }
        Ok(out)
    }

    /// One key by fingerprint.
    pub async fn key(&self, fingerprint: &str) -> Result<Option<StoredKey>> {
        let row = sqlx::query(
            "SELECT fingerprint, kind, data, source, expires_at, created_at, refreshed_at
             FROM keys WHERE fingerprint = $1",
        )
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let addresses = sqlx::query(
            "SELECT address FROM key_addresses WHERE fingerprint = $1 ORDER BY address",
        )
        .bind(fingerprint)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<Vec<_>, _>>()?;
        let kind: String = row.try_get(1)?;
        Ok(Some(StoredKey {
            fingerprint: row.try_get(0)?,
            kind: KeyKind::parse(&kind)
                .ok_or_else(|| StoreError::Data(format!("unknown key kind {kind:?}")))?,
            data: row.try_get(2)?,
            source: row.try_get(3)?,
            addresses,
            expires_at: row.try_get(4)?,
            created_at: row.try_get(5)?,
            refreshed_at: row.try_get(6)?,
        }))
    }

    /// Every stored key, ordered by fingerprint.
    pub async fn list_keys(&self) -> Result<Vec<StoredKey>> {
        let fprs = sqlx::query("SELECT fingerprint FROM keys ORDER BY fingerprint")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(fprs.len());
        for row in fprs {
            let fpr: String = row.try_get(0)?;
            if let Some(k) = self.key(&fpr).await? {
                out.push(k);
            }
        }
        Ok(out)
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
