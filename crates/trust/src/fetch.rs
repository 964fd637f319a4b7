//! Getting a CRL from a distribution point: http(s) through the key
//! sources' HTTP client (proxy, extra CA, size limit, timeouts), ldap(s)
//! with a base-scope search for `certificateRevocationList;binary`.
//! Whatever comes back is only bytes here; it is parsed, checked and
//! believed (or not) elsewhere.

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::time::Duration;

/// How CRLs are downloaded.
#[derive(Clone)]
pub struct Fetcher {
    pub http: reqwest::Client,
    /// The largest CRL accepted.
    pub max_bytes: usize,
    /// For each download (connect and answer).
    pub timeout: Duration,
}

impl Fetcher {
    /// The bytes at `url`; `Err` says what failed (never with a password).
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url}: not a URL: {e}"))?;
        match parsed.scheme() {
            "http" | "https" => {
                match sealgate_keys::sources::http::get_bounded(&self.http, &parsed, self.max_bytes)
                    .await?
                {
                    Some(b) => Ok(b),
                    None => Err(format!("{url}: not found (404/410)")),
                }
            }
            "ldap" | "ldaps" => tokio::time::timeout(self.timeout, self.ldap(&parsed))
                .await
                .unwrap_or_else(|_| {
                    Err(format!(
                        "{url}: no answer within {} s",
                        self.timeout.as_secs()
                    ))
                }),
            other => Err(format!(
                "{url}: scheme {other:?} is not supported (http, https, ldap, ldaps)"
            )),
        }
    }

    async fn ldap(&self, url: &url::Url) -> Result<Vec<u8>, String> {
        let e = |what: &str, err: ldap3::LdapError| format!("{url}: {what}: {err}");
        let params = ldap3::get_url_params(url).map_err(|x| e("bad LDAP URL", x))?;
        // RFC 4516: without a scope in the URL, the scope is "base".
        let scope_given = url
            .query()
            .and_then(|q| q.split('?').nth(1))
            .is_some_and(|s| !s.is_empty());
        let scope = if scope_given {
            params.scope
        } else {
            Scope::Base
        };
        let attr = "certificateRevocationList;binary";
        let settings = LdapConnSettings::new().set_conn_timeout(self.timeout);
        let mut base_url = url.clone();
        base_url.set_path("");
        base_url.set_query(None);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, base_url.as_str())
            .await
            .map_err(|x| e("cannot connect", x))?;
        ldap3::drive!(conn);
        let filter = if params.filter.is_empty() {
            "(objectClass=*)".to_string()
        } else {
            params.filter.to_string()
        };
        let (entries, _) = ldap
            .with_search_options(ldap3::SearchOptions::new().sizelimit(4))
            .search(
                &params.base,
                scope,
                &filter,
                vec![attr, "certificateRevocationList"],
            )
            .await
            .map_err(|x| e("search failed", x))?
            .success()
            .map_err(|x| e("search failed", x))?;
        let _ = ldap.unbind().await;
        for entry in entries {
            let entry = SearchEntry::construct(entry);
            for (name, values) in &entry.bin_attrs {
                if name.eq_ignore_ascii_case(attr)
                    || name.eq_ignore_ascii_case("certificateRevocationList")
                {
                    if let Some(v) = values.first() {
                        if v.len() > self.max_bytes {
                            return Err(format!(
                                "{url}: the CRL is larger than {} bytes",
                                self.max_bytes
                            ));
                        }
                        return Ok(v.clone());
                    }
                }
            }
        }
        Err(format!("{url}: no {attr} in the answer"))
    }
}
