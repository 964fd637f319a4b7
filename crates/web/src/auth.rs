//! Who may use the admin API: local admin accounts (`sealgate admin add`)
//! and API tokens (`sealgate admin token create|revoke`), both kept in the
//! store so that every instance knows them.
//!
//! A token is `sgt_<id>_<secret>`: the id is public (it names the token in
//! lists and logs), the secret is 32 random bytes; only the SHA-256 of the
//! whole token is stored, so the store alone gives no token. Passwords are
//! hashed as SMTP AUTH's are (PBKDF2-SHA-256).

use crate::ApiError;
use serde::Serialize;
use sqlx::Row;

/// An admin account, without its hash.
#[derive(Debug, Clone, Serialize)]
pub struct Admin {
    pub name: String,
    pub created_at: i64,
}

/// A token, without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub admin: String,
    pub created_at: i64,
    pub last_used: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// `s` for a log line: at most 64 characters, no control characters.
pub fn log_safe(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// An admin name: 1 to 64 of letters, digits, `.`, `-`, `_`, `@`.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_@".contains(c))
    {
        return Err(ApiError::invalid(format!(
            "{name:?} is not an admin name: 1 to 64 letters, digits, '.', '-', '_' or '@'"
        )));
    }
    Ok(())
}

fn sha256_hex(s: &str) -> String {
    openssl::sha::sha256(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_hex(bytes: usize) -> Result<String, ApiError> {
    let mut b = vec![0u8; bytes];
    openssl::rand::rand_bytes(&mut b).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Accounts and tokens in the store.
#[derive(Clone)]
pub struct Accounts {
    store: sealgate_store::Store,
}

impl Accounts {
    pub fn new(store: sealgate_store::Store) -> Accounts {
        Accounts { store }
    }

    /// Adds (or, with `replace`, sets the password of) the account `name`.
    pub async fn add(&self, name: &str, password: &str, replace: bool) -> Result<Admin, ApiError> {
        check_name(name)?;
        if password.chars().count() < 12 {
            return Err(ApiError::invalid(
                "the password must have at least 12 characters",
            ));
        }
        let hash = sealgate_smtp_server::hash_password(password);
        let now = sealgate_store::now_unix();
        let pool = self.store.pool();
        let exists: Option<String> =
            sqlx::query_scalar("SELECT name FROM web_admin WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?;
        match (exists, replace) {
            (Some(_), false) => {
                return Err(ApiError::conflict(format!(
                    "the admin {name} exists already (--replace sets a new password)"
                )))
            }
            (Some(_), true) => {
                sqlx::query("UPDATE web_admin SET password_hash = $1 WHERE name = $2")
                    .bind(&hash)
                    .bind(name)
                    .execute(pool)
                    .await?;
            }
            (None, _) => {
                sqlx::query(
                    "INSERT INTO web_admin (name, password_hash, created_at) VALUES ($1, $2, $3)",
                )
                .bind(name)
                .bind(&hash)
                .bind(now)
                .execute(pool)
                .await?;
            }
        }
        Ok(self
            .list()
            .await?
            .into_iter()
            .find(|a| a.name == name)
            .unwrap_or(Admin {
                name: name.into(),
                created_at: now,
            }))
    }

    pub async fn list(&self) -> Result<Vec<Admin>, ApiError> {
        let rows = sqlx::query("SELECT name, created_at FROM web_admin ORDER BY name")
            .fetch_all(self.store.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Admin {
                    name: r.try_get(0)?,
                    created_at: r.try_get(1)?,
                })
            })
            .collect()
    }

    /// Removes the account `name` and revokes its tokens.
    pub async fn remove(&self, name: &str) -> Result<(), ApiError> {
        let mut tx = self.store.pool().begin().await?;
        let n = sqlx::query("DELETE FROM web_admin WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(ApiError::not_found(format!("no admin named {name}")));
        }
        sqlx::query("UPDATE web_token SET revoked_at = $1 WHERE admin = $2 AND revoked_at IS NULL")
            .bind(sealgate_store::now_unix())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether `password` is `name`'s (a missing account checks a dummy
    /// hash, so that timing does not tell which names exist).
    pub async fn check_password(&self, name: &str, password: &str) -> Result<bool, ApiError> {
        let hash: Option<String> =
            sqlx::query_scalar("SELECT password_hash FROM web_admin WHERE name = $1")
                .bind(name)
                .fetch_optional(self.store.pool())
                .await?;
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy = DUMMY.get_or_init(|| sealgate_smtp_server::hash_password("no such admin"));
        let ok = sealgate_smtp_server::verify_password(password, hash.as_deref().unwrap_or(dummy));
        Ok(ok && hash.is_some())
    }

    /// A new token for `admin`, named `name`: (its record, the token, shown
    /// this once).
    pub async fn create_token(&self, admin: &str, name: &str) -> Result<(Token, String), ApiError> {
        if !self.list().await?.iter().any(|a| a.name == admin) {
            return Err(ApiError::not_found(format!(
                "no admin named {admin} (sealgate admin add {admin})"
            )));
        }
        let name = name.trim();
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "a token name is 1 to 128 characters, one line",
            ));
        }
        let id = random_hex(6)?;
        let token = format!("sgt_{id}_{}", random_hex(32)?);
        sqlx::query(
            "INSERT INTO web_token (id, name, admin, sha256, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(name)
        .bind(admin)
        .bind(sha256_hex(&token))
        .bind(sealgate_store::now_unix())
        .execute(self.store.pool())
        .await?;
        let t = self
            .tokens()
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| ApiError::internal("the new token is not in the store"))?;
        Ok((t, token))
    }

    pub async fn tokens(&self) -> Result<Vec<Token>, ApiError> {
        let rows = sqlx::query(
            "SELECT id, name, admin, created_at, last_used, revoked_at FROM web_token ORDER BY created_at, id",
        )
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Token {
                    id: r.try_get(0)?,
                    name: r.try_get(1)?,
                    admin: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    last_used: r.try_get(4)?,
                    revoked_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Revokes the token `id`; it stops working at once on every instance.
    pub async fn revoke_token(&self, id: &str) -> Result<Token, ApiError> {
        let n = sqlx::query(
            "UPDATE web_token SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(sealgate_store::now_unix())
        .bind(id)
        .execute(self.store.pool())
        .await?
        .rows_affected();
        if n == 0 {
            return Err(ApiError::not_found(format!(
                "no live token with the id {id} (sealgate admin token list)"
            )));
        }
        self.tokens()
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| ApiError::internal("the token is gone"))
    }

    /// The admin a bearer token acts as; `None` for an unknown, malformed
    /// or revoked token.
    pub async fn admin_of_token(&self, token: &str) -> Result<Option<String>, ApiError> {
        if !token.starts_with("sgt_") || token.len() > 200 {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT t.id, t.admin FROM web_token t JOIN web_admin a ON a.name = t.admin
             WHERE t.sha256 = $1 AND t.revoked_at IS NULL",
        )
        .bind(sha256_hex(token))
        .fetch_optional(self.store.pool())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let id: String = r.try_get(0)?;
        let admin: String = r.try_get(1)?;
        sqlx::query("UPDATE web_token SET last_used = $1 WHERE id = $2")
            .bind(sealgate_store::now_unix())
            .bind(&id)
            .execute(self.store.pool())
            .await?;
        Ok(Some(admin))
    }
}

/// How long a session lasts from its login.
pub const SESSION_SECS: i64 = 8 * 3600;

/// A signed-in admin's session: the cookie's value and the CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    pub admin: String,
    pub csrf: String,
}

impl Accounts {
    /// Signs `name` in: a new session (a new id at every login, whatever
    /// cookie came with the request: no session fixation), or `None` for a
    /// wrong name or password.
    pub async fn login(&self, name: &str, password: &str) -> Result<Option<Session>, ApiError> {
        if !self.check_password(name, password).await? {
            return Ok(None);
        }
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        let now = sealgate_store::now_unix();
        sqlx::query("DELETE FROM web_session WHERE expires_at < $1")
            .bind(now)
            .execute(self.store.pool())
            .await?;
        sqlx::query(
            "INSERT INTO web_session (id_sha256, admin, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(sha256_hex(&id))
        .bind(name)
        .bind(&csrf)
        .bind(now)
        .bind(now + SESSION_SECS)
        .execute(self.store.pool())
        .await?;
        Ok(Some(Session {
            id,
            admin: name.to_string(),
            csrf,
        }))
    }

    /// The live session whose cookie is `id`.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, ApiError> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT s.admin, s.csrf FROM web_session s JOIN web_admin a ON a.name = s.admin
             WHERE s.id_sha256 = $1 AND s.expires_at >= $2",
        )
        .bind(sha256_hex(id))
        .bind(sealgate_store::now_unix())
        .fetch_optional(self.store.pool())
        .await?;
        Ok(row
            .map(|r| -> Result<Session, sqlx::Error> {
                Ok(Session {
                    id: id.to_string(),
                    admin: r.try_get(0)?,
                    csrf: r.try_get(1)?,
                })
            })
            .transpose()?)
    }

    /// Ends the session `id`.
    pub async fn logout(&self, id: &str) -> Result<(), ApiError> {
        sqlx::query("DELETE FROM web_session WHERE id_sha256 = $1")
            .bind(sha256_hex(id))
            .execute(self.store.pool())
            .await?;
        Ok(())
    }
}

/// Failed logins per client address: at most [`LOGIN_FAILURES`] in
/// [`LOGIN_WINDOW`]; beyond, 429 without a password check (each check costs
/// a PBKDF2 run).
pub const LOGIN_FAILURES: usize = 5;
pub const LOGIN_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Default)]
pub struct LoginLimiter {
    failures:
        std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, Vec<std::time::Instant>>>,
}

impl LoginLimiter {
    /// Whether `ip` may try now.
    pub fn allowed(&self, ip: std::net::IpAddr) -> bool {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        let v = m.entry(ip).or_default();
        v.retain(|t| now.duration_since(*t) < LOGIN_WINDOW);
        v.len() < LOGIN_FAILURES
    }

    pub fn failed(&self, ip: std::net::IpAddr) {
        let mut m = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: an address's old failures drop out of its window, and
        // the map is cleared of idle addresses when it grows.
        if m.len() > 10_000 {
            let now = std::time::Instant::now();
            m.retain(|_, v| v.iter().any(|t| now.duration_since(*t) < LOGIN_WINDOW));
        }
        m.entry(ip).or_default().push(std::time::Instant::now());
    }
}
