//! The audit log: one row per message, with each recipient's decision and the
//! fingerprints of the keys used. Never message content.

use crate::{Result, Store};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// What happened to one recipient of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecipient {
    pub address: String,
    /// `encrypt`, `plain` or `pass-through` (already encrypted). Recipients
    /// refused at RCPT are not part of the message; their refusal is logged.
    pub decision: String,
    /// `pgp` or `smime` when encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fingerprints: Vec<String>,
    /// `relayed`, `deferred: ...`, `failed: ...`.
    pub outcome: String,
}

/// One row of the audit table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub id: String,
    pub message_id: Option<String>,
    pub received_at: i64,
    pub client: String,
    pub sender: String,
    pub recipients: Vec<AuditRecipient>,
    pub outcome: String,
    pub reply: String,
}

impl Store {
    /// Writes (or rewrites, for a retried id) the audit row of a message.
    pub async fn record_audit(&self, rec: &AuditRecord) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        write_audit(&mut conn, rec).await
    }

    /// The most recent audit rows, newest first.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT id, message_id, received_at, client, sender, recipients, outcome, reply
             FROM audit ORDER BY received_at DESC, id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let recipients: String = row.try_get(5)?;
                Ok(AuditRecord {
                    id: row.try_get(0)?,
                    message_id: row.try_get(1)?,
                    received_at: row.try_get(2)?,
                    client: row.try_get(3)?,
                    sender: row.try_get(4)?,
                    recipients: serde_json::from_str(&recipients)
                        .map_err(|e| crate::StoreError::Data(e.to_string()))?,
                    outcome: row.try_get(6)?,
                    reply: row.try_get(7)?,
                })
            })
            .collect()
    }
}

/// Writes (or rewrites) the audit row of a message on `conn`, so that it can
/// go in the same transaction as the message's queue rows.
pub async fn write_audit(conn: &mut sqlx::AnyConnection, rec: &AuditRecord) -> Result<()> {
    let recipients = serde_json::to_string(&rec.recipients)
        .map_err(|e| crate::StoreError::Data(e.to_string()))?;
    sqlx::query(
            "INSERT INTO audit (id, message_id, received_at, client, sender, recipients, outcome, reply)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET recipients = excluded.recipients,
               outcome = excluded.outcome, reply = excluded.reply",
        )
        .bind(&rec.id)
        .bind(rec.message_id.as_deref())
        .bind(rec.received_at)
        .bind(&rec.client)
        .bind(&rec.sender)
        .bind(recipients)
        .bind(&rec.outcome)
        .bind(&rec.reply)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
