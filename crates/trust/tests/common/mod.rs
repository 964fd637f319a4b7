//! What the trust tests share: a store on SQLite in a temporary directory
//! (or on a temporary PostgreSQL database), a root and an intermediate.

use sealgate_store::Store;
use sealgate_testkit::pki::TestCa;
use sealgate_trust::{TrustOptions, TrustStore};

/// A trust stage on a fresh SQLite store (the directory lives as long as
/// the returned guard).
pub async fn sqlite_with(options: TrustOptions) -> (tempfile::TempDir, TrustStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    (dir, TrustStore::with_options(store, options))
}

/// A trust stage on a fresh PostgreSQL database (dropped with the guard).
#[allow(dead_code)]
pub async fn postgres_with(
    options: TrustOptions,
) -> (sealgate_testkit::postgres::TempDatabase, TrustStore) {
    let db = sealgate_testkit::postgres::TempDatabase::create()
        .expect("PostgreSQL on 127.0.0.1:5432 (see test-peers)");
    let store = Store::open(&db.url()).await.unwrap();
    (db, TrustStore::with_options(store, options))
}

#[allow(dead_code)]
pub async fn sqlite() -> (tempfile::TempDir, TrustStore) {
    sqlite_with(TrustOptions::default()).await
}

/// A root and an intermediate under it.
#[allow(dead_code)]
pub struct Pki {
    pub root: TestCa,
    pub inter: TestCa,
}

/// `<prefix> Root` -> `<prefix> Intermediate`.
#[allow(dead_code)]
pub fn pki(prefix: &str) -> Pki {
    let root = TestCa::new(&format!("{prefix} Root"));
    let inter = root.intermediate(&format!("{prefix} Intermediate"));
    Pki { root, inter }
}
