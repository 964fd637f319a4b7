//! SIGHUP re-reads the key-store files: a recipient refused for lack of a key
//! is accepted (and encrypted) once its key is in the keyring and the daemon
//! got SIGHUP; a broken keyring on reload keeps the previous keys.

use crate::gateway::Gateway;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::signal;
use sealgate_testkit::sink::Sink;
use std::time::Duration;

#[test]
fn sighup_reloads_key_files() {
    let gpg = GnupgHome::new();
    gpg.gen_key("Grace <grace@example.org>", "future-default");
    let sink = Sink::start();
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("ring.asc");
    std::fs::write(&ring, "").unwrap();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n[store]\nurl = \"sqlite://data/s.db\"\n[keys]\npgp_keyrings = [\"{}\"]\n[policy]\nmode = \"mandatory\"\n",
        sink.port(),
        ring.display()
    ));
    let msg = b"From: a@apps.test\r\nTo: grace@example.org\r\nSubject: reload\r\n\r\nsecret RELOAD-MARKER\r\n";
    let err = smtp_send(gw.port, "a@apps.test", &["grace@example.org"], msg).unwrap_err();
    assert!(err.contains("550") && err.contains("5.7.1"), "{err}");

    std::fs::write(&ring, gpg.export_armored("grace@example.org")).unwrap();
    signal(gw.child.pid(), libc_sighup());
    gw.child
        .wait_for_output("key files reloaded", Duration::from_secs(20))
        .unwrap();
    smtp_send(gw.port, "a@apps.test", &["grace@example.org"], msg).unwrap();
    let got = sink.wait_for(1, Duration::from_secs(20)).unwrap();
    assert_eq!(
        gpg.decrypt(&got[0].data).unwrap(),
        b"\r\nsecret RELOAD-MARKER\r\n"
    );

    // A broken file on reload: error logged, grace's key still used.
    std::fs::write(
        &ring,
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!\n-----END PGP PUBLIC KEY BLOCK-----\n",
    )
    .unwrap();
    signal(gw.child.pid(), libc_sighup());
    gw.child
        .wait_for_output("keeping the previous keys", Duration::from_secs(20))
        .unwrap();
    smtp_send(gw.port, "a@apps.test", &["grace@example.org"], msg).unwrap();
    let got = sink.wait_for(2, Duration::from_secs(20)).unwrap();
    assert!(gpg.decrypt(&got[1].data).is_ok());
}

/// SIGHUP's number on Linux.
fn libc_sighup() -> i32 {
    1
}

/// A SIGHUP right when the listener accepts (the daemon may still be
/// starting) reloads, and does not end the process (the default action of
/// SIGHUP): the handlers are installed before anything else. CI once lost a
/// gateway this way, when the start did more work after binding.
#[test]
fn sighup_during_start_does_not_kill_the_gateway() {
    let sink = Sink::start();
    let gw = Gateway::start(&format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n[store]\nurl = \"sqlite://data/s.db\"\n",
        sink.port()
    ));
    signal(gw.child.pid(), libc_sighup());
    gw.child
        .wait_for_output("key files reloaded", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
    assert!(
        gw.child.try_wait().is_none(),
        "the gateway ended: {}",
        gw.log()
    );
}
