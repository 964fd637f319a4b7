//! HKP/HKPS key servers (draft-shaw-openpgp-hkp) as a key source: the
//! OpenPGP key servers an admin points sealgate at by URL.
//!
//! `hkp://host` is plain HTTP on port 11371, `hkps://host` is HTTPS on 443,
//! and `http://` / `https://` URLs are used as they are (a path in them is
//! the base the `/pks/lookup` path is appended to). A lookup asks for
//! `op=get&options=mr&search=<address>` through the shared client of
//! [`super::http`] (timeouts, size cap, proxy) and keeps only certificates
//! with a User ID that is exactly the address: key servers happily return
//! keys for other, similar addresses too.

use super::http::{certs_for_address_off_thread, get_bounded};
use crate::source::Source;
use crate::RecipientKey;

/// Port of the `hkp://` scheme.
pub const HKP_PORT: u16 = 11371;

/// One HKP key server.
pub struct HkpKeyserver {
    /// The URL as configured (for the source's name).
    configured: String,
    /// `http(s)://host:port/base` to which `pks/lookup` is appended.
    base: url::Url,
    client: reqwest::Client,
    max_response_bytes: usize,
}

impl HkpKeyserver {
    /// A key server at `url`: `hkp://`, `hkps://`, `http://` or `https://`.
    /// Any other scheme, or a URL without a host, is an error naming the URL.
    pub fn new(
        url: &str,
        client: reqwest::Client,
        max_response_bytes: usize,
    ) -> Result<HkpKeyserver, String> {
        let base = base_url(url)?;
        Ok(HkpKeyserver {
            configured: url.to_string(),
            base,
            client,
            max_response_bytes,
        })
    }

    /// The lookup URL for `address`.
    pub fn lookup_url(&self, address: &str) -> url::Url {
        let mut url = self.base.clone();
        {
            let mut segments = url
                .path_segments_mut()
                .expect("http(s) URLs always have a path");
            segments.pop_if_empty().extend(["pks", "lookup"]);
        }
        url.query_pairs_mut()
            .clear()
            .append_pair("op", "get")
            .append_pair("options", "mr")
            .append_pair("search", address);
        url
    }
}

/// Maps the configured key server URL to the HTTP(S) URL to talk to.
fn base_url(configured: &str) -> Result<url::Url, String> {
    let bad = |why: String| format!("key server URL {configured:?}: {why}");
    let parsed = url::Url::parse(configured).map_err(|e| bad(e.to_string()))?;
    let (scheme, default_port) = match parsed.scheme() {
        "hkp" => ("http", HKP_PORT),
        "hkps" => ("https", 443),
        "http" => ("http", 80),
        "https" => ("https", 443),
        other => {
            return Err(bad(format!(
                "scheme {other:?} is not hkp, hkps, http or https"
            )))
        }
    };
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host in it".into()))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad("must not have a query or fragment".into()));
    }
    let port = parsed.port().unwrap_or(default_port);
    let mut text = format!("{scheme}://");
    if !parsed.username().is_empty() {
        text.push_str(parsed.username());
        if let Some(pw) = parsed.password() {
            text.push(':');
            text.push_str(pw);
        }
        text.push('@');
    }
    // host_str keeps IPv6 brackets.
    text.push_str(&format!("{host}:{port}{}", parsed.path()));
    url::Url::parse(&text).map_err(|e| bad(e.to_string()))
}

#[async_trait::async_trait]
impl Source for HkpKeyserver {
    fn name(&self) -> String {
        format!("keyserver:{}", sealgate_store::redact(&self.configured))
    }

    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        let url = self.lookup_url(address);
        match get_bounded(&self.client, &url, self.max_response_bytes).await? {
            None => Ok(Vec::new()),
            Some(body) => certs_for_address_off_thread(body, address, &self.name()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url_for(configured: &str) -> String {
        let ks = HkpKeyserver::new(configured, reqwest::Client::new(), 1).unwrap();
        ks.lookup_url("a+b@example.org").to_string()
    }

    #[test]
    fn schemes_map_to_http_urls() {
        assert_eq!(
            url_for("hkp://keys.example.org"),
            "http://keys.example.org:11371/pks/lookup?op=get&options=mr&search=a%2Bb%40example.org"
        );
        assert_eq!(
            url_for("hkps://keys.example.org"),
            "https://keys.example.org/pks/lookup?op=get&options=mr&search=a%2Bb%40example.org"
        );
        assert_eq!(
            url_for("hkp://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/pks/lookup?op=get&options=mr&search=a%2Bb%40example.org"
        );
        assert_eq!(
            url_for("https://keys.example.org/sub/"),
            "https://keys.example.org/sub/pks/lookup?op=get&options=mr&search=a%2Bb%40example.org"
        );
        assert_eq!(
            url_for("http://[::1]:81"),
            "http://[::1]:81/pks/lookup?op=get&options=mr&search=a%2Bb%40example.org"
        );
    }

    #[test]
    fn other_schemes_are_refused() {
        for bad in [
            "ftp://keys.example.org",
            "ldap://keys.example.org",
            "keys.example.org",
            "hkp://",
        ] {
            let err = HkpKeyserver::new(bad, reqwest::Client::new(), 1)
                .err()
                .unwrap();
            assert!(err.contains(bad), "{err}");
        }
    }
}
