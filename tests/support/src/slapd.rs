//! OpenLDAP slapd as a test peer: the directory and key server that sealgate's
//! LDAP key sources are tested against.
//!
//! [`Slapd`] writes a `slapd.conf` (core, cosine and inetorgperson schemas,
//! plus extra schema files such as `tests/support/ldap/pgp-keyserver.schema`),
//! loads an LDIF with `slapadd` into an mdb database in its own temporary
//! directory, and runs `slapd -d 0` in the foreground on free loopback ports
//! (plain LDAP with StartTLS, and ldaps when a server certificate is given).
//! It is stopped by its pid when dropped, and can be restarted on the same
//! ports with the same data. [`server_cert`] issues a TLS server certificate
//! for 127.0.0.1 from a [`TestCa`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::pki::TestCa;
use crate::ports::free_port;
use crate::process::{run_ok, wait_for_port, ChildGuard};

/// Password of the root DN `cn=admin,<suffix>`.
pub const ROOT_PASSWORD: &str = "secret";

/// Time limit for slapadd / openssl and for slapd to listen.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The schema files shipped with the testkit (`tests/support/ldap`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ldap")
}

/// The PGP key server schema (pgpServerInfo, pgpKeyInfo).
pub fn pgp_keyserver_schema() -> PathBuf {
    fixtures_dir().join("pgp-keyserver.schema")
}

/// How to set up a [`Slapd`].
#[derive(Debug, Clone, Default)]
pub struct SlapdOptions {
    /// The database suffix, e.g. `dc=example,dc=org`.
    pub suffix: String,
    /// Entries to load before the start (may be empty).
    pub ldif: String,
    /// More schema files (slapd.conf syntax) after core/cosine/inetorgperson.
    pub extra_schemas: Vec<PathBuf>,
    /// Server certificate and key (PEM): enables StartTLS on the plain port
    /// and an ldaps port.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Deny anonymous binds and require authentication for every operation;
    /// bound users read everything.
    pub require_bind: bool,
    /// A default referral (`referral` directive) for DNs outside the suffix.
    pub default_referral: Option<String>,
    /// Run with `-d stats` instead of `-d 0`, so that connections and
    /// operations show in [`Slapd::output`] (see [`Slapd::bound_connections`]).
    pub log_stats: bool,
}

/// A running slapd; stopped by its pid when dropped.
pub struct Slapd {
    dir: tempfile::TempDir,
    opts: SlapdOptions,
    port: u16,
    ldaps_port: Option<u16>,
    child: Option<ChildGuard>,
}

impl Slapd {
    /// Starts slapd for `suffix` with `ldif` loaded, anonymous read allowed,
    /// root DN `cn=admin,<suffix>` with password [`ROOT_PASSWORD`].
    ///
    /// # Panics
    /// If slapadd or slapd fail.
    pub fn start(suffix: &str, ldif: &str) -> Slapd {
        Slapd::start_with(SlapdOptions {
            suffix: suffix.to_string(),
            ldif: ldif.to_string(),
            ..SlapdOptions::default()
        })
    }

    /// Starts slapd as `opts` says.
    ///
    /// # Panics
    /// If slapadd or slapd fail.
    pub fn start_with(opts: SlapdOptions) -> Slapd {
        let dir = tempfile::Builder::new()
            .prefix("sg-slapd-")
            .tempdir()
            .expect("create slapd dir");
        std::fs::create_dir(dir.path().join("db")).expect("mkdir db");
        let mut slapd = Slapd {
            dir,
            opts,
            port: 0,
            ldaps_port: None,
            child: None,
        };
        std::fs::write(slapd.conf_path(), slapd.config()).expect("write slapd.conf");
        if !slapd.opts.ldif.trim().is_empty() {
            let ldif = slapd.dir.path().join("data.ldif");
            std::fs::write(&ldif, &slapd.opts.ldif).expect("write ldif");
            let mut cmd = Command::new("slapadd");
            cmd.arg("-f")
                .arg(slapd.conf_path())
                .arg("-b")
                .arg(&slapd.opts.suffix)
                .arg("-l")
                .arg(&ldif);
            run_ok(cmd, TOOL_TIMEOUT).unwrap_or_else(|e| panic!("slapadd: {e}"));
        }
        // A port handed out may be taken by the time slapd binds: retry.
        let mut last = String::new();
        for _ in 0..3 {
            slapd.port = free_port();
            slapd.ldaps_port = slapd.opts.tls.as_ref().map(|_| free_port());
            match slapd.spawn() {
                Ok(()) => return slapd,
                Err(e) => last = e,
            }
        }
        panic!("slapd did not start: {last}");
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("slapd.conf")
    }

    fn config(&self) -> String {
        let d = self.dir.path();
        let mut c = String::new();
        for s in ["core", "cosine", "inetorgperson"] {
            c.push_str(&format!("include /etc/ldap/schema/{s}.schema\n"));
        }
        for s in &self.opts.extra_schemas {
            c.push_str(&format!("include {}\n", s.display()));
        }
        c.push_str(&format!(
            "pidfile {}\nargsfile {}\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n",
            d.join("slapd.pid").display(),
            d.join("slapd.args").display()
        ));
        if let Some((cert, key)) = &self.opts.tls {
            c.push_str(&format!(
                "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some(r) = &self.opts.default_referral {
            c.push_str(&format!("referral {r}\n"));
        }
        if self.opts.require_bind {
            c.push_str("disallow bind_anon\nrequire authc\n");
        }
        c.push_str(&format!(
            "database mdb\nsuffix \"{suffix}\"\nrootdn \"cn=admin,{suffix}\"\nrootpw {ROOT_PASSWORD}\n\
             directory {}\nmaxsize 67108864\nindex objectClass eq\n",
            d.join("db").display(),
            suffix = self.opts.suffix
        ));
        if self.opts.require_bind {
            c.push_str("access to * by users read by anonymous auth\n");
        } else {
            c.push_str("access to * by * read\n");
        }
        c
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut urls = format!("ldap://127.0.0.1:{}/", self.port);
        if let Some(p) = self.ldaps_port {
            urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
        }
        let mut cmd = Command::new("slapd");
        cmd.arg("-f")
            .arg(self.conf_path())
            .arg("-h")
            .arg(&urls)
            .arg("-d")
            .arg(if self.opts.log_stats { "stats" } else { "0" });
        let child = ChildGuard::spawn(cmd, "slapd");
        let mut result = wait_for_port(self.port, START_TIMEOUT);
        if let (Ok(()), Some(p)) = (&result, self.ldaps_port) {
            result = wait_for_port(p, START_TIMEOUT);
        }
        match result {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(e) => Err(format!("{e}; slapd output:\n{}", child.output_tail(30))),
        }
    }

    /// Stops slapd (SIGTERM, then SIGKILL) and waits for it.
    pub fn stop(&mut self) {
        drop(self.child.take());
    }

    /// Stops slapd and starts it again on the same ports with the same data.
    ///
    /// # Panics
    /// If it does not come back.
    pub fn restart(&mut self) {
        self.stop();
        let mut last = String::new();
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("slapd did not restart on port {}: {last}", self.port);
    }

    /// `ldap://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT2` when TLS is configured.
    pub fn ldaps_url(&self) -> Option<String> {
        self.ldaps_port.map(|p| format!("ldaps://127.0.0.1:{p}"))
    }

    /// The plain LDAP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The suffix.
    pub fn suffix(&self) -> &str {
        &self.opts.suffix
    }

    /// `cn=admin,<suffix>` (password [`ROOT_PASSWORD`]).
    pub fn admin_dn(&self) -> String {
        format!("cn=admin,{}", self.opts.suffix)
    }

    /// What the running slapd printed so far.
    pub fn output(&self) -> String {
        self.child.as_ref().map(|c| c.output()).unwrap_or_default()
    }

    /// How many client connections the running slapd saw binding (needs
    /// [`SlapdOptions::log_stats`]). Connections that only probe the port
    /// (the start-up check) do not bind and are not counted.
    ///
    /// slapd's log reaches us through a pipe read by another thread, so a
    /// line can lag behind the answer the client already has: this waits up
    /// to 10 s for at least `at_least` connections to show, then a little
    /// longer for any more, and returns the count it saw.
    pub fn bound_connections(&self, at_least: usize) -> usize {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.count_bound() < at_least && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        self.count_bound()
    }

    fn count_bound(&self) -> usize {
        let mut ids: Vec<String> = self
            .output()
            .lines()
            .filter(|l| l.contains(" BIND dn="))
            .filter_map(|l| {
                l.split_whitespace()
                    .find(|w| w.starts_with("conn="))
                    .map(str::to_string)
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids.len()
    }
}

pub use crate::pki::ServerCert;

/// Issues a server certificate (SAN IP:127.0.0.1, DNS:localhost, serverAuth)
/// signed by `ca`, valid for 30 days.
///
/// # Panics
/// If openssl fails.
pub fn server_cert(ca: &TestCa) -> ServerCert {
    crate::pki::server_cert(ca, &["127.0.0.1", "localhost"])
}
