//! What the trust tests share: a store on SQLite in a temporary directory.

use sealgate_store::Store;
use sealgate_trust::{TrustOptions, TrustStore};

/// A trust stage on a fresh SQLite store (the directory lives as long as
/// the returned guard).
pub async fn sqlite_with(options: TrustOptions) -> (tempfile::TempDir, TrustStore) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    (dir, TrustStore::with_options(store, options))
}

#[allow(dead_code)]
pub async fn sqlite() -> (tempfile::TempDir, TrustStore) {
    sqlite_with(TrustOptions::default()).await
}
