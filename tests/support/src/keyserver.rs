//! A real HTTP(S) key server for the HKP and WKD tests, and a forward proxy.
//!
//! [`KeyServer`] runs `tests/support/keyserver.py` (Python's stdlib
//! `http.server` and `ssl`, threaded) on a loopback address, serving files
//! from its own temporary directory for any `Host`, and logging every request
//! so that a test can see which URL sealgate asked for and how often.
//! [`KeyServer::put_hkp`] and [`KeyServer::put_wkd`] place keys where HKP
//! (`/pks/lookup?op=get&search=ADDRESS`) and WKD (advanced or direct path)
//! clients look for them. With [`KeyServerOptions::hang`] it accepts
//! connections and never answers (timeout tests). [`ForwardProxy`] is a
//! small HTTP proxy (CONNECT and absolute-URI GET) that logs what it relays.
//! [`server_cert`] issues a TLS server certificate for given host names.
//!
//! WKD is HTTPS on port 443 only; tests bind a server to an address of their
//! own in 127.0.0.0/8 (Linux routes all of it to `lo`) on port 443 (tests run
//! as root) and pin the WKD host names to it in the client.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::process::{run_ok, ChildGuard};

/// The Python interpreter (Debian's).
const PYTHON: &str = "/usr/bin/python3";

/// Time limit for one openssl call.
const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("keyserver.py")
}

/// How to start a [`KeyServer`].
#[derive(Debug, Clone)]
pub struct KeyServerOptions {
    /// Address to listen on (default 127.0.0.1).
    pub bind: IpAddr,
    /// Port; `None` picks a free one (on 127.0.0.1 only; give a port for
    /// other addresses, e.g. 443).
    pub port: Option<u16>,
    /// TLS certificate and key (PEM files); plain HTTP if `None`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Accept connections and never answer.
    pub hang: bool,
}

impl Default for KeyServerOptions {
    fn default() -> Self {
        KeyServerOptions {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: None,
            tls: None,
            hang: false,
        }
    }
}

/// A running key server; stopped when dropped.
pub struct KeyServer {
    child: ChildGuard,
    dir: tempfile::TempDir,
    bind: IpAddr,
    port: u16,
    tls: bool,
}

impl KeyServer {
    /// Plain HTTP on 127.0.0.1 and a free port.
    pub fn start_http() -> KeyServer {
        KeyServer::start(KeyServerOptions::default())
    }

    /// Starts the server and waits until it accepts connections.
    ///
    /// # Panics
    /// If it cannot start or bind (with its output in the message).
    pub fn start(opts: KeyServerOptions) -> KeyServer {
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("sg-keyserver-")
                .tempdir()
                .expect("keyserver: temp dir");
            let port = opts.port.unwrap_or_else(free_port);
            let mut cmd = Command::new(PYTHON);
            cmd.arg("-u")
                .arg(script())
                .arg(if opts.hang { "hang" } else { "serve" })
                .arg("--bind")
                .arg(opts.bind.to_string())
                .arg("--port")
                .arg(port.to_string())
                .arg("--root")
                .arg(dir.path().join("www"))
                .arg("--log")
                .arg(dir.path().join("requests.log"));
            std::fs::create_dir(dir.path().join("www")).expect("keyserver: mkdir www");
            if let Some((cert, key)) = &opts.tls {
                let (c, k) = (dir.path().join("server.crt"), dir.path().join("server.key"));
                std::fs::copy(cert, &c).expect("keyserver: copy certificate");
                std::fs::copy(key, &k).expect("keyserver: copy key");
                cmd.arg("--cert").arg(c).arg("--key").arg(k);
            }
            let child = ChildGuard::spawn(cmd, &format!("keyserver:{}:{port}", opts.bind));
            match child.wait_for_output("ready", Duration::from_secs(20)) {
                Ok(()) => {
                    wait_for(opts.bind, port, &child);
                    return KeyServer {
                        child,
                        dir,
                        bind: opts.bind,
                        port,
                        tls: opts.tls.is_some(),
                    };
                }
                Err(e) if child.output().contains("BINDFAIL") && opts.port.is_none() => {
                    last_error = e
                }
                Err(e) => panic!("keyserver did not start: {e}"),
            }
        }
        panic!("keyserver: could not bind a port in 5 attempts: {last_error}");
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address it listens on.
    pub fn addr(&self) -> IpAddr {
        self.bind
    }

    /// `http://IP:PORT` or `https://IP:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        match self.bind {
            IpAddr::V4(ip) => format!("{scheme}://{ip}:{}", self.port),
            IpAddr::V6(ip) => format!("{scheme}://[{ip}]:{}", self.port),
        }
    }

    /// Serves `body` at `url_path` (e.g. `/a/b`; a query string is ignored
    /// when matching, except for `/pks/lookup`, see [`KeyServer::put_hkp`]).
    pub fn put(&self, url_path: &str, body: &[u8]) {
        let file = self.file_for(url_path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("keyserver: mkdir");
        std::fs::write(&file, body).expect("keyserver: write file");
    }

    /// Makes `url_path` answer with HTTP `status` (with the body put there,
    /// if any, else a short text).
    pub fn put_status(&self, url_path: &str, status: u16) {
        let file = self.file_for(url_path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("keyserver: mkdir");
        let mut name = file.file_name().expect("file name").to_os_string();
        name.push(".status");
        std::fs::write(file.with_file_name(name), status.to_string()).expect("write status");
    }

    /// Makes `url_path` redirect (`status`, e.g. 302) to `location`.
    pub fn put_redirect(&self, url_path: &str, status: u16, location: &str) {
        self.put_status(url_path, status);
        let file = self.file_for(url_path);
        let mut name = file.file_name().expect("file name").to_os_string();
        name.push(".location");
        std::fs::write(file.with_file_name(name), location).expect("write location");
    }

    /// Makes the HKP lookup for `address` redirect (302) to `location`.
    pub fn put_hkp_redirect(&self, address: &str, location: &str) {
        self.put_hkp_status(address, 302);
        let mut name = self.hkp_file(address).into_os_string();
        name.push(".location");
        std::fs::write(name, location).expect("write location");
    }

    /// What `/pks/lookup?op=get&...&search=ADDRESS` returns (the search
    /// value is matched case-insensitively).
    pub fn put_hkp(&self, address: &str, armored: &[u8]) {
        std::fs::create_dir_all(self.www().join("hkp")).expect("mkdir hkp");
        std::fs::write(self.hkp_file(address), armored).expect("write hkp answer");
    }

    /// Makes the HKP lookup for `address` answer with HTTP `status`.
    pub fn put_hkp_status(&self, address: &str, status: u16) {
        std::fs::create_dir_all(self.www().join("hkp")).expect("mkdir hkp");
        let mut name = self.hkp_file(address).into_os_string();
        name.push(".status");
        std::fs::write(name, status.to_string()).expect("write status");
    }

    /// Places `key` at the WKD path of `address`: the advanced method's
    /// (`/.well-known/openpgpkey/<domain>/hu/<hash>`) or the direct
    /// method's (`/.well-known/openpgpkey/hu/<hash>`). The server answers
    /// for any host name, so point `openpgpkey.<domain>` or `<domain>` at it.
    pub fn put_wkd(&self, advanced: bool, address: &str, key: &[u8]) {
        self.put(&wkd_path(advanced, address), key);
    }

    /// The request lines seen so far, oldest first, each
    /// `GET <target> Host: <host>`.
    pub fn requests(&self) -> Vec<String> {
        read_lines(&self.dir.path().join("requests.log"))
    }

    /// The server's output (errors, tracebacks), for messages.
    pub fn output(&self) -> String {
        self.child.output()
    }

    fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    fn hkp_file(&self, address: &str) -> PathBuf {
        let hex: String = address
            .to_lowercase()
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.www().join("hkp").join(hex)
    }

    fn file_for(&self, url_path: &str) -> PathBuf {
        let path = url_path.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != "." && *p != "..")
            .collect();
        assert!(!parts.is_empty(), "keyserver: cannot put at {url_path:?}");
        parts.iter().fold(self.www(), |p, s| p.join(s))
    }
}

/// The WKD URL path (no query) for `address`: advanced method's
/// `/.well-known/openpgpkey/<domain>/hu/<hash>` or direct method's
/// `/.well-known/openpgpkey/hu/<hash>`. Computed independently of sealgate
/// (with `openssl dgst -sha1` and a z-base-32 encoder here).
pub fn wkd_path(advanced: bool, address: &str) -> String {
    let (local, domain) = address.rsplit_once('@').expect("an email address");
    let hash = zbase32(&sha1_openssl_cli(local.to_ascii_lowercase().as_bytes()));
    let domain = domain.to_ascii_lowercase();
    if advanced {
        format!("/.well-known/openpgpkey/{domain}/hu/{hash}")
    } else {
        format!("/.well-known/openpgpkey/hu/{hash}")
    }
}

/// SHA-1 by the `openssl` CLI (an independent implementation).
fn sha1_openssl_cli(data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in");
    std::fs::write(&input, data).expect("write");
    let mut cmd = Command::new("openssl");
    cmd.args(["dgst", "-sha1", "-r"]).arg(&input);
    let out = run_ok(cmd, TOOL_TIMEOUT).unwrap_or_else(|e| panic!("openssl dgst: {e}"));
    let hex = out.split_whitespace().next().expect("digest");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// z-base-32, bit by bit (a deliberately different implementation from
/// sealgate's).
fn zbase32(data: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ybndrfg8ejkmcpqxot1uwisza345h769";
    let bits: Vec<u8> = data
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    bits.chunks(5)
        .map(|chunk| {
            let mut v = 0usize;
            for i in 0..5 {
                v = (v << 1) | usize::from(chunk.get(i).copied().unwrap_or(0));
            }
            ALPHABET[v] as char
        })
        .collect()
}

/// A forward HTTP proxy on 127.0.0.1: CONNECT tunnels (HTTPS) and
/// absolute-URI GETs (HTTP), each logged; stopped when dropped.
pub struct ForwardProxy {
    _child: ChildGuard,
    dir: tempfile::TempDir,
    port: u16,
}

impl ForwardProxy {
    /// Starts the proxy. `map` pins host names to addresses for the proxy's
    /// own name resolution; other names go to the system resolver, and a
    /// name that does not resolve gets `502` (as a real proxy answers).
    ///
    /// # Panics
    /// If it cannot start.
    pub fn start(map: &[(&str, IpAddr)]) -> ForwardProxy {
        let mut last_error = String::new();
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("sg-proxy-")
                .tempdir()
                .expect("proxy: temp dir");
            let port = free_port();
            let mut cmd = Command::new(PYTHON);
            cmd.arg("-u")
                .arg(script())
                .args(["proxy", "--bind", "127.0.0.1", "--port"])
                .arg(port.to_string())
                .arg("--log")
                .arg(dir.path().join("proxy.log"));
            for (name, ip) in map {
                cmd.arg("--map").arg(format!("{name}={ip}"));
            }
            let child = ChildGuard::spawn(cmd, &format!("proxy:{port}"));
            match child.wait_for_output("ready", Duration::from_secs(20)) {
                Ok(()) => {
                    wait_for(IpAddr::V4(Ipv4Addr::LOCALHOST), port, &child);
                    return ForwardProxy {
                        _child: child,
                        dir,
                        port,
                    };
                }
                Err(e) if child.output().contains("BINDFAIL") => last_error = e,
                Err(e) => panic!("proxy did not start: {e}"),
            }
        }
        panic!("proxy: could not bind a port in 5 attempts: {last_error}");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it relayed so far: `CONNECT host:port` or `GET http://...`.
    pub fn requests(&self) -> Vec<String> {
        read_lines(&self.dir.path().join("proxy.log"))
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until `ip:port` accepts TCP connections.
fn wait_for(ip: IpAddr, port: u16, child: &ChildGuard) {
    let addr = SocketAddr::new(ip, port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
        if Instant::now() > deadline {
            panic!(
                "{}: nothing accepts connections on {addr}; output:\n{}",
                child.name(),
                child.output_tail(40)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub use crate::pki::{server_cert, ServerCert};

#[cfg(test)]
mod tests {
    #[test]
    fn zbase32_matches_the_draft_vector() {
        assert_eq!(
            super::wkd_path(true, "Joe.Doe@Example.ORG"),
            "/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q"
        );
    }
}
