//! The lookup cache: what remote key sources answered, so that the next
//! message to the same address does not touch the network.

use crate::{now_unix, Result, Store, StoreError};
use sqlx::Row;

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub location: String,
    /// Armored OpenPGP certificates or PEM certificates; empty = nothing found.
    pub keys: Vec<String>,
    pub refreshed_at: i64,
    pub expires_at: i64,
}

impl CacheEntry {
    /// Usable now for a source whose configuration digest is `location`.
    pub fn is_fresh(&self, location: &str, now: i64) -> bool {
        self.location == location && self.expires_at > now
    }
}

impl Store {
    /// The cached answer of `source` for `address`, fresh or not.
    pub async fn cache_get(&self, source: &str, address: &str) -> Result<Option<CacheEntry>> {
        let row = sqlx::query(
            "SELECT location, keys, refreshed_at, expires_at FROM lookup_cache
             WHERE source = $1 AND address = $2",
        )
        .bind(source)
        .bind(address.to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let keys: String = row.try_get(1)?;
        Ok(Some(CacheEntry {
            location: row.try_get(0)?,
            keys: serde_json::from_str(&keys).map_err(|e| StoreError::Data(e.to_string()))?,
            refreshed_at: row.try_get(2)?,
            expires_at: row.try_get(3)?,
        }))
    }

    /// Stores an answer, valid for `ttl_secs`.
    pub async fn cache_put(
        &self,
        source: &str,
        address: &str,
        location: &str,
        keys: &[String],
        ttl_secs: i64,
    ) -> Result<()> {
        let now = now_unix();
        let keys = serde_json::to_string(keys).map_err(|e| StoreError::Data(e.to_string()))?;
        sqlx::query(
            "INSERT INTO lookup_cache (source, address, location, keys, refreshed_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (source, address) DO UPDATE SET location = excluded.location,
               keys = excluded.keys, refreshed_at = excluded.refreshed_at,
               expires_at = excluded.expires_at",
        )
        .bind(source)
        .bind(address.to_lowercase())
        .bind(location)
        .bind(keys)
        .bind(now)
        .bind(now.saturating_add(ttl_secs))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks every entry stale (all addresses, or one); returns how many.
    pub async fn cache_expire(&self, address: Option<&str>) -> Result<u64> {
        let done =
            match address {
                None => {
                    sqlx::query("UPDATE lookup_cache SET expires_at = 0 WHERE expires_at <> 0")
                        .execute(&self.pool)
                        .await?
                }
                Some(a) => sqlx::query(
                    "UPDATE lookup_cache SET expires_at = 0 WHERE address = $1 AND expires_at <> 0",
                )
                .bind(a.to_lowercase())
                .execute(&self.pool)
                .await?,
            };
        Ok(done.rows_affected())
    }

    /// Marks stale the entries of `source` fetched under another configuration
    /// (the admin changed where the source points); returns how many.
    pub async fn cache_expire_moved(&self, source: &str, location: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE lookup_cache SET expires_at = 0
             WHERE source = $1 AND location <> $2 AND expires_at <> 0",
        )
        .bind(source)
        .bind(location)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
