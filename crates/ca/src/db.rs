//! The CA's tables in SQL (both backends; see the migration
//! `20261209000001_ca.sql`).

use crate::CaError;
use sqlx::{AnyPool, Row};

/// A CA as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Authority {
    /// The intermediate's thumbprint: what names the CA.
    pub sha256: String,
    pub name: String,
    pub root_sha256: String,
    pub is_default: bool,
    pub created_at: i64,
}

pub(crate) async fn insert_authority(pool: &AnyPool, a: &Authority) -> Result<(), CaError> {
    let mut tx = pool.begin().await?;
    if a.is_default {
        sqlx::query("UPDATE ca_authority SET is_default = 0")
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO ca_authority (sha256, name, root_sha256, is_default, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&a.sha256)
    .bind(&a.name)
    .bind(&a.root_sha256)
    .bind(i64::from(a.is_default))
    .bind(a.created_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn authorities(pool: &AnyPool) -> Result<Vec<Authority>, CaError> {
    let rows = sqlx::query(
        "SELECT sha256, name, root_sha256, is_default, created_at FROM ca_authority
         ORDER BY created_at, sha256",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Authority {
                sha256: r.try_get(0)?,
                name: r.try_get(1)?,
                root_sha256: r.try_get(2)?,
                is_default: r.try_get::<i64, _>(3)? != 0,
                created_at: r.try_get(4)?,
            })
        })
        .collect()
}

/// Makes `sha256` the one default CA.
pub(crate) async fn set_default(pool: &AnyPool, sha256: &str) -> Result<(), CaError> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE ca_authority SET is_default = 0")
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE ca_authority SET is_default = 1 WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn insert_issued(
    pool: &AnyPool,
    sha256: &str,
    ca: &str,
    serial: &str,
    email: &str,
    at: i64,
) -> Result<(), CaError> {
    sqlx::query(
        "INSERT INTO ca_issued (sha256, ca_sha256, serial, email, issued_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(sha256)
    .bind(ca)
    .bind(serial)
    .bind(email.to_lowercase())
    .bind(at)
    .execute(pool)
    .await?;
    Ok(())
}

/// The serials a CA's CRLs list, with when each was added, oldest first.
pub(crate) async fn revoked(pool: &AnyPool, ca: &str) -> Result<Vec<(String, i64)>, CaError> {
    let rows = sqlx::query(
        "SELECT serial, revoked_at FROM ca_revoked WHERE ca_sha256 = $1 ORDER BY revoked_at, serial",
    )
    .bind(ca)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Replaces the CRL of `ca`: the revoked serials (all of them, when not
/// `keep` the earlier ones), the number and the DER, in one transaction.
pub(crate) async fn put_crl(
    pool: &AnyPool,
    ca: &str,
    serials: &[(String, i64)],
    crl: &StoredCrl,
) -> Result<(), CaError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM ca_revoked WHERE ca_sha256 = $1")
        .bind(ca)
        .execute(&mut *tx)
        .await?;
    for (serial, at) in serials {
        sqlx::query("INSERT INTO ca_revoked (ca_sha256, serial, revoked_at) VALUES ($1, $2, $3)")
            .bind(ca)
            .bind(serial)
            .bind(at)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM ca_crl WHERE ca_sha256 = $1")
        .bind(ca)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO ca_crl (ca_sha256, number, this_update, next_update, der) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(ca)
    .bind(crl.number)
    .bind(crl.this_update)
    .bind(crl.next_update)
    .bind(&crl.der)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A CA's newest CRL.
#[derive(Debug, Clone)]
pub struct StoredCrl {
    pub number: i64,
    pub this_update: i64,
    pub next_update: i64,
    pub der: Vec<u8>,
}

pub(crate) async fn crl(pool: &AnyPool, ca: &str) -> Result<Option<StoredCrl>, CaError> {
    let row = sqlx::query(
        "SELECT number, this_update, next_update, der FROM ca_crl WHERE ca_sha256 = $1",
    )
    .bind(ca)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(StoredCrl {
            number: r.try_get(0)?,
            this_update: r.try_get(1)?,
            next_update: r.try_get(2)?,
            der: r.try_get(3)?,
        })
    })
    .transpose()
}

pub(crate) async fn settings(pool: &AnyPool) -> Result<Vec<(String, String)>, CaError> {
    let rows = sqlx::query("SELECT name, value FROM ca_setting ORDER BY name")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

pub(crate) async fn put_setting(pool: &AnyPool, name: &str, value: &str) -> Result<(), CaError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM ca_setting WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO ca_setting (name, value) VALUES ($1, $2)")
        .bind(name)
        .bind(value)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn put_password(
    pool: &AnyPool,
    sha256: &str,
    sealed: &[u8],
    at: i64,
) -> Result<(), CaError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM ca_password WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO ca_password (sha256, sealed, created_at) VALUES ($1, $2, $3)")
        .bind(sha256)
        .bind(sealed)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
