//! SMTP AUTH (RFC 4954): SASL PLAIN/LOGIN decoding and password hashes.
//!
//! Authenticated clients may relay from any network (invariant 3), so this is
//! security-critical: passwords are stored only as salted PBKDF2-HMAC-SHA256
//! hashes, compared in constant time, and an unknown user costs the same work
//! as a wrong password. The network exchange itself lives in the session; this
//! file only turns SASL payloads into credentials and checks them, on the
//! blocking thread pool and at most one check per CPU at a time, process-wide
//! ([`check_credentials_bounded`]), so sessions cannot occupy every core with
//! PBKDF2 (the per-client budget of failures is in `anvil.rs`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::{AuthUser, ServerConfig};

const ITERATIONS: u32 = 210_000;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;
/// Upper bound on the iteration count accepted from a stored hash, so a bad
/// configuration cannot make one login cost minutes.
const MAX_ITERATIONS: u32 = 10_000_000;
const PREFIX: &str = "$pbkdf2-sha256$";

/// Hashes a password as `$pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`
/// (random 16-byte salt, 210 000 iterations, standard base64 with padding).
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; SALT_LEN];
    openssl::rand::rand_bytes(&mut salt).expect("OpenSSL random generator failed");
    let mut hash = [0u8; HASH_LEN];
    derive(password, &salt, ITERATIONS, &mut hash);
    format!(
        "{PREFIX}{ITERATIONS}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    )
}

/// Checks a password against a hash from [`hash_password`]; false on a
/// malformed hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Some(rest) = hash.strip_prefix(PREFIX) else {
        return false;
    };
    let mut parts = rest.split('$');
    let (Some(iter), Some(salt), Some(expected), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(iterations) = iter.parse::<u32>() else {
        return false;
    };
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return false;
    }
    let (Ok(salt), Ok(expected)) = (STANDARD.decode(salt), STANDARD.decode(expected)) else {
        return false;
    };
    if salt.is_empty() || !(16..=64).contains(&expected.len()) {
        return false;
    }
    let mut actual = vec![0u8; expected.len()];
    derive(password, &salt, iterations, &mut actual);
    openssl::memcmp::eq(&actual, &expected)
}

fn derive(password: &str, salt: &[u8], iterations: u32, out: &mut [u8]) {
    openssl::pkcs5::pbkdf2_hmac(
        password.as_bytes(),
        salt,
        iterations as usize,
        openssl::hash::MessageDigest::sha256(),
        out,
    )
    .expect("PBKDF2 failed");
}

/// Checks `name`/`password` against the configured users. Costs one PBKDF2
/// run whether or not the user exists. CPU-bound: call from a blocking thread.
pub(crate) fn check_credentials(users: &[AuthUser], name: &str, password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    match users.iter().find(|u| u.name == name) {
        Some(user) => verify_password(password, &user.password_hash),
        None => {
            let dummy = DUMMY.get_or_init(|| hash_password("sealgate-dummy"));
            let _ = verify_password(password, dummy);
            false
        }
    }
}

/// Password checks that may run at once in this process: one per CPU.
fn running_checks() -> &'static Semaphore {
    static CHECKS: OnceLock<Semaphore> = OnceLock::new();
    CHECKS
        .get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(1, |n| n.get())))
}

/// [`check_credentials`] against `config.auth_users` on the blocking thread pool, once one of the
/// per-CPU permits is free. `None` if none became free within `wait` (the
/// check did not run). The permit travels with the blocking task, so a
/// session that goes away mid-check still holds it until PBKDF2 ends.
pub(crate) async fn check_credentials_bounded(
    config: Arc<ServerConfig>,
    name: String,
    password: String,
    wait: Duration,
) -> Option<bool> {
    let permit = tokio::time::timeout(wait, running_checks().acquire())
        .await
        .ok()?
        .ok()?;
    let verified = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        check_credentials(&config.auth_users, &name, &password)
    })
    .await
    .unwrap_or(false);
    Some(verified)
}

/// Why a SASL payload could not be used.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SaslError {
    #[error("invalid base64")]
    Base64,
    #[error("malformed SASL message")]
    Malformed,
}

/// The client's answer to a 334 challenge or an initial response: `*` cancels.
pub(crate) fn is_cancel(line: &str) -> bool {
    line.trim() == "*"
}

/// Decodes one base64 SASL token (`=` is the empty token, RFC 4954 §4).
pub(crate) fn decode_token(token: &str) -> Result<Vec<u8>, SaslError> {
    let token = token.trim();
    if token == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(token).map_err(|_| SaslError::Base64)
}

/// Decodes a base64 token that must be UTF-8 text (AUTH LOGIN user/password).
pub(crate) fn decode_text(token: &str) -> Result<String, SaslError> {
    String::from_utf8(decode_token(token)?).map_err(|_| SaslError::Malformed)
}

/// Decodes an AUTH PLAIN message (RFC 4616: `authzid NUL authcid NUL passwd`)
/// into (user, password). An authorization identity different from the
/// authentication identity is refused: we do not support proxy authorization.
pub(crate) fn decode_plain(token: &str) -> Result<(String, String), SaslError> {
    let raw = decode_token(token)?;
    let mut parts = raw.split(|&b| b == 0);
    let (Some(authz), Some(authc), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    if authc.is_empty() || (!authz.is_empty() && authz != authc) {
        return Err(SaslError::Malformed);
    }
    let user = String::from_utf8(authc.to_vec()).map_err(|_| SaslError::Malformed)?;
    let pass = String::from_utf8(pass.to_vec()).map_err(|_| SaslError::Malformed)?;
    Ok((user, pass))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("s3cret");
        assert!(h.starts_with("$pbkdf2-sha256$210000$"));
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret ", &h));
        assert!(!verify_password("", &h));
        // Salted: two hashes of the same password differ.
        assert_ne!(h, hash_password("s3cret"));
    }

    #[test]
    fn malformed_hashes_fail() {
        let h = hash_password("pw");
        for bad in [
            "",
            "pw",
            "$pbkdf2-sha256$",
            "$pbkdf2-sha256$x$AAAA$AAAA",
            "$pbkdf2-sha256$0$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAA==",
            "$pbkdf2-sha256$99999999999$AAAA$AAAA",
            "$pbkdf2-sha256$1000$!!!$AAAA",
            "$pbkdf2-sha1$210000$AAAA$AAAA",
        ] {
            assert!(!verify_password("pw", bad), "{bad}");
        }
        assert!(!verify_password("pw", &format!("{h}$extra")));
    }

    #[test]
    fn known_vector_small_iterations() {
        // Our format with a low iteration count verifies too (iterations are read
        // from the hash, not assumed).
        let mut out = [0u8; 32];
        derive("password", b"saltsaltsaltsalt", 1000, &mut out);
        let h = format!(
            "$pbkdf2-sha256$1000${}${}",
            STANDARD.encode(b"saltsaltsaltsalt"),
            STANDARD.encode(out)
        );
        assert!(verify_password("password", &h));
        assert!(!verify_password("Password", &h));
    }

    #[test]
    fn plain_decoding() {
        let enc = |s: &[u8]| STANDARD.encode(s);
        assert_eq!(
            decode_plain(&enc(b"\0alice\0pw")).unwrap(),
            ("alice".into(), "pw".into())
        );
        assert_eq!(
            decode_plain(&enc(b"alice\0alice\0p w\x01")).unwrap(),
            ("alice".into(), "p w\x01".into())
        );
        assert_eq!(
            decode_plain(&enc(b"bob\0alice\0pw")),
            Err(SaslError::Malformed)
        );
        assert_eq!(decode_plain(&enc(b"\0\0pw")), Err(SaslError::Malformed));
        assert_eq!(decode_plain(&enc(b"alice\0pw")), Err(SaslError::Malformed));
        assert_eq!(decode_plain(&enc(b"\0a\0b\0c")), Err(SaslError::Malformed));
        assert_eq!(decode_plain("not base64!"), Err(SaslError::Base64));
        assert_eq!(decode_plain("="), Err(SaslError::Malformed));
    }

    #[test]
    fn login_tokens_and_cancel() {
        assert_eq!(decode_text("YWxpY2U=\r\n").unwrap(), "alice");
        assert_eq!(decode_text("=").unwrap(), "");
        assert_eq!(decode_text("/w=="), Err(SaslError::Malformed));
        assert!(is_cancel("*\r\n"));
        assert!(!is_cancel("Kg=="));
    }

    #[test]
    fn credentials_check() {
        let users = vec![AuthUser {
            name: "alice".into(),
            password_hash: hash_password("pw"),
        }];
        assert!(check_credentials(&users, "alice", "pw"));
        assert!(!check_credentials(&users, "alice", "nope"));
        assert!(!check_credentials(&users, "mallory", "pw"));
    }
}
