//! Turns, users and chats, the audit log and key-value state: small records
//! written by the agent and the channels. Upserts use `ON CONFLICT … DO
//! UPDATE … RETURNING`, which SQLite and PostgreSQL both accept.

use super::conversations::append_on;
use super::rows::{self, now_ms, sql_error, to_column_i64};
use super::{
    AuditEvent, Change, Chat, ChatUpsert, NewAuditEvent, NewMessage, NewTurn, StorageError, StorageResult, Store, Turn,
    TurnFinish, TurnStatus, User, UserUpsert,
};

impl Store {
    /// Records a `running` turn and, in the same transaction, its `opening`
    /// message (the user's question; stored under the new turn's id), so a
    /// turn's start costs one commit. Fails with NotFound for an unknown conversation.
    pub async fn start_turn(&self, new: NewTurn, opening: Option<NewMessage>) -> StorageResult<Turn> {
        self.start_turn_once(new, opening, None).await
    }

    /// [`Store::start_turn`], storing the opening message only if nothing was
    /// stored under `opening_key` before (a Telegram update handled again
    /// after a crash is in the history once).
    pub async fn start_turn_once(
        &self,
        new: NewTurn,
        opening: Option<NewMessage>,
        opening_key: Option<&str>,
    ) -> StorageResult<Turn> {
        self.check_file()?;
        let started = self.start_turn_checked(new, opening, opening_key).await;
        self.note_write(started)
    }

    async fn start_turn_checked(
        &self,
        new: NewTurn,
        opening: Option<NewMessage>,
        opening_key: Option<&str>,
    ) -> StorageResult<Turn> {
        let turn = Turn {
            id: uuid::Uuid::now_v7().to_string(),
            conversation_id: new.conversation_id,
            intent: new.intent,
            intent_source: new.intent_source,
            tier: new.tier,
            provider: new.provider,
            model: new.model,
            status: TurnStatus::Running,
            steps: 0,
            input_tokens: 0,
            output_tokens: 0,
            error: None,
            started_at_ms: now_ms(),
            finished_at_ms: None,
            context_tokens: 0,
            tokens_saved: 0,
            summary_tokens: 0,
        };
        let mut transaction = self.writer.begin().await.map_err(|error| sql_error("begin turn", error))?;
        // Inserts nothing (rather than tripping the foreign key) when the
        // conversation is unknown, so NotFound is decided here, not from error text.
        let inserted = sqlx::query(
            "INSERT INTO turns (id, conversation_id, intent, intent_source, tier, provider, model, \
                                status, steps, input_tokens, output_tokens, error, started_at_ms, finished_at_ms) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, 0, 0, 0, NULL, $9, NULL \
             WHERE EXISTS (SELECT 1 FROM conversations WHERE id = $2)",
        )
        .bind(&turn.id)
        .bind(&turn.conversation_id)
        .bind(&turn.intent)
        .bind(&turn.intent_source)
        .bind(&turn.tier)
        .bind(&turn.provider)
        .bind(&turn.model)
        .bind(turn.status.as_str())
        .bind(turn.started_at_ms)
        .execute(&mut *transaction)
        .await
        .map_err(|error| sql_error("start turn", error))?;
        if inserted.rows_affected() == 0 {
            return Err(StorageError::NotFound { what: format!("conversation {}", turn.conversation_id) });
        }
        let mut appended = false;
        if let Some(opening) = opening {
            let opening = NewMessage { turn_id: Some(turn.id.clone()), ..opening };
            appended = append_on(&mut transaction, opening, opening_key).await?.is_some();
        }
        transaction.commit().await.map_err(|error| sql_error("commit turn", error))?;
        if appended {
            self.changed(Change::Messages(turn.conversation_id.as_str().into()));
        }
        Ok(turn)
    }

    /// Stores the outcome and stamps `finished_at_ms`. NotFound for an unknown turn.
    pub async fn finish_turn(&self, turn_id: &str, finish: TurnFinish) -> StorageResult<()> {
        let updated = sqlx::query(
            "UPDATE turns SET status = $1, steps = $2, input_tokens = $3, output_tokens = $4, \
                              error = $5, finished_at_ms = $6, context_tokens = $8, tokens_saved = $9 \
             WHERE id = $7",
        )
        .bind(finish.status.as_str())
        .bind(i64::from(finish.steps))
        .bind(to_column_i64("input_tokens", finish.input_tokens)?)
        .bind(to_column_i64("output_tokens", finish.output_tokens)?)
        .bind(&finish.error)
        .bind(now_ms())
        .bind(turn_id)
        .bind(to_column_i64("context_tokens", finish.context_tokens)?)
        .bind(to_column_i64("tokens_saved", finish.tokens_saved)?)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("finish turn", error))?;
        if updated.rows_affected() == 0 {
            return Err(StorageError::NotFound { what: format!("turn {turn_id}") });
        }
        Ok(())
    }

    /// Marks every turn still `running` as `interrupted` with `error`, and
    /// returns how many. Called once at start-up, before any turn starts:
    /// a clean stop finishes its turns, so these were left by a crash.
    pub async fn interrupt_running_turns(&self, error: &str) -> StorageResult<u64> {
        let updated = sqlx::query(
            "UPDATE turns SET status = 'interrupted', error = $1, finished_at_ms = $2 WHERE status = 'running'",
        )
        .bind(error)
        .bind(now_ms())
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("interrupt running turns", error))?;
        Ok(updated.rows_affected())
    }

    pub async fn get_turn(&self, turn_id: &str) -> StorageResult<Turn> {
        let row = sqlx::query(concat!("SELECT ", turn_columns!(), " FROM turns WHERE id = $1"))
            .bind(turn_id)
            .fetch_one(&self.readers)
            .await
            .map_err(|error| sql_error(&format!("turn {turn_id}"), error))?;
        rows::turn(&row)
    }

    /// Oldest first.
    pub async fn list_turns(&self, conversation_id: &str) -> StorageResult<Vec<Turn>> {
        let found = sqlx::query(concat!(
            "SELECT ",
            turn_columns!(),
            " FROM turns WHERE conversation_id = $1 ORDER BY started_at_ms ASC, id ASC"
        ))
        .bind(conversation_id)
        .fetch_all(&self.readers)
        .await
        .map_err(|error| sql_error("list turns", error))?;
        found.iter().map(rows::turn).collect()
    }

    /// Inserts the user or refreshes `last_seen_ms`; a `Some` username or
    /// display name replaces the stored one, `None` keeps it.
    pub async fn upsert_user(&self, user: UserUpsert) -> StorageResult<User> {
        let row = sqlx::query(
            "INSERT INTO users (channel, external_id, username, display_name, first_seen_ms, last_seen_ms) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (channel, external_id) DO UPDATE SET \
                 username = COALESCE(excluded.username, users.username), \
                 display_name = COALESCE(excluded.display_name, users.display_name), \
                 last_seen_ms = excluded.last_seen_ms \
             RETURNING id, channel, external_id, username, display_name, first_seen_ms, last_seen_ms",
        )
        .bind(&user.channel)
        .bind(&user.external_id)
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(now_ms())
        .fetch_one(&self.writer)
        .await
        .map_err(|error| sql_error("upsert user", error))?;
        rows::user(&row)
    }

    /// Inserts the chat or refreshes `last_seen_ms` and `kind`; a `Some`
    /// title replaces the stored one, `None` keeps it.
    pub async fn upsert_chat(&self, chat: ChatUpsert) -> StorageResult<Chat> {
        let row = sqlx::query(
            "INSERT INTO chats (channel, external_id, kind, title, first_seen_ms, last_seen_ms) \
             VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (channel, external_id) DO UPDATE SET \
                 kind = excluded.kind, \
                 title = COALESCE(excluded.title, chats.title), \
                 last_seen_ms = excluded.last_seen_ms \
             RETURNING id, channel, external_id, kind, title, first_seen_ms, last_seen_ms",
        )
        .bind(&chat.channel)
        .bind(&chat.external_id)
        .bind(&chat.kind)
        .bind(&chat.title)
        .bind(now_ms())
        .fetch_one(&self.writer)
        .await
        .map_err(|error| sql_error("upsert chat", error))?;
        rows::chat(&row)
    }

    pub async fn record_audit(&self, event: NewAuditEvent) -> StorageResult<()> {
        let detail = serde_json::to_string(&event.detail)
            .map_err(|error| StorageError::Invalid(format!("audit detail: {error}")))?;
        sqlx::query(
            "INSERT INTO audit_events (kind, actor, subject, decision, detail, created_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&event.kind)
        .bind(&event.actor)
        .bind(&event.subject)
        .bind(&event.decision)
        .bind(&detail)
        .bind(now_ms())
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("record audit event", error))?;
        Ok(())
    }

    /// Newest first, optionally only one kind.
    pub async fn list_audit(&self, kind: Option<&str>, limit: u32) -> StorageResult<Vec<AuditEvent>> {
        let found = sqlx::query(
            "SELECT id, kind, actor, subject, decision, detail, created_at_ms FROM audit_events \
             WHERE ($1 IS NULL OR kind = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(kind)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(|error| sql_error("list audit events", error))?;
        found.iter().map(rows::audit_event).collect()
    }

    pub async fn kv_get(&self, key: &str) -> StorageResult<Option<String>> {
        sqlx::query_scalar("SELECT value FROM kv_state WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.readers)
            .await
            .map_err(|error| sql_error(&format!("state {key}"), error))
    }

    pub async fn kv_set(&self, key: &str, value: &str) -> StorageResult<()> {
        sqlx::query(
            "INSERT INTO kv_state (key, value, updated_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
        )
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error(&format!("set state {key}"), error))?;
        Ok(())
    }

    /// Deleting a missing key is not an error.
    pub async fn kv_delete(&self, key: &str) -> StorageResult<()> {
        sqlx::query("DELETE FROM kv_state WHERE key = $1")
            .bind(key)
            .execute(&self.writer)
            .await
            .map_err(|error| sql_error(&format!("delete state {key}"), error))?;
        Ok(())
    }
}
