//! A real DNS server (Debian's dnsmasq) on loopback, serving TXT records a
//! test chooses: DKIM keys for the Autocrypt gate. And DKIM keys and
//! signatures made with dkimpy (`dkim_sign.py`), independent of sealgate.
//!
//! [`Dns::start`] runs `dnsmasq --no-daemon` on 127.0.0.1 and a free port
//! (UDP and TCP), with no upstream, no hosts file and a configuration file
//! in its own temporary directory, logging every query. Dropping it stops
//! it (by its process group).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::ports::free_port;
use crate::process::{run_ok, ChildGuard};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// A running dnsmasq; stopped when dropped.
pub struct Dns {
    child: ChildGuard,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Dns {
    /// Serves `txt` (name, value) records; a value longer than 255 bytes is
    /// split into several strings of one record, as DNS requires.
    ///
    /// # Panics
    /// If dnsmasq cannot start (with its output).
    pub fn start(txt: &[(&str, &str)]) -> Dns {
        let mut last = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("sg-dns-")
                .tempdir()
                .expect("dns: tempdir");
            let port = free_port();
            let mut conf = String::new();
            for (name, value) in txt {
                assert!(
                    !value.contains(['"', ',']),
                    "dns: {value:?} cannot be quoted"
                );
                let chunks: Vec<String> = value
                    .as_bytes()
                    .chunks(255)
                    .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
                    .collect();
                conf.push_str(&format!("txt-record={name},{}\n", chunks.join(",")));
            }
            let conf_path = dir.path().join("dnsmasq.conf");
            std::fs::write(&conf_path, conf).expect("dns: write conf");
            let mut cmd = Command::new(DNSMASQ);
            cmd.arg("--no-daemon")
                .arg(format!("--conf-file={}", conf_path.display()))
                .arg(format!("--port={port}"))
                .args([
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--no-poll",
                    "--log-queries",
                    "--pid-file=",
                    "--user=root",
                ]);
            let child = ChildGuard::spawn(cmd, &format!("dnsmasq:{port}"));
            match child.wait_for_output("started, version", Duration::from_secs(10)) {
                Ok(()) if child.try_wait().is_none() => {
                    return Dns {
                        child,
                        port,
                        _dir: dir,
                    }
                }
                Ok(()) => last = child.output(),
                Err(e) => last = e,
            }
        }
        panic!("dnsmasq did not start: {last}");
    }

    /// `127.0.0.1:PORT`, for `[dns] resolver`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The queries it answered (`query[TXT] NAME from ...` lines).
    pub fn queries(&self) -> Vec<String> {
        self.child
            .output()
            .lines()
            .filter(|l| l.contains("query["))
            .map(str::to_string)
            .collect()
    }
}

/// An RSA DKIM key pair (2048 bits, made by openssl).
pub struct DkimKey {
    _dir: tempfile::TempDir,
    /// The private key, PKCS#1 PEM (what dkimpy reads).
    pub key_path: PathBuf,
    /// The public key, base64 DER (the `p=` of the record).
    pub public_b64: String,
}

impl DkimKey {
    /// # Panics
    /// If openssl fails.
    pub fn new() -> DkimKey {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_path = dir.path().join("dkim.pem");
        let mut gen = Command::new("openssl");
        gen.args(["genrsa", "-traditional", "-out"])
            .arg(&key_path)
            .arg("2048");
        run_ok(gen, Duration::from_secs(60)).expect("openssl genrsa");
        let mut public = Command::new("openssl");
        public
            .args(["rsa", "-pubout", "-outform", "DER", "-in"])
            .arg(&key_path);
        let der = public.output().expect("openssl rsa -pubout");
        assert!(der.status.success(), "openssl rsa -pubout failed");
        use base64::Engine;
        DkimKey {
            public_b64: base64::engine::general_purpose::STANDARD.encode(der.stdout),
            key_path,
            _dir: dir,
        }
    }

    /// The TXT record value publishing it.
    pub fn record(&self) -> String {
        format!("v=DKIM1; k=rsa; p={}", self.public_b64)
    }

    /// `message` signed with dkimpy as `d=domain s=selector`, over
    /// `headers`, with an `l=` tag if `length`.
    ///
    /// # Panics
    /// If dkimpy fails.
    pub fn sign(
        &self,
        message: &[u8],
        selector: &str,
        domain: &str,
        headers: &[&str],
        length: bool,
    ) -> Vec<u8> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("dkim_sign.py");
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.arg(script)
            .arg(&self.key_path)
            .args([
                selector,
                domain,
                &headers.join(","),
                if length { "1" } else { "0" },
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("dkim_sign.py");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(message)
            .expect("write message");
        let out = child.wait_with_output().expect("dkim_sign.py output");
        assert!(
            out.status.success(),
            "dkim_sign.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Default for DkimKey {
    fn default() -> Self {
        DkimKey::new()
    }
}

/// An Ed25519 DKIM key pair (RFC 8463, made by openssl).
pub struct Ed25519DkimKey {
    _dir: tempfile::TempDir,
    /// The private key, PKCS#8 PEM.
    pub key_path: PathBuf,
    /// The raw 32-byte public key, base64 (the `p=` of the record).
    pub public_b64: String,
}

impl Ed25519DkimKey {
    /// # Panics
    /// If openssl fails.
    pub fn new() -> Ed25519DkimKey {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_path = dir.path().join("dkim-ed25519.pem");
        let mut gen = Command::new("openssl");
        gen.args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&key_path);
        run_ok(gen, Duration::from_secs(60)).expect("openssl genpkey");
        let der = Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&key_path)
            .output()
            .expect("openssl pkey -pubout");
        assert!(der.status.success(), "openssl pkey -pubout failed");
        // SubjectPublicKeyInfo of Ed25519: 12 bytes of algorithm, then the key.
        assert_eq!(der.stdout.len(), 44, "unexpected Ed25519 SPKI");
        use base64::Engine;
        Ed25519DkimKey {
            public_b64: base64::engine::general_purpose::STANDARD.encode(&der.stdout[12..]),
            key_path,
            _dir: dir,
        }
    }

    /// The TXT record value publishing it.
    pub fn record(&self) -> String {
        format!("v=DKIM1; k=ed25519; p={}", self.public_b64)
    }
}

impl Default for Ed25519DkimKey {
    fn default() -> Self {
        Ed25519DkimKey::new()
    }
}

/// Verifies every DKIM signature of `message` with dkimpy
/// (`dkim_verify.py`), the keys looked up at `dns`. `Ok` with one line per
/// signature (`pass d s a`) when there is one and all pass; `Err` with the
/// lines otherwise.
///
/// # Panics
/// If the script cannot run.
pub fn dkim_verify(dns: &Dns, message: &[u8]) -> Result<String, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("dkim_verify.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(dns.addr())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dkim_verify.py");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(message)
        .expect("write message");
    let out = child.wait_with_output().expect("dkim_verify.py output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}
