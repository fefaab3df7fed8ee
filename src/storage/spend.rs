//! Spending of tool calls that cost money (migration 0007): one row per
//! charged call, with the payer (a chat or a conversation) and the tool's
//! cost estimate. The limit check and the charge are one statement, so two
//! concurrent calls cannot both slip under a limit.

use super::rows::sql_error;
use super::{StorageResult, Store};

/// One charge to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSpend {
    pub payer: String,
    pub tool: String,
    pub cost_microusd: i64,
    pub conversation_id: String,
    pub turn_id: String,
    pub at_ms: i64,
}

impl Store {
    /// Records `spend` unless the payer's spending since `since_ms` plus this
    /// charge would exceed `limit_microusd` (`None`: no limit). Returns the
    /// charge's id, or `None` when the limit refused it (nothing recorded).
    pub async fn charge_spend(
        &self,
        spend: &NewSpend,
        since_ms: i64,
        limit_microusd: Option<i64>,
    ) -> StorageResult<Option<i64>> {
        let charged: Option<i64> = sqlx::query_scalar(
            "INSERT INTO tool_spend (payer, tool, cost_microusd, conversation_id, turn_id, created_at_ms) \
             SELECT $1, $2, $3, $4, $5, $6 \
             WHERE $8 IS NULL OR $3 + (SELECT COALESCE(SUM(cost_microusd), 0) FROM tool_spend \
                                       WHERE payer = $1 AND created_at_ms >= $7) <= $8 \
             RETURNING id",
        )
        .bind(&spend.payer)
        .bind(&spend.tool)
        .bind(spend.cost_microusd)
        .bind(&spend.conversation_id)
        .bind(&spend.turn_id)
        .bind(spend.at_ms)
        .bind(since_ms)
        .bind(limit_microusd)
        .fetch_optional(&self.writer)
        .await
        .map_err(|error| sql_error("charge tool spend", error))?;
        Ok(charged)
    }

    /// Takes a charge back (the call failed, so nothing was spent).
    pub async fn refund_spend(&self, id: i64) -> StorageResult<()> {
        sqlx::query("DELETE FROM tool_spend WHERE id = $1")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(|error| sql_error("refund tool spend", error))?;
        Ok(())
    }

    /// What the payer was charged since `since_ms`, in micro-dollars.
    pub async fn spent_since(&self, payer: &str, since_ms: i64) -> StorageResult<i64> {
        sqlx::query_scalar(
            "SELECT COALESCE(SUM(cost_microusd), 0) FROM tool_spend WHERE payer = $1 AND created_at_ms >= $2",
        )
        .bind(payer)
        .bind(since_ms)
        .fetch_one(&self.readers)
        .await
        .map_err(|error| sql_error("sum tool spend", error))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn spend(payer: &str, cost: i64, at_ms: i64) -> NewSpend {
        NewSpend {
            payer: payer.into(),
            tool: "generate_image".into(),
            cost_microusd: cost,
            conversation_id: "c".into(),
            turn_id: "t".into(),
            at_ms,
        }
    }

    #[tokio::test]
    async fn charges_stop_at_the_limit_per_payer_and_window_and_refunds_free_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("v.db")).await.unwrap();
        let day = 86_400_000;
        // Yesterday's spending does not count against today's window.
        assert!(store.charge_spend(&spend("telegram:1", 90, day - 1), 0, Some(100)).await.unwrap().is_some());
        assert!(store.charge_spend(&spend("telegram:1", 60, day), day, Some(100)).await.unwrap().is_some());
        let first = store.charge_spend(&spend("telegram:1", 40, day + 1), day, Some(100)).await.unwrap();
        assert!(first.is_some(), "exactly at the limit is allowed");
        assert_eq!(store.charge_spend(&spend("telegram:1", 1, day + 2), day, Some(100)).await.unwrap(), None);
        assert_eq!(store.spent_since("telegram:1", day).await.unwrap(), 100);
        // Another payer has its own budget; no limit means no refusal.
        assert!(store.charge_spend(&spend("telegram:2", 100, day), day, Some(100)).await.unwrap().is_some());
        assert!(store.charge_spend(&spend("telegram:2", 500, day), day, None).await.unwrap().is_some());
        store.refund_spend(first.unwrap()).await.unwrap();
        assert_eq!(store.spent_since("telegram:1", day).await.unwrap(), 60);
        assert!(store.charge_spend(&spend("telegram:1", 40, day + 3), day, Some(100)).await.unwrap().is_some());
    }
}
