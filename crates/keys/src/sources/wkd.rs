//! The OpenPGP Web Key Directory (draft-koch-openpgp-webkey-service) as a key
//! source: a domain publishes its users' keys over HTTPS at a path derived
//! from the address, so sealgate can find a recipient's key with no
//! configuration beyond "use WKD".
//!
//! The address' local part is lowercased, hashed with SHA-1 and encoded in
//! z-base-32. The advanced method
//! (`https://openpgpkey.<domain>/.well-known/openpgpkey/<domain>/hu/<hash>?l=<local>`)
//! is tried first. As the draft says, the direct method
//! (`https://<domain>/.well-known/openpgpkey/hu/<hash>?l=<local>`) is used
//! only if the `openpgpkey.<domain>` host does not exist: its name does not
//! resolve (or, through a proxy, the proxy cannot open a tunnel to it).
//! HTTPS only: a plain-HTTP URL is never requested, and redirects to http are
//! refused by the shared client.
//!
//! WKD is opportunistic: most domains publish nothing, and that must not
//! defer their mail. So the outcomes are classified (docs/configuration.md
//! has the same table):
//!
//! | outcome (of the method that was used) | result |
//! |---|---|
//! | host name does not exist (NXDOMAIN), also for the direct method | no key (cached as negative) |
//! | connection refused | no key |
//! | HTTP 404 or 410 | no key |
//! | HTTP 2xx with an empty body | no key |
//! | an address WKD cannot express (no domain, an address literal) | no key |
//! | timeout, TLS failure (certificate, handshake), temporary DNS failure | error ("could not find out") |
//! | any other HTTP status (5xx, 403, ...) | error |
//! | an answer cut short, larger than `max_response_bytes`, or not OpenPGP | error |
//!
//! Only certificates with a User ID that is exactly the address are kept.

use super::http::{certs_for_address_off_thread, fetch};
use crate::source::Source;
use crate::RecipientKey;

/// The WKD source.
pub struct Wkd {
    client: reqwest::Client,
    max_response_bytes: usize,
}

impl Wkd {
    pub fn new(client: reqwest::Client, max_response_bytes: usize) -> Wkd {
        Wkd {
            client,
            max_response_bytes,
        }
    }
}

/// The z-base-32 alphabet (the draft's reference, "human-oriented base-32").
const ZBASE32: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// z-base-32 encoding of `data`, most significant bit first, the last
/// group padded with zero bits (no padding characters).
pub fn zbase32(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ZBASE32[((buffer >> bits) & 31) as usize] as char);
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(ZBASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The WKD hash of a local part: z-base-32 of SHA-1 of its lowercase form
/// (ASCII letters only are mapped, as the draft says).
pub fn local_part_hash(local: &str) -> String {
    zbase32(&openssl::sha::sha1(local.to_ascii_lowercase().as_bytes()))
}

/// The advanced and direct method URLs for `address`. The domain is
/// lowercased; the `l=` parameter carries the local part as given.
pub fn wkd_urls(address: &str) -> Result<(url::Url, url::Url), String> {
    let (local, domain) = address
        .rsplit_once('@')
        .ok_or_else(|| format!("{address:?} is not an email address"))?;
    if local.is_empty() || domain.is_empty() {
        return Err(format!("{address:?} is not an email address"));
    }
    let domain = domain.to_ascii_lowercase();
    if domain.contains(['/', '?', '#', ':', '@', '\\', ' ', '[', ']']) || domain.starts_with('.') {
        return Err(format!("{address:?}: {domain:?} is not a domain name"));
    }
    let hash = local_part_hash(local);
    let build = |base: String| -> Result<url::Url, String> {
        let mut url =
            url::Url::parse(&base).map_err(|e| format!("{address:?}: bad WKD URL: {e}"))?;
        // A domain the URL parser reads as an address (`127.0.0.1`, `0x7f.1`)
        // would be connected to without a name lookup: WKD names hosts only.
        if !matches!(url.host(), Some(url::Host::Domain(_))) {
            return Err(format!("{address:?}: {domain:?} is not a domain name"));
        }
        url.query_pairs_mut().append_pair("l", local);
        Ok(url)
    };
    let advanced = build(format!(
        "https://openpgpkey.{domain}/.well-known/openpgpkey/{domain}/hu/{hash}"
    ))?;
    let direct = build(format!("https://{domain}/.well-known/openpgpkey/hu/{hash}"))?;
    Ok((advanced, direct))
}

#[async_trait::async_trait]
impl Source for Wkd {
    fn name(&self) -> String {
        "wkd".to_string()
    }

    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        let (advanced, direct) = match wkd_urls(address) {
            Ok(urls) => urls,
            Err(e) => {
                tracing::debug!("WKD: no lookup: {e}");
                return Ok(Vec::new());
            }
        };
        let body = match fetch(&self.client, &advanced, self.max_response_bytes).await {
            Ok(body) => body,
            Err(e) if e.name_not_found => {
                tracing::debug!(
                    "WKD: {} does not exist ({}); trying the direct method",
                    advanced.host_str().unwrap_or_default(),
                    e.message
                );
                match fetch(&self.client, &direct, self.max_response_bytes).await {
                    Ok(body) => body,
                    Err(e) if e.name_not_found || e.connection_refused => {
                        tracing::debug!("WKD direct method: no key ({})", e.message);
                        None
                    }
                    Err(e) => return Err(format!("WKD direct method: {}", e.message)),
                }
            }
            Err(e) if e.connection_refused => {
                tracing::debug!("WKD advanced method: no key ({})", e.message);
                None
            }
            Err(e) => return Err(format!("WKD advanced method: {}", e.message)),
        };
        match body {
            None => Ok(Vec::new()),
            Some(body) => certs_for_address_off_thread(body, address, "wkd").await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zbase32_vectors() {
        assert_eq!(zbase32(b""), "");
        // From the z-base-32 specification: 0xF0 0xBF 0xC7 -> "6n9hq"; 0xD4 0x7A 0x04 -> "4t7ye".
        assert_eq!(zbase32(&[0xf0, 0xbf, 0xc7]), "6n9hq");
        assert_eq!(zbase32(&[0xd4, 0x7a, 0x04]), "4t7ye");
        assert_eq!(
            local_part_hash("Joe.Doe"),
            "iy9q119eutrkn8s1mk4r39qejnbu3n5q"
        );
    }
}
