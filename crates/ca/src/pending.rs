//! Pending requests (`sealgate ca pending list|download|upload|reschedule|
//! delete`): requests a handler passed on to a CA that answers later. The
//! key sealgate made for each is kept sealed under the key-encryption key
//! until the certificate comes back, then both move into the certificate
//! store. The seed's "pending requests" page.

use crate::{build, db, params, Ca, CaError, Request};
use openssl::x509::X509;
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// How long until a pending request is looked at again.
pub const RETRY_SECS: i64 = 3600;

/// What a pending request asked for (stored as JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Asked {
    pub subject: build::Subject,
    pub validity_days: u32,
    pub key: crate::KeySpec,
}

/// A pending request as stored, with its CSR.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    pub view: PendingView,
    pub asked: Asked,
    pub csr_pem: Vec<u8>,
    sealed_key: Vec<u8>,
}

/// A pending request, for listing.
#[derive(Debug, Clone, Serialize)]
pub struct PendingView {
    pub id: String,
    pub handler: String,
    pub email: String,
    pub subject: String,
    pub created_at: i64,
    pub next_attempt: i64,
    pub attempts: i64,
    pub last_error: Option<String>,
}

fn aad(id: &str) -> Vec<u8> {
    format!("ca-pending:{id}").into_bytes()
}

const COLUMNS: &str =
    "id, handler, email, request, csr, sealed_key, created_at, next_attempt, attempts, last_error";

fn from_row(r: &sqlx::any::AnyRow) -> Result<PendingRequest, CaError> {
    let asked: Asked = serde_json::from_str(&r.try_get::<String, _>(3)?)
        .map_err(|e| CaError::Invalid(format!("a stored pending request does not read: {e}")))?;
    Ok(PendingRequest {
        view: PendingView {
            id: r.try_get(0)?,
            handler: r.try_get(1)?,
            email: r.try_get(2)?,
            subject: one_line(&asked.subject),
            created_at: r.try_get(6)?,
            next_attempt: r.try_get(7)?,
            attempts: r.try_get(8)?,
            last_error: r.try_get(9)?,
        },
        asked,
        csr_pem: r.try_get(4)?,
        sealed_key: r.try_get(5)?,
    })
}

fn one_line(s: &build::Subject) -> String {
    let mut out = format!("CN={}", s.common_name);
    if let Some(o) = &s.organisation {
        out.push_str(&format!(", O={o}"));
    }
    if let Some(e) = &s.email {
        out.push_str(&format!(", emailAddress={e}"));
    }
    out
}

impl Ca {
    /// The CSR handler's request: a new key (the request's or the
    /// configuration's kind) and a PKCS#10 request signed with it, kept
    /// pending with the key sealed.
    pub async fn request_csr(&self, r: &Request, handler: &str) -> Result<PendingView, CaError> {
        let kek = self.kek()?.clone();
        let config = self.config().await?;
        let subject = crate::subject_of(r, &config)?;
        let key_spec = r.key.unwrap_or(config.key);
        let sig = r.signature_algorithm.unwrap_or(config.signature_algorithm);
        let days = params::validity_days(r.validity_days.unwrap_or(config.validity_days))?;
        let s = subject.clone();
        let (csr, key) = tokio::task::spawn_blocking(move || {
            let key = key_spec.generate()?;
            let csr = build::request(&s, &key, sig)?;
            Ok::<_, CaError>((csr, key))
        })
        .await
        .map_err(|e| CaError::Invalid(format!("key generation failed: {e}")))??;
        let id = sealgate_queue::next_id();
        let sealed = kek
            .seal(&key.private_key_to_pkcs8()?, &aad(&id))
            .map_err(CaError::Trust)?;
        let asked = Asked {
            subject: subject.clone(),
            validity_days: days,
            key: key_spec,
        };
        let now = sealgate_store::now_unix();
        sqlx::query(
            "INSERT INTO ca_pending (id, handler, email, request, csr, sealed_key, created_at, next_attempt, attempts, last_error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, NULL)",
        )
        .bind(&id)
        .bind(handler)
        .bind(subject.email.clone().unwrap_or_default())
        .bind(serde_json::to_string(&asked).unwrap_or_default())
        .bind(csr.to_pem()?)
        .bind(&sealed)
        .bind(now)
        .bind(now + RETRY_SECS)
        .execute(self.store.pool())
        .await?;
        tracing::info!(pending = %id, handler, email = ?subject.email, "ca: request pending");
        Ok(self.pending(&id).await?.view)
    }

    /// Every pending request, oldest first.
    pub async fn pending_list(&self) -> Result<Vec<PendingView>, CaError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ca_pending ORDER BY created_at, id"
        )))
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(|r| Ok(from_row(r)?.view)).collect()
    }

    /// The pending request `id`.
    pub async fn pending(&self, id: &str) -> Result<PendingRequest, CaError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ca_pending WHERE id = $1"
        )))
        .bind(id.trim())
        .fetch_optional(self.store.pool())
        .await?
        .ok_or_else(|| {
            CaError::NotFound(format!(
                "no pending request {id} (sealgate ca pending list shows them)"
            ))
        })?;
        from_row(&row)
    }

    /// Looks at the request `id` again at once.
    pub async fn pending_reschedule(&self, id: &str) -> Result<PendingView, CaError> {
        self.pending(id).await?;
        sqlx::query("UPDATE ca_pending SET next_attempt = $1 WHERE id = $2")
            .bind(sealgate_store::now_unix())
            .bind(id.trim())
            .execute(self.store.pool())
            .await?;
        Ok(self.pending(id).await?.view)
    }

    /// Drops the request `id` and its key.
    pub async fn pending_delete(&self, id: &str) -> Result<PendingView, CaError> {
        let p = self.pending(id).await?;
        sqlx::query("DELETE FROM ca_pending WHERE id = $1")
            .bind(&p.view.id)
            .execute(self.store.pool())
            .await?;
        Ok(p.view)
    }

    /// Takes the certificates in `bytes` (PEM, DER or PKCS#7) issued for
    /// pending requests: each is matched to its request by its public key,
    /// and moves with the key into the certificate store, bound to its
    /// address; the request is done. A certificate that matches no pending
    /// request is an error naming it, and nothing is stored.
    pub async fn pending_upload(&self, bytes: &[u8]) -> Result<Vec<(String, String)>, CaError> {
        let kek = self.kek()?.clone();
        let certs = sealgate_trust::parse_certificates(bytes)?;
        if certs.is_empty() {
            return Err(CaError::Invalid("the file holds no certificate".into()));
        }
        let all: Vec<PendingRequest> = {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM ca_pending ORDER BY created_at"
            )))
            .fetch_all(self.store.pool())
            .await?;
            rows.iter().map(from_row).collect::<Result<_, _>>()?
        };
        // Match every certificate before storing any.
        let mut matched = Vec::new();
        for cert in &certs {
            let public = cert.public_key()?;
            let mut found = None;
            for p in &all {
                let der = kek
                    .open(&p.sealed_key, &aad(&p.view.id))
                    .map_err(CaError::Trust)?;
                let key = openssl::pkey::PKey::private_key_from_pkcs8(&der)?;
                if public.public_eq(&key) {
                    found = Some((p, key));
                    break;
                }
            }
            let Some((p, key)) = found else {
                return Err(CaError::NotFound(format!(
                    "certificate {} ({}) matches the key of no pending request",
                    build::thumbprint(cert)?,
                    sealgate_trust::CertInfo::of(cert)?.subject
                )));
            };
            matched.push((cert.clone(), key, p));
        }
        let mut out = Vec::new();
        for (cert, key, p) in matched {
            let info = sealgate_trust::CertInfo::of(&cert)?;
            if !info
                .emails
                .iter()
                .any(|e| e.eq_ignore_ascii_case(&p.view.email))
            {
                tracing::warn!(pending = %p.view.id, email = %p.view.email, subject = %info.subject, "ca: the uploaded certificate does not name the request's address");
            }
            let sha256 = self
                .keep(&cert, &key, &kek, &format!("ca:{}", p.view.handler), None)
                .await?;
            sqlx::query("DELETE FROM ca_pending WHERE id = $1")
                .bind(&p.view.id)
                .execute(self.store.pool())
                .await?;
            tracing::info!(pending = %p.view.id, certificate = %sha256, "ca: pending request completed");
            out.push((p.view.id.clone(), sha256));
        }
        Ok(out)
    }

    /// Looks at every due pending request again with its handler: a
    /// certificate it returns completes the request; otherwise the request
    /// waits [`RETRY_SECS`] more. Returns how many completed.
    pub async fn retry_pending(&self) -> Result<usize, CaError> {
        let now = sealgate_store::now_unix();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM ca_pending WHERE next_attempt <= $1 ORDER BY next_attempt"
        )))
        .bind(now)
        .fetch_all(self.store.pool())
        .await?;
        let mut done = 0;
        for r in &rows {
            let p = from_row(r)?;
            let handler = crate::handler::by_name(&p.view.handler)?;
            let (cert, error) = match handler.poll(self, &p).await {
                Ok(Some(cert)) => (Some(cert), String::new()),
                Ok(None) => (
                    None,
                    "no certificate yet (sealgate ca pending upload FILE)".to_string(),
                ),
                Err(e) => (None, e.to_string()),
            };
            if let Some(cert) = cert {
                self.pending_upload(&cert.to_pem()?).await?;
                done += 1;
                continue;
            }
            sqlx::query(
                "UPDATE ca_pending SET attempts = attempts + 1, next_attempt = $1, last_error = $2 WHERE id = $3",
            )
            .bind(now + RETRY_SECS)
            .bind(error)
            .bind(&p.view.id)
            .execute(self.store.pool())
            .await?;
        }
        Ok(done)
    }

    /// Stores `cert` with `key` and binds it to its addresses, so that mail
    /// to them is encrypted to it; records it as issued by `ca` when sealgate
    /// signed it. Its thumbprint.
    pub(crate) async fn keep(
        &self,
        cert: &X509,
        key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
        kek: &sealgate_trust::Kek,
        source: &str,
        issued_by: Option<(&str, &str, &str)>,
    ) -> Result<String, CaError> {
        let sha256 = self
            .trust
            .add_cert_with_key(cert, key, kek, source)
            .await?
            .sha256;
        // Bound like an imported certificate: the next message to the
        // address is encrypted to it (docs/ca.md).
        let recipient = sealgate_keys::RecipientKey::Smime(std::sync::Arc::new(cert.clone()));
        let stored =
            sealgate_keys::import::to_stored(&recipient, "import").map_err(CaError::Invalid)?;
        self.store
            .put_key(&stored, sealgate_store::Level::ProviderTrust)
            .await
            .map_err(|e| CaError::Invalid(format!("the certificate could not be bound: {e}")))?;
        if let Some((ca, serial, email)) = issued_by {
            db::insert_issued(
                self.store.pool(),
                &sha256,
                ca,
                serial,
                email,
                sealgate_store::now_unix(),
            )
            .await?;
        }
        Ok(sha256)
    }
}
