//! The admin listener over real HTTP on loopback: `/livez`, `/readyz` with
//! checks that really fail (a removed file, a closed port), `/metrics` read
//! by Python's prometheus_client parsers (Prometheus text and OpenMetrics),
//! 404s, the bounds on slow clients, and graceful shutdown.
//!
//! Needs Debian's `python3-prometheus-client` (`.ci/install-deps.sh`).

use sealgate_admin::{check_fn, serve, AdminState, Limits, ReadinessCheck};
use sealgate_metrics::{
    CacheLayer, CopyMethod, DsnKind, LookupResult, MessageOutcome, Metrics, QueueState,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Debian's interpreter, which has `python3-prometheus-client` (the
/// `python3` on PATH may be another one).
const PYTHON: &str = "/usr/bin/python3";

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(state: AdminState) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Server {
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Ready while the file exists.
fn file_check(path: PathBuf) -> Box<dyn ReadinessCheck> {
    check_fn("spool", move || {
        let path = path.clone();
        async move {
            tokio::fs::metadata(&path)
                .await
                .map(|_| ())
                .map_err(|e| format!("{}: {e}", path.display()))
        }
    })
}

/// Ready while something accepts connections on `addr`.
fn tcp_check(addr: SocketAddr) -> Box<dyn ReadinessCheck> {
    check_fn("store", move || async move {
        TcpStream::connect(addr)
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot connect to the store: {e}"))
    })
}

async fn readyz(server: &Server) -> (u16, Value) {
    let response = client().get(server.url("/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "/readyz content type"
    );
    let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    (status, body)
}

#[tokio::test]
async fn livez_answers_ok() {
    let server = Server::start(AdminState::new(Metrics::new(), vec![])).await;
    let response = client().get(server.url("/livez")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), "ok\n");
    server.stop().await;
}

#[tokio::test]
async fn readyz_fails_when_a_check_really_fails() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    std::fs::write(&spool, b"").unwrap();
    let store = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_addr = store.local_addr().unwrap();
    let state = AdminState::new(
        Metrics::new(),
        vec![file_check(spool.clone()), tcp_check(store_addr)],
    );
    let server = Server::start(state).await;

    let (status, body) = readyz(&server).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["failed"], serde_json::json!([]));
    assert_eq!(
        body["checks"],
        serde_json::json!([{"name": "spool", "ok": true}, {"name": "store", "ok": true}])
    );

    std::fs::remove_file(&spool).unwrap();
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["failed"], serde_json::json!(["spool"]));
    assert_eq!(body["checks"][0]["ok"], false);
    let error = body["checks"][0]["error"].as_str().unwrap();
    assert!(error.contains("No such file"), "{error}");
    assert_eq!(body["checks"][1]["ok"], true);

    // The port closes: connections are refused.
    drop(store);
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failed"], serde_json::json!(["spool", "store"]));
    let error = body["checks"][1]["error"].as_str().unwrap();
    assert!(error.contains("cannot connect to the store"), "{error}");

    // Both come back: ready again.
    std::fs::write(&spool, b"").unwrap();
    let _store = TcpListener::bind(store_addr).await.unwrap();
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 200, "{body}");

    server.stop().await;
}

#[tokio::test]
async fn a_hanging_check_fails_within_its_timeout() {
    let state = AdminState::new(
        Metrics::new(),
        vec![check_fn("queue", || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        })],
    )
    .with_limits(Limits {
        check_timeout: Duration::from_millis(300),
        ..Limits::default()
    });
    let server = Server::start(state).await;
    let started = Instant::now();
    let (status, body) = readyz(&server).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failed"], serde_json::json!(["queue"]));
    assert_eq!(body["checks"][0]["error"], "no answer within 300 ms");
    server.stop().await;
}

#[tokio::test]
async fn readyz_fails_once_shutdown_starts() {
    let state = AdminState::new(Metrics::new(), vec![]);
    let server = Server::start(state.clone()).await;
    assert_eq!(readyz(&server).await.0, 200);
    state.mark_shutting_down();
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["failed"], serde_json::json!(["shutdown"]));
    // Still live: only readiness changes.
    let response = client().get(server.url("/livez")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    server.stop().await;
}

/// Runs a Python prometheus_client parser on `text`; returns
/// `{family: {"type": .., "samples": [[name, labels, value], ..]}}`.
async fn python_parse(parser: &str, text: &str) -> Value {
    let script = format!(
        r#"
import json, sys
from {parser} import text_string_to_metric_families
out = {{}}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {{
        "type": family.type,
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    }}
print(json.dumps(out))
"#
    );
    let mut child = tokio::process::Command::new(PYTHON)
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PYTHON}: {e} (run .ci/install-deps.sh)"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(text.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "{parser} refused the text (is python3-prometheus-client installed? .ci/install-deps.sh):\n{}\n---\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Is label `key` `want`? Bucket bounds are compared as numbers: the
/// Prometheus text writes `le="1"` where OpenMetrics writes `le="1.0"`.
fn label_matches(got: Option<&str>, key: &str, want: &str) -> bool {
    match got {
        Some(got) if key == "le" => got.parse::<f64>().ok() == want.parse::<f64>().ok(),
        Some(got) => got == want,
        None => false,
    }
}

/// The value of the sample `name` whose labels include `labels`.
fn sample(families: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let samples = families[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family} in {families}"));
    samples
        .iter()
        .find(|s| {
            s[0] == name
                && labels
                    .iter()
                    .all(|(k, v)| label_matches(s[1].get(*k).and_then(Value::as_str), k, v))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in {family}: {samples:?}"))[2]
        .as_f64()
        .unwrap()
}

const FAMILIES: &[(&str, &str)] = &[
    ("sealgate_messages_received", "counter"),
    ("sealgate_copies_built", "counter"),
    ("sealgate_deliveries", "counter"),
    ("sealgate_dsns", "counter"),
    ("sealgate_queue_length", "gauge"),
    ("sealgate_queue_oldest_age_seconds", "gauge"),
    ("sealgate_delivery_latency_seconds", "histogram"),
    ("sealgate_key_lookups", "counter"),
    ("sealgate_key_cache_hits", "counter"),
    ("sealgate_key_source_circuit_open", "gauge"),
    ("sealgate_smtp_sessions_open", "gauge"),
    ("sealgate_inflight_bytes", "gauge"),
];

async fn scrape(server: &Server, accept: Option<&str>) -> (String, String) {
    let mut request = client().get(server.url("/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_parse_and_move() {
    let metrics = Metrics::new();
    metrics.init_key_source("upload");
    let server = Server::start(AdminState::new(metrics.clone(), vec![])).await;

    // Prometheus text format 0.0.4 for a client that does not ask for
    // OpenMetrics, read by prometheus_client.parser.
    let (content_type, text) = scrape(&server, None).await;
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let before = python_parse("prometheus_client.parser", &text).await;
    for (name, kind) in FAMILIES {
        assert_eq!(before[name]["type"], *kind, "{name} in {before}");
    }
    let queued = [("outcome", "queued")];
    assert_eq!(
        sample(
            &before,
            "sealgate_messages_received",
            "sealgate_messages_received_total",
            &queued
        ),
        0.0
    );

    // The gateway works: the numbers move.
    let session = metrics.session();
    metrics.message_received(MessageOutcome::Queued);
    metrics.message_received(MessageOutcome::Queued);
    metrics.copy_built(CopyMethod::Smime);
    metrics.delivered(Duration::from_millis(700));
    metrics.dsn_sent(DsnKind::Failed);
    metrics.set_queue_length(QueueState::Deferred, 12);
    metrics.set_oldest_queued_age(Duration::from_secs(75));
    metrics.key_lookup("wkd", LookupResult::None);
    metrics.cache_hit(CacheLayer::Store);
    metrics.set_circuit_open("wkd", true);
    metrics.set_inflight_bytes(4096);

    let (_, text) = scrape(&server, None).await;
    let after = python_parse("prometheus_client.parser", &text).await;
    let check = |family: &str, name: &str, labels: &[(&str, &str)], want: f64| {
        assert_eq!(
            sample(&after, family, name, labels),
            want,
            "{name} {labels:?}"
        );
    };
    check(
        "sealgate_messages_received",
        "sealgate_messages_received_total",
        &queued,
        2.0,
    );
    check(
        "sealgate_copies_built",
        "sealgate_copies_built_total",
        &[("method", "smime")],
        1.0,
    );
    check(
        "sealgate_deliveries",
        "sealgate_deliveries_total",
        &[("result", "delivered")],
        1.0,
    );
    check(
        "sealgate_dsns",
        "sealgate_dsns_total",
        &[("kind", "failed")],
        1.0,
    );
    check(
        "sealgate_queue_length",
        "sealgate_queue_length",
        &[("state", "deferred")],
        12.0,
    );
    check(
        "sealgate_queue_oldest_age_seconds",
        "sealgate_queue_oldest_age_seconds",
        &[],
        75.0,
    );
    check(
        "sealgate_delivery_latency_seconds",
        "sealgate_delivery_latency_seconds_bucket",
        &[("le", "0.5")],
        0.0,
    );
    check(
        "sealgate_delivery_latency_seconds",
        "sealgate_delivery_latency_seconds_bucket",
        &[("le", "1.0")],
        1.0,
    );
    check(
        "sealgate_delivery_latency_seconds",
        "sealgate_delivery_latency_seconds_count",
        &[],
        1.0,
    );
    check(
        "sealgate_key_lookups",
        "sealgate_key_lookups_total",
        &[("source", "wkd"), ("result", "none")],
        1.0,
    );
    check(
        "sealgate_key_cache_hits",
        "sealgate_key_cache_hits_total",
        &[("layer", "store")],
        1.0,
    );
    check(
        "sealgate_key_source_circuit_open",
        "sealgate_key_source_circuit_open",
        &[("source", "wkd")],
        1.0,
    );
    check(
        "sealgate_smtp_sessions_open",
        "sealgate_smtp_sessions_open",
        &[],
        1.0,
    );
    check(
        "sealgate_inflight_bytes",
        "sealgate_inflight_bytes",
        &[],
        4096.0,
    );

    // OpenMetrics for Prometheus (its Accept header), read by the strict
    // OpenMetrics parser: same families, same values.
    let (content_type, text) = scrape(
        &server,
        Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
    )
    .await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(text.ends_with("# EOF\n"));
    let open = python_parse("prometheus_client.openmetrics.parser", &text).await;
    for (name, kind) in FAMILIES {
        assert_eq!(open[name]["type"], *kind, "{name} in {open}");
    }
    assert_eq!(
        sample(
            &open,
            "sealgate_messages_received",
            "sealgate_messages_received_total",
            &queued
        ),
        2.0
    );
    assert_eq!(
        sample(
            &open,
            "sealgate_delivery_latency_seconds",
            "sealgate_delivery_latency_seconds_bucket",
            &[("le", "1.0")]
        ),
        1.0
    );

    drop(session);
    let (_, text) = scrape(&server, None).await;
    let last = python_parse("prometheus_client.parser", &text).await;
    assert_eq!(
        sample(
            &last,
            "sealgate_smtp_sessions_open",
            "sealgate_smtp_sessions_open",
            &[]
        ),
        0.0
    );
    server.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let server = Server::start(AdminState::new(Metrics::new(), vec![])).await;
    for path in [
        "/",
        "/metrics/",
        "/metrics/x",
        "/admin",
        "/readyz/x",
        "/LIVEZ",
    ] {
        let response = client().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
    // A known path with another method is not a page either.
    let response = client().post(server.url("/livez")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    server.stop().await;
}

/// Reads until the server closes the connection; how long that took.
async fn time_until_closed(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn a_slow_client_is_cut_off() {
    let state = AdminState::new(Metrics::new(), vec![]).with_limits(Limits {
        connection_lifetime: Duration::from_secs(1),
        ..Limits::default()
    });
    let server = Server::start(state).await;

    // Half a request line, then nothing.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A connection that never sends anything.
    let mut silent = TcpStream::connect(server.addr).await.unwrap();

    // Others are served meanwhile.
    let response = client().get(server.url("/livez")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let took = time_until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    let took = time_until_closed(&mut silent, Duration::from_secs(10)).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    server.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed() {
    let state = AdminState::new(Metrics::new(), vec![]).with_limits(Limits {
        max_connections: 2,
        ..Limits::default()
    });
    let server = Server::start(state).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        // A full request on each, so both are surely accepted and counted.
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let took = time_until_closed(&mut third, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");

    drop(held);
    // Slots come back once those connections are gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client().get(server.url("/livez")).send().await {
            Ok(response) if response.status().as_u16() == 200 => break,
            _ if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("no slot came back: {other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn shutdown_is_graceful() {
    let server = Server::start(AdminState::new(Metrics::new(), vec![])).await;
    let addr = server.addr;
    // An idle keep-alive connection does not hold the shutdown up.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}
