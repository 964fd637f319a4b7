//! The `[smtp]` per-client limits through the real binary: zero values are
//! configuration errors naming the key, positive ones (from the file or the
//! environment) are accepted.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_sealgate");

const KEYS: [&str; 4] = [
    "max_connections_per_client",
    "max_auth_failures",
    "auth_failure_limit",
    "auth_failure_window_secs",
];

fn check_config(dir: &Path, toml: &str, env: &[(&str, &str)]) -> (bool, String) {
    let file = dir.join("c.toml");
    std::fs::write(&file, toml).unwrap();
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .args(["--config", file.to_str().unwrap(), "check-config"])
        .env_remove("SEALGATE_CONFIG");
    for (k, v) in env {
        c.env(k, v);
    }
    let o: Output = c.output().expect("run sealgate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

#[test]
fn zero_per_client_limits_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for key in KEYS {
        let (ok, t) = check_config(dir.path(), &format!("[smtp]\n{key} = 0\n"), &[]);
        assert!(!ok, "{key} = 0 accepted: {t}");
        assert!(
            t.contains(&format!("smtp.{key}: must be at least 1")),
            "{t}"
        );
        assert!(t.contains("c.toml"), "{t}");
        assert!(!t.contains("panicked"), "{t}");
    }
}

#[test]
fn per_client_limits_are_accepted_from_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let toml: String = KEYS.iter().map(|k| format!("{k} = 5\n")).collect();
    let (ok, t) = check_config(dir.path(), &format!("[smtp]\n{toml}"), &[]);
    assert!(ok, "{t}");
    let (ok, t) = check_config(
        dir.path(),
        "",
        &[("SEALGATE__SMTP__MAX_CONNECTIONS_PER_CLIENT", "0")],
    );
    assert!(!ok, "{t}");
    assert!(t.contains("smtp.max_connections_per_client"), "{t}");
    let (ok, t) = check_config(
        dir.path(),
        "",
        &[("SEALGATE__SMTP__AUTH_FAILURE_LIMIT", "3")],
    );
    assert!(ok, "{t}");
}
