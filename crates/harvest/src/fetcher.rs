//! The one outbound fetch harvesting makes, for the `OpenPGP: url=` header
//! ([`crate::openpgp_header`]).
//!
//! A stranger's mail chooses the URL, so the fetch goes through the key
//! sources' client for outsider-chosen destinations
//! (`sealgate_keys::sources::http::public_client_no_redirects`: the proxy,
//! the timeouts, public addresses only, and no redirect at all: the URL's
//! host was checked against the sender's domain, and an open redirect on
//! that site must not lead elsewhere), its answer is bounded
//! by `keys.http.max_response_bytes`, and each URL is fetched at most once
//! per [`REFETCH_AFTER`]: a flood of mail pointing at one URL costs one
//! request, and at most [`MAX_TRACKED`] distinct URLs are fetched per hour.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Least time between two fetches of the same URL.
pub const REFETCH_AFTER: Duration = Duration::from_secs(3600);

/// Most distinct URLs fetched within [`REFETCH_AFTER`].
pub const MAX_TRACKED: usize = 4096;

/// What a fetch brought.
#[derive(Debug)]
pub enum Fetched {
    /// The answer's body.
    Body(Vec<u8>),
    /// 404 or 410: nothing there.
    NotFound,
    /// Not fetched: fetched within the last hour, or too many distinct URLs
    /// were.
    NotNow(&'static str),
}

/// Fetches URLs harvesting found, bounded as above.
pub struct Fetcher {
    client: reqwest::Client,
    max_bytes: usize,
    recent: Mutex<HashMap<String, Instant>>,
}

impl Fetcher {
    /// `client` should be the public-only one; `max_bytes` bounds an answer.
    pub fn new(client: reqwest::Client, max_bytes: usize) -> Fetcher {
        Fetcher {
            client,
            max_bytes,
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// GETs `url` unless it was fetched within [`REFETCH_AFTER`].
    pub async fn get(&self, url: &url::Url) -> Result<Fetched, String> {
        if let Some(why) = self.claim(url.as_str(), Instant::now()) {
            return Ok(Fetched::NotNow(why));
        }
        match sealgate_keys::sources::http::get_bounded(&self.client, url, self.max_bytes).await? {
            Some(body) => Ok(Fetched::Body(body)),
            None => Ok(Fetched::NotFound),
        }
    }

    /// Records a fetch of `url` at `now`; `Some(why)` if it must not happen.
    fn claim(&self, url: &str, now: Instant) -> Option<&'static str> {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < REFETCH_AFTER;
        if recent.get(url).is_some_and(fresh) {
            return Some("fetched less than an hour ago");
        }
        if recent.len() >= MAX_TRACKED {
            recent.retain(|_, at| fresh(at));
            if recent.len() >= MAX_TRACKED {
                return Some("too many distinct URLs fetched in the last hour");
            }
        }
        recent.insert(url.to_string(), now);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetches_a_url_once_an_hour_and_bounds_the_urls_tracked() {
        let f = Fetcher::new(reqwest::Client::new(), 1024);
        let t0 = Instant::now();
        assert_eq!(f.claim("https://a.example/k", t0), None);
        assert!(f
            .claim("https://a.example/k", t0 + Duration::from_secs(60))
            .is_some());
        assert_eq!(f.claim("https://a.example/k", t0 + REFETCH_AFTER), None);
        for i in 1..MAX_TRACKED {
            assert_eq!(
                f.claim(&format!("https://a.example/{i}"), t0 + REFETCH_AFTER),
                None
            );
        }
        let full = f.claim("https://b.example/k", t0 + REFETCH_AFTER);
        assert_eq!(
            full,
            Some("too many distinct URLs fetched in the last hour")
        );
        // An hour later the old entries make room again.
        assert_eq!(f.claim("https://b.example/k", t0 + REFETCH_AFTER * 2), None);
    }
}
