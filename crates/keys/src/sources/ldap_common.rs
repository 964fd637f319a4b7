//! What the two LDAP key sources share: opening a bounded, optionally TLS
//! protected and bound connection with ldap3, keeping one connection for reuse
//! (and replacing it after a failure), bounded searches, referral URLs and
//! decoding of attribute values that may arrive as binary, base64 or PEM text.
//!
//! Every network step here (TCP connect with TLS or StartTLS, bind, search)
//! is bounded by the source's timeout (DESIGN §4.7). Bind passwords and
//! attribute values are never logged (DESIGN §4.8).

use base64::Engine;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry, SearchOptions};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

/// A failed LDAP step: the message (no secrets in it) and whether the
/// connection itself broke (then a reused connection is worth replacing
/// and the step worth one retry).
#[derive(Debug)]
pub(crate) struct Failure {
    pub message: String,
    pub broken: bool,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            broken: false,
        }
    }

    /// From an ldap3 error during `what`.
    pub fn ldap(what: &str, e: LdapError) -> Failure {
        let broken = matches!(
            e,
            LdapError::Io { .. }
                | LdapError::OpSend { .. }
                | LdapError::ResultRecv { .. }
                | LdapError::IdScrubSend { .. }
                | LdapError::MiscSend { .. }
                | LdapError::EndOfStream
        );
        let message = match e {
            LdapError::Timeout { .. } => format!("{what}: timed out"),
            LdapError::NativeTLS { source } => format!("{what}: TLS failure: {source}"),
            other => format!("{what}: {other}"),
        };
        Failure { message, broken }
    }

    fn timeout(what: &str, after: Duration) -> Failure {
        Failure::new(format!("{what}: timed out after {after:?}"))
    }
}

/// How to open and bind a connection.
#[derive(Clone)]
pub(crate) struct ConnSpec {
    /// StartTLS on an `ldap://` URL.
    pub starttls: bool,
    /// The TLS connector (with the extra CA, or not verifying) for ldaps and
    /// StartTLS; `None` means ldap3's default (system roots, verifying).
    pub connector: Option<native_tls::TlsConnector>,
    /// Bound for each network step.
    pub timeout: Duration,
    /// Simple bind DN and password; anonymous (empty simple bind) if `None`.
    pub bind: Option<(String, String)>,
}

/// Builds the TLS connector: verifying unless `verify` is false, trusting the
/// system roots plus the PEM certificates in `ca_file`.
pub(crate) fn tls_connector(
    verify: bool,
    ca_file: Option<&Path>,
) -> Result<native_tls::TlsConnector, String> {
    let mut builder = native_tls::TlsConnector::builder();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?;
        let certs = openssl::x509::X509::stack_from_pem(&pem)
            .map_err(|e| format!("CA file {}: not PEM certificates: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("CA file {}: no certificate in it", path.display()));
        }
        for cert in certs {
            let der = cert
                .to_der()
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            let cert = native_tls::Certificate::from_der(&der)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            builder.add_root_certificate(cert);
        }
    }
    if !verify {
        builder.danger_accept_invalid_certs(true);
        builder.danger_accept_invalid_hostnames(true);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the TLS connector: {e}"))
}

/// One open, bound connection; its driver task stops when it is dropped.
pub(crate) struct Connection {
    pub ldap: Ldap,
    driver: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Opens a connection to `url` (`ldap://` or `ldaps://`, host and port only
/// are used) and binds as `spec` says; each step bounded by `spec.timeout`.
pub(crate) async fn open(url: &str, spec: &ConnSpec) -> Result<Connection, Failure> {
    let mut settings = LdapConnSettings::new().set_conn_timeout(spec.timeout);
    if spec.starttls && url.starts_with("ldap://") {
        settings = settings.set_starttls(true);
    }
    if let Some(connector) = &spec.connector {
        settings = settings.set_connector(connector.clone());
    }
    let what = format!("connect to {url}");
    let (conn, mut ldap) =
        tokio::time::timeout(spec.timeout, LdapConnAsync::with_settings(settings, url))
            .await
            .map_err(|_| Failure::timeout(&what, spec.timeout))?
            .map_err(|e| Failure::ldap(&what, e))?;
    let driver = tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!("LDAP connection ended: {e}");
        }
    });
    let connection = Connection {
        ldap: ldap.clone(),
        driver,
    };
    let (dn, password) = match &spec.bind {
        Some((dn, pw)) => (dn.as_str(), pw.as_str()),
        None => ("", ""),
    };
    let result = tokio::time::timeout(
        spec.timeout,
        ldap.with_timeout(spec.timeout).simple_bind(dn, password),
    )
    .await
    .map_err(|_| Failure::timeout("bind", spec.timeout))?
    .map_err(|e| Failure::ldap("bind", e))?;
    if result.rc != 0 {
        let who = if dn.is_empty() {
            "anonymous".to_string()
        } else {
            format!("as {dn}")
        };
        return Err(Failure::new(format!(
            "bind refused ({who}): {}",
            describe_result(&result)
        )));
    }
    Ok(connection)
}

/// `rc=49 (invalidCredentials), dn: "", text: "..."`.
pub(crate) fn describe_result(r: &ldap3::LdapResult) -> String {
    r.to_string()
}

/// The entries of a search and the referral URLs it returned (search result
/// references and a referral result alike).
pub(crate) struct Found {
    pub entries: Vec<SearchEntry>,
    pub refs: Vec<String>,
}

/// Most entries one search may return: a lookup is for one address, so a
/// directory that sends more is broken or hostile; the search fails rather
/// than holding them all in memory.
pub(crate) const MAX_ENTRIES: usize = 256;
/// Most referral URLs one search may return (continuation references and the
/// referral result together); more are ignored with a warning.
pub(crate) const MAX_REFERRALS: usize = 16;

/// A bounded search: at most [`MAX_ENTRIES`] entries (the server is asked
/// for one more, and reading stops there) and [`MAX_REFERRALS`] referral
/// URLs. Result codes success, referral and sizeLimitExceeded (with what
/// arrived) are answers; anything else is a failure.
pub(crate) async fn search(
    ldap: &mut Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
    timeout: Duration,
) -> Result<Found, Failure> {
    let what = "search";
    let collect = async {
        let mut stream = ldap
            .with_timeout(timeout)
            .with_search_options(SearchOptions::new().sizelimit(MAX_ENTRIES as i32 + 1))
            .streaming_search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| Failure::ldap(what, e))?;
        let mut entries = Vec::new();
        let mut refs: Vec<String> = Vec::new();
        let mut dropped_refs = 0usize;
        while let Some(re) = stream.next().await.map_err(|e| Failure::ldap(what, e))? {
            if re.is_intermediate() {
                continue;
            }
            if re.is_ref() {
                // parse_refs panics on malformed BER, as construct does.
                let urls = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    ldap3::parse_refs(re.0)
                }))
                .map_err(|_| Failure::new("malformed search result reference from the server"))?;
                for u in urls {
                    if refs.len() < MAX_REFERRALS {
                        refs.push(u);
                    } else {
                        dropped_refs += 1;
                    }
                }
                continue;
            }
            if entries.len() >= MAX_ENTRIES {
                let id = stream.ldap_handle().last_id();
                let _ = stream.finish().await;
                let _ = stream.ldap_handle().abandon(id).await;
                return Err(Failure::new(format!(
                    "search under {base:?} returned more than {MAX_ENTRIES} entries; \
                     refused (a lookup is for one address)"
                )));
            }
            // SearchEntry::construct panics on malformed BER; a bad server
            // answer must not take the gateway down.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                SearchEntry::construct(re)
            })) {
                Ok(e) => entries.push(e),
                Err(_) => {
                    return Err(Failure::new(
                        "malformed search result entry from the server",
                    ))
                }
            }
        }
        let res = stream.finish().await;
        for u in res.refs.iter() {
            if refs.len() < MAX_REFERRALS {
                refs.push(u.clone());
            } else {
                dropped_refs += 1;
            }
        }
        if dropped_refs > 0 {
            tracing::warn!(
                base,
                dropped = dropped_refs,
                "LDAP search returned more than {MAX_REFERRALS} referrals; ignoring the rest"
            );
        }
        Ok::<_, Failure>((entries, refs, res))
    };
    let (entries, refs, res) = tokio::time::timeout(timeout, collect)
        .await
        .map_err(|_| Failure::timeout(what, timeout))??;
    match res.rc {
        0 | 10 => {}
        4 => tracing::warn!(
            base,
            "LDAP search hit the server's size limit; using what arrived"
        ),
        _ => {
            return Err(Failure::new(format!(
                "search under {base:?} failed: {}",
                describe_result(&res)
            )))
        }
    }
    Ok(Found { entries, refs })
}

/// Every value of the attributes named `name` (case-insensitive, with or
/// without options such as `;binary`), text and binary alike, as bytes.
pub(crate) fn values(entry: &SearchEntry, name: &str) -> Vec<Vec<u8>> {
    let matches = |attr: &str| {
        let base = attr.split(';').next().unwrap_or(attr);
        base.eq_ignore_ascii_case(name)
    };
    let mut out = Vec::new();
    let mut names: Vec<&String> = entry.attrs.keys().filter(|k| matches(k)).collect();
    names.sort();
    for k in names {
        out.extend(entry.attrs[k].iter().map(|v| v.as_bytes().to_vec()));
    }
    let mut names: Vec<&String> = entry.bin_attrs.keys().filter(|k| matches(k)).collect();
    names.sort();
    for k in names {
        out.extend(entry.bin_attrs[k].iter().cloned());
    }
    out
}

/// A text value that is base64 (not PEM/armor) decoded to its bytes; any
/// other value unchanged. Directories store certificates and keys either way.
pub(crate) fn decode_value(value: &[u8]) -> Vec<u8> {
    if let Ok(text) = std::str::from_utf8(value) {
        if !text.contains("-----BEGIN ") {
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            if !compact.is_empty() {
                if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&compact) {
                    return bytes;
                }
            }
        }
    }
    value.to_vec()
}

/// Where an LDAP URL points: the server URL to connect to (scheme, host and
/// port), the base DN and scope it names, if any.
#[derive(Debug, Clone)]
pub(crate) struct LdapUrl {
    pub server: String,
    /// The host, lowercase (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub secure: bool,
    pub dn: Option<String>,
    pub scope: Option<Scope>,
}

/// Parses `ldap://host[:port][/dn[?attrs[?scope[?filter]]]]` (RFC 4516).
pub(crate) fn parse_ldap_url(s: &str) -> Result<LdapUrl, String> {
    let url = url::Url::parse(s).map_err(|e| format!("not a URL: {e}"))?;
    let secure = match url.scheme() {
        "ldap" => false,
        "ldaps" => true,
        other => return Err(format!("scheme {other:?} is not ldap or ldaps")),
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "no host in the URL".to_string())?;
    let port = url.port().unwrap_or(if secure { 636 } else { 389 });
    let path = url.path().trim_start_matches('/');
    let dn = if path.is_empty() {
        None
    } else {
        Some(percent_decode(path)?)
    };
    let scope = url.query().and_then(|q| {
        // attrs ? scope ? filter ? extensions
        match q.split('?').nth(1).map(str::to_ascii_lowercase).as_deref() {
            Some("base") => Some(Scope::Base),
            Some("one") => Some(Scope::OneLevel),
            Some("sub") => Some(Scope::Subtree),
            _ => None,
        }
    });
    let scheme = if secure { "ldaps" } else { "ldap" };
    let server = if host.contains(':') && !host.starts_with('[') {
        format!("{scheme}://[{host}]:{port}")
    } else {
        format!("{scheme}://{host}:{port}")
    };
    Ok(LdapUrl {
        server,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase(),
        port,
        secure,
        dn,
        scope,
    })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent escape in {s:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("DN in URL is not UTF-8: {s:?}"))
}

/// One reusable connection to one server. Lookups take a handle to it (ldap3
/// multiplexes operations); a lookup that fails drops it so that the next one
/// connects afresh, and a lookup that failed because a *reused* connection had
/// broken (server restarted, idle timeout) is retried once on a new one.
pub(crate) struct Pool {
    url: String,
    spec: ConnSpec,
    slot: Mutex<Option<(u64, Arc<Connection>)>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Pool {
    pub fn new(url: String, spec: ConnSpec) -> Pool {
        Pool {
            url,
            spec,
            slot: Mutex::new(None),
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }

    pub fn spec(&self) -> &ConnSpec {
        &self.spec
    }

    /// A handle to the current connection (reused = true), or to a new one.
    async fn acquire(&self, fresh: bool) -> Result<(u64, Ldap, bool), Failure> {
        let mut slot = self.slot.lock().await;
        if !fresh {
            if let Some((id, conn)) = slot.as_ref() {
                let mut ldap = conn.ldap.clone();
                if !ldap.is_closed() {
                    return Ok((*id, ldap, true));
                }
            }
        }
        *slot = None;
        let conn = open(&self.url, &self.spec).await?;
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ldap = conn.ldap.clone();
        *slot = Some((id, Arc::new(conn)));
        Ok((id, ldap, false))
    }

    /// Drops connection `id` if it is still the current one.
    pub async fn invalidate(&self, id: u64) {
        let mut slot = self.slot.lock().await;
        if slot.as_ref().is_some_and(|(cur, _)| *cur == id) {
            *slot = None;
        }
    }

    /// Runs `f` on a connection handle with the reuse rules above.
    pub async fn run<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: Fn(Ldap) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let (id, ldap, reused) = self.acquire(false).await.map_err(|e| e.message)?;
        match f(ldap).await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.invalidate(id).await;
                if !(reused && e.broken) {
                    return Err(e.message);
                }
                tracing::info!(
                    url = %self.url,
                    "reused LDAP connection broke ({}); reconnecting once",
                    e.message
                );
                let (id, ldap, _) = self.acquire(true).await.map_err(|e| e.message)?;
                match f(ldap).await {
                    Ok(v) => Ok(v),
                    Err(e) => {
                        self.invalidate(id).await;
                        Err(e.message)
                    }
                }
            }
        }
    }
}
