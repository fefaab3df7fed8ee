//! Stored summaries of dropped history and per-turn context accounting.

use super::rows::{now_ms, sql_error, to_column_i64};
use super::{ContextSummary, NewContextSummary, StorageError, StorageResult, Store};

impl Store {
    /// The summary stored for exactly this span, if any.
    pub async fn get_context_summary(
        &self,
        conversation_id: &str,
        span_key: &str,
    ) -> StorageResult<Option<ContextSummary>> {
        let row: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT method, text, created_at_ms FROM context_summaries WHERE conversation_id = $1 AND span_key = $2",
        )
        .bind(conversation_id)
        .bind(span_key)
        .fetch_optional(&self.readers)
        .await
        .map_err(|error| sql_error("get context summary", error))?;
        Ok(row.map(|(method, text, created_at_ms)| ContextSummary {
            conversation_id: conversation_id.to_owned(),
            span_key: span_key.to_owned(),
            method,
            text,
            created_at_ms,
        }))
    }

    /// Store a summary; a summary already stored for the span is kept (first writer wins).
    pub async fn put_context_summary(&self, summary: NewContextSummary) -> StorageResult<()> {
        if summary.method != "model" && summary.method != "extractive" {
            return Err(StorageError::Invalid(format!("unknown summary method {:?}", summary.method)));
        }
        sqlx::query(
            "INSERT INTO context_summaries (conversation_id, span_key, method, text, first_message_id, \
                                            last_message_id, message_count, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (conversation_id, span_key) DO NOTHING",
        )
        .bind(&summary.conversation_id)
        .bind(&summary.span_key)
        .bind(&summary.method)
        .bind(&summary.text)
        .bind(summary.first_message_id)
        .bind(summary.last_message_id)
        .bind(to_column_i64("message_count", summary.message_count)?)
        .bind(now_ms())
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("put context summary", error))?;
        Ok(())
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
