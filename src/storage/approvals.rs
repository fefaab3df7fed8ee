//! Permission requests of Claude Code runs (migration 0006). A request is
//! stored `pending` before anyone is asked; exactly one answer wins (every
//! decision is an `UPDATE … WHERE status = 'pending'`), so a button pressed
//! twice, an API answer racing a Telegram one, or an answer after the
//! deadline change nothing.

use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::rows::{now_ms, sql_error};
use super::{Change, StorageError, StorageResult, Store};

/// A stored permission request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub id: i64,
    pub job_id: i64,
    pub conversation_id: String,
    pub tool_name: String,
    pub input: serde_json::Value,
    /// pending | allowed | denied | timed_out
    pub status: String,
    /// For `allowed`: once | run.
    pub scope: Option<String>,
    pub decided_by: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub decided_at_ms: Option<i64>,
}

/// A person's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalAnswer {
    AllowOnce,
    AllowForRun,
    Deny,
}

impl ApprovalAnswer {
    /// `once` | `run` | `deny` (button data and API values).
    pub fn parse(text: &str) -> Option<ApprovalAnswer> {
        match text {
            "once" => Some(ApprovalAnswer::AllowOnce),
            "run" => Some(ApprovalAnswer::AllowForRun),
            "deny" => Some(ApprovalAnswer::Deny),
            _ => None,
        }
    }

    /// The data of its button under request `id`: `approval:<id>:<once|run|deny>` (≤ 64 bytes).
    pub fn button_data(self, id: i64) -> String {
        format!("approval:{id}:{}", self.as_str())
    }

    /// Button data → (request id, answer).
    pub fn parse_button(data: &str) -> Option<(i64, ApprovalAnswer)> {
        let (id, answer) = data.strip_prefix("approval:")?.split_once(':')?;
        Some((id.parse().ok()?, ApprovalAnswer::parse(answer)?))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalAnswer::AllowOnce => "once",
            ApprovalAnswer::AllowForRun => "run",
            ApprovalAnswer::Deny => "deny",
        }
    }
}

/// What `answer_approval` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerOutcome {
    /// This answer decided the request.
    Decided(Approval),
    /// It had been decided (or had expired) before; nothing changed.
    AlreadyDecided(Approval),
}

// A macro (not a const) so `concat!` builds `&'static str` SQL.
macro_rules! approval_columns {
    () => {
        "id, job_id, conversation_id, tool_name, input, status, scope, decided_by, created_at_ms, expires_at_ms, \
         decided_at_ms"
    };
}

fn approval_row(row: &SqliteRow) -> StorageResult<Approval> {
    let get_error = |error| sql_error("read approval", error);
    let input: String = row.try_get("input").map_err(get_error)?;
    Ok(Approval {
        id: row.try_get("id").map_err(get_error)?,
        job_id: row.try_get("job_id").map_err(get_error)?,
        conversation_id: row.try_get("conversation_id").map_err(get_error)?,
        tool_name: row.try_get("tool_name").map_err(get_error)?,
        input: serde_json::from_str(&input)
            .map_err(|error| StorageError::Invalid(format!("approval input: {error}")))?,
        status: row.try_get("status").map_err(get_error)?,
        scope: row.try_get("scope").map_err(get_error)?,
        decided_by: row.try_get("decided_by").map_err(get_error)?,
        created_at_ms: row.try_get("created_at_ms").map_err(get_error)?,
        expires_at_ms: row.try_get("expires_at_ms").map_err(get_error)?,
        decided_at_ms: row.try_get("decided_at_ms").map_err(get_error)?,
    })
}

impl Store {
    /// The pending request of this job for this exact tool call, or a new one.
    /// A re-run after a restart asking the same thing finds the old request.
    pub async fn open_approval(
        &self,
        job_id: i64,
        conversation_id: &str,
        tool_name: &str,
        input: &serde_json::Value,
        expires_at_ms: i64,
    ) -> StorageResult<Approval> {
        let input = input.to_string();
        let now = now_ms();
        let mut tx = self.writer.begin().await.map_err(|error| sql_error("begin approval", error))?;
        let sql = concat!(
            "SELECT ",
            approval_columns!(),
            " FROM approvals WHERE job_id = $1 AND tool_name = $2 AND input = $3 \
             AND status = 'pending' AND expires_at_ms > $4 ORDER BY id LIMIT 1"
        );
        let existing = sqlx::query(sql)
            .bind(job_id)
            .bind(tool_name)
            .bind(&input)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|error| sql_error("find approval", error))?;
        if let Some(row) = existing {
            tx.commit().await.map_err(|error| sql_error("commit approval", error))?;
            return approval_row(&row);
        }
        let sql = concat!(
            "INSERT INTO approvals (job_id, conversation_id, tool_name, input, status, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4, 'pending', $5, $6) RETURNING ",
            approval_columns!()
        );
        let row = sqlx::query(sql)
            .bind(job_id)
            .bind(conversation_id)
            .bind(tool_name)
            .bind(&input)
            .bind(now)
            .bind(expires_at_ms)
            .fetch_one(&mut *tx)
            .await
            .map_err(|error| sql_error("store approval", error))?;
        tx.commit().await.map_err(|error| sql_error("commit approval", error))?;
        self.changed(Change::Approvals(conversation_id.into()));
        approval_row(&row)
    }

    pub async fn get_approval(&self, id: i64) -> StorageResult<Approval> {
        let sql = concat!("SELECT ", approval_columns!(), " FROM approvals WHERE id = $1");
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.readers)
            .await
            .map_err(|error| sql_error("get approval", error))?
            .ok_or_else(|| StorageError::NotFound { what: format!("approval {id}") })?;
        approval_row(&row)
    }

    /// Decide a pending, unexpired request; the first answer wins.
    pub async fn answer_approval(
        &self,
        id: i64,
        answer: ApprovalAnswer,
        decided_by: &str,
    ) -> StorageResult<AnswerOutcome> {
        let (status, scope) = match answer {
            ApprovalAnswer::AllowOnce => ("allowed", Some("once")),
            ApprovalAnswer::AllowForRun => ("allowed", Some("run")),
            ApprovalAnswer::Deny => ("denied", None),
        };
        let now = now_ms();
        self.expire_approvals().await?;
        let sql = concat!(
            "UPDATE approvals SET status = $1, scope = $2, decided_by = $3, decided_at_ms = $4 \
             WHERE id = $5 AND status = 'pending' RETURNING ",
            approval_columns!()
        );
        let decided = sqlx::query(sql)
            .bind(status)
            .bind(scope)
            .bind(decided_by)
            .bind(now)
            .bind(id)
            .fetch_optional(&self.writer)
            .await
            .map_err(|error| sql_error("answer approval", error))?;
        match decided {
            Some(row) => {
                let decided = approval_row(&row)?;
                self.changed(Change::Approvals(decided.conversation_id.as_str().into()));
                Ok(AnswerOutcome::Decided(decided))
            }
            None => Ok(AnswerOutcome::AlreadyDecided(self.get_approval(id).await?)),
        }
    }

    /// Pending requests past their deadline become `timed_out` (a deny). Returns how many.
    pub async fn expire_approvals(&self) -> StorageResult<u64> {
        let now = now_ms();
        let expired: Vec<String> = sqlx::query_scalar(
            "UPDATE approvals SET status = 'timed_out', decided_at_ms = $1 \
             WHERE status = 'pending' AND expires_at_ms <= $1 RETURNING conversation_id",
        )
        .bind(now)
        .fetch_all(&self.writer)
        .await
        .map_err(|error| sql_error("expire approvals", error))?;
        let conversations: std::collections::BTreeSet<&str> = expired.iter().map(String::as_str).collect();
        for conversation in conversations {
            self.changed(Change::Approvals(conversation.into()));
        }
        Ok(expired.len() as u64)
    }

    /// Requests still waiting for an answer (expired ones are marked first), oldest first;
    /// only one conversation's when given.
    pub async fn pending_approvals(&self, conversation_id: Option<&str>) -> StorageResult<Vec<Approval>> {
        self.expire_approvals().await?;
        let sql = concat!(
            "SELECT ",
            approval_columns!(),
            " FROM approvals WHERE status = 'pending' \
             AND ($1 IS NULL OR conversation_id = $1) ORDER BY id"
        );
        let rows = sqlx::query(sql)
            .bind(conversation_id)
            .fetch_all(&self.readers)
            .await
            .map_err(|error| sql_error("list approvals", error))?;
        rows.iter().map(approval_row).collect()
    }

    /// Whether someone chose "allow for this run" for this job and tool.
    pub async fn tool_allowed_for_run(&self, job_id: i64, tool_name: &str) -> StorageResult<bool> {
        let found = sqlx::query(
            "SELECT 1 AS one FROM approvals WHERE job_id = $1 AND tool_name = $2 \
             AND status = 'allowed' AND scope = 'run' LIMIT 1",
        )
        .bind(job_id)
        .bind(tool_name)
        .fetch_optional(&self.readers)
        .await
        .map_err(|error| sql_error("check run approval", error))?;
        Ok(found.is_some())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    async fn store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
        (store, dir)
    }

    #[tokio::test]
    async fn the_first_answer_wins_and_a_repeat_changes_nothing() {
        let (store, _dir) = store().await;
        let input = json!({"file_path": "/w/a.txt"});
        let approval = store.open_approval(7, "c1", "Write", &input, now_ms() + 60_000).await.unwrap();
        let same = store.open_approval(7, "c1", "Write", &input, now_ms() + 60_000).await.unwrap();
        assert_eq!(same.id, approval.id, "the same pending request is reused");
        assert_eq!(store.pending_approvals(Some("c1")).await.unwrap().len(), 1);
        assert!(store.pending_approvals(Some("c2")).await.unwrap().is_empty());
        assert!(!store.tool_allowed_for_run(7, "Write").await.unwrap());

        let outcome = store.answer_approval(approval.id, ApprovalAnswer::AllowForRun, "telegram:1").await.unwrap();
        let AnswerOutcome::Decided(decided) = outcome else { panic!("{outcome:?}") };
        assert_eq!((decided.status.as_str(), decided.scope.as_deref()), ("allowed", Some("run")));
        let outcome = store.answer_approval(approval.id, ApprovalAnswer::Deny, "api").await.unwrap();
        let AnswerOutcome::AlreadyDecided(kept) = outcome else { panic!("{outcome:?}") };
        assert_eq!(kept.status, "allowed");
        assert_eq!(kept.decided_by.as_deref(), Some("telegram:1"));
        assert!(store.tool_allowed_for_run(7, "Write").await.unwrap());
        assert!(!store.tool_allowed_for_run(8, "Write").await.unwrap());
        assert!(store.pending_approvals(None).await.unwrap().is_empty());
    }

    #[test]
    fn button_data_round_trips_and_fits_telegrams_limit() {
        for answer in [ApprovalAnswer::AllowOnce, ApprovalAnswer::AllowForRun, ApprovalAnswer::Deny] {
            let data = answer.button_data(i64::MAX);
            assert!(data.len() <= 64, "{data}");
            assert_eq!(ApprovalAnswer::parse_button(&data), Some((i64::MAX, answer)));
        }
        for bad in ["approval:x:once", "other:1:once", "approval:1:maybe", "approval:1"] {
            assert_eq!(ApprovalAnswer::parse_button(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn an_expired_request_times_out_and_cannot_be_allowed_late() {
        let (store, _dir) = store().await;
        let approval = store.open_approval(1, "c", "Bash", &json!({}), now_ms() - 1).await.unwrap();
        let outcome = store.answer_approval(approval.id, ApprovalAnswer::AllowOnce, "api").await.unwrap();
        let AnswerOutcome::AlreadyDecided(kept) = outcome else { panic!("{outcome:?}") };
        assert_eq!(kept.status, "timed_out");
        assert!(matches!(store.get_approval(999).await, Err(StorageError::NotFound { .. })));
    }
}
