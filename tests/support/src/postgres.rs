//! Throwaway PostgreSQL databases for tests of the store.
//!
//! These machines run PostgreSQL on 127.0.0.1:5432 with trust auth. Each
//! [`TempDatabase`] is a fresh database with a random name on that server,
//! created and dropped with the `psql` client. A server that cannot be
//! reached is an error, never a reason to skip: the tests that need it fail.

use std::process::Command;
use std::time::Duration;

use crate::process::run_ok;

/// Host of the test PostgreSQL server.
pub const HOST: &str = "127.0.0.1";
/// Port of the test PostgreSQL server.
pub const PORT: u16 = 5432;
/// Role used for everything (trust auth).
pub const USER: &str = "postgres";

const PSQL_TIMEOUT: Duration = Duration::from_secs(60);

/// A database `sealgate_test_<random>` on the local server, dropped
/// (`DROP DATABASE ... WITH (FORCE)`, which ends open connections) on Drop.
pub struct TempDatabase {
    name: String,
}

impl TempDatabase {
    /// Creates the database. Err (with psql's message and a hint) if the
    /// server is not reachable or refuses.
    pub fn create() -> Result<TempDatabase, String> {
        let name = format!("sealgate_test_{:016x}", crate::ports::random_u64());
        psql("postgres", &format!("CREATE DATABASE {name}")).map_err(|e| {
            format!(
                "cannot create a test database on PostgreSQL at {HOST}:{PORT} as {USER} \
                 (is the server running? `pg_ctlcluster --skip-systemctl-redirect \
                 $(ls /etc/postgresql) main start`): {e}"
            )
        })?;
        Ok(TempDatabase { name })
    }

    /// `postgres://postgres@127.0.0.1:5432/<name>`.
    pub fn url(&self) -> String {
        format!("postgres://{USER}@{HOST}:{PORT}/{}", self.name)
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `sql` in this database with psql (unaligned, tuples only, `|`
    /// between columns) and returns its output, e.g. for assertions on what
    /// the code under test stored.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        psql(&self.name, sql)
    }

    /// Drops the database now, ending every connection to it: what a
    /// client sees when its database goes away.
    pub fn drop_now(&self) -> Result<String, String> {
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        if let Err(e) = psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("warning: could not drop test database {}: {e}", self.name);
        }
    }
}

/// `psql -h 127.0.0.1 -U postgres -d <db> -v ON_ERROR_STOP=1 -c <sql>`.
fn psql(db: &str, sql: &str) -> Result<String, String> {
    let mut cmd = Command::new("psql");
    cmd.args(["-h", HOST, "-p", &PORT.to_string(), "-U", USER, "-d", db])
        .args(["-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t", "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10");
    run_ok(cmd, PSQL_TIMEOUT)
}
