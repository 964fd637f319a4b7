//! Runs the real `sealgate` binary with a config written for the test.

use sealgate_testkit::ports::free_port;
use sealgate_testkit::process::{wait_for_port, ChildGuard};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_sealgate");

/// A running `sealgate serve`.
pub struct Gateway {
    pub port: u16,
    pub config: PathBuf,
    pub dir: tempfile::TempDir,
    pub child: ChildGuard,
}

impl Gateway {
    /// Writes `config` (with `{port}` replaced by a free port) into a temp dir
    /// and starts `sealgate serve` there.
    pub fn start(config: &str) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("sealgate-gw-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let path = dir.path().join("sealgate.toml");
        // Tests run many gateways at once: the admin listener only where a
        // test asks for it.
        let mut config = config.replace("{port}", &port.to_string());
        if !config.contains("[admin]") {
            config.push_str("\n[admin]\nlisten = \"\"\n");
        }
        std::fs::write(&path, config).unwrap();
        let child = spawn(dir.path(), &path, port);
        Gateway {
            port,
            config: path,
            dir,
            child,
        }
    }

    /// Stops the daemon and starts it again in the same directory (same
    /// store) with a new `config` (`{port}` is the same port).
    pub fn restart(&mut self, config: &str) {
        crate::gateway::stop(&self.child);
        let mut config = config.replace("{port}", &self.port.to_string());
        if !config.contains("[admin]") {
            config.push_str("\n[admin]\nlisten = \"\"\n");
        }
        std::fs::write(&self.config, config).unwrap();
        self.child = spawn(self.dir.path(), &self.config, self.port);
    }

    /// Kills the daemon with SIGKILL (no shutdown at all) and waits until it
    /// is gone; its log so far is returned.
    pub fn kill9(&mut self) -> String {
        sealgate_testkit::process::signal(self.child.pid(), 9);
        sealgate_testkit::process::wait_until(Duration::from_secs(30), "sealgate to die", || {
            self.child.try_wait().is_some()
        })
        .unwrap();
        self.child.output()
    }

    /// Starts the daemon again in the same directory with the same config.
    pub fn start_again(&mut self) {
        self.child = spawn(self.dir.path(), &self.config, self.port);
    }

    /// Stops the daemon with SIGTERM; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        crate::gateway::stop(&self.child);
        self.child.try_wait().expect("stopped")
    }

    /// Runs a CLI command against the same config and working directory.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(self.dir.path(), &self.config, args)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        self.child.output()
    }

    /// `SELECT COUNT(*) FROM table` in the SQLite store at `data/s.db`
    /// (read by Python's sqlite3, not by our code).
    pub fn sqlite_count(&self, table: &str) -> String {
        let db = self.dir.path().join("data/s.db");
        let o = Command::new("/usr/bin/python3")
            .args([
                "-c",
                "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM ' + sys.argv[2]).fetchone()[0])",
            ])
            .arg(&db)
            .arg(table)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

fn spawn(dir: &Path, config: &Path, port: u16) -> ChildGuard {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env_remove("SEALGATE_CONFIG")
        .env("RUST_LOG", "info");
    let child = ChildGuard::spawn(cmd, "sealgate");
    if let Err(e) = wait_for_port(port, Duration::from_secs(30)) {
        panic!("sealgate did not start: {e}\n{}", child.output_tail(40));
    }
    child
}

/// Stops the daemon with SIGTERM and waits until it has exited.
fn stop(child: &ChildGuard) {
    sealgate_testkit::process::signal(child.pid(), 15);
    sealgate_testkit::process::wait_until(Duration::from_secs(30), "sealgate to stop", || {
        child.try_wait().is_some()
    })
    .unwrap();
}

/// Runs `sealgate --config CONFIG ARGS...` in `dir`.
pub fn cli(dir: &Path, config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("SEALGATE_CONFIG")
        .output()
        .expect("run sealgate")
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
