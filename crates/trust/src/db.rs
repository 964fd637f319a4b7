//! The certificate store and the root store in SQL (both backends).

use crate::cert::CertInfo;
use crate::TrustError;
use sqlx::{AnyPool, Row};

/// A certificate as the store has it.
#[derive(Debug, Clone)]
pub struct StoredCert {
    pub info: CertInfo,
    pub source: String,
    pub has_key: bool,
    pub added_at: i64,
    pub der: Vec<u8>,
}

const CERT_COLUMNS: &str = "sha256, sha512, subject, issuer, serial, not_before, not_after,
     key_usage, ext_key_usage, is_ca, source, has_key, added_at, der";

fn split(list: Option<String>) -> Option<Vec<String>> {
    list.map(|s| {
        s.split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    })
}

async fn emails(pool: &AnyPool, sha256: &str) -> Result<Vec<String>, TrustError> {
    Ok(
        sqlx::query_scalar("SELECT email FROM trust_cert_email WHERE sha256 = $1 ORDER BY email")
            .bind(sha256)
            .fetch_all(pool)
            .await?,
    )
}

async fn cert_from_row(pool: &AnyPool, r: &sqlx::any::AnyRow) -> Result<StoredCert, TrustError> {
    let sha256: String = r.try_get(0)?;
    let der: Vec<u8> = r.try_get(13)?;
    let self_issued = {
        let subject: String = r.try_get(2)?;
        let issuer: String = r.try_get(3)?;
        subject == issuer
    };
    Ok(StoredCert {
        info: CertInfo {
            emails: emails(pool, &sha256).await?,
            sha256,
            sha512: r.try_get(1)?,
            subject: r.try_get(2)?,
            issuer: r.try_get(3)?,
            serial: r.try_get(4)?,
            not_before: r.try_get(5)?,
            not_after: r.try_get(6)?,
            key_usage: split(r.try_get(7)?),
            ext_key_usage: split(r.try_get(8)?),
            is_ca: r.try_get::<i64, _>(9)? != 0,
            self_issued,
        },
        source: r.try_get(10)?,
        has_key: r.try_get::<i64, _>(11)? != 0,
        added_at: r.try_get(12)?,
        der,
    })
}

/// Adds a certificate; false when it was already there (same SHA-256).
pub(crate) async fn insert_cert(
    pool: &AnyPool,
    info: &CertInfo,
    der: &[u8],
    source: &str,
    has_key: bool,
) -> Result<bool, TrustError> {
    let mut tx = pool.begin().await?;
    let done = sqlx::query(
        "INSERT INTO trust_cert (sha256, sha512, subject, issuer, serial, not_before, not_after,
           key_usage, ext_key_usage, is_ca, source, has_key, der, added_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(&info.sha256)
    .bind(&info.sha512)
    .bind(&info.subject)
    .bind(&info.issuer)
    .bind(&info.serial)
    .bind(info.not_before)
    .bind(info.not_after)
    .bind(info.key_usage.as_ref().map(|v| v.join(",")))
    .bind(info.ext_key_usage.as_ref().map(|v| v.join(",")))
    .bind(i64::from(info.is_ca))
    .bind(source)
    .bind(i64::from(has_key))
    .bind(der)
    .bind(sealgate_store::now_unix())
    .execute(&mut *tx)
    .await?;
    let new = done.rows_affected() == 1;
    if new {
        for e in &info.emails {
            sqlx::query(
                "INSERT INTO trust_cert_email (sha256, email) VALUES ($1, $2)
                 ON CONFLICT (sha256, email) DO NOTHING",
            )
            .bind(&info.sha256)
            .bind(e)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    Ok(new)
}

/// Every certificate, or those naming `email`, ordered by subject.
pub(crate) async fn list_certs(
    pool: &AnyPool,
    email: Option<&str>,
) -> Result<Vec<StoredCert>, TrustError> {
    let rows = match email {
        Some(e) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CERT_COLUMNS} FROM trust_cert WHERE sha256 IN
                   (SELECT sha256 FROM trust_cert_email WHERE email = $1)
                 ORDER BY subject, sha256"
            )))
            .bind(e.to_lowercase())
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {CERT_COLUMNS} FROM trust_cert ORDER BY subject, sha256"
            )))
            .fetch_all(pool)
            .await?
        }
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(cert_from_row(pool, r).await?);
    }
    Ok(out)
}

/// The certificate whose SHA-256 or SHA-512 thumbprint is `thumbprint`
/// (upper case), or whose SHA-256 starts with it.
pub(crate) async fn find_certs(
    pool: &AnyPool,
    thumbprint: &str,
) -> Result<Vec<StoredCert>, TrustError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CERT_COLUMNS} FROM trust_cert
         WHERE sha256 = $1 OR sha512 = $1 OR sha256 LIKE $2 ORDER BY sha256"
    )))
    .bind(thumbprint)
    .bind(format!("{thumbprint}%"))
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(cert_from_row(pool, r).await?);
    }
    Ok(out)
}

pub(crate) async fn remove_cert(pool: &AnyPool, sha256: &str) -> Result<bool, TrustError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM trust_selection WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM trust_sign_selection WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM trust_private_key WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM trust_cert_email WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
    let n = sqlx::query("DELETE FROM trust_cert WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n == 1)
}

/// The DER of every CA certificate of the certificate store.
pub(crate) async fn intermediates(pool: &AnyPool) -> Result<Vec<Vec<u8>>, TrustError> {
    Ok(
        sqlx::query_scalar("SELECT der FROM trust_cert WHERE is_ca = 1")
            .fetch_all(pool)
            .await?,
    )
}

/// A root of the root store.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredRoot {
    pub sha256: String,
    pub sha512: String,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    pub source: String,
    pub added_at: i64,
    #[serde(skip)]
    pub der: Vec<u8>,
}

pub(crate) async fn insert_root(
    pool: &AnyPool,
    info: &CertInfo,
    der: &[u8],
    source: &str,
) -> Result<bool, TrustError> {
    let done = sqlx::query(
        "INSERT INTO trust_root (sha256, sha512, subject, not_before, not_after, source, der, added_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (sha256) DO NOTHING",
    )
    .bind(&info.sha256)
    .bind(&info.sha512)
    .bind(&info.subject)
    .bind(info.not_before)
    .bind(info.not_after)
    .bind(source)
    .bind(der)
    .bind(sealgate_store::now_unix())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(crate) async fn list_roots(pool: &AnyPool) -> Result<Vec<StoredRoot>, TrustError> {
    let rows = sqlx::query(
        "SELECT sha256, sha512, subject, not_before, not_after, source, added_at, der
         FROM trust_root ORDER BY subject, sha256",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredRoot {
                sha256: r.try_get(0)?,
                sha512: r.try_get(1)?,
                subject: r.try_get(2)?,
                not_before: r.try_get(3)?,
                not_after: r.try_get(4)?,
                source: r.try_get(5)?,
                added_at: r.try_get(6)?,
                der: r.try_get(7)?,
            })
        })
        .collect()
}

pub(crate) async fn remove_root(pool: &AnyPool, sha256: &str) -> Result<bool, TrustError> {
    Ok(sqlx::query("DELETE FROM trust_root WHERE sha256 = $1")
        .bind(sha256)
        .execute(pool)
        .await?
        .rows_affected()
        == 1)
}

/// An entry of the certificate trust list.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CtlEntry {
    pub sha512: String,
    /// `white` or `black`.
    pub status: String,
    pub allow_expired: bool,
    pub added_at: i64,
    /// The certificate's subject, when it is in the certificate store.
    pub subject: Option<String>,
}

/// Adds or replaces the entry for `sha512`.
pub(crate) async fn put_ctl(
    pool: &AnyPool,
    sha512: &str,
    white: bool,
    allow_expired: bool,
) -> Result<(), TrustError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM trust_ctl WHERE sha512 = $1")
        .bind(sha512)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO trust_ctl (sha512, status, allow_expired, added_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(sha512)
    .bind(if white { "white" } else { "black" })
    .bind(i64::from(allow_expired))
    .bind(sealgate_store::now_unix())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn list_ctl(pool: &AnyPool) -> Result<Vec<CtlEntry>, TrustError> {
    let rows = sqlx::query(
        "SELECT l.sha512, l.status, l.allow_expired, l.added_at, c.subject
         FROM trust_ctl l LEFT JOIN trust_cert c ON c.sha512 = l.sha512
         ORDER BY l.added_at, l.sha512",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CtlEntry {
                sha512: r.try_get(0)?,
                status: r.try_get(1)?,
                allow_expired: r.try_get::<i64, _>(2)? != 0,
                added_at: r.try_get(3)?,
                subject: r.try_get(4)?,
            })
        })
        .collect()
}

pub(crate) async fn remove_ctl(pool: &AnyPool, sha512: &str) -> Result<bool, TrustError> {
    Ok(sqlx::query("DELETE FROM trust_ctl WHERE sha512 = $1")
        .bind(sha512)
        .execute(pool)
        .await?
        .rows_affected()
        == 1)
}

/// A CRL as the store has it.
#[derive(Debug, Clone)]
pub struct StoredCrl {
    pub info: crate::crl::CrlInfo,
    pub source: String,
    pub fetched_at: i64,
    pub der: Vec<u8>,
}

/// Stores `info` from `source`, replacing the CRL of the same issuer from
/// the same source unless that one is newer (a later thisUpdate). Returns
/// false when the stored one was kept.
pub(crate) async fn put_crl(
    pool: &AnyPool,
    info: &crate::crl::CrlInfo,
    der: &[u8],
    source: &str,
) -> Result<bool, TrustError> {
    let mut tx = pool.begin().await?;
    let newer: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(this_update) FROM trust_crl WHERE issuer_key = $1 AND source = $2",
    )
    .bind(&info.issuer_key)
    .bind(source)
    .fetch_one(&mut *tx)
    .await?;
    if newer.is_some_and(|t| t > info.this_update) {
        return Ok(false);
    }
    sqlx::query("DELETE FROM trust_crl WHERE (issuer_key = $1 AND source = $2) OR sha256 = $3")
        .bind(&info.issuer_key)
        .bind(source)
        .bind(&info.sha256)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO trust_crl (sha256, issuer, issuer_key, this_update, next_update, crl_number,
           revoked, source, der, fetched_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&info.sha256)
    .bind(&info.issuer)
    .bind(&info.issuer_key)
    .bind(info.this_update)
    .bind(info.next_update)
    .bind(info.crl_number.as_deref())
    .bind(info.revoked as i64)
    .bind(source)
    .bind(der)
    .bind(sealgate_store::now_unix())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(crate) async fn list_crls(pool: &AnyPool) -> Result<Vec<StoredCrl>, TrustError> {
    let rows = sqlx::query(
        "SELECT sha256, issuer, issuer_key, this_update, next_update, crl_number, revoked,
                source, fetched_at, der
         FROM trust_crl ORDER BY issuer, this_update DESC",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(StoredCrl {
                info: crate::crl::CrlInfo {
                    sha256: r.try_get(0)?,
                    issuer: r.try_get(1)?,
                    issuer_key: r.try_get(2)?,
                    this_update: r.try_get(3)?,
                    next_update: r.try_get(4)?,
                    crl_number: r.try_get(5)?,
                    revoked: r.try_get::<i64, _>(6)? as usize,
                },
                source: r.try_get(7)?,
                fetched_at: r.try_get(8)?,
                der: r.try_get(9)?,
            })
        })
        .collect()
}

/// The DER of every stored certificate and root, for their distribution points.
pub(crate) async fn all_der(pool: &AnyPool) -> Result<Vec<Vec<u8>>, TrustError> {
    let mut out: Vec<Vec<u8>> = sqlx::query_scalar("SELECT der FROM trust_cert")
        .fetch_all(pool)
        .await?;
    out.extend(
        sqlx::query_scalar::<_, Vec<u8>>("SELECT der FROM trust_root")
            .fetch_all(pool)
            .await?,
    );
    Ok(out)
}

/// Stores the sealed private key of the certificate `sha256` and marks the
/// certificate as having one.
pub(crate) async fn put_private_key(
    pool: &AnyPool,
    sha256: &str,
    sealed: &[u8],
) -> Result<(), TrustError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM trust_private_key WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO trust_private_key (sha256, sealed, added_at) VALUES ($1, $2, $3)")
        .bind(sha256)
        .bind(sealed)
        .bind(sealgate_store::now_unix())
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE trust_cert SET has_key = 1 WHERE sha256 = $1")
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn private_key(
    pool: &AnyPool,
    sha256: &str,
) -> Result<Option<Vec<u8>>, TrustError> {
    Ok(
        sqlx::query_scalar("SELECT sealed FROM trust_private_key WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(pool)
            .await?,
    )
}

/// Manual selections: (target, SHA-256), every one, or those of `targets`.
pub(crate) async fn selections(pool: &AnyPool) -> Result<Vec<(String, String)>, TrustError> {
    let rows = sqlx::query("SELECT target, sha256 FROM trust_selection ORDER BY target, added_at")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

pub(crate) async fn select(pool: &AnyPool, target: &str, sha256: &str) -> Result<bool, TrustError> {
    Ok(sqlx::query(
        "INSERT INTO trust_selection (target, sha256, added_at) VALUES ($1, $2, $3)
         ON CONFLICT (target, sha256) DO NOTHING",
    )
    .bind(target)
    .bind(sha256)
    .bind(sealgate_store::now_unix())
    .execute(pool)
    .await?
    .rows_affected()
        == 1)
}

pub(crate) async fn deselect(
    pool: &AnyPool,
    target: &str,
    sha256: &str,
) -> Result<bool, TrustError> {
    Ok(
        sqlx::query("DELETE FROM trust_selection WHERE target = $1 AND sha256 = $2")
            .bind(target)
            .bind(sha256)
            .execute(pool)
            .await?
            .rows_affected()
            == 1,
    )
}

/// The signing selection of `target`, if any.
pub(crate) async fn sign_selection(
    pool: &AnyPool,
    target: &str,
) -> Result<Option<String>, TrustError> {
    Ok(
        sqlx::query_scalar("SELECT sha256 FROM trust_sign_selection WHERE target = $1")
            .bind(target)
            .fetch_optional(pool)
            .await?,
    )
}

/// Sets (replacing) or, with `None`, removes the signing selection of `target`.
pub(crate) async fn set_sign_selection(
    pool: &AnyPool,
    target: &str,
    sha256: Option<&str>,
) -> Result<bool, TrustError> {
    let mut tx = pool.begin().await?;
    let removed = sqlx::query("DELETE FROM trust_sign_selection WHERE target = $1")
        .bind(target)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if let Some(sha) = sha256 {
        sqlx::query(
            "INSERT INTO trust_sign_selection (target, sha256, added_at) VALUES ($1, $2, $3)",
        )
        .bind(target)
        .bind(sha)
        .bind(sealgate_store::now_unix())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(removed > 0)
}
