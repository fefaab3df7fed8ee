//! Row decoding, error mapping and the clock for the storage module. Every
//! `sqlx::Error` is turned into a [`StorageError`] here and every enum column
//! is parsed strictly here, so no other storage file decodes by hand and no
//! caller ever sees a `sqlx` type.

// Column lists shared by the queries of sibling files; macros (not consts) so
// `concat!` can build `&'static str` SQL from them.
macro_rules! conversation_columns {
    () => {
        "id, title, channel, chat_id, created_at_ms, updated_at_ms"
    };
}
macro_rules! message_columns {
    () => {
        "id, conversation_id, role, content, text, turn_id, created_at_ms"
    };
}
/// SQL giving the next message revision of conversation `$N` (see
/// `changes.rs`; the one writer makes the read and the write one step).
macro_rules! next_revision {
    ($n:literal) => {
        concat!("(SELECT COALESCE(MAX(revision), 0) + 1 FROM messages WHERE conversation_id = $", $n, ")")
    };
}
macro_rules! turn_columns {
    () => {
        "id, conversation_id, intent, intent_source, tier, provider, model, status, steps, \
         input_tokens, output_tokens, error, started_at_ms, finished_at_ms, context_tokens, tokens_saved, \
         summary_tokens"
    };
}

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{
    AuditEvent, Chat, Conversation, MessageRole, StorageError, StorageResult, StoredMessage, Turn, TurnStatus, User,
};

/// The current time as UNIX milliseconds (UTC); the only clock storage reads.
pub(super) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Map a sqlx error: a missing row becomes `NotFound { what }`, anything else
/// a short `Database` message prefixed with `what` for context.
pub(super) fn sql_error(what: &str, error: sqlx::Error) -> StorageError {
    match error {
        sqlx::Error::RowNotFound => StorageError::NotFound { what: what.to_string() },
        sqlx::Error::Database(database_error) if database_error.is_unique_violation() => {
            StorageError::Duplicate { what: what.to_string() }
        }
        other => StorageError::Database {
            message: format!("{what}: {}", short_message(&other)),
            source: Some(Box::new(other)),
        },
    }
}

/// The database's own message when there is one, else sqlx's display text.
pub(super) fn short_message(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(database_error) => database_error.message().to_string(),
        other => other.to_string(),
    }
}

/// Convert an unsigned counter to the signed column type, refusing overflow.
pub(super) fn to_column_i64(field: &str, value: u64) -> StorageResult<i64> {
    i64::try_from(value).map_err(|_| StorageError::Invalid(format!("{field} {value} is too large")))
}

pub(super) fn parse_role(text: &str) -> StorageResult<MessageRole> {
    match text {
        "user" => Ok(MessageRole::User),
        "assistant" => Ok(MessageRole::Assistant),
        "tool" => Ok(MessageRole::Tool),
        "system" => Ok(MessageRole::System),
        other => Err(StorageError::Invalid(format!("unknown message role {other:?}"))),
    }
}

pub(super) fn parse_turn_status(text: &str) -> StorageResult<TurnStatus> {
    match text {
        "running" => Ok(TurnStatus::Running),
        "completed" => Ok(TurnStatus::Completed),
        "failed" => Ok(TurnStatus::Failed),
        "cancelled" => Ok(TurnStatus::Cancelled),
        "interrupted" => Ok(TurnStatus::Interrupted),
        other => Err(StorageError::Invalid(format!("unknown turn status {other:?}"))),
    }
}

fn parse_json(field: &str, text: &str) -> StorageResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|error| StorageError::Invalid(format!("{field} is not valid JSON: {error}")))
}

/// Typed column read with the column name in the error.
fn column<'r, T>(row: &'r SqliteRow, name: &str) -> StorageResult<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name).map_err(|error| sql_error(&format!("column {name}"), error))
}

pub(super) fn conversation(row: &SqliteRow) -> StorageResult<Conversation> {
    Ok(Conversation {
        id: column(row, "id")?,
        title: column(row, "title")?,
        channel: column(row, "channel")?,
        chat_id: column(row, "chat_id")?,
        created_at_ms: column(row, "created_at_ms")?,
        updated_at_ms: column(row, "updated_at_ms")?,
    })
}

pub(super) fn message(row: &SqliteRow) -> StorageResult<StoredMessage> {
    let role: String = column(row, "role")?;
    let content: String = column(row, "content")?;
    Ok(StoredMessage {
        id: column(row, "id")?,
        conversation_id: column(row, "conversation_id")?,
        role: parse_role(&role)?,
        content: parse_json("message content", &content)?,
        text: column(row, "text")?,
        turn_id: column(row, "turn_id")?,
        created_at_ms: column(row, "created_at_ms")?,
    })
}

pub(super) fn turn(row: &SqliteRow) -> StorageResult<Turn> {
    let status: String = column(row, "status")?;
    let steps: i64 = column(row, "steps")?;
    let input_tokens: i64 = column(row, "input_tokens")?;
    let output_tokens: i64 = column(row, "output_tokens")?;
    let context_tokens: i64 = column(row, "context_tokens")?;
    let tokens_saved: i64 = column(row, "tokens_saved")?;
    let summary_tokens: i64 = column(row, "summary_tokens")?;
    let out_of_range = |field: &str, value: i64| StorageError::Invalid(format!("turn {field} {value} is out of range"));
    Ok(Turn {
        id: column(row, "id")?,
        conversation_id: column(row, "conversation_id")?,
        intent: column(row, "intent")?,
        intent_source: column(row, "intent_source")?,
        tier: column(row, "tier")?,
        provider: column(row, "provider")?,
        model: column(row, "model")?,
        status: parse_turn_status(&status)?,
        steps: u32::try_from(steps).map_err(|_| out_of_range("steps", steps))?,
        input_tokens: u64::try_from(input_tokens).map_err(|_| out_of_range("input_tokens", input_tokens))?,
        output_tokens: u64::try_from(output_tokens).map_err(|_| out_of_range("output_tokens", output_tokens))?,
        error: column(row, "error")?,
        started_at_ms: column(row, "started_at_ms")?,
        finished_at_ms: column(row, "finished_at_ms")?,
        context_tokens: u64::try_from(context_tokens).map_err(|_| out_of_range("context_tokens", context_tokens))?,
        tokens_saved: u64::try_from(tokens_saved).map_err(|_| out_of_range("tokens_saved", tokens_saved))?,
        summary_tokens: u64::try_from(summary_tokens).map_err(|_| out_of_range("summary_tokens", summary_tokens))?,
    })
}

pub(super) fn user(row: &SqliteRow) -> StorageResult<User> {
    Ok(User {
        id: column(row, "id")?,
        channel: column(row, "channel")?,
        external_id: column(row, "external_id")?,
        username: column(row, "username")?,
        display_name: column(row, "display_name")?,
        first_seen_ms: column(row, "first_seen_ms")?,
        last_seen_ms: column(row, "last_seen_ms")?,
    })
}

pub(super) fn chat(row: &SqliteRow) -> StorageResult<Chat> {
    Ok(Chat {
        id: column(row, "id")?,
        channel: column(row, "channel")?,
        external_id: column(row, "external_id")?,
        kind: column(row, "kind")?,
        title: column(row, "title")?,
        first_seen_ms: column(row, "first_seen_ms")?,
        last_seen_ms: column(row, "last_seen_ms")?,
    })
}

pub(super) fn audit_event(row: &SqliteRow) -> StorageResult<AuditEvent> {
    let detail: String = column(row, "detail")?;
    Ok(AuditEvent {
        id: column(row, "id")?,
        kind: column(row, "kind")?,
        actor: column(row, "actor")?,
        subject: column(row, "subject")?,
        decision: column(row, "decision")?,
        detail: parse_json("audit detail", &detail)?,
        created_at_ms: column(row, "created_at_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_round_trips_through_its_column_text() {
        for role in [MessageRole::User, MessageRole::Assistant, MessageRole::Tool, MessageRole::System] {
            assert_eq!(parse_role(role.as_str()).ok(), Some(role));
        }
    }

    #[test]
    fn every_turn_status_round_trips_through_its_column_text() {
        for status in [
            TurnStatus::Running,
            TurnStatus::Completed,
            TurnStatus::Failed,
            TurnStatus::Cancelled,
            TurnStatus::Interrupted,
        ] {
            assert_eq!(parse_turn_status(status.as_str()).ok(), Some(status));
        }
    }

    #[test]
    fn unknown_enum_text_is_invalid_not_a_default() {
        assert!(matches!(parse_role("User"), Err(StorageError::Invalid(_))));
        assert!(matches!(parse_turn_status("done"), Err(StorageError::Invalid(_))));
    }

    #[test]
    fn a_missing_row_maps_to_not_found_with_the_subject() {
        let mapped = sql_error("turn abc", sqlx::Error::RowNotFound);
        assert!(matches!(mapped, StorageError::NotFound { what } if what == "turn abc"));
    }
}
