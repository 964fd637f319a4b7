//! The inheritance matrix (issue 10, tests): for a setting, every level
//! (global, domain, user) from the file and from the store, each cell set
//! to the value that shows, with the less specific levels set the other
//! way. Each cell is checked with `policy show --json` (the level it came
//! from) and with a message whose outcome proves the setting took effect.
//! The file's cells are put in force with SIGHUP, the store's with `policy
//! set`, on one running gateway.

use crate::gateway::{text, Gateway};
use sealgate_testkit::postfix::smtp_send;
use sealgate_testkit::process::{signal, wait_until};
use sealgate_testkit::sink::Sink;
use std::time::Duration;

pub(crate) const ADDRESS: &str = "bob@partner.test";

#[derive(Clone, Copy, Debug)]
enum Level {
    Global,
    Domain,
    User,
}

impl Level {
    fn scope(self) -> &'static str {
        match self {
            Level::Global => "global",
            Level::Domain => "@partner.test",
            Level::User => ADDRESS,
        }
    }

    fn label(self) -> String {
        match self {
            Level::Global => "global".into(),
            Level::Domain => "domain partner.test".into(),
            Level::User => format!("user {ADDRESS}"),
        }
    }

    /// The TOML of `name = value` at this level.
    fn toml(self, name: &str, value: &str) -> String {
        match self {
            Level::Global => format!("[policy]\n{name} = {value}\nreload_secs = 1\n"),
            Level::Domain => format!("[policy.domains.\"partner.test\"]\n{name} = {value}\n"),
            Level::User => format!("[policy.users.\"{ADDRESS}\"]\n{name} = {value}\n"),
        }
    }
}

/// A setting, the value the less specific levels get, the value the cell
/// gets, both as TOML, and a probe: true when a message shows the cell's
/// value in effect.
pub(crate) struct Setting {
    pub name: &'static str,
    pub base: &'static str,
    pub cell: &'static str,
    pub probe: fn(&Gateway, &Sink, usize) -> bool,
}

pub(crate) fn send(gw: &Gateway, n: usize) -> Result<(), String> {
    let msg = format!(
        "From: ian@corp.test\r\nTo: {ADDRESS}\r\nSubject: probe {n}\r\n\r\nsecret body {n}\r\n"
    );
    smtp_send(gw.port, "ian@corp.test", &[ADDRESS], msg.as_bytes())
}

/// mode = mandatory (no key anywhere): refused at RCPT.
pub(crate) fn refused(gw: &Gateway, _: &Sink, n: usize) -> bool {
    send(gw, n).is_err_and(|e| e.contains("550 5.7.1"))
}

/// no_key_action = bounce (mode mandatory everywhere): 250, and a DSN.
fn bounced(gw: &Gateway, sink: &Sink, n: usize) -> bool {
    let before = sink.messages().len();
    if send(gw, n).is_err() {
        return false;
    }
    let Ok(got) = sink.wait_for(before + 1, Duration::from_secs(20)) else {
        return false;
    };
    got.last()
        .is_some_and(|m| m.rcpt_to == ["ian@corp.test"] && m.text().contains("Action: failed"))
}

/// on_source_error = skip (the only key source fails): opportunistic, sent
/// as is; with `defer` the recipient gets 451.
fn skipped(gw: &Gateway, _: &Sink, n: usize) -> bool {
    send(gw, n).is_ok()
}

/// smime_cipher = aes-256-gcm (bob has an S/MIME certificate): the copy
/// is AuthEnvelopedData.
fn gcm(gw: &Gateway, sink: &Sink, n: usize) -> bool {
    let before = sink.messages().len();
    // Either cipher is a delivered S/MIME copy: a refusal is a failure.
    send(gw, n).unwrap_or_else(|e| panic!("the S/MIME probe was refused: {e}\n{}", gw.log()));
    let Ok(got) = sink.wait_for(before + 1, Duration::from_secs(20)) else {
        return false;
    };
    got.last().is_some_and(|m| {
        let t = m.text();
        assert!(
            !t.contains(&format!("secret body {n}")),
            "plaintext went out"
        );
        t.contains("authEnveloped-data")
    })
}

/// Runs the matrix; `always` goes into `[policy]`, `sections` before it.
pub(crate) fn matrix(setting: &Setting, always: &str, sections: &str) {
    matrix_with(setting, always, sections, &|_| {})
}

/// [`matrix`], with `prepare` run on the gateway first.
pub(crate) fn matrix_with(
    setting: &Setting,
    always: &str,
    sections: &str,
    prepare: &dyn Fn(&Gateway),
) {
    matrix_in(setting, always, "", sections, prepare)
}

/// [`matrix_with`], with `store` lines added to `[store]`.
pub(crate) fn matrix_in(
    setting: &Setting,
    always: &str,
    store: &str,
    sections: &str,
    prepare: &dyn Fn(&Gateway),
) {
    let sink = Sink::start();
    let head = format!(
        "[smtp]\nlisten = \"127.0.0.1:{{port}}\"\n[relay]\nupstream = \"127.0.0.1:{}\"\ntls = \"none\"\n\
         [store]\nurl = \"sqlite://data/s.db\"\n{store}[admin]\nlisten = \"\"\n{sections}",
        sink.port()
    );
    let levels = [Level::Global, Level::Domain, Level::User];
    let gw = Gateway::start(&format!(
        "{head}{}",
        Level::Global.toml(setting.name, setting.base)
    ));
    prepare(&gw);
    let mut n = 0;
    let mut hups = 0;
    let port = gw.port.to_string();
    // Writes the file with `base` at every level up to `at`, and `cell` at
    // `at` when `cell_in_file`; puts it in force with SIGHUP.
    let mut write_file = |at: usize, cell_in_file: bool| {
        let mut file = head.replace("{port}", &port);
        for (i, l) in levels.iter().enumerate().take(at + 1) {
            let v = if i == at && cell_in_file {
                setting.cell
            } else {
                setting.base
            };
            file.push_str(&l.toml(setting.name, v));
            if i == 0 {
                file.push_str(always);
            }
        }
        std::fs::write(&gw.config, file).unwrap();
        signal(gw.child.pid(), 1); // SIGHUP
        hups += 1;
        let want = hups;
        wait_until(Duration::from_secs(20), "the SIGHUP", || {
            gw.log().matches("SIGHUP: key files reloaded").count() >= want
        })
        .unwrap();
    };
    for (at, &level) in levels.iter().enumerate() {
        for in_store in [false, true] {
            // First the other value everywhere, in effect: so that the
            // cell's effect below cannot be a leftover of the last cell.
            write_file(at, false);
            let o = gw.cli(&["policy", "list", "--json"]);
            let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
            for r in rows {
                let o = gw.cli(&[
                    "policy",
                    "unset",
                    r["scope"].as_str().unwrap(),
                    r["name"].as_str().unwrap(),
                ]);
                assert!(o.status.success(), "{}", text(&o));
            }
            wait_until(Duration::from_secs(20), "the other value in effect", || {
                n += 1;
                !(setting.probe)(&gw, &sink, n)
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
            // Then the cell.
            if in_store {
                let value = setting.cell.trim_matches('"');
                let o = gw.cli(&["policy", "set", level.scope(), setting.name, value]);
                assert!(o.status.success(), "{}", text(&o));
            } else {
                write_file(at, true);
            }
            let from = format!(
                "{} ({})",
                level.label(),
                if in_store { "store" } else { "file" }
            );
            // Shown from that cell, and in effect (within reload_secs).
            wait_until(
                Duration::from_secs(20),
                &format!("{} from {from}", setting.name),
                || {
                    let o = gw.cli(&["policy", "show", ADDRESS, "--json"]);
                    let shown: Vec<serde_json::Value> =
                        serde_json::from_slice(&o.stdout).unwrap_or_default();
                    shown.iter().any(|s| {
                        // An additive setting lists every level that adds to it.
                        s["name"] == setting.name
                            && s["from"]
                                .as_array()
                                .is_some_and(|f| f.iter().any(|l| l == from.as_str()))
                    })
                },
            )
            .unwrap_or_else(|e| panic!("{e}: {}", text(&gw.cli(&["policy", "show", ADDRESS]))));
            wait_until(
                Duration::from_secs(20),
                &format!("{} in effect from {from}", setting.name),
                || {
                    n += 1;
                    (setting.probe)(&gw, &sink, n)
                },
            )
            .unwrap_or_else(|e| panic!("{e}\n{}", gw.log()));
        }
    }
}

#[test]
fn mode_inherits_through_every_level_from_file_and_store() {
    matrix(
        &Setting {
            name: "mode",
            base: "\"opportunistic\"",
            cell: "\"mandatory\"",
            probe: refused,
        },
        "",
        "",
    );
}

#[test]
fn no_key_action_inherits_through_every_level_from_file_and_store() {
    matrix(
        &Setting {
            name: "no_key_action",
            base: "\"reject\"",
            cell: "\"bounce\"",
            probe: bounced,
        },
        "mode = \"mandatory\"\n",
        "",
    );
}

#[test]
fn on_source_error_inherits_through_every_level_from_file_and_store() {
    // The only key source refuses every connection: its answer is unknown.
    let closed = sealgate_testkit::ports::free_port();
    matrix(
        &Setting {
            name: "on_source_error",
            base: "\"defer\"",
            cell: "\"skip\"",
            probe: skipped,
        },
        "",
        &format!(
            "[keys]\nkeyservers = [{{ url = \"hkp://127.0.0.1:{closed}\", allow_insecure = true }}]\n"
        ),
    );
}

#[test]
fn smime_cipher_inherits_through_every_level_from_file_and_store() {
    let ca = sealgate_testkit::pki::TestCa::new("matrix CA");
    let bob = ca.issue(sealgate_testkit::pki::CertOptions {
        email: Some(ADDRESS.into()),
        ..Default::default()
    });
    matrix_with(
        &Setting {
            name: "smime_cipher",
            base: "\"aes-256-cbc\"",
            cell: "\"aes-256-gcm\"",
            probe: gcm,
        },
        "mode = \"mandatory\"\nmethods = [\"smime\"]\n",
        "",
        &|gw| {
            for (args, pem) in [
                (["roots", "import"], &ca.cert_pem_path),
                (["keys", "import"], &bob.cert_pem_path),
            ] {
                let o = gw.cli(&[args[0], args[1], pem.to_str().unwrap()]);
                assert!(o.status.success(), "{}", text(&o));
            }
        },
    );
}

/// methods = ["smime"] (bob has an OpenPGP key and an S/MIME certificate):
/// the copy is S/MIME; with ["pgp"], PGP/MIME.
fn smime_first(gw: &Gateway, sink: &Sink, n: usize) -> bool {
    let before = sink.messages().len();
    send(gw, n).unwrap_or_else(|e| panic!("the probe was refused: {e}\n{}", gw.log()));
    let got = sink
        .wait_for(before + 1, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let t = got.last().unwrap().text();
    assert!(
        !t.contains(&format!("secret body {n}")),
        "plaintext went out"
    );
    assert!(
        t.contains("application/pkcs7-mime") || t.contains("application/pgp-encrypted"),
        "neither S/MIME nor PGP/MIME: {t}"
    );
    t.contains("application/pkcs7-mime")
}

#[test]
fn methods_inherit_through_every_level_from_file_and_store() {
    let ca = sealgate_testkit::pki::TestCa::new("matrix CA");
    let bob = ca.issue(sealgate_testkit::pki::CertOptions {
        email: Some(ADDRESS.into()),
        ..Default::default()
    });
    let gpg = sealgate_testkit::gnupg::GnupgHome::new();
    let fpr = gpg.gen_key(&format!("Bob <{ADDRESS}>"), "future-default");
    let ring = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ring.path(), gpg.export_armored(&fpr)).unwrap();
    matrix_with(
        &Setting {
            name: "methods",
            base: "[\"pgp\"]",
            cell: "[\"smime\"]",
            probe: smime_first,
        },
        "mode = \"mandatory\"\n",
        "",
        &|gw| {
            for (args, file) in [
                (["roots", "import"], ca.cert_pem_path.as_path()),
                (["keys", "import"], bob.cert_pem_path.as_path()),
                (["keys", "import"], ring.path()),
            ] {
                let o = gw.cli(&[args[0], args[1], file.to_str().unwrap()]);
                assert!(o.status.success(), "{}", text(&o));
            }
        },
    );
}
