//! OpenPGP keys from an LDAP key server in the PGP Universal / GnuPG dirmngr
//! layout (`ldap://` and `ldaps://` entries of the key server list).
//!
//! The layout: an entry `cn=PGPServerInfo` (at the root, or under one of the
//! server's naming contexts) names the key space in `pgpBaseKeySpaceDN`; each
//! key is an entry below it with the User IDs in `pgpUserID` and the key in
//! `pgpKey` (ASCII armor; GnuPG's newer schema adds a binary `pgpKeyV2`).
//! A lookup binds anonymously, searches `(pgpUserID=*<address>*)` and keeps
//! only the certificates with a User ID whose address is exactly the one
//! asked for: a key server answers with whatever matches the substring, and
//! anybody can upload a key naming anybody.

use crate::load::parse_pgp;
use crate::source::Source;
use crate::sources::ldap_common::{
    decode_value, parse_ldap_url, search, tls_connector, values, ConnSpec, Failure, Found, Pool,
};
use crate::RecipientKey;
use ldap3::{Ldap, Scope};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

const SERVER_INFO: &str = "cn=PGPServerInfo";

/// An LDAP key server as a key source.
pub struct LdapKeyserver {
    url: String,
    pool: Pool,
    /// The key space DN, learnt once per connection life.
    base: std::sync::Mutex<Option<String>>,
}

impl LdapKeyserver {
    /// `url` is `ldap://host[:port]` or `ldaps://host[:port]`; `timeout`
    /// bounds each network step; `tls_ca_file` adds trusted CAs (PEM) for
    /// ldaps. The server certificate is always verified.
    pub fn new(
        url: &str,
        timeout: Duration,
        tls_ca_file: Option<&Path>,
    ) -> Result<LdapKeyserver, String> {
        let parsed = parse_ldap_url(url).map_err(|e| format!("key server {url}: {e}"))?;
        if timeout.is_zero() {
            return Err(format!("key server {url}: the timeout must not be zero"));
        }
        let connector = if parsed.secure || tls_ca_file.is_some() {
            Some(tls_connector(true, tls_ca_file).map_err(|e| format!("key server {url}: {e}"))?)
        } else {
            None
        };
        let spec = ConnSpec {
            starttls: false,
            connector,
            timeout,
            bind: None,
        };
        Ok(LdapKeyserver {
            url: url.to_string(),
            pool: Pool::new(parsed.server, spec),
            base: std::sync::Mutex::new(None),
        })
    }

    fn cached_base(&self) -> Option<String> {
        self.base.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_base(&self, base: Option<String>) {
        *self.base.lock().unwrap_or_else(|e| e.into_inner()) = base;
    }
}

/// Finds `pgpBaseKeySpaceDN`: `cn=PGPServerInfo` at the root, else under each
/// naming context of the root DSE.
async fn key_space(ldap: &mut Ldap, timeout: Duration) -> Result<String, Failure> {
    let attrs = ["pgpBaseKeySpaceDN", "pgpSoftware", "pgpVersion"];
    let read = |found: Found| {
        found.entries.iter().find_map(|e| {
            values(e, "pgpBaseKeySpaceDN")
                .into_iter()
                .find_map(|v| String::from_utf8(v).ok().filter(|s| !s.trim().is_empty()))
        })
    };
    // The root form; a server without it answers noSuchObject (an error here).
    if let Ok(found) = search(
        ldap,
        SERVER_INFO,
        Scope::Base,
        "(objectClass=*)",
        &attrs,
        timeout,
    )
    .await
    {
        if let Some(dn) = read(found) {
            return Ok(dn);
        }
    }
    let root = search(
        ldap,
        "",
        Scope::Base,
        "(objectClass=*)",
        &["namingContexts"],
        timeout,
    )
    .await?;
    let contexts: Vec<String> = root
        .entries
        .iter()
        .flat_map(|e| values(e, "namingContexts"))
        .filter_map(|v| String::from_utf8(v).ok())
        .collect();
    for ctx in contexts {
        let dn = format!("{SERVER_INFO},{ctx}");
        match search(ldap, &dn, Scope::Base, "(objectClass=*)", &attrs, timeout).await {
            Ok(found) => {
                if let Some(base) = read(found) {
                    return Ok(base);
                }
            }
            Err(e) if e.broken => return Err(e),
            Err(_) => continue,
        }
    }
    Err(Failure::new(
        "no cn=PGPServerInfo entry with pgpBaseKeySpaceDN: not an LDAP key server",
    ))
}

#[async_trait::async_trait]
impl Source for LdapKeyserver {
    fn name(&self) -> String {
        format!("keyserver:{}", sealgate_store::redact(&self.url))
    }

    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        let timeout = self.pool.spec().timeout;
        let filter = format!("(pgpUserID=*{}*)", ldap3::ldap_escape(address));
        let cached = self.cached_base();
        let result = self
            .pool
            .run(|mut ldap| {
                let filter = filter.clone();
                let cached = cached.clone();
                async move {
                    let base = match cached {
                        Some(b) => b,
                        None => key_space(&mut ldap, timeout).await?,
                    };
                    let found = search(
                        &mut ldap,
                        &base,
                        Scope::Subtree,
                        &filter,
                        &["pgpKey", "pgpKeyV2", "pgpDisabled", "pgpRevoked"],
                        timeout,
                    )
                    .await?;
                    Ok((base, found))
                }
            })
            .await;
        let (base, found) = match result {
            Ok(r) => r,
            Err(e) => {
                self.set_base(None);
                return Err(format!("{}: {e}", self.url));
            }
        };
        self.set_base(Some(base));
        if !found.refs.is_empty() {
            tracing::debug!(source = %self.name(), "ignoring referrals from the key server");
        }
        let wanted = address.to_lowercase();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut bad = Vec::new();
        let mut other = 0usize;
        for entry in &found.entries {
            let flagged = |name: &str| {
                values(entry, name)
                    .iter()
                    .any(|v| matches!(v.as_slice(), b"1" | b"TRUE" | b"true"))
            };
            if flagged("pgpDisabled") || flagged("pgpRevoked") {
                continue;
            }
            let mut data = values(entry, "pgpKeyV2");
            data.extend(values(entry, "pgpKey"));
            for value in data {
                let parsed = parse_pgp(&value).or_else(|first| {
                    let decoded = decode_value(&value);
                    if decoded != value {
                        parse_pgp(&decoded)
                    } else {
                        Err(first)
                    }
                });
                match parsed {
                    Ok(keys) => {
                        for k in keys {
                            if !k.names(&wanted) {
                                other += 1;
                                continue;
                            }
                            if seen.insert(k.fingerprint()) {
                                out.push(k);
                            }
                        }
                    }
                    Err(e) => bad.push(format!("{}: {e}", entry.dn)),
                }
            }
        }
        if other > 0 {
            tracing::debug!(
                source = %self.name(),
                ignored = other,
                "ignored key server certificates without a User ID for exactly the address"
            );
        }
        for b in &bad {
            tracing::warn!(source = %self.name(), "unreadable key on the key server: {b}");
        }
        if out.is_empty() && !bad.is_empty() && other == 0 {
            return Err(format!("{}: bad data: {}", self.url, bad.join("; ")));
        }
        Ok(out)
    }
}
