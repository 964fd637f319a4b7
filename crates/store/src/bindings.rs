//! Key bindings (Bitmask's "active" documents): which addresses a key serves,
//! at which validation level, whether sealgate has encrypted to it and
//! verified a signature made with it, and which binding of an address is the
//! one in use.
//!
//! A binding names a key by fingerprint: an OpenPGP fingerprint or an X.509
//! `SHA256:` fingerprint of the `keys` table, or, for certificates harvested
//! into the certificate store, that store's thumbprint. The rules that decide
//! which binding is active live in `sealgate-keys` (`validation.rs`); this
//! file only reads and writes rows.

use crate::{Result, Store, StoreError};
use sqlx::{AnyPool, Row};
use std::fmt;

/// Validation levels, lowest first (Bitmask's Transitional Key Validation,
/// DESIGN.md §6). The derived order is the ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Learned from mail (harvested) or from a public key server.
    WeakChain,
    /// From a place the organisation runs or chose: WKD of the address's own
    /// domain, key files, the admin's imports, the organisation's LDAP.
    ProviderTrust,
    /// A user's own upload, made after the gateway's operator authenticated them.
    ProviderEndorsement,
    ThirdPartyEndorsement,
    ThirdPartyConsensus,
    HistoricallyAuditing,
    KnownKey,
    /// Confirmed by the admin (`sealgate keys trust ADDRESS FINGERPRINT`).
    Fingerprint,
}

impl Level {
    pub const ALL: [Level; 8] = [
        Level::WeakChain,
        Level::ProviderTrust,
        Level::ProviderEndorsement,
        Level::ThirdPartyEndorsement,
        Level::ThirdPartyConsensus,
        Level::HistoricallyAuditing,
        Level::KnownKey,
        Level::Fingerprint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::WeakChain => "weak_chain",
            Level::ProviderTrust => "provider_trust",
            Level::ProviderEndorsement => "provider_endorsement",
            Level::ThirdPartyEndorsement => "third_party_endorsement",
            Level::ThirdPartyConsensus => "third_party_consensus",
            Level::HistoricallyAuditing => "historically_auditing",
            Level::KnownKey => "known_key",
            Level::Fingerprint => "fingerprint",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored binding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Binding {
    pub address: String,
    pub fingerprint: String,
    /// `pgp` or `x509`.
    pub kind: String,
    #[serde(serialize_with = "level_str")]
    pub level: Level,
    /// Where the binding came from: `import`, `upload`, `harvest:smime`,
    /// `harvest:pgp`, a remote source's name, ...
    pub source: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub last_audited_at: Option<i64>,
    pub encr_used: bool,
    pub sign_used: bool,
    /// The binding in use for this address and kind (OpenPGP).
    pub active: bool,
}

fn level_str<S: serde::Serializer>(l: &Level, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(l.as_str())
}

/// A binding to record: first seen now, or seen again.
#[derive(Debug, Clone, Copy)]
pub struct NewBinding<'a> {
    pub address: &'a str,
    pub fingerprint: &'a str,
    pub kind: &'a str,
    pub level: Level,
    pub source: &'a str,
    /// A signature made with the key was verified on the message that brought it.
    pub sign_used: bool,
}

const COLUMNS: &str = "address, fingerprint, kind, level, source, first_seen, last_seen, \
                       last_audited_at, encr_used, sign_used, active";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Binding> {
    let level: String = r.try_get(3)?;
    Ok(Binding {
        address: r.try_get(0)?,
        fingerprint: r.try_get(1)?,
        kind: r.try_get(2)?,
        level: Level::parse(&level)
            .ok_or_else(|| StoreError::Data(format!("unknown validation level {level:?}")))?,
        source: r.try_get(4)?,
        first_seen: r.try_get(5)?,
        last_seen: r.try_get(6)?,
        last_audited_at: r.try_get(7)?,
        encr_used: r.try_get::<i64, _>(8)? == 1,
        sign_used: r.try_get::<i64, _>(9)? == 1,
        active: r.try_get::<i64, _>(10)? == 1,
    })
}

/// The level order in SQL: the rank of the level in `col` among Level::ALL.
fn rank(col: &str) -> String {
    let arms: String = Level::ALL
        .iter()
        .enumerate()
        .map(|(i, l)| format!(" WHEN '{}' THEN {i}", l.as_str()))
        .collect();
    format!("(CASE {col}{arms} ELSE -1 END)")
}

/// Records a binding. Seen again: `last_seen` moves, `sign_used` only ever
/// turns on, and the level and source are those of the higher level (a
/// harvested copy of an imported key does not lower it).
pub(crate) async fn bind_on<'e, E>(exec: E, b: &NewBinding<'_>, now: i64) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let higher = format!("{} > {}", rank("excluded.level"), rank("key_binding.level"));
    let sql = format!(
        "INSERT INTO key_binding (address, fingerprint, kind, level, source, first_seen, last_seen, sign_used)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
         ON CONFLICT (address, fingerprint) DO UPDATE SET last_seen = $6,
           sign_used = CASE WHEN $7 = 1 THEN 1 ELSE key_binding.sign_used END,
           level = CASE WHEN {higher} THEN excluded.level ELSE key_binding.level END,
           source = CASE WHEN {higher} THEN excluded.source ELSE key_binding.source END"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(b.address)
        .bind(b.fingerprint)
        .bind(b.kind)
        .bind(b.level.as_str())
        .bind(b.source)
        .bind(now)
        .bind(i64::from(b.sign_used))
        .execute(exec)
        .await?;
    Ok(())
}

impl Store {
    /// Records a binding (see [`bind_on`]'s rules for one seen again).
    pub async fn bind(&self, b: &NewBinding<'_>, now: i64) -> Result<()> {
        bind_on(&self.pool, b, now).await
    }

    /// Every binding of `address` (lower case), newest first.
    pub async fn bindings(&self, address: &str) -> Result<Vec<Binding>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM key_binding WHERE address = $1
             ORDER BY last_seen DESC, fingerprint"
        )))
        .bind(address.to_lowercase())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Every binding, by address then fingerprint.
    pub async fn all_bindings(&self) -> Result<Vec<Binding>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM key_binding ORDER BY address, kind, fingerprint"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The fingerprints of `kind` bound to `address`, newest first.
    pub async fn bound(&self, address: &str, kind: &str) -> Result<Vec<String>> {
        bound(&self.pool, address, kind).await
    }

    /// Records that sealgate encrypted to `fingerprint` for `address`.
    pub async fn mark_encrypted(&self, address: &str, fingerprint: &str) -> Result<()> {
        sqlx::query(
            "UPDATE key_binding SET encr_used = 1
             WHERE address = $1 AND fingerprint = $2 AND encr_used = 0",
        )
        .bind(address.to_lowercase())
        .bind(fingerprint)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Makes `fingerprint` the active binding of `address` for its kind (the
    /// others of that kind stop being active), in one transaction. `level`,
    /// when given, raises the binding to it (never lowers it). Returns
    /// whether the binding exists.
    pub async fn set_active(
        &self,
        address: &str,
        fingerprint: &str,
        level: Option<Level>,
        now: i64,
    ) -> Result<bool> {
        let address = address.to_lowercase();
        // Read outside the transaction: on SQLite a transaction that reads
        // first and then writes fails at once ("database is locked") when
        // another writer holds the lock; one that starts by writing waits.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM key_binding WHERE address = $1 AND fingerprint = $2"
        )))
        .bind(&address)
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        let kind = from_row(&row)?.kind;
        let level = level.unwrap_or(Level::WeakChain);
        let raise = format!(
            "CASE WHEN {} > {} THEN $3 ELSE level END",
            rank("$3"),
            rank("level")
        );
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE key_binding SET active = 0
             WHERE address = $1 AND kind = $2 AND fingerprint <> $3",
        )
        .bind(&address)
        .bind(&kind)
        .bind(fingerprint)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE key_binding SET active = 1, level = {raise}, last_audited_at = $4
             WHERE address = $1 AND fingerprint = $2"
        )))
        .bind(&address)
        .bind(fingerprint)
        .bind(level.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

/// The fingerprints of `kind` bound to `address`, newest first.
pub async fn bound(pool: &AnyPool, address: &str, kind: &str) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT fingerprint FROM key_binding WHERE address = $1 AND kind = $2
         ORDER BY last_seen DESC, fingerprint",
    )
    .bind(address.to_lowercase())
    .bind(kind)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}
