//! The incoming path (issue 9, item 1) through the real binary: mail taken
//! on `[incoming] listen` reaches `incoming.upstream` byte for byte behind
//! sealgate's `Received:` field, never the outbound upstream, and is not
//! encrypted even for a recipient whose outbound policy is mandatory; it
//! waits in the durable queue while the internal MTA is down, across a
//! restart; a client outside `incoming.allowed_networks` gets 554 5.7.1.

use crate::gateway::Gateway;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::sink::{Sink, SinkOptions};
use std::time::Duration;

fn config(
    outbound: u16,
    incoming_listen: u16,
    internal: u16,
    networks: &str,
    keys: &str,
    store: &str,
) -> String {
    format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{outbound}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\n[keys]\n{keys}\n\
         [policy]\nmode = \"mandatory\"\n[queue]\nretry_schedule = [\"1s\"]\n\
         [incoming]\nlisten = \"127.0.0.1:{incoming_listen}\"\nupstream = \"127.0.0.1:{internal}\"\nallowed_networks = [{networks}]\n"
    )
}

/// The message without the first header field (sealgate's `Received:`).
fn without_first_field(data: &[u8]) -> &[u8] {
    assert!(data.starts_with(b"Received: "), "starts with Received:");
    let mut i = 0;
    loop {
        let end = i + data[i..].windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        if !matches!(data.get(end), Some(b' ' | b'\t')) {
            return &data[end..];
        }
        i = end;
    }
}

#[test]
fn incoming_mail_is_relayed_unchanged_to_the_internal_mta() {
    relayed_unchanged("sqlite://data/s.db");
}

/// The same with the queue and store on PostgreSQL.
#[test]
fn incoming_mail_is_relayed_unchanged_to_the_internal_mta_postgres() {
    crate::trust::on_postgres(relayed_unchanged);
}

fn relayed_unchanged(store: &str) {
    let home = GnupgHome::new();
    home.gen_key("Ian <ian@corp.test>", "future-default");
    let files = tempfile::tempdir().unwrap();
    let ring = files.path().join("ring.asc");
    std::fs::write(&ring, home.export_armored("ian@corp.test")).unwrap();
    let outbound = Sink::start();
    let internal_port = free_port();
    let listen = free_port();
    let mut gw = Gateway::start(&config(
        outbound.port(),
        listen,
        internal_port,
        "\"127.0.0.1/32\"",
        &format!("pgp_keyrings = [\"{}\"]", ring.display()),
        store,
    ));

    // The internal MTA is down: the message is taken (250) and waits.
    let original = b"From: Partner <p@partner.test>\r\nTo: ian@corp.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nX-Odd:   spaces   \r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\xc3\xbc\xc3\x9fe, trailing space \r\n\tand a tab line\r\n.leading dot\r\nINCOMING-MARKER\r\n";
    smtp_send(listen, "p@partner.test", &["ian@corp.test"], original).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let first_log = gw.log();
    assert!(first_log.contains("incoming message queued"), "{first_log}");
    // Across a restart of sealgate.
    gw.terminate();
    gw.start_again();
    let internal = Sink::start_with(SinkOptions {
        port: Some(internal_port),
        ..Default::default()
    });
    let got = internal.wait_for(1, Duration::from_secs(60)).unwrap();
    assert_eq!(got[0].rcpt_to, vec!["ian@corp.test".to_string()]);
    assert_eq!(got[0].mail_from, "p@partner.test");
    assert!(
        without_first_field(&got[0].data) == original,
        "byte for byte behind sealgate's Received: field:\n{}",
        String::from_utf8_lossy(&got[0].data)
    );
    let received = String::from_utf8_lossy(&got[0].data[..200]).to_string();
    assert!(received.contains("(sealgate)"), "{received}");
    assert!(
        outbound.messages().is_empty(),
        "nothing goes to the outbound upstream"
    );
}

#[test]
fn a_client_outside_the_incoming_networks_is_refused() {
    let outbound = Sink::start();
    let internal = Sink::start();
    let listen = free_port();
    let gw = Gateway::start(&config(
        outbound.port(),
        listen,
        internal.port(),
        "\"192.0.2.10/32\"",
        "",
        "sqlite://data/s.db",
    ));
    let e = smtp_send(
        listen,
        "p@partner.test",
        &["ian@corp.test"],
        b"Subject: x\r\n\r\nx\r\n",
    )
    .unwrap_err();
    assert!(e.contains("554") && e.contains("5.7.1"), "{e}");
    drop(gw);
    assert!(internal.messages().is_empty());
}
