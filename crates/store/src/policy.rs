//! The policy settings kept in the store (`policy_setting`), and the change
//! counter (`policy_version`) every instance polls to notice a change.
//! What the settings mean, and how they inherit, is the policy stage's
//! (`sealgate_policy`); here they are rows.

use crate::{now_unix, Result, Store};
use sqlx::Row;

/// One stored setting.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicySetting {
    /// `global`, a domain (`example.com`, `*.example.com`) or an address.
    pub scope: String,
    pub name: String,
    /// JSON.
    pub value: String,
    pub updated_at: i64,
}

impl Store {
    /// Every stored setting, by scope and name.
    pub async fn policy_settings(&self) -> Result<Vec<PolicySetting>> {
        let rows = sqlx::query(
            "SELECT scope, name, value, updated_at FROM policy_setting ORDER BY scope, name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PolicySetting {
                    scope: r.try_get(0)?,
                    name: r.try_get(1)?,
                    value: r.try_get(2)?,
                    updated_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Sets `name` for `scope` to `value` (JSON) and counts the change.
    pub async fn policy_set(&self, scope: &str, name: &str, value: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO policy_setting (scope, name, value, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (scope, name) DO UPDATE SET value = excluded.value,
               updated_at = excluded.updated_at",
        )
        .bind(scope)
        .bind(name)
        .bind(value)
        .bind(now_unix())
        .execute(&mut *tx)
        .await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes `name` for `scope` (it inherits again); whether it was set.
    pub async fn policy_unset(&self, scope: &str, name: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM policy_setting WHERE scope = $1 AND name = $2")
            .bind(scope)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            bump(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    /// The change counter: it moves on every set and unset.
    pub async fn policy_version(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT version FROM policy_version WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }
}

async fn bump(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sqlx::query("UPDATE policy_version SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}
