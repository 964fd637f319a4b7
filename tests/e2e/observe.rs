//! The admin listener of the real binary: `/metrics` read by Python's
//! prometheus_client (not our code) with the counters moving as mail flows
//! through Postfix, `/livez`, and `/readyz` failing while the store is
//! unreachable.

use crate::gateway::Gateway;
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::Postfix;
use sealgate_testkit::postgres::TempDatabase;
use sealgate_testkit::sink::Sink;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Debian's interpreter, which has python3-prometheus-client.
const PYTHON: &str = "/usr/bin/python3";

/// `GET path` over HTTP/1.0: (status, body).
pub(crate) fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

/// Every sample of a Prometheus text as `name{k="v",...}` -> value, parsed
/// by prometheus_client's own parser.
fn samples(text: &str) -> HashMap<String, f64> {
    let script = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        out["%s{%s}" % (s.name, labels)] = s.value
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new(PYTHON)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "parser: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn config(sink: u16, admin: u16, store: &str) -> String {
    format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{sink}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n"
    )
}

#[test]
fn metrics_move_as_mail_flows_and_readyz_follows_the_store() {
    let db =
        TempDatabase::create().expect("PostgreSQL on 127.0.0.1:5432 is required for this test");
    let sink = Sink::start();
    let admin = free_port();
    let gw = Gateway::start(&config(sink.port(), admin, &db.url()));
    assert_eq!(get(admin, "/livez").0, 200);
    let (status, body) = get(admin, "/readyz");
    assert_eq!(status, 200, "{body}");
    let before = samples(&get(admin, "/metrics").1);
    assert_eq!(
        before["sealgate_messages_received_total{outcome=\"queued\"}"],
        0.0
    );

    let postfix = Postfix::start(gw.port);
    for n in 0..3 {
        let m = format!("From: a@apps.test\r\nTo: x@open.test\r\nSubject: m{n}\r\n\r\nbody\r\n");
        postfix
            .send("a@apps.test", &["x@open.test"], m.as_bytes())
            .unwrap();
    }
    sink.wait_for(3, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    // Delivery is counted once its result is written: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let s = samples(&get(admin, "/metrics").1);
        if s["sealgate_deliveries_total{result=\"delivered\"}"] >= 3.0 || Instant::now() > deadline
        {
            break s;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        after["sealgate_messages_received_total{outcome=\"queued\"}"],
        3.0
    );
    assert_eq!(after["sealgate_copies_built_total{method=\"plain\"}"], 3.0);
    assert_eq!(
        after["sealgate_deliveries_total{result=\"delivered\"}"],
        3.0
    );
    assert_eq!(after["sealgate_delivery_latency_seconds_count{}"], 3.0);
    assert!(after.contains_key("sealgate_smtp_sessions_open{}"));
    // No keys anywhere: each recipient was looked up and not found.
    assert!(
        after["sealgate_key_lookups_total{result=\"none\",source=\"upload\"}"] >= 3.0,
        "{after:?}"
    );
    assert!(after.contains_key("sealgate_queue_length{state=\"deferred\"}"));

    // The store goes away: /readyz says so, naming the check.
    db.drop_now().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = get(admin, "/readyz");
        if status == 503 {
            assert!(body.contains("store"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "readyz stayed {status}: {body}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(get(admin, "/livez").0, 200, "alive, only not ready");
}
