//! Opening the database: URL checks, SQLite file creation, migrations.

use crate::{Result, StoreError};
use sqlx::any::{install_default_drivers, AnyPoolOptions};
use sqlx::AnyPool;
use std::path::Path;
use std::time::Duration;

/// Which SQL server is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A handle on the database; cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    /// Connections for writes that must survive a power cut before sealgate
    /// answers (the queue): SQLite `synchronous = FULL` on one connection (so
    /// writers queue in the pool, not in SQLite's busy handler), PostgreSQL
    /// `synchronous_commit = on` whatever the server's default.
    durable: AnyPool,
    backend: Backend,
    /// The database file, for SQLite.
    path: Option<std::path::PathBuf>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

impl Store {
    /// Opens (and for SQLite creates) the database at `url`, then applies the
    /// migrations in `migrations/`.
    pub async fn open(url: &str) -> Result<Store> {
        install_default_drivers();
        let (backend, connect_url) = normalise_url(url)?;
        let sqlite = backend == Backend::Sqlite;
        // WAL lets readers (RCPT lookups, the queue's reads) run beside the
        // writers; NORMAL syncs at checkpoints, not per commit.
        let normal: &[&'static str] = if sqlite {
            &["PRAGMA journal_mode = WAL", "PRAGMA synchronous = NORMAL"]
        } else {
            &[]
        };
        let pool = connect(url, &connect_url, if sqlite { 4 } else { 10 }, 10, normal).await?;
        MIGRATOR.run(&pool).await?;
        let durable: &[&'static str] = if sqlite {
            &["PRAGMA synchronous = FULL"]
        } else {
            &["SET synchronous_commit = on"]
        };
        let durable = connect(url, &connect_url, if sqlite { 1 } else { 8 }, 30, durable).await?;
        let path = (sqlite).then(|| sqlite_file(url)).flatten();
        Ok(Store {
            pool,
            durable,
            backend,
            path,
        })
    }

    /// The pool for reads and for writes that may be lost with the last
    /// second before a power cut (cache, audit).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool for durable writes: a commit on it is on disk when it
    /// returns (see [`Store`]).
    pub fn durable_pool(&self) -> &AnyPool {
        &self.durable
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite database file (`None` on PostgreSQL or in memory).
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection (waits for them to be returned).
    pub async fn close(&self) {
        self.durable.close().await;
        self.pool.close().await;
    }
}

/// A pool whose every connection first runs `setup`.
async fn connect(
    url: &str,
    connect_url: &str,
    max: u32,
    acquire_secs: u64,
    setup: &'static [&'static str],
) -> Result<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(acquire_secs))
        .after_connect(move |conn, _| {
            Box::pin(async move {
                for sql in setup {
                    sqlx::Executor::execute(&mut *conn, *sql).await?;
                }
                Ok(())
            })
        })
        .connect(connect_url)
        .await
        .map_err(|source| StoreError::Open {
            url: redact(url),
            source,
        })
}

/// The file of a `sqlite:` URL.
fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

/// Checks the URL scheme; for SQLite creates the parent directory and asks sqlx
/// to create the file (`mode=rwc`).
fn normalise_url(url: &str) -> Result<(Backend, String)> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path_part = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = match path_part.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_part, None),
        };
        if path.is_empty() {
            return Err(StoreError::Url(url.to_string()));
        }
        if path != ":memory:" {
            if let Some(parent) = Path::new(path).parent() {
                if !parent.as_os_str().is_empty() {
                    std::fs::create_dir_all(parent).map_err(|source| StoreError::CreateDir {
                        path: parent.display().to_string(),
                        source,
                    })?;
                }
            }
        }
        let url = match query {
            Some(q) if q.contains("mode=") => url.to_string(),
            Some(_) => format!("{url}&mode=rwc"),
            None => format!("{url}?mode=rwc"),
        };
        Ok((Backend::Sqlite, url))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok((Backend::Postgres, url.to_string()))
    } else {
        Err(StoreError::Url(redact(url)))
    }
}

/// The URL without its userinfo (`https://u:pw@ks` becomes `https://***@ks`),
/// for names, error messages and logs. Any text that is not a URL is returned
/// as it is.
pub fn redact(url: &str) -> String {
    let Some(s) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[s + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..s + 3], &rest[at..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://***@h/db");
        assert_eq!(redact("https://u:pw@ks"), "https://***@ks");
        // A bare user part may be a token: it goes too.
        assert_eq!(redact("https://tok3n@ks/x"), "https://***@ks/x");
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
        // An @ after the authority is not userinfo.
        assert_eq!(
            redact("https://ks/pks/lookup?search=a@b.example"),
            "https://ks/pks/lookup?search=a@b.example"
        );
        assert_eq!(redact("no url"), "no url");
    }

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/x.db", dir.path().display());
        let (b, u) = normalise_url(&url).unwrap();
        assert_eq!(b, Backend::Sqlite);
        assert!(u.ends_with("?mode=rwc"));
        assert!(dir.path().join("sub").is_dir());
        // Four slashes: still the absolute path, no stray relative directory.
        let abs = format!("sqlite:///{}/abs/x.db", dir.path().display());
        normalise_url(&abs).unwrap();
        assert!(dir.path().join("abs").is_dir());
        assert!(normalise_url("mysql://x").is_err());
        assert!(normalise_url("sqlite://").is_err());
    }
}
