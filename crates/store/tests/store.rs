//! The store against both real backends: a SQLite file and a throwaway
//! PostgreSQL database on 127.0.0.1:5432.

use sealgate_store::{AuditRecipient, AuditRecord, KeyKind, Level, NewBinding, Store, StoredKey};
use sealgate_testkit::postgres::TempDatabase;

fn key(fpr: &str, addrs: &[&str]) -> StoredKey {
    StoredKey {
        fingerprint: fpr.into(),
        kind: KeyKind::Pgp,
        data: "-----BEGIN PGP PUBLIC KEY BLOCK-----\n...".into(),
        source: "import".into(),
        addresses: addrs.iter().map(|s| s.to_string()).collect(),
        uids: addrs.iter().map(|s| s.to_lowercase()).collect(),
        length: Some(3072),
        expires_at: Some(1_900_000_000),
        created_at: 0,
        refreshed_at: 0,
    }
}

/// Bindings: levels only rise, one active binding per address and kind,
/// re-imports keep other sources' bindings, removal drops them.
async fn bindings(store: &Store) {
    let b = |fpr: &'static str, level, source: &'static str| NewBinding {
        address: "bob@example.org",
        fingerprint: fpr,
        kind: "pgp",
        level,
        source,
        sign_used: false,
    };
    store
        .put_key(&key("D1", &["bob@example.org"]), Level::ProviderTrust)
        .await
        .unwrap();
    // Harvested again at a lower level: the level and source stay.
    store
        .bind(&b("D1", Level::WeakChain, "harvest:pgp"), 10)
        .await
        .unwrap();
    let got = store.bindings("BOB@example.org").await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].level, Level::ProviderTrust);
    assert_eq!(got[0].source, "import");
    assert_eq!(got[0].last_seen, 10);
    assert_eq!(
        store.keys_for("bob@example.org").await.unwrap()[0].uids,
        ["bob@example.org"]
    );
    assert_eq!(
        store.keys_for("bob@example.org").await.unwrap()[0].length,
        Some(3072)
    );
    // A higher level wins.
    store
        .bind(&b("D1", Level::Fingerprint, "admin"), 11)
        .await
        .unwrap();
    assert_eq!(
        store.bindings("bob@example.org").await.unwrap()[0].level,
        Level::Fingerprint
    );
    // A second key, harvested.
    let mut d2 = key("D2", &[]);
    d2.source = "harvest:pgp".into();
    store.put_key_data(&d2).await.unwrap();
    store
        .bind(&b("D2", Level::WeakChain, "harvest:pgp"), 12)
        .await
        .unwrap();
    assert!(store
        .set_active("bob@example.org", "D1", None, 13)
        .await
        .unwrap());
    assert!(store
        .set_active("bob@example.org", "D2", None, 14)
        .await
        .unwrap());
    assert!(!store
        .set_active("bob@example.org", "NOPE", None, 14)
        .await
        .unwrap());
    let got = store.bindings("bob@example.org").await.unwrap();
    let active: Vec<_> = got
        .iter()
        .filter(|b| b.active)
        .map(|b| b.fingerprint.as_str())
        .collect();
    assert_eq!(active, ["D2"]);
    assert_eq!(
        got.iter()
            .find(|b| b.fingerprint == "D2")
            .unwrap()
            .last_audited_at,
        Some(14)
    );
    // set_active raises, never lowers.
    store
        .set_active("bob@example.org", "D2", Some(Level::KnownKey), 15)
        .await
        .unwrap();
    store
        .set_active("bob@example.org", "D2", Some(Level::WeakChain), 16)
        .await
        .unwrap();
    let got = store.bindings("bob@example.org").await.unwrap();
    assert_eq!(
        got.iter().find(|b| b.fingerprint == "D2").unwrap().level,
        Level::KnownKey
    );
    // A re-import of D1 for another address drops its bindings of source
    // `import` elsewhere; bob's D1 binding came to belong to "admin" when it
    // was raised, so it stays, and so does the harvested D2.
    store
        .put_key(&key("D1", &["carol@example.org"]), Level::ProviderTrust)
        .await
        .unwrap();
    assert_eq!(store.bindings("bob@example.org").await.unwrap().len(), 2);
    store
        .put_key(
            &key("D3", &["bob@example.org", "x@example.org"]),
            Level::ProviderTrust,
        )
        .await
        .unwrap();
    store
        .put_key(&key("D3", &["x@example.org"]), Level::ProviderTrust)
        .await
        .unwrap();
    assert_eq!(store.bindings("bob@example.org").await.unwrap().len(), 2);
    assert!(store.remove_key("D1").await.unwrap());
    let got = store.bindings("bob@example.org").await.unwrap();
    assert!(got.iter().all(|b| b.fingerprint == "D2"), "{got:?}");
    // keys_for gives the binding's source for the address asked for.
    assert_eq!(
        store.keys_for("bob@example.org").await.unwrap()[0].source,
        "harvest:pgp"
    );
    store.mark_encrypted("bob@example.org", "D2").await.unwrap();
    assert!(store.bindings("bob@example.org").await.unwrap()[0].encr_used);
    assert!(store.remove_key("D2").await.unwrap());
    assert!(store.bindings("bob@example.org").await.unwrap().is_empty());
    assert!(store.remove_key("D3").await.unwrap());
}

/// Which remote keys are due for a refresh: refreshed `interval` ago, or
/// expiring within `before_expiry` and not refreshed since entering it;
/// never local keys.
async fn refresh_due(store: &Store) {
    let now = sealgate_store::now_unix();
    let remote = |fpr: &str, source: &str, expires_at: Option<i64>| StoredKey {
        source: source.into(),
        expires_at,
        ..key(fpr, &[])
    };
    let day = 86_400;
    for (k, refreshed_at) in [
        // Refreshed 8 days ago: due by the interval.
        (remote("R1", "keyserver:hkp://ks", None), now - 8 * day),
        // Refreshed a day ago, far from expiry: not due.
        (remote("R2", "wkd", Some(now + 365 * day)), now - day),
        // Expires in 30 days, last refreshed before the 60-day window: due.
        (
            remote("R3", "wkd", Some(now + 30 * day)),
            now - 31 * day + 1,
        ),
        // Expires in 30 days, refreshed inside the window: not due.
        (
            remote("R4", "keyserver:hkp://ks", Some(now + 30 * day)),
            now - day,
        ),
        // A local key, refreshed long ago: never due.
        (remote("R5", "import", None), 0),
    ] {
        store.put_key_data(&k).await.unwrap();
        sqlx::query("UPDATE keys SET refreshed_at = $1 WHERE fingerprint = $2")
            .bind(refreshed_at)
            .bind(&k.fingerprint)
            .execute(store.pool())
            .await
            .unwrap();
    }
    let due: Vec<String> = store
        .keys_due_for_refresh(now, 7 * day, 60 * day, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.fingerprint)
        .collect();
    // Least recently refreshed first.
    assert_eq!(due, ["R3", "R1"]);
    let limited = store
        .keys_due_for_refresh(now, 7 * day, 60 * day, 1)
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    store.touch_key("R1").await.unwrap();
    let due = store
        .keys_due_for_refresh(now, 7 * day, 60 * day, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    for f in ["R1", "R2", "R3", "R4", "R5"] {
        assert!(store.remove_key(f).await.unwrap());
    }
}

async fn exercise(store: &Store) {
    refresh_due(store).await;
    store
        .put_key(
            &key("AAA", &["Alice@Example.org", "a2@example.org"]),
            Level::ProviderTrust,
        )
        .await
        .unwrap();
    store
        .put_key(&key("BBB", &["alice@example.org"]), Level::ProviderTrust)
        .await
        .unwrap();
    let found = store.keys_for("ALICE@example.org").await.unwrap();
    assert_eq!(
        found
            .iter()
            .map(|k| k.fingerprint.as_str())
            .collect::<Vec<_>>(),
        ["AAA", "BBB"]
    );
    assert_eq!(found[0].addresses, ["a2@example.org", "alice@example.org"]);
    assert_eq!(found[0].expires_at, Some(1_900_000_000));
    assert_eq!(found[0].kind, KeyKind::Pgp);

    // Re-import replaces the bindings.
    store
        .put_key(&key("AAA", &["other@example.org"]), Level::ProviderTrust)
        .await
        .unwrap();
    assert_eq!(store.keys_for("alice@example.org").await.unwrap().len(), 1);
    assert_eq!(store.list_keys().await.unwrap().len(), 2);

    assert!(store.remove_key("AAA").await.unwrap());
    assert!(!store.remove_key("AAA").await.unwrap());
    assert!(store
        .keys_for("other@example.org")
        .await
        .unwrap()
        .is_empty());

    // A key without any address binding is listed with an empty list.
    store
        .put_key(&key("CCC", &[]), Level::ProviderTrust)
        .await
        .unwrap();
    let all = store.list_keys().await.unwrap();
    assert_eq!(
        all.iter()
            .map(|k| (k.fingerprint.as_str(), k.addresses.len()))
            .collect::<Vec<_>>(),
        [("BBB", 1), ("CCC", 0)]
    );
    assert_eq!(
        store.key("CCC").await.unwrap().unwrap().addresses,
        Vec::<String>::new()
    );
    assert!(store.key("ZZZ").await.unwrap().is_none());
    bindings(store).await;

    let rec = AuditRecord {
        id: "Q1".into(),
        message_id: Some("<m1@example.org>".into()),
        received_at: 1_800_000_000,
        client: "127.0.0.1 [client.example]".into(),
        sender: "s@example.org".into(),
        recipients: vec![AuditRecipient {
            address: "alice@example.org".into(),
            decision: "encrypt".into(),
            method: Some("pgp".into()),
            fingerprints: vec!["BBB".into()],
            outcome: "relayed".into(),
        }],
        outcome: "relayed".into(),
        reply: "250 2.0.0 Ok".into(),
    };
    store.record_audit(&rec).await.unwrap();

    // The lookup cache: fresh, expired per address or all, moved sources.
    let now = sealgate_store::now_unix();
    store
        .cache_put("ldap:corp", "A@example.org", "loc1", &["PEM".into()], 60)
        .await
        .unwrap();
    store
        .cache_put("wkd", "a@example.org", "loc2", &[], 60)
        .await
        .unwrap();
    let e = store
        .cache_get("ldap:corp", "a@EXAMPLE.org")
        .await
        .unwrap()
        .unwrap();
    assert!(e.is_fresh("loc1", now));
    assert!(!e.is_fresh("other-location", now));
    assert_eq!(e.keys, vec!["PEM".to_string()]);
    assert!(store
        .cache_get("wkd", "a@example.org")
        .await
        .unwrap()
        .unwrap()
        .keys
        .is_empty());
    assert_eq!(store.cache_expire(Some("a@example.org")).await.unwrap(), 2);
    assert!(!store
        .cache_get("wkd", "a@example.org")
        .await
        .unwrap()
        .unwrap()
        .is_fresh("loc2", now));
    store
        .cache_put("wkd", "b@example.org", "loc2", &[], 60)
        .await
        .unwrap();
    store
        .cache_put("ldap:corp", "b@example.org", "loc1", &[], 60)
        .await
        .unwrap();
    assert_eq!(
        store.cache_expire_moved("ldap:corp", "loc1").await.unwrap(),
        0
    );
    assert_eq!(
        store
            .cache_expire_moved("ldap:corp", "loc-new")
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.cache_expire(None).await.unwrap(), 1);
    let got = store.recent_audit(10).await.unwrap();
    assert_eq!(got, vec![rec]);
}

#[tokio::test]
async fn sqlite_file_is_created_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/data/sealgate.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    assert!(dir.path().join("data/sealgate.db").exists());
    exercise(&store).await;
    store.close().await;
    // Reopening runs the migrations again without error and keeps the data.
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.list_keys().await.unwrap().len(), 2);
}

#[tokio::test]
async fn postgres_database() {
    let db = TempDatabase::create().expect("PostgreSQL on 127.0.0.1:5432 is required");
    let store = Store::open(&db.url()).await.unwrap();
    exercise(&store).await;
    store.close().await;
}

#[tokio::test]
async fn bad_urls_are_clear_errors() {
    let err = Store::open("mysql://x/y").await.unwrap_err().to_string();
    assert!(err.contains("unsupported store URL"), "{err}");
    let err = Store::open("postgres://nobody:pw@127.0.0.1:1/none")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot open the store") && err.contains("***") && !err.contains(":pw@"),
        "{err}"
    );
}
