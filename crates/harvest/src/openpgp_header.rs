//! The `OpenPGP:` header field (draft-josefsson-openpgp-mailnews-header):
//! `OpenPGP: id=…; url=https://…; preference=…`, a pointer to where the
//! sender publishes their key (Bitmask's "OpenPGP header" source).
//!
//! The field is unsigned and From can be forged, so what is fetched must be
//! something only the sender's domain controls: the URL is fetched only when
//! it is `https`, names a host that is the From domain or a subdomain of it
//! (never an address literal, never user info), and at most once an hour.
//! The fetch goes through the key sources' HTTP client for outsider-chosen
//! destinations (proxy, timeouts, size limit, public addresses only). The
//! key is accepted only with a valid User ID equal to From, and enters at
//! `weak_chain` (then the can-upgrade rules decide whether it is used).

use crate::fields;
use sealgate_crypto::mime::{header_value_unfolded, Message};

/// Longest URL followed.
pub const MAX_URL_BYTES: usize = 2048;

/// The URL the message's `OpenPGP:` field points to, checked against the
/// author's address. `Ok(None)`: no such field, or one without `url=`
/// (nothing to fetch). `Err`: why the URL is not fetched.
pub fn pointer(message: &[u8], author: &str) -> Result<Option<url::Url>, String> {
    let m = Message::parse(message);
    let mut fields = m
        .headers()
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("OpenPGP"));
    let Some(field) = fields.next() else {
        return Ok(None);
    };
    if fields.next().is_some() {
        return Err("more than one OpenPGP field: none is followed".into());
    }
    let attrs = fields::attributes(&header_value_unfolded(field))
        .map_err(|e| format!("the OpenPGP field cannot be read: {e}"))?;
    let Some(url) = fields::get(&attrs, "url") else {
        return Ok(None);
    };
    check_url(url, author).map(Some)
}

/// `url` if it may be fetched for mail from `author`: https, a host name
/// equal to the author's domain or below it, no user info.
pub fn check_url(url: &str, author: &str) -> Result<url::Url, String> {
    if url.len() > MAX_URL_BYTES {
        return Err(format!("the URL is longer than {MAX_URL_BYTES} bytes"));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if parsed.scheme() != "https" {
        return Err(format!(
            "{url:?}: only https URLs are fetched (the key would travel unprotected)"
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("{url:?}: a URL with user info is not fetched"));
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
        Some(_) => {
            return Err(format!(
                "{url:?}: an address literal is not the sender's domain"
            ))
        }
        None => return Err(format!("{url:?} has no host")),
    };
    let domain = author_domain(author)?;
    if host == domain || host.ends_with(&format!(".{domain}")) {
        Ok(parsed)
    } else {
        Err(format!(
            "{url:?} is not in the sender's domain {domain} (nor a subdomain of it)"
        ))
    }
}

/// The domain of `author`, lower case and in its ASCII (punycode) form.
fn author_domain(author: &str) -> Result<String, String> {
    let domain = author
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| format!("the From address {author:?} has no domain"))?;
    match url::Host::parse(domain) {
        Ok(url::Host::Domain(d)) => Ok(d.trim_end_matches('.').to_ascii_lowercase()),
        _ => Err(format!("the From domain {domain:?} is not a host name")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_only_https_in_the_senders_domain() {
        for ok in [
            "https://partner.example/key.asc",
            "https://keys.partner.example/u/olga.asc",
            "https://KEYS.Partner.Example:8443/olga",
            "https://partner.example./key.asc",
        ] {
            assert!(check_url(ok, "olga@partner.example").is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://partner.example/key.asc", "only https"),
            ("ftp://partner.example/key.asc", "only https"),
            ("https://evil.example/key.asc", "not in the sender's domain"),
            (
                "https://evilpartner.example/key.asc",
                "not in the sender's domain",
            ),
            (
                "https://partner.example.evil.example/k",
                "not in the sender's domain",
            ),
            ("https://example/key.asc", "not in the sender's domain"),
            ("https://127.0.0.1/key.asc", "address literal"),
            ("https://[::1]/key.asc", "address literal"),
            ("https://olga@partner.example/key.asc", "user info"),
            ("https://u:p@partner.example/key.asc", "user info"),
            ("partner.example/key.asc", "not a URL"),
        ] {
            let e = check_url(bad, "olga@partner.example").unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!("https://partner.example/{}", "a".repeat(MAX_URL_BYTES));
        assert!(check_url(&long, "olga@partner.example")
            .unwrap_err()
            .contains("longer"));
    }

    #[test]
    fn compares_international_domains_in_ascii() {
        assert!(check_url("https://keys.xn--bcher-kva.example/k", "o@bücher.example").is_ok());
        assert!(check_url("https://keys.bücher.example/k", "o@BÜCHER.example").is_ok());
        assert!(check_url("https://keys.bucher.example/k", "o@bücher.example").is_err());
    }

    #[test]
    fn reads_the_field() {
        let m = |fields: &str| format!("From: olga@partner.example\r\n{fields}\r\nbody\r\n");
        let u = pointer(
            m("OpenPGP: id=ABCD;\r\n url=\"https://partner.example/olga.asc\"; preference=sign\r\n")
                .as_bytes(),
            "olga@partner.example",
        )
        .unwrap()
        .unwrap();
        assert_eq!(u.as_str(), "https://partner.example/olga.asc");
        assert_eq!(
            pointer(m("Subject: x\r\n").as_bytes(), "olga@partner.example").unwrap(),
            None
        );
        assert_eq!(
            pointer(m("openpgp: id=ABCD\r\n").as_bytes(), "olga@partner.example").unwrap(),
            None
        );
        let two = m(
            "OpenPGP: url=https://partner.example/a\r\nOpenPGP: url=https://partner.example/b\r\n",
        );
        assert!(pointer(two.as_bytes(), "olga@partner.example")
            .unwrap_err()
            .contains("more than one"));
        let bad = m("OpenPGP: url=https://partner.example/a; url=https://evil.example/b\r\n");
        assert!(pointer(bad.as_bytes(), "olga@partner.example")
            .unwrap_err()
            .contains("twice"));
    }
}
