//! The one HTTP client every HTTP key source (HKP/HKPS key servers, WKD)
//! shares, built from the `[keys.http]` config section, and the bounded GET
//! they all use.
//!
//! It exists so that the properties DESIGN §4.7 asks of every network call
//! live in one place: a connect and a total timeout, a cap on the size of an
//! answer (memory stays bounded whatever a server sends), at most
//! [`MAX_REDIRECTS`] redirects and never one from HTTPS down to plain HTTP.
//! The outbound proxy (explicit, or `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`
//! with `NO_PROXY` from the environment), an extra trusted CA and host name
//! pins (split-horizon DNS, tests) are configured here too.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Redirects followed at most for one request.
pub const MAX_REDIRECTS: usize = 5;

/// Default `timeout_secs`.
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// Default `max_response_bytes` (1 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

fn default_max_response_bytes() -> usize {
    DEFAULT_MAX_RESPONSE_BYTES
}

/// The `[keys.http]` config section: how sealgate talks HTTP(S) to key
/// servers and WKD hosts.
#[derive(Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Outbound proxy for every HTTP source, e.g. `http://proxy:3128`
    /// (CONNECT for HTTPS, absolute-URI requests for HTTP). When unset, the
    /// environment's `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` apply. `NO_PROXY`
    /// from the environment is honoured in both cases.
    #[serde(default)]
    pub proxy: Option<String>,
    /// An extra trusted CA file (PEM, one or more certificates) beside the
    /// system store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Host names pinned to addresses, like `curl --resolve` (split-horizon
    /// DNS, tests). The port comes from the URL as usual. Ignored for a host
    /// reached through a proxy (the proxy resolves it).
    #[serde(default)]
    pub resolve: BTreeMap<String, IpAddr>,
    /// Time limit for connecting and, separately, for a whole request
    /// including the answer's body, in seconds.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// The largest answer accepted; a larger one is an error.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            proxy: None,
            ca_file: None,
            resolve: BTreeMap::new(),
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// `Debug` without proxy credentials (`http://user:***@proxy`).
impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpConfig")
            .field("proxy", &self.proxy.as_deref().map(sealgate_store::redact))
            .field("ca_file", &self.ca_file)
            .field("resolve", &self.resolve)
            .field("timeout_secs", &self.timeout_secs)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl HttpConfig {
    /// Checks the values without touching the network (the CA file is read).
    /// Errors name the key, e.g. `keys.http.proxy: ...`.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(proxy) = &self.proxy {
            let url = url::Url::parse(proxy)
                .map_err(|e| format!("keys.http.proxy: {proxy:?} is not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") {
                return Err(format!(
                    "keys.http.proxy: {proxy:?}: scheme must be http or https"
                ));
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("keys.http.proxy: {proxy:?} has no host"));
            }
        }
        if let Some(path) = &self.ca_file {
            read_ca_file(path).map_err(|e| format!("keys.http.ca_file: {e}"))?;
        }
        for name in self.resolve.keys() {
            if name.is_empty() || name.contains(['/', ':', ' ']) {
                return Err(format!("keys.http.resolve: {name:?} is not a host name"));
            }
        }
        if self.timeout_secs == 0 {
            return Err("keys.http.timeout_secs: must be at least 1".into());
        }
        if self.max_response_bytes == 0 {
            return Err("keys.http.max_response_bytes: must be at least 1".into());
        }
        Ok(())
    }
}

/// The PEM certificates of a CA file, as reqwest certificates.
fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

/// Builds the shared client: OpenSSL TLS (native-tls) verifying against the
/// system store plus `ca_file`; connect and total timeouts of
/// `timeout_secs`; at most [`MAX_REDIRECTS`] redirects, never from https to
/// http; the proxy as configured; user agent `sealgate/<version>`.
pub fn client(config: &HttpConfig) -> Result<reqwest::Client, String> {
    builder(config, false)?
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))
}

/// The client for destinations an outsider chooses (WKD: the recipient's
/// domain): like [`client`], but a host name is only connected to at its
/// public addresses, never at a loopback, private, link-local, CGNAT,
/// multicast or unspecified one ([`is_public`]), unless `keys.http.resolve`
/// pins that name; a redirect to such an address literal is refused. A
/// name with only non-public addresses counts as not existing. (Through a
/// proxy, the proxy resolves: it must apply its own rules.)
pub fn public_client(config: &HttpConfig) -> Result<reqwest::Client, String> {
    public_builder(config)?
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))
}

/// The builder of [`public_client`].
fn public_builder(config: &HttpConfig) -> Result<reqwest::ClientBuilder, String> {
    // The configured proxy is the admin's choice: its name resolves freely.
    let proxy_host = config
        .proxy
        .as_deref()
        .and_then(|p| url::Url::parse(p).ok())
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase));
    Ok(builder(config, true)?.dns_resolver(Arc::new(PublicOnly { proxy_host })))
}

/// Like [`public_client`], but never following a redirect (a 3xx answer is
/// an error): for URLs that must stay where a check put them (the
/// `OpenPGP: url=` header, whose host must be in the sender's domain; an
/// open redirect on that site would otherwise point anywhere).
pub fn public_client_no_redirects(config: &HttpConfig) -> Result<reqwest::Client, String> {
    public_builder(config)?
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))
}

/// Whether `ip` is a public unicast address: not loopback, private (RFC 1918,
/// IPv6 ULA), link-local, shared (CGNAT 100.64/10), documentation,
/// benchmarking, multicast, broadcast, unspecified or reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || o[0] == 0
                || o[0] >= 240
                || (o[0] == 100 && (64..128).contains(&o[1]))
                || (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || (o[0] == 192 && o[1] == 0 && o[2] == 0))
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || (seg[0] == 0x0064 && seg[1] == 0xff9b)) // NAT64 of v4
        }
    }
}

/// The system resolver, keeping public addresses only (except for the
/// proxy's own name).
struct PublicOnly {
    proxy_host: Option<String>,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let unfiltered = self
            .proxy_host
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case(name.as_str()));
        Box::pin(async move {
            let host = name.as_str().to_string();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?
                .collect();
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| unfiltered || is_public(a.ip()))
                .collect();
            if public.is_empty() {
                tracing::debug!(host, "not connecting: the name has no public address (pin it in keys.http.resolve to allow it)");
                return Err(
                    Box::new(NoPublicAddress(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A name that resolves to non-public addresses only.
#[derive(Debug)]
struct NoPublicAddress(String);

impl std::fmt::Display for NoPublicAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} has no public address", self.0)
    }
}

impl std::error::Error for NoPublicAddress {}

fn builder(config: &HttpConfig, public_only: bool) -> Result<reqwest::ClientBuilder, String> {
    config.validate()?;
    let timeout = Duration::from_secs(config.timeout_secs);
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        let downgrade = attempt.url().scheme() != "https"
            && attempt.previous().iter().any(|u| u.scheme() == "https");
        let private_literal = public_only
            && match attempt.url().host() {
                Some(url::Host::Ipv4(v4)) => !is_public(IpAddr::V4(v4)),
                Some(url::Host::Ipv6(v6)) => !is_public(IpAddr::V6(v6)),
                _ => false,
            };
        if private_literal {
            let to = attempt.url().to_string();
            attempt.error(format!(
                "refusing a redirect to the non-public address {to}"
            ))
        } else if downgrade {
            let to = attempt.url().to_string();
            attempt.error(format!("refusing a redirect from https to {to}"))
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    });
    let mut builder = reqwest::Client::builder()
        .tls_backend_native()
        .user_agent(concat!("sealgate/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout)
        .timeout(timeout)
        .redirect(redirects)
        .referer(false);
    if let Some(path) = &config.ca_file {
        builder = builder
            .tls_certs_merge(read_ca_file(path).map_err(|e| format!("keys.http.ca_file: {e}"))?);
    }
    if let Some(proxy) = &config.proxy {
        let proxy = reqwest::Proxy::all(proxy.as_str())
            .map_err(|e| format!("keys.http.proxy: {proxy:?}: {e}"))?
            .no_proxy(reqwest::NoProxy::from_env());
        builder = builder.proxy(proxy);
    }
    for (name, ip) in &config.resolve {
        // Port 0: the URL's port (or the scheme's default) applies.
        builder = builder.resolve(name, SocketAddr::new(*ip, 0));
    }
    Ok(builder)
}

/// GETs `url` and returns its body, at most `max` bytes: `Ok(None)` for 404
/// and 410 (the server has nothing there), `Err` for any other non-2xx
/// status, network, TLS and timeout errors, and an answer larger than `max`.
pub async fn get_bounded(
    client: &reqwest::Client,
    url: &url::Url,
    max: usize,
) -> Result<Option<Vec<u8>>, String> {
    fetch(client, url, max).await.map_err(|e| e.message)
}

/// Why a [`fetch`] failed.
#[derive(Debug)]
pub(crate) struct FetchError {
    pub message: String,
    /// The host name does not exist (our resolver said so, or the proxy
    /// could not open a tunnel to it).
    pub name_not_found: bool,
    /// The host exists and refused the TCP connection: nothing listens there.
    pub connection_refused: bool,
}

/// [`get_bounded`] with an error that says whether the host name was unknown.
pub(crate) async fn fetch(
    client: &reqwest::Client,
    url: &url::Url,
    max: usize,
) -> Result<Option<Vec<u8>>, FetchError> {
    let fail = |message: String| FetchError {
        message,
        name_not_found: false,
        connection_refused: false,
    };
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| FetchError {
            name_not_found: is_name_not_found(&e),
            connection_refused: is_connection_refused(&e),
            message: format!("GET {}: {}", redact(url), error_chain(&e.without_url())),
        })?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(fail(format!("GET {}: HTTP status {status}", redact(url))));
    }
    if let Some(len) = response.content_length() {
        if len > max as u64 {
            return Err(fail(format!(
                "GET {}: answer of {len} bytes is larger than the limit of {max} bytes",
                redact(url)
            )));
        }
    }
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        fail(format!(
            "GET {}: reading the answer: {}",
            redact(url),
            error_chain(&e.without_url())
        ))
    })? {
        if body.len() + chunk.len() > max {
            return Err(fail(format!(
                "GET {}: answer is larger than the limit of {max} bytes",
                redact(url)
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// [`certs_for_address`] on the CPU pool (a key-server answer can be up to
/// `max_response_bytes` of certificates to parse and verify).
pub(crate) async fn certs_for_address_off_thread(
    data: Vec<u8>,
    address: &str,
    source: &str,
) -> Result<Vec<crate::RecipientKey>, String> {
    let (address, source) = (address.to_string(), source.to_string());
    sealgate_crypto::cpu::run(move |_| certs_for_address(&data, &address, &source)).await?
}

/// The OpenPGP certificates in `data` (armored or binary, any number) that
/// carry a User ID whose email is exactly `address` (case-insensitive).
/// Everything else a server sent is dropped (logged at debug). Err if
/// `data` holds no readable OpenPGP data at all.
pub(crate) fn certs_for_address(
    data: &[u8],
    address: &str,
    source: &str,
) -> Result<Vec<crate::RecipientKey>, String> {
    if data.iter().all(u8::is_ascii_whitespace) {
        // An empty answer: the server has nothing for this address.
        return Ok(Vec::new());
    }
    let keys = crate::load::parse_pgp(data).map_err(|e| format!("{source}: bad answer: {e}"))?;
    let mut out = Vec::new();
    for key in keys {
        if key.names(address) {
            out.push(key);
        } else {
            tracing::debug!(
                source,
                fingerprint = %key.fingerprint(),
                "ignoring a key without a User ID for the address asked for"
            );
        }
    }
    Ok(out)
}

/// The URL for messages: without its userinfo, should it have one.
fn redact(url: &url::Url) -> String {
    sealgate_store::redact(url.as_str())
}

/// An error with all its causes, `a: b: c` (reqwest's own message alone
/// rarely says what went wrong). Duplicate adjacent messages are dropped.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut timed_out = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            timed_out |= r.is_timeout();
        }
        let text = err.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    let mut out = parts.join(": ");
    if timed_out && !out.contains("timed out") {
        out.push_str(" (timed out)");
    }
    out
}

/// True if the connection was refused (an RST to our SYN): the host is there
/// and nothing listens on that port.
pub(crate) fn is_connection_refused(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// True if the error says the host name does not exist: our resolver found
/// no address for it (a temporary resolver failure does not count), or the
/// proxy asked to open a tunnel to it refused (it cannot tell us why).
pub(crate) fn is_name_not_found(e: &reqwest::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if text == "tunnel error: unsuccessful" {
            return true;
        }
        if text.ends_with(" has no public address") {
            return true;
        }
        if text == "dns error" || text.starts_with("failed to lookup address") {
            let cause = err.source().map(|s| s.to_string()).unwrap_or_default();
            let temporary = |t: &str| t.contains("Temporary failure") || t.contains("try again");
            return !temporary(&text) && !temporary(&cause);
        }
        cur = err.source();
    }
    false
}
