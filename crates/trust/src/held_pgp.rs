//! OpenPGP secret keys sealgate holds for internal users, so that
//! `incoming.decrypt` can open PGP/MIME mail sent to them (CipherMail does
//! this for S/MIME; the PKCS#12 keys are in the certificate store).
//!
//! A key is imported by the admin (`sealgate keys import-secret`). Its
//! secret material must be unprotected, or unlocked with the passphrase
//! given; it is then kept only sealed under the key-encryption key
//! ([`crate::Kek`], AES-256-GCM bound to the fingerprint). The public
//! certificate and the addresses its User IDs name are kept in the clear,
//! to find the key for a recipient without opening anything.

use crate::{Kek, TrustError, TrustStore};
use sequoia_openpgp::cert::amalgamation::key::PrimaryKey;
use sequoia_openpgp::crypto::Password;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::serialize::{Serialize, SerializeInto};
use sequoia_openpgp::Cert;
use sqlx::Row;

/// A held secret key, as listed (never with its secret material).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HeldPgpKey {
    pub fingerprint: String,
    /// Lower-case addresses of its User IDs.
    pub addresses: Vec<String>,
    pub added_at: i64,
}

fn openpgp(e: impl std::fmt::Display) -> TrustError {
    TrustError::Format(format!("OpenPGP: {e}"))
}

/// The lower-case emails of `cert`'s User IDs.
fn emails(cert: &Cert) -> Vec<String> {
    let mut out: Vec<String> = cert
        .userids()
        .filter_map(|u| u.userid().email().ok().flatten().map(|e| e.to_lowercase()))
        .collect();
    out.sort();
    out.dedup();
    out
}

impl TrustStore {
    /// Holds the secret keys in `data` (armored or binary, one or more
    /// transferable secret keys), sealed under `kek`. Protected secret
    /// material is unlocked with `passphrase`; without one (or with a wrong
    /// one) the import fails, naming the key. A block without any secret
    /// key material is refused. Nothing is stored unless every key is
    /// readable.
    pub async fn add_pgp_secrets(
        &self,
        data: &[u8],
        passphrase: Option<&str>,
        kek: &Kek,
    ) -> Result<Vec<HeldPgpKey>, TrustError> {
        let mut ready = Vec::new();
        for cert in sequoia_openpgp::cert::CertParser::from_bytes(data).map_err(openpgp)? {
            let cert = cert.map_err(openpgp)?;
            let fpr = cert.fingerprint().to_hex();
            if !cert.is_tsk() {
                return Err(TrustError::Format(format!(
                    "{fpr}: no secret key material (export it with `gpg --export-secret-keys`)"
                )));
            }
            let unlocked = unlock(cert, passphrase, &fpr)?;
            let mut tsk = Vec::new();
            unlocked.as_tsk().serialize(&mut tsk).map_err(openpgp)?;
            let public = String::from_utf8_lossy(
                &unlocked
                    .clone()
                    .strip_secret_key_material()
                    .armored()
                    .to_vec()
                    .map_err(openpgp)?,
            )
            .into_owned();
            let addresses = emails(&unlocked);
            let sealed = kek.seal(&tsk, fpr.as_bytes())?;
            ready.push((fpr, public, addresses, sealed));
        }
        if ready.is_empty() {
            return Err(TrustError::Format("no OpenPGP secret key in it".into()));
        }
        let now = sealgate_store::now_unix();
        let mut tx = self.store.pool().begin().await?;
        let mut out = Vec::new();
        for (fpr, public, addresses, sealed) in ready {
            for sql in [
                "DELETE FROM pgp_secret_address WHERE fingerprint = $1",
                "DELETE FROM pgp_secret_key WHERE fingerprint = $1",
            ] {
                sqlx::query(sql).bind(&fpr).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO pgp_secret_key (fingerprint, public, sealed, added_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&fpr)
            .bind(&public)
            .bind(&sealed)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for a in &addresses {
                sqlx::query(
                    "INSERT INTO pgp_secret_address (address, fingerprint) VALUES ($1, $2)",
                )
                .bind(a)
                .bind(&fpr)
                .execute(&mut *tx)
                .await?;
            }
            out.push(HeldPgpKey {
                fingerprint: fpr,
                addresses,
                added_at: now,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The public certificates of the secret keys held for `address`.
    pub async fn pgp_secrets_for(&self, address: &str) -> Result<Vec<Cert>, TrustError> {
        let rows = sqlx::query(
            "SELECT k.public FROM pgp_secret_address a
             JOIN pgp_secret_key k ON k.fingerprint = a.fingerprint
             WHERE a.address = $1 ORDER BY k.fingerprint",
        )
        .bind(address.to_lowercase())
        .fetch_all(self.store.pool())
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let text: String = r.try_get(0)?;
            match Cert::from_bytes(text.as_bytes()) {
                Ok(c) => out.push(c),
                Err(e) => tracing::warn!("a held OpenPGP key's public part is unreadable: {e}"),
            }
        }
        Ok(out)
    }

    /// The held secret key `fingerprint`, opened with `kek`.
    pub async fn pgp_secret(&self, fingerprint: &str, kek: &Kek) -> Result<Cert, TrustError> {
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT sealed FROM pgp_secret_key WHERE fingerprint = $1")
                .bind(fingerprint)
                .fetch_optional(self.store.pool())
                .await?;
        let sealed = sealed.ok_or_else(|| {
            TrustError::NotFound(format!("sealgate holds no secret key {fingerprint}"))
        })?;
        let tsk = kek.open(&sealed, fingerprint.as_bytes())?;
        Cert::from_bytes(&tsk).map_err(openpgp)
    }

    /// Every held secret key (fingerprint and addresses), by fingerprint.
    pub async fn list_pgp_secrets(&self) -> Result<Vec<HeldPgpKey>, TrustError> {
        let rows = sqlx::query(
            "SELECT k.fingerprint, k.added_at, a.address FROM pgp_secret_key k
             LEFT JOIN pgp_secret_address a ON a.fingerprint = k.fingerprint
             ORDER BY k.fingerprint, a.address",
        )
        .fetch_all(self.store.pool())
        .await?;
        let mut out: Vec<HeldPgpKey> = Vec::new();
        for r in rows {
            let fingerprint: String = r.try_get(0)?;
            if out.last().is_none_or(|k| k.fingerprint != fingerprint) {
                out.push(HeldPgpKey {
                    fingerprint,
                    addresses: Vec::new(),
                    added_at: r.try_get(1)?,
                });
            }
            if let (Some(k), Some(a)) = (out.last_mut(), r.try_get::<Option<String>, _>(2)?) {
                k.addresses.push(a);
            }
        }
        Ok(out)
    }

    /// Forgets the held secret key `fingerprint`; whether it was held.
    pub async fn remove_pgp_secret(&self, fingerprint: &str) -> Result<bool, TrustError> {
        let mut tx = self.store.pool().begin().await?;
        sqlx::query("DELETE FROM pgp_secret_address WHERE fingerprint = $1")
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM pgp_secret_key WHERE fingerprint = $1")
            .bind(fingerprint)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

/// `cert` with every protected secret key unlocked by `passphrase`.
fn unlock(cert: Cert, passphrase: Option<&str>, fpr: &str) -> Result<Cert, TrustError> {
    let protected = cert
        .keys()
        .secret()
        .any(|k| k.key().optional_secret().is_some_and(|s| s.is_encrypted()));
    if !protected {
        return Ok(cert);
    }
    let Some(pass) = passphrase else {
        return Err(TrustError::Format(format!(
            "{fpr}: the secret key is protected by a passphrase; give it with --passphrase-file"
        )));
    };
    let password = Password::from(pass);
    let mut packets: Vec<sequoia_openpgp::Packet> = Vec::new();
    for ka in cert.keys().secret() {
        let key = ka.key().clone();
        let key = if key.optional_secret().is_some_and(|s| s.is_encrypted()) {
            key.decrypt_secret(&password).map_err(|_| {
                TrustError::Format(format!(
                    "{fpr}: the passphrase does not unlock key {}",
                    ka.key().fingerprint()
                ))
            })?
        } else {
            key
        };
        packets.push(if ka.primary() {
            key.role_into_primary().into()
        } else {
            key.role_into_subordinate().into()
        });
    }
    let (cert, _) = cert.insert_packets(packets).map_err(openpgp)?;
    Ok(cert)
}
