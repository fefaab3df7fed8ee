//! Rolling summaries of dropped history (migration 0013) and per-turn
//! context accounting.

use super::rows::{now_ms, sql_error, to_column_i64};
use super::{RollingSummary, StorageError, StorageResult, Store};

macro_rules! rolling_columns {
    () => {
        "conversation_id, method, text, first_message_id, last_message_id, message_count, folds"
    };
}

#[derive(sqlx::FromRow)]
struct RollingRow {
    conversation_id: String,
    method: String,
    text: String,
    first_message_id: i64,
    last_message_id: i64,
    message_count: i64,
    folds: i64,
}

impl Store {
    /// The conversation's rolling summary, if anything was condensed yet.
    pub async fn rolling_summary(&self, conversation_id: &str) -> StorageResult<Option<RollingSummary>> {
        let row: Option<RollingRow> = sqlx::query_as(concat!(
            "SELECT ",
            rolling_columns!(),
            " FROM context_rolling_summaries WHERE conversation_id = $1"
        ))
        .bind(conversation_id)
        .fetch_optional(&self.readers)
        .await
        .map_err(|error| sql_error("get rolling summary", error))?;
        Ok(row.map(|row| RollingSummary {
            conversation_id: row.conversation_id,
            method: row.method,
            text: row.text,
            first_message_id: row.first_message_id,
            last_message_id: row.last_message_id,
            message_count: u64::try_from(row.message_count).unwrap_or(0),
            folds: u64::try_from(row.folds).unwrap_or(0),
        }))
    }

    /// Store a fold. Only a summary reaching further than the stored one
    /// replaces it (two turns racing cannot move the summary backwards).
    /// Returns whether it was stored.
    pub async fn put_rolling_summary(&self, summary: &RollingSummary) -> StorageResult<bool> {
        if summary.method != "model" && summary.method != "extractive" {
            return Err(StorageError::Invalid(format!("unknown summary method {:?}", summary.method)));
        }
        let done = sqlx::query(concat!(
            "INSERT INTO context_rolling_summaries (",
            rolling_columns!(),
            ", updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (conversation_id) DO UPDATE SET method = excluded.method, text = excluded.text, \
             first_message_id = excluded.first_message_id, last_message_id = excluded.last_message_id, \
             message_count = excluded.message_count, folds = excluded.folds, updated_at_ms = excluded.updated_at_ms \
             WHERE excluded.last_message_id > context_rolling_summaries.last_message_id"
        ))
        .bind(&summary.conversation_id)
        .bind(&summary.method)
        .bind(&summary.text)
        .bind(summary.first_message_id)
        .bind(summary.last_message_id)
        .bind(to_column_i64("message_count", summary.message_count)?)
        .bind(to_column_i64("folds", summary.folds)?)
        .bind(now_ms())
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("put rolling summary", error))?;
        Ok(done.rows_affected() == 1)
    }

    /// Adds tokens spent on summary requests to a turn's account.
    pub async fn add_turn_summary_tokens(&self, turn_id: &str, tokens: u64) -> StorageResult<()> {
        sqlx::query("UPDATE turns SET summary_tokens = summary_tokens + $1 WHERE id = $2")
            .bind(to_column_i64("summary_tokens", tokens)?)
            .bind(turn_id)
            .execute(&self.writer)
            .await
            .map_err(|error| sql_error("record summary tokens", error))?;
        Ok(())
    }

    /// Tokens spent on summary requests over a conversation's turns.
    pub async fn conversation_summary_tokens(&self, conversation_id: &str) -> StorageResult<u64> {
        let tokens: i64 =
            sqlx::query_scalar("SELECT COALESCE(SUM(summary_tokens), 0) FROM turns WHERE conversation_id = $1")
                .bind(conversation_id)
                .fetch_one(&self.readers)
                .await
                .map_err(|error| sql_error("sum summary tokens", error))?;
        Ok(u64::try_from(tokens).unwrap_or(0))
    }

    /// History tokens that context compaction kept out of model requests,
    /// summed over all turns, or over the turns of one chat's conversations.
    pub async fn context_tokens_saved(&self, chat_id: Option<i64>) -> StorageResult<u64> {
        let saved: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(t.tokens_saved), 0) FROM turns t \
             JOIN conversations c ON c.id = t.conversation_id \
             WHERE $1 IS NULL OR c.chat_id = $1",
        )
        .bind(chat_id)
        .fetch_one(&self.readers)
        .await
        .map_err(|error| sql_error("sum tokens saved", error))?;
        Ok(u64::try_from(saved).unwrap_or(0))
    }
}
