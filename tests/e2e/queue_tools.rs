//! `sealgate queue ...` against a running gateway, on SQLite and on
//! PostgreSQL: list, show (never content), hold, release, delete, flush and
//! bounce, each checked by what the running instance does next.

use crate::gateway::{text, Gateway};
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::postgres::TempDatabase;
use sealgate_testkit::sink::{Sink, SinkOptions};
use std::time::Duration;

fn config(upstream: u16, store: &str) -> String {
    // Retries an hour apart: only `queue flush` makes a copy go sooner.
    format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\nhostname = \"gw.test\"\n\
         [relay]\nupstream = \"127.0.0.1:{upstream}\"\ntls = \"none\"\ntimeout_secs = 5\n\
         [store]\nurl = \"{store}\"\n[queue]\nretry_schedule = [\"1h\"]\n"
    )
}

fn json(gw: &Gateway, args: &[&str]) -> serde_json::Value {
    let o = gw.cli(args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", text(&o)))
}

fn ok(gw: &Gateway, args: &[&str]) -> String {
    let o = gw.cli(args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    text(&o)
}

fn ids(list: &serde_json::Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

fn wait_for_list(
    gw: &Gateway,
    want: impl Fn(&serde_json::Value) -> bool,
    what: &str,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let l = json(gw, &["queue", "list", "--json"]);
        if want(&l) {
            return l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: {l:#}\n{}",
            gw.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Starts a sink where the upstream was, flushes the queue, and waits for
/// the first message to arrive there.
fn upstream_back_and_flush(
    gw: &Gateway,
    upstream: u16,
) -> (Sink, Vec<sealgate_testkit::sink::SinkMessage>) {
    let sink = Sink::start_with(SinkOptions {
        port: Some(upstream),
        ..Default::default()
    });
    ok(gw, &["queue", "flush"]);
    let got = sink
        .wait_for(1, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    (sink, got)
}

fn run(store: &str) {
    let upstream = free_port();
    let gw = Gateway::start(&config(upstream, store));
    for n in 0..3 {
        let m = format!(
            "From: a@apps.test\r\nTo: x@open.test\r\nSubject: q{n}\r\n\r\nCONTENT-MARKER {n}\r\n"
        );
        smtp_send(gw.port, "a@apps.test", &["x@open.test"], m.as_bytes()).unwrap();
    }
    // The first attempt of each fails (nothing listens): deferred.
    let list = wait_for_list(
        &gw,
        |l| {
            l.as_array()
                .is_some_and(|a| a.len() == 3 && a.iter().all(|m| m["deferred"] == 1))
        },
        "three deferred messages",
    );
    let ids = ids(&list);
    let text_list = ok(&gw, &["queue", "list"]);
    assert!(
        text_list.contains(&ids[0]) && text_list.contains("3 message(s)"),
        "{text_list}"
    );

    let shown = json(&gw, &["queue", "show", &ids[0], "--json"]);
    let r = &shown["copies"][0]["recipients"][0];
    assert_eq!(r["address"], "x@open.test");
    assert_eq!(r["state"], "deferred");
    assert_eq!(r["attempts"], 1);
    assert!(
        r["last_error"].as_str().unwrap().contains("connect"),
        "{shown:#}"
    );
    assert!(r["next_attempt_at"].as_i64().is_some());
    let shown_text = ok(&gw, &["queue", "show", &ids[0]]);
    assert!(
        shown_text.contains("deferred after 1 attempt(s)"),
        "{shown_text}"
    );
    assert!(
        !format!("{shown}{shown_text}").contains("CONTENT-MARKER"),
        "show never returns content"
    );

    // Unknown ids are named.
    let o = gw.cli(&["queue", "hold", "NOSUCHID"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("no message \"NOSUCHID\" in the queue"),
        "{}",
        text(&o)
    );

    ok(&gw, &["queue", "hold", &ids[0]]);
    let held = json(&gw, &["queue", "list", "--held", "--json"]);
    assert_eq!(self::ids(&held), vec![ids[0].clone()]);
    ok(&gw, &["queue", "delete", &ids[1]]);
    assert_eq!(
        json(&gw, &["queue", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The upstream is back; flush: the one waiting message goes now (not in
    // an hour), the held one stays.
    let (sink, got) = upstream_back_and_flush(&gw, upstream);
    assert!(String::from_utf8_lossy(&got[0].data).contains("CONTENT-MARKER 2"));
    let left = wait_for_list(
        &gw,
        |l| l.as_array().is_some_and(|a| a.len() == 1),
        "only the held message left",
    );
    assert_eq!(self::ids(&left), vec![ids[0].clone()]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sink.messages().len(), 1, "held stays held");

    // Release, then bounce what is left of another message: the sender gets
    // a failure DSN. Release first makes it due; it is delivered.
    ok(&gw, &["queue", "release", &ids[0]]);
    sink.wait_for(2, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    wait_for_list(
        &gw,
        |l| l.as_array().is_some_and(|a| a.is_empty()),
        "empty queue",
    );

    // Bounce: a message whose recipient is refused with 4xx stays deferred;
    // bounce fails it and the sender gets the report.
    drop(sink);
    smtp_send(
        gw.port,
        "a@apps.test",
        &["y@open.test"],
        b"Subject: b\r\n\r\nbounce me\r\n",
    )
    .unwrap();
    let list = wait_for_list(
        &gw,
        |l| {
            l.as_array()
                .is_some_and(|a| a.len() == 1 && a[0]["deferred"] == 1)
        },
        "one deferred",
    );
    let id = self::ids(&list).remove(0);
    let out = ok(&gw, &["queue", "bounce", &id]);
    assert!(out.contains("1 recipient(s) failed"), "{out}");
    let (_sink, got) = upstream_back_and_flush(&gw, upstream);
    assert!(got[0].mail_from.is_empty(), "a DSN from the null sender");
    assert_eq!(got[0].rcpt_to, vec!["a@apps.test".to_string()]);
    let dsn = String::from_utf8_lossy(&got[0].data);
    assert!(
        dsn.contains("Final-Recipient: rfc822; y@open.test") && dsn.contains("Status: 5.0.0"),
        "{dsn}"
    );
    wait_for_list(
        &gw,
        |l| l.as_array().is_some_and(|a| a.is_empty()),
        "empty queue after the DSN",
    );
}

#[test]
fn queue_tools_against_a_running_gateway_on_sqlite() {
    run("sqlite://data/s.db");
}

#[test]
fn queue_tools_against_a_running_gateway_on_postgres() {
    let db =
        TempDatabase::create().expect("PostgreSQL on 127.0.0.1:5432 is required for this test");
    run(&db.url());
}

/// `queue hold` while the copy is being delivered: the attempt succeeds,
/// the recipient is done (not held), and `release` sends nothing again.
/// Before, the delivered recipient stayed held and release sent it twice.
#[test]
fn hold_during_a_successful_delivery_does_not_send_twice() {
    use sealgate_testkit::hostile_upstream::{HostileUpstream, Misbehaviour};
    let slow = HostileUpstream::start(Misbehaviour::SlowFirstRcpt {
        delay: Duration::from_secs(3),
    });
    let cfg =
        config(slow.port(), "sqlite://data/s.db").replace("timeout_secs = 5", "timeout_secs = 20");
    let gw = Gateway::start(&cfg);
    smtp_send(
        gw.port,
        "a@apps.test",
        &["x@open.test"],
        b"Subject: h\r\n\r\nonce\r\n",
    )
    .unwrap();
    let list = wait_for_list(
        &gw,
        |l| l.as_array().is_some_and(|a| a.len() == 1),
        "one message",
    );
    let id = ids(&list).remove(0);
    // The first RCPT is answered after 3 s: the copy is in delivery now.
    ok(&gw, &["queue", "hold", &id]);
    wait_for_list(
        &gw,
        |l| l.as_array().is_some_and(|a| a.is_empty()),
        "delivered despite the hold",
    );
    let o = gw.cli(&["queue", "release", &id]);
    assert!(!o.status.success(), "nothing left to release: {}", text(&o));
    std::thread::sleep(Duration::from_secs(2));
    let datas = slow.log().iter().filter(|l| l.starts_with("DATA")).count();
    assert_eq!(datas, 1, "sent once: {:?}", slow.log());
}
