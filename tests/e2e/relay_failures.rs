//! The upstream refusing or failing: sealgate answers the client with the
//! matching 4xx/5xx and nothing is lost (a sending Postfix keeps the message).

use crate::gateway::Gateway;
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::{smtp_send, Postfix};
use sealgate_testkit::sink::{Sink, SinkOptions};
use std::time::Duration;

fn config(upstream_port: u16) -> String {
    format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{upstream_port}\"\ntls = \"none\"\ntimeout_secs = 5\n[store]\nurl = \"sqlite://data/s.db\"\n"
    )
}

const MSG: &[u8] = b"From: a@apps.test\r\nTo: x@open.test\r\nSubject: t\r\n\r\nbody\r\n";

#[test]
fn upstream_temporary_failure_gives_451_and_postfix_keeps_the_mail() {
    let sink = Sink::start_with(SinkOptions {
        temp_fail_data: true,
        ..Default::default()
    });
    let gw = Gateway::start(&config(sink.port()));
    let err = smtp_send(gw.port, "a@apps.test", &["x@open.test"], MSG).unwrap_err();
    assert!(err.contains("451") && err.contains("4.3.0"), "{err}");

    let postfix = Postfix::start(gw.port);
    postfix.send("a@apps.test", &["x@open.test"], MSG).unwrap();
    postfix
        .wait_for_log("status=deferred", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    let q = postfix.queue();
    assert_eq!(q.len(), 1, "the message stays in Postfix's queue: {q:?}");
    let reason = q[0]["recipients"][0]["delay_reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("451") || reason.contains("4.3.0"),
        "{reason}"
    );
}

#[test]
fn upstream_down_gives_451() {
    let closed = free_port();
    let gw = Gateway::start(&config(closed));
    let err = smtp_send(gw.port, "a@apps.test", &["x@open.test"], MSG).unwrap_err();
    assert!(
        err.starts_with("451") || err.contains(" 451 ") || err.contains("451 4.3.0"),
        "{err}"
    );
    // The reply names no upstream host or library error (issue 6 item 6);
    // the log does.
    assert!(
        !err.contains(&format!(":{closed}")) && !err.to_lowercase().contains("refused"),
        "{err}"
    );
    let log = gw.log();
    assert!(log.contains(&format!("127.0.0.1:{closed}")), "{log}");
    assert!(gw.child.try_wait().is_none(), "gateway still running");
}

#[test]
fn upstream_permanent_rejection_gives_554() {
    let sink = Sink::start_with(SinkOptions {
        reject_rcpt: vec![("gone@open.test".into(), "550 5.1.1 no such user".into())],
        ..Default::default()
    });
    let gw = Gateway::start(&config(sink.port()));
    let err = smtp_send(gw.port, "a@apps.test", &["gone@open.test"], MSG).unwrap_err();
    assert!(err.contains("554") && err.contains("5.1.1"), "{err}");
    // The upstream's own text (it may name internal hosts) is not passed on.
    assert!(!err.contains("no such user"), "{err}");
    // A good recipient in another transaction is still served.
    smtp_send(gw.port, "a@apps.test", &["x@open.test"], MSG).unwrap();
    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    assert_eq!(got[0].rcpt_to, vec!["x@open.test".to_string()]);
    assert!(
        got[0].data.ends_with(MSG),
        "the message, unchanged below our trace field"
    );
    assert!(
        got[0].data.starts_with(b"Received: from "),
        "sealgate's Received: field on top"
    );
}
