//! Refreshing stored key-server keys through the real binary (issue 9,
//! item 8), against a real HKP server whose request log shows every fetch.
//! A key near expiry is fetched again once it enters
//! `keys.refresh_before_expiry` (its new expiry is stored), while a key far
//! from expiry is not; a key the server serves revoked on refresh stops being
//! used at once (the next mail to it is refused under `mandatory`).

use crate::gateway::{text, Gateway};
use crate::harvest_header::next_mail_is_encrypted_to;
use crate::trust::on_postgres;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::keyserver::KeyServer;
use sealgate_testkit::ports::free_port;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::wait_until;
use sealgate_testkit::sink::Sink;
use std::time::{Duration, Instant};

/// A gateway with an admin listener (its port returned) and `hkp` as its
/// key server.
fn gateway(store: &str, hkp: &KeyServer, outbound: &Sink, refresh: &str) -> (Gateway, u16) {
    let admin = free_port();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"{store}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
         [policy]\nmode = \"mandatory\"\nmethods = [\"pgp\"]\n\
         [keys]\nkeyservers = [{{ url = \"hkp://127.0.0.1:{}\", allow_insecure = true }}]\n\
         refresh_check_interval = \"1s\"\n{refresh}\n",
        outbound.port(),
        hkp.port(),
    ));
    (gw, admin)
}

/// The `/metrics` text.
fn metrics(admin: u16) -> String {
    crate::observe::get(admin, "/metrics").1
}

/// The requests the key server saw for `local@partner.test`.
fn asked(hkp: &KeyServer, local: &str) -> usize {
    hkp.requests()
        .iter()
        .filter(|r| r.contains("/pks/lookup") && r.contains(local))
        .count()
}

#[test]
fn keys_near_expiry_are_fetched_again() {
    near_expiry_flow("sqlite://data/s.db");
}

#[test]
fn keys_near_expiry_are_fetched_again_postgres() {
    on_postgres(near_expiry_flow);
}

fn near_expiry_flow(store: &str) {
    let gpg = GnupgHome::new();
    let kate = gpg.gen_key("Kate <kate@partner.test>", "future-default");
    let leo = gpg.gen_key("Leo <leo@partner.test>", "future-default");
    // kate's key expires in two minutes; it enters the 90-second window
    // 30 seconds from now.
    gpg.set_expire(&kate, "seconds=120");
    let window_opens = Instant::now() + Duration::from_secs(30);
    let hkp = KeyServer::start_http();
    hkp.put_hkp("kate@partner.test", &gpg.export_armored(&kate));
    hkp.put_hkp("leo@partner.test", &gpg.export_armored(&leo));
    let outbound = Sink::start();
    let (gw, admin) = gateway(
        store,
        &hkp,
        &outbound,
        "refresh_interval = \"7d\"\nrefresh_before_expiry = \"90s\"",
    );
    next_mail_is_encrypted_to(&gw, &outbound, &gpg, "kate@partner.test", &kate);
    let msg = b"From: ian@corp.test\r\nTo: leo@partner.test\r\nSubject: x\r\n\r\nhello leo\r\n";
    smtp_send(gw.port, "ian@corp.test", &["leo@partner.test"], msg).unwrap();
    outbound.wait_for(2, Duration::from_secs(30)).unwrap();
    assert_eq!((asked(&hkp, "kate"), asked(&hkp, "leo")), (1, 1));
    // The owner extends the expiry by a year, on the key server.
    gpg.set_expire(&kate, "1y");
    hkp.put_hkp("kate@partner.test", &gpg.export_armored(&kate));
    assert!(
        Instant::now() < window_opens,
        "the test was too slow: kate's key entered the refresh window before its update was served"
    );
    wait_until(Duration::from_secs(90), "kate's key fetched again", || {
        asked(&hkp, "kate") >= 2
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", hkp.requests(), gw.log()));
    let expires = || -> i64 {
        let o = gw.cli(&["keys", "list", "--address", "kate@partner.test", "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        let l: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        l["bindings"][0]["expires_at"].as_i64().unwrap_or(0)
    };
    let in_300_days = sealgate_store::now_unix() + 300 * 86_400;
    wait_until(Duration::from_secs(30), "the new expiry stored", || {
        expires() > in_300_days
    })
    .unwrap_or_else(|e| panic!("{e}: expires_at {}\n{}", expires(), gw.log()));
    // Out of the window now, kate's key is not asked for again, and leo's
    // (no expiry, refreshed a moment ago) was never asked for again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!((asked(&hkp, "kate"), asked(&hkp, "leo")), (2, 1));
    let m = metrics(admin);
    assert!(
        m.contains("sealgate_key_refreshes_total{result=\"refreshed\"} 1"),
        "{m}"
    );
}

#[test]
fn a_key_revoked_on_refresh_stops_being_used() {
    revoked_flow("sqlite://data/s.db");
}

#[test]
fn a_key_revoked_on_refresh_stops_being_used_postgres() {
    on_postgres(revoked_flow);
}

fn revoked_flow(store: &str) {
    let gpg = GnupgHome::new();
    let rita = gpg.gen_key("Rita <rita@partner.test>", "future-default");
    let hkp = KeyServer::start_http();
    hkp.put_hkp("rita@partner.test", &gpg.export_armored(&rita));
    let outbound = Sink::start();
    let (gw, admin) = gateway(store, &hkp, &outbound, "refresh_interval = \"2s\"");
    next_mail_is_encrypted_to(&gw, &outbound, &gpg, "rita@partner.test", &rita);
    // rita revokes her key and publishes the revocation.
    gpg.revoke(&rita);
    hkp.put_hkp("rita@partner.test", &gpg.export_armored(&rita));
    wait_until(Duration::from_secs(60), "the revocation found", || {
        metrics(admin).contains("sealgate_key_refreshes_total{result=\"revoked\"} 1")
    })
    .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", hkp.requests(), gw.log()));
    // At once: the next mail to rita finds no usable key.
    let msg = b"From: ian@corp.test\r\nTo: rita@partner.test\r\nSubject: x\r\n\r\nsecret\r\n";
    let e = smtp_send(gw.port, "ian@corp.test", &["rita@partner.test"], msg).unwrap_err();
    assert!(
        e.contains("550 5.7.1") && e.contains("no usable pgp key"),
        "{e}"
    );
    let o = gw.cli(&["verify", "rita@partner.test"]);
    assert!(text(&o).contains("revoked"), "{}", text(&o));
    assert_eq!(outbound.messages().len(), 1, "nothing else went out");
}
