//! The configuration interface through the real binary: the example file is
//! valid, unknown keys and bad values name the key and the file, environment
//! variables override keys, and the embedded defaults work without a file.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_sealgate");

fn sealgate(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.current_dir(dir).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.env_remove("SEALGATE_CONFIG");
    c.output().expect("run sealgate")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn example_config() -> String {
    format!("{}/../../config/sealgate.toml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let o = sealgate(
        dir.path(),
        &["--config", &example_config(), "check-config"],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("configuration OK"), "{t}");
    assert!(t.contains("listen 127.0.0.1:10025"), "{t}");
    assert!(
        dir.path().join("data/sealgate.db").exists(),
        "SQLite store created under ./data"
    );
}

#[test]
fn embedded_defaults_without_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = sealgate(dir.path(), &["check-config"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("relay to 127.0.0.1:25"), "{t}");
    assert!(t.contains("mode Opportunistic"), "{t}");
}

#[test]
fn unknown_key_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.toml");
    std::fs::write(
        &f,
        "[smtp]\nlisten = \"127.0.0.1:2525\"\nlisten_port = 25\n",
    )
    .unwrap();
    let o = sealgate(
        dir.path(),
        &["--config", f.to_str().unwrap(), "check-config"],
        &[],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("listen_port"), "{t}");
    assert!(t.contains("bad.toml"), "{t}");
}

#[test]
fn bad_values_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[smtp]\nmax_recipients = \"many\"\n", "max_recipients"),
        ("[policy]\nmode = \"sometimes\"\n", "policy.mode"),
        ("[relay]\ntls = \"maybe\"\n", "relay.tls"),
        ("[smtp]\nlisten = \"localhost\"\n", "smtp.listen"),
        (
            "[smtp]\nallowed_networks = [\"10.0.0.0/33\"]\n",
            "smtp.allowed_networks",
        ),
        ("[relay]\nupstream = \"mx.example.org\"\n", "relay.upstream"),
        (
            "[keys]\npgp_keyrings = [\"/nonexistent/ring.asc\"]\n",
            "keys.pgp_keyrings",
        ),
        (
            "[policy.domains.\"example.com\"]\nmode = \"mandatory\"\ncolour = 1\n",
            "colour",
        ),
        ("[store]\nurl = \"mysql://x\"\n", "store.url"),
        (
            "[keys]\nrefresh_interval = \"weekly\"\n",
            "keys.refresh_interval",
        ),
        (
            "[keys]\nrefresh_before_expiry = \"2mo\"\n",
            "keys.refresh_before_expiry",
        ),
        (
            "[keys]\nrefresh_check_interval = \"0\"\n",
            "keys.refresh_check_interval",
        ),
        ("[dns]\nresolver = \"localhost:53\"\n", "dns.resolver"),
        ("[dns]\ntimeout_secs = 0\n", "dns.timeout_secs"),
        ("[harvest]\nautocrypt = \"maybe\"\n", "harvest.autocrypt"),
    ];
    for (toml, key) in cases {
        let f = dir.path().join("c.toml");
        std::fs::write(&f, toml).unwrap();
        let o = sealgate(
            dir.path(),
            &["--config", f.to_str().unwrap(), "check-config"],
            &[],
        );
        let t = text(&o);
        assert!(!o.status.success(), "{toml} accepted: {t}");
        assert!(
            t.contains(key),
            "error for {toml:?} does not name {key}: {t}"
        );
        assert!(t.contains("c.toml"), "error does not name the file: {t}");
        assert!(!t.contains("panicked"), "{t}");
    }
}

#[test]
fn environment_overrides_keys() {
    let dir = tempfile::tempdir().unwrap();
    let o = sealgate(
        dir.path(),
        &["--config", &example_config(), "check-config"],
        &[
            ("SEALGATE__SMTP__LISTEN", "127.0.0.1:2999"),
            ("SEALGATE__SMTP__MAX_RECIPIENTS", "7"),
            ("SEALGATE__SMTP__ALLOWED_NETWORKS", "10.0.0.0/8,192.0.2.1"),
            ("SEALGATE__RELAY__TLS", "none"),
            ("SEALGATE__POLICY__METHODS", "smime"),
        ],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("listen 127.0.0.1:2999"), "{t}");
    assert!(t.contains("7 recipients"), "{t}");
    assert!(t.contains("allowed networks 10.0.0.0/8, 192.0.2.1"), "{t}");
    assert!(t.contains("tls None"), "{t}");
    assert!(t.contains("methods [Smime]"), "{t}");

    let o = sealgate(
        dir.path(),
        &["check-config"],
        &[("SEALGATE__SMTP__LISTN", "x")],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("listn"), "{}", text(&o));
}

#[test]
fn hash_password_round_trip_shape() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(BIN);
    c.current_dir(dir.path()).arg("hash-password");
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let h = String::from_utf8(o.stdout).unwrap();
    assert!(h.starts_with("$pbkdf2-sha256$"), "{h}");
    assert!(!h.contains("s3cret"));
}

/// Issue 6 item 7: an unencrypted key source (hkp://, http://, plain ldap://
/// key server, ldap:// directory without StartTLS) is a configuration error
/// unless that source says `allow_insecure = true`; then it is accepted and
/// logged. Before, all of them were accepted silently.
#[test]
fn unencrypted_sources_need_allow_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let check = |body: &str| {
        let path = dir.path().join("s.toml");
        std::fs::write(&path, body).unwrap();
        sealgate(
            dir.path(),
            &["--config", path.to_str().unwrap(), "check-config"],
            &[],
        )
    };
    for url in [
        "hkp://keys.example.org",
        "http://keys.example.org",
        "ldap://keys.example.org",
    ] {
        let o = check(&format!("[keys]\nkeyservers = [\"{url}\"]\n"));
        let t = text(&o);
        assert!(!o.status.success(), "{url}: {t}");
        assert!(
            t.contains("keys.keyservers") && t.contains("allow_insecure"),
            "{url}: {t}"
        );
        let o = check(&format!(
            "[keys]\nkeyservers = [{{ url = \"{url}\", allow_insecure = true }}]\n"
        ));
        let t = text(&o);
        assert!(o.status.success(), "{url}: {t}");
        assert!(t.contains("travel unencrypted"), "logged: {t}");
    }
    let o =
        check("[keys]\nkeyservers = [\"hkps://keys.example.org\", \"ldaps://keys.example.org\"]\n");
    assert!(o.status.success(), "{}", text(&o));
    // Userinfo is redacted in the error too.
    let o = check("[keys]\nkeyservers = [\"hkp://u:SECRETPW@keys.example.org\"]\n");
    assert!(
        !o.status.success() && !text(&o).contains("SECRETPW"),
        "{}",
        text(&o)
    );

    let ldap = "[[keys.ldap]]\nname = \"corp\"\nurl = \"ldap://ldap.example.org\"\nbase_dn = \"dc=example,dc=org\"\n";
    let o = check(ldap);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("keys.ldap[corp].url"), "{}", text(&o));
    let o = check(&format!("{ldap}allow_insecure = true\n"));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("travel unencrypted"), "{}", text(&o));
    let o = check(&format!(
        "{ldap}allow_insecure = true\nbind_dn = \"cn=r,dc=example,dc=org\"\nbind_password = \"pw\"\n"
    ));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("keys.ldap[corp].bind_dn"), "{}", text(&o));
    let o = check(&format!(
        "{ldap}starttls = true\nbind_dn = \"cn=r,dc=example,dc=org\"\nbind_password = \"pw\"\n"
    ));
    assert!(o.status.success(), "{}", text(&o));
}

/// Issue 6 item 14: a duration of 0 that would break the daemon (every
/// session or message failing at once) is a configuration error naming the
/// key. Before, `smtp.data_deadline_secs = 0` was accepted.
#[test]
fn zero_durations_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("z.toml");
    for (section, key) in [
        ("smtp", "command_timeout_secs"),
        ("smtp", "data_timeout_secs"),
        ("smtp", "data_deadline_secs"),
        ("keys", "lookup_timeout_secs"),
        ("keys.http", "timeout_secs"),
        ("relay", "timeout_secs"),
        ("relay", "data_timeout_secs"),
        ("relay", "message_timeout_secs"),
    ] {
        std::fs::write(&path, format!("[{section}]\n{key} = 0\n")).unwrap();
        let o = sealgate(
            dir.path(),
            &["--config", path.to_str().unwrap(), "check-config"],
            &[],
        );
        let t = text(&o);
        assert!(!o.status.success(), "{section}.{key} = 0 accepted: {t}");
        assert!(t.contains(&format!("{section}.{key}")), "{t}");
        assert!(!t.contains("panicked"), "{t}");
    }
}

/// `[incoming]`: off by default; when on, a bad address, a missing
/// upstream, the outbound listener's port or no networks name the key.
#[test]
fn incoming_settings_name_the_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let o = sealgate(dir.path(), &["check-config"], &[]);
    assert!(text(&o).contains("incoming: off"), "{}", text(&o));
    for (incoming, expected) in [
        ("listen = \"nope\"\nupstream = \"127.0.0.1:25\"", "incoming.listen: \"nope\" is not an IP address and port"),
        ("listen = \"127.0.0.1:10027\"", "incoming.upstream: the internal MTA"),
        ("listen = \"127.0.0.1:10025\"\nupstream = \"127.0.0.1:25\"", "is smtp.listen too"),
        ("listen = \"127.0.0.1:10027\"\nupstream = \"127.0.0.1:25\"\nallowed_networks = []", "incoming.allowed_networks: name the MX hosts"),
        ("listen = \"127.0.0.1:10027\"\nupstream = \"127.0.0.1:25\"\nallowed_networks = [\"mx\"]", "incoming.allowed_networks: \"mx\" is not a network"),
    ] {
        std::fs::write(dir.path().join("s.toml"), format!("[incoming]\n{incoming}\n")).unwrap();
        let o = sealgate(dir.path(), &["--config", "s.toml", "check-config"], &[]);
        assert!(!o.status.success(), "{incoming}: {}", text(&o));
        assert!(text(&o).contains(expected), "{incoming}: {}", text(&o));
    }
    std::fs::write(
        dir.path().join("s.toml"),
        "[incoming]\nlisten = \"127.0.0.1:10027\"\nupstream = \"127.0.0.1:2525\"\nallowed_networks = [\"192.0.2.25\"]\n",
    )
    .unwrap();
    let o = sealgate(dir.path(), &["--config", "s.toml", "check-config"], &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o)
            .contains("incoming: listen 127.0.0.1:10027 for 192.0.2.25, relay to 127.0.0.1:2525"),
        "{}",
        text(&o)
    );
}
