//! Fail closed: a key source that fails or hangs, or an encryption that fails,
//! never lets plaintext out. The pipeline runs with the real relay and store;
//! only the key sources are test doubles, because their failure is the input
//! here, not the thing under test.

mod common;
use common::{client, envelope, queue_to, Fixed};
use sealgate_keys::source::Source;
use sealgate_keys::trust::AcceptAllTrust;
use sealgate_keys::{RecipientKey, Resolver};
use sealgate_pipeline::{Pipeline, PipelineOptions};
use sealgate_policy::{DomainPolicy, Mode, Policy, PolicyConfig};
use sealgate_smtp_server::Handler;
use sealgate_store::Store;
use sealgate_testkit::sink::Sink;
use sequoia_openpgp::cert::CertBuilder;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Failing;
#[async_trait::async_trait]
impl Source for Failing {
    fn name(&self) -> String {
        "failing".into()
    }
    async fn lookup(&self, _: &str) -> Result<Vec<RecipientKey>, String> {
        Err("ldap://dir.internal.corp:389 as cn=admin,dc=corp: connection refused".into())
    }
}

struct Hanging;
#[async_trait::async_trait]
impl Source for Hanging {
    fn name(&self) -> String {
        "hanging".into()
    }
    async fn lookup(&self, _: &str) -> Result<Vec<RecipientKey>, String> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(Vec::new())
    }
}

async fn pipeline(source: Arc<dyn Source>, sink: &Sink, dir: &tempfile::TempDir) -> Pipeline {
    pipeline_to(
        source,
        sink.port(),
        dir,
        PipelineOptions {
            lookup_timeout: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .await
}

async fn pipeline_to(
    source: Arc<dyn Source>,
    upstream_port: u16,
    dir: &tempfile::TempDir,
    options: PipelineOptions,
) -> Pipeline {
    let mut policy = PolicyConfig::default();
    policy.domains.insert(
        "example.org".into(),
        DomainPolicy {
            mode: Some(Mode::Mandatory),
            ..Default::default()
        },
    );
    // A store of its own for each pipeline: a SQLite store serves one
    // queue at a time.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let store = Store::open(&format!("sqlite://{}/s-{n}.db", dir.path().display()))
        .await
        .unwrap();
    Pipeline::new(
        Policy::new(policy).unwrap(),
        Arc::new(Resolver::new(vec![source], Arc::new(AcceptAllTrust))),
        queue_to(&store, upstream_port).await,
        options,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_or_hanging_source_defers_with_443() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    for source in [Arc::new(Failing) as Arc<dyn Source>, Arc::new(Hanging)] {
        let p = pipeline(source, &sink, &dir).await;
        for address in ["m@example.org", "o@open.test"] {
            let t = Instant::now();
            let r = p
                .recipient(&client(), "s@apps.test", address)
                .await
                .unwrap_err();
            assert_eq!((r.code, r.status), (451, (4, 4, 3)), "{address}: {r}");
            // No internals in the reply (issue 6 item 6): a reference for the
            // log line instead of the host, DN and error text.
            for internal in [
                "internal.corp",
                "cn=admin",
                "ldap://",
                "refused",
                "timed out",
            ] {
                assert!(!r.text.contains(internal), "{address}: {r}");
            }
            assert!(r.text.contains("(ref "), "{r}");
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "bounded by keys.lookup_timeout_secs"
            );
        }
    }
    assert!(sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_in_mandatory_mode_is_refused_and_opportunistic_is_plain() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(Arc::new(Fixed(Vec::new())), &sink, &dir).await;
    let r = p
        .recipient(&client(), "s@apps.test", "m@example.org")
        .await
        .unwrap_err();
    assert_eq!((r.code, r.status), (550, (5, 7, 1)));
    assert!(
        r.text.contains("m@example.org") && r.text.contains("mandatory"),
        "{r}"
    );
    let tok = p
        .recipient(&client(), "s@apps.test", "o@open.test")
        .await
        .unwrap();
    assert!(tok.summary().starts_with("plain"), "{}", tok.summary());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_cannot_be_encrypted_to_is_refused_and_sends_nothing() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let (good, _) = CertBuilder::general_purpose(Some("<a@example.org>"))
        .generate()
        .unwrap();
    let p = pipeline(
        Arc::new(Fixed(vec![RecipientKey::Pgp(Arc::new(good.clone()))])),
        &sink,
        &dir,
    )
    .await;
    let mut token = p
        .recipient(&client(), "s@apps.test", "a@example.org")
        .await
        .unwrap();
    // The key is replaced, after the RCPT decision, by one that cannot encrypt
    // (as if it had been revoked in between): encryption must fail closed.
    let (sign_only, _) = CertBuilder::new()
        .add_userid("<a@example.org>")
        .add_signing_subkey()
        .generate()
        .unwrap();
    if let sealgate_policy::Decision::Encrypt { keys, .. } = &mut token.decision {
        keys[0] = RecipientKey::Pgp(Arc::new(sign_only));
    } else {
        panic!("expected an encrypt decision: {}", token.summary());
    }
    let envelope = envelope("a@example.org", token);
    let reply = p
        .message(
            envelope,
            b"To: a@example.org\r\nSubject: s\r\n\r\nSECRET\r\n".to_vec(),
        )
        .await;
    // The same keys would fail again on every retry: 554 5.7.5, not 451
    // (issue 6 item 3; before, the client was told to retry forever).
    assert_eq!((reply.code, reply.status), (554, (5, 7, 5)), "{reply}");
    assert!(reply.text.contains("<a@example.org>"), "{reply}");
    // The library's error text stays in the log.
    assert!(
        !reply.text.contains("OpenPGP") && !reply.text.contains("subkey"),
        "{reply}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sink.messages().is_empty(), "nothing may reach the upstream");
}

/// With the queue, a silent upstream never holds the client's reply: the
/// copy is durable at 250 and waits in the queue (issue 7; before, the
/// client waited for the upstream and got 451 after message_timeout).
#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_upstream_does_not_hold_the_reply() {
    // Accepts connections and never says a word; the relay's own timeouts (60 s
    // per command) are far longer than this test.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline_to(
        Arc::new(Fixed(Vec::new())),
        silent.local_addr().unwrap().port(),
        &dir,
        PipelineOptions {
            lookup_timeout: Duration::from_secs(1),
            message_timeout: Duration::from_secs(1),
            ..Default::default()
        },
    )
    .await;
    let token = p
        .recipient(&client(), "s@apps.test", "o@open.test")
        .await
        .unwrap();
    let envelope = envelope("o@open.test", token);
    let t = Instant::now();
    let reply = p
        .message(envelope, b"Subject: s\r\n\r\nx\r\n".to_vec())
        .await;
    assert_eq!(reply.code, 250, "{reply}");
    assert!(reply.text.contains("queued as"), "{reply}");
    assert!(t.elapsed() < Duration::from_secs(10));
}

/// Precedence holds when a source fails (issue 6 item 2): a failing source
/// ranked above one that has a key defers the recipient (451 4.4.3) instead
/// of letting the lower-ranked key decide; only `on_source_error = "skip"`
/// lets it. Before, the lower-ranked key was used.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_higher_source_is_not_overruled_by_a_lower_one() {
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = CertBuilder::general_purpose(Some("<a@example.org>"))
        .generate()
        .unwrap();
    let fixed = Arc::new(Fixed(vec![RecipientKey::Pgp(Arc::new(key.clone()))]));
    for (skip_domain, expect_defer) in [(false, true), (true, false)] {
        let mut policy = PolicyConfig::default();
        policy.domains.insert(
            "example.org".into(),
            DomainPolicy {
                mode: Some(Mode::Mandatory),
                on_source_error: skip_domain.then_some(sealgate_policy::OnSourceError::Skip),
                ..Default::default()
            },
        );
        // One store per run: a SQLite store serves one queue at a time.
        let store = Store::open(&format!(
            "sqlite://{}/p-{skip_domain}.db",
            dir.path().display()
        ))
        .await
        .unwrap();
        let p = Pipeline::new(
            Policy::new(policy).unwrap(),
            Arc::new(Resolver::new(
                vec![Arc::new(Failing) as Arc<dyn Source>, fixed.clone()],
                Arc::new(AcceptAllTrust),
            )),
            queue_to(&store, sink.port()).await,
            PipelineOptions::default(),
        );
        let r = p.recipient(&client(), "s@apps.test", "a@example.org").await;
        if expect_defer {
            let r = r.unwrap_err();
            assert_eq!((r.code, r.status), (451, (4, 4, 3)), "{r}");
        } else {
            let tok = r.unwrap();
            assert_eq!(tok.fingerprints(), vec![key.fingerprint().to_hex()]);
        }
    }
}

/// Issue 6 item 12: the audit write never holds the DATA reply. The audit
/// table of a real PostgreSQL is locked by another session; the client's
/// reply still arrives while the lock is held, and the row is written once
/// it is released. Before, the reply waited for the INSERT (here: forever).
#[tokio::test(flavor = "multi_thread")]
async fn the_audit_write_never_holds_the_reply() {
    use sealgate_testkit::postgres::{TempDatabase, HOST, PORT, USER};
    let db = TempDatabase::create().expect("PostgreSQL on 127.0.0.1:5432");
    let sink = Sink::start();
    let store = Store::open(&db.url()).await.unwrap();
    let p = Pipeline::new(
        Policy::new(PolicyConfig::default()).unwrap(),
        Arc::new(Resolver::new(
            vec![Arc::new(Fixed(Vec::new())) as Arc<dyn Source>],
            Arc::new(AcceptAllTrust),
        )),
        queue_to(&store, sink.port()).await,
        PipelineOptions::default(),
    );
    // Another session holds an exclusive lock on the audit table until we
    // close its stdin.
    let mut locker = std::process::Command::new("psql")
        .args([
            "-h",
            HOST,
            "-p",
            &PORT.to_string(),
            "-U",
            USER,
            "-d",
            db.name(),
            "-q",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = locker.stdin.as_mut().unwrap();
        stdin
            .write_all(b"BEGIN;\nLOCK TABLE audit IN ACCESS EXCLUSIVE MODE;\nSELECT 'locked';\n")
            .unwrap();
        stdin.flush().unwrap();
    }
    {
        use std::io::BufRead;
        let mut out = std::io::BufReader::new(locker.stdout.as_mut().unwrap());
        let mut line = String::new();
        while !line.contains("locked") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "psql ended");
        }
    }
    let token = p
        .recipient(&client(), "s@apps.test", "o@open.test")
        .await
        .unwrap();
    let envelope = envelope("o@open.test", token);
    let reply = tokio::time::timeout(
        Duration::from_secs(30),
        p.message(envelope, b"Subject: s\r\n\r\nx\r\n".to_vec()),
    )
    .await
    .expect("the reply must not wait for the locked audit table");
    assert_eq!(reply.code, 250, "{reply}");
    assert_eq!(sink.wait_for(1, Duration::from_secs(20)).unwrap().len(), 1);
    // Release the lock: the row is written.
    {
        use std::io::Write;
        locker
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"COMMIT;\n")
            .unwrap();
    }
    drop(locker.stdin.take());
    locker.wait().unwrap();
    let mut rows = Vec::new();
    for _ in 0..100 {
        rows = store.recent_audit(10).await.unwrap();
        if !rows.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows.len(), 1, "the audit row is written after the lock");
    store.close().await;
}
