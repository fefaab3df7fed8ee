//! Run branches (migration 0010): the git branch and worktree each line of
//! code work happens on, and what a person did with it. Every change of
//! hands is one conditional `UPDATE`: a job takes a branch only when no
//! other live job holds it, and a merge / push / discard starts only when
//! none is in progress, so two presses or two workers never act twice.

use serde::Serialize;

use super::rows::{now_ms, sql_error};
use super::{StorageError, StorageResult, Store};

/// Where a run branch is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunBranchState {
    /// Its work is on the branch; follow-ups continue it.
    #[default]
    Open,
    /// Merged into its base branch.
    Merged,
    /// Worktree and branch removed at a person's request.
    Discarded,
}

impl RunBranchState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunBranchState::Open => "open",
            RunBranchState::Merged => "merged",
            RunBranchState::Discarded => "discarded",
        }
    }

    fn parse(text: &str) -> StorageResult<RunBranchState> {
        match text {
            "open" => Ok(RunBranchState::Open),
            "merged" => Ok(RunBranchState::Merged),
            "discarded" => Ok(RunBranchState::Discarded),
            other => Err(StorageError::Invalid(format!("unknown run branch state {other:?}"))),
        }
    }
}

/// What a person can do with an open run branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchAction {
    Merge,
    Push,
    Discard,
}

impl BranchAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BranchAction::Merge => "merge",
            BranchAction::Push => "push",
            BranchAction::Discard => "discard",
        }
    }

    pub fn parse(text: &str) -> Option<BranchAction> {
        match text {
            "merge" => Some(BranchAction::Merge),
            "push" => Some(BranchAction::Push),
            "discard" => Some(BranchAction::Discard),
            _ => None,
        }
    }
}

/// A stored run branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunBranch {
    pub id: i64,
    pub workspace: String,
    pub conversation_id: String,
    pub branch: String,
    pub worktree: String,
    pub base_branch: String,
    pub base_commit: String,
    pub head_commit: Option<String>,
    pub state: RunBranchState,
    /// The job working on it now.
    pub job_id: Option<i64>,
    pub last_job_id: i64,
    /// The merge / push / discard in progress.
    pub action: Option<BranchAction>,
    pub pushed_to: Option<String>,
    pub pull_request: Option<String>,
    /// What the last action did (shown by `valor workspace runs`).
    pub note: Option<String>,
    pub worktree_removed: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    workspace: String,
    conversation_id: String,
    branch: String,
    worktree: String,
    base_branch: String,
    base_commit: String,
    head_commit: Option<String>,
    state: String,
    job_id: Option<i64>,
    last_job_id: i64,
    action: Option<String>,
    pushed_to: Option<String>,
    pull_request: Option<String>,
    note: Option<String>,
    worktree_removed: bool,
    created_at_ms: i64,
    updated_at_ms: i64,
}

impl TryFrom<Row> for RunBranch {
    type Error = StorageError;

    fn try_from(row: Row) -> StorageResult<RunBranch> {
        let action = match row.action.as_deref() {
            None => None,
            Some(text) => Some(
                BranchAction::parse(text)
                    .ok_or_else(|| StorageError::Invalid(format!("unknown branch action {text:?}")))?,
            ),
        };
        Ok(RunBranch {
            id: row.id,
            workspace: row.workspace,
            conversation_id: row.conversation_id,
            branch: row.branch,
            worktree: row.worktree,
            base_branch: row.base_branch,
            base_commit: row.base_commit,
            head_commit: row.head_commit,
            state: RunBranchState::parse(&row.state)?,
            job_id: row.job_id,
            last_job_id: row.last_job_id,
            action,
            pushed_to: row.pushed_to,
            pull_request: row.pull_request,
            note: row.note,
            worktree_removed: row.worktree_removed,
            created_at_ms: row.created_at_ms,
            updated_at_ms: row.updated_at_ms,
        })
    }
}

/// A new run branch (its job holds it from the start).
#[derive(Debug, Clone)]
pub struct NewRunBranch {
    pub workspace: String,
    pub conversation_id: String,
    pub branch: String,
    pub worktree: String,
    pub base_branch: String,
    pub base_commit: String,
    pub job_id: i64,
}

// Macros (not consts) so `concat!` builds `&'static str` SQL.
macro_rules! columns {
    () => {
        "id, workspace, conversation_id, branch, worktree, base_branch, base_commit, head_commit, state, job_id, \
         last_job_id, action, pushed_to, pull_request, note, worktree_removed, created_at_ms, updated_at_ms"
    };
}

/// A claim on an action older than this is free again (its process died).
const STALE_ACTION_MS: i64 = 5 * 60 * 1000;

/// The job holding a branch is live: not finished.
macro_rules! live_job {
    () => {
        "EXISTS (SELECT 1 FROM jobs WHERE jobs.id = code_runs.job_id AND jobs.status IN ('queued', 'running'))"
    };
}

impl Store {
    async fn run_branch_query(&self, sql: &'static str, bind: &[i64]) -> StorageResult<Option<RunBranch>> {
        let mut query = sqlx::query_as::<_, Row>(sql);
        for value in bind {
            query = query.bind(*value);
        }
        let row = query.fetch_optional(&self.writer).await.map_err(|error| sql_error("read run branch", error))?;
        row.map(RunBranch::try_from).transpose()
    }

    pub async fn run_branch(&self, id: i64) -> StorageResult<RunBranch> {
        let sql = concat!("SELECT ", columns!(), " FROM code_runs WHERE id = $1");
        self.run_branch_query(sql, &[id])
            .await?
            .ok_or_else(|| StorageError::NotFound { what: format!("run branch {id}") })
    }

    /// The branch job `job_id` works on (a re-run after a crash finds its own).
    pub async fn run_branch_of_job(&self, job_id: i64) -> StorageResult<Option<RunBranch>> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM code_runs WHERE job_id = $1 AND state = 'open' ORDER BY id DESC LIMIT 1"
        );
        self.run_branch_query(sql, &[job_id]).await
    }

    /// Take the conversation's newest open branch in `workspace` for `job_id`,
    /// unless another live job holds it; `None` means start a new branch.
    pub async fn take_run_branch(
        &self,
        conversation_id: &str,
        workspace: &str,
        job_id: i64,
    ) -> StorageResult<Option<RunBranch>> {
        let sql = concat!(
            "UPDATE code_runs SET job_id = $1, last_job_id = $1, updated_at_ms = $2 WHERE id = (\
               SELECT id FROM code_runs WHERE conversation_id = $3 AND workspace = $4 AND state = 'open' \
               ORDER BY id DESC LIMIT 1) \
             AND action IS NULL AND (job_id IS NULL OR job_id = $1 OR NOT ",
            live_job!(),
            ") RETURNING ",
            columns!()
        );
        let row = sqlx::query_as::<_, Row>(sql)
            .bind(job_id)
            .bind(now_ms())
            .bind(conversation_id)
            .bind(workspace)
            .fetch_optional(&self.writer)
            .await
            .map_err(|error| sql_error("take run branch", error))?;
        row.map(RunBranch::try_from).transpose()
    }

    pub async fn create_run_branch(&self, new: &NewRunBranch) -> StorageResult<RunBranch> {
        let now = now_ms();
        let sql = concat!(
            "INSERT INTO code_runs (workspace, conversation_id, branch, worktree, base_branch, base_commit, state, \
             job_id, last_job_id, created_at_ms, updated_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $7, $8, $8) RETURNING ",
            columns!()
        );
        let row = sqlx::query_as::<_, Row>(sql)
            .bind(&new.workspace)
            .bind(&new.conversation_id)
            .bind(&new.branch)
            .bind(&new.worktree)
            .bind(&new.base_branch)
            .bind(&new.base_commit)
            .bind(new.job_id)
            .bind(now)
            .fetch_one(&self.writer)
            .await
            .map_err(|error| sql_error("store run branch", error))?;
        row.try_into()
    }

    /// The job is done with the branch (its head as committed).
    pub async fn release_run_branch(&self, id: i64, job_id: i64, head_commit: &str) -> StorageResult<()> {
        sqlx::query(
            "UPDATE code_runs SET job_id = NULL, head_commit = $1, updated_at_ms = $2 WHERE id = $3 AND job_id = $4",
        )
        .bind(head_commit)
        .bind(now_ms())
        .bind(id)
        .bind(job_id)
        .execute(&self.writer)
        .await
        .map_err(|error| sql_error("release run branch", error))?;
        Ok(())
    }

    /// Start `action` on an open branch no job holds and no action occupies;
    /// `None` when someone else got there first (or it is not open).
    pub async fn begin_branch_action(&self, id: i64, action: BranchAction) -> StorageResult<Option<RunBranch>> {
        let now = now_ms();
        let sql = concat!(
            "UPDATE code_runs SET action = $1, action_at_ms = $2, updated_at_ms = $2 WHERE id = $3 AND state = 'open' \
             AND (action IS NULL OR action_at_ms < $4) AND (job_id IS NULL OR NOT ",
            live_job!(),
            ") RETURNING ",
            columns!()
        );
        let row = sqlx::query_as::<_, Row>(sql)
            .bind(action.as_str())
            .bind(now)
            .bind(id)
            .bind(now - STALE_ACTION_MS)
            .fetch_optional(&self.writer)
            .await
            .map_err(|error| sql_error("begin branch action", error))?;
        row.map(RunBranch::try_from).transpose()
    }

    /// End the action in progress: the new state, what it did, and (for a push) where to.
    pub async fn end_branch_action(&self, id: i64, end: BranchActionEnd<'_>) -> StorageResult<RunBranch> {
        let sql = concat!(
            "UPDATE code_runs SET action = NULL, action_at_ms = NULL, state = $1, note = $2, \
             head_commit = COALESCE($3, head_commit), pushed_to = COALESCE($4, pushed_to), \
             pull_request = COALESCE($5, pull_request), worktree_removed = worktree_removed OR $6, \
             updated_at_ms = $7 WHERE id = $8 RETURNING ",
            columns!()
        );
        let row = sqlx::query_as::<_, Row>(sql)
            .bind(end.state.as_str())
            .bind(end.note)
            .bind(end.head_commit)
            .bind(end.pushed_to)
            .bind(end.pull_request)
            .bind(end.worktree_removed)
            .bind(now_ms())
            .bind(id)
            .fetch_optional(&self.writer)
            .await
            .map_err(|error| sql_error("end branch action", error))?
            .ok_or_else(|| StorageError::NotFound { what: format!("run branch {id}") })?;
        row.try_into()
    }

    /// Every branch of a workspace, newest first.
    pub async fn run_branches(&self, workspace: &str, limit: i64) -> StorageResult<Vec<RunBranch>> {
        let sql = concat!("SELECT ", columns!(), " FROM code_runs WHERE workspace = $1 ORDER BY id DESC LIMIT $2");
        let rows = sqlx::query_as::<_, Row>(sql)
            .bind(workspace)
            .bind(limit)
            .fetch_all(&self.readers)
            .await
            .map_err(|error| sql_error("list run branches", error))?;
        rows.into_iter().map(RunBranch::try_from).collect()
    }

    /// Merged or discarded branches whose worktree is still on disk (the daydream's cleanup removes them).
    pub async fn run_branches_to_clean(&self, limit: i64) -> StorageResult<Vec<RunBranch>> {
        let sql = concat!(
            "SELECT ",
            columns!(),
            " FROM code_runs WHERE state IN ('merged', 'discarded') AND NOT worktree_removed \
             AND action IS NULL ORDER BY id LIMIT $1"
        );
        let rows = sqlx::query_as::<_, Row>(sql)
            .bind(limit)
            .fetch_all(&self.readers)
            .await
            .map_err(|error| sql_error("list run branches to clean", error))?;
        rows.into_iter().map(RunBranch::try_from).collect()
    }

    pub async fn mark_worktree_removed(&self, id: i64) -> StorageResult<()> {
        sqlx::query("UPDATE code_runs SET worktree_removed = TRUE, updated_at_ms = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(|error| sql_error("mark worktree removed", error))?;
        Ok(())
    }
}

/// How an action ended (`None` fields keep what is stored).
#[derive(Debug, Clone, Copy)]
pub struct BranchActionEnd<'a> {
    pub state: RunBranchState,
    pub note: &'a str,
    pub head_commit: Option<&'a str>,
    pub pushed_to: Option<&'a str>,
    pub pull_request: Option<&'a str>,
    pub worktree_removed: bool,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::storage::{JobStatus, NewJob};

    fn new(job_id: i64, branch: &str) -> NewRunBranch {
        NewRunBranch {
            workspace: "shop".into(),
            conversation_id: "c1".into(),
            branch: branch.into(),
            worktree: format!("/data/worktrees/shop/{job_id}"),
            base_branch: "main".into(),
            base_commit: "abc".into(),
            job_id,
        }
    }

    async fn job(store: &Store) -> i64 {
        let new = NewJob {
            kind: "claude_code".into(),
            payload: serde_json::json!({}),
            priority: 0,
            run_at_ms: None,
            max_attempts: 1,
            conversation_id: None,
            idempotency_key: None,
        };
        store.enqueue_job(new, now_ms()).await.unwrap().job.id
    }

    #[tokio::test]
    async fn a_live_job_keeps_its_branch_and_a_finished_one_hands_it_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("v.db")).await.unwrap();
        let (first, second) = (job(&store).await, job(&store).await);
        let branch = store.create_run_branch(&new(first, "valor/1-a")).await.unwrap();
        assert_eq!(store.run_branch_of_job(first).await.unwrap().unwrap().id, branch.id);
        // The first job is queued (live): the second gets no branch and starts its own.
        assert_eq!(store.take_run_branch("c1", "shop", second).await.unwrap(), None);
        // A re-run of the first finds it again.
        assert_eq!(store.take_run_branch("c1", "shop", first).await.unwrap().unwrap().id, branch.id);
        store.release_run_branch(branch.id, first, "def").await.unwrap();
        let taken = store.take_run_branch("c1", "shop", second).await.unwrap().unwrap();
        assert_eq!(
            (taken.job_id, taken.last_job_id, taken.head_commit.as_deref()),
            (Some(second), second, Some("def"))
        );
        // A holder that finished without releasing (a crash) does not block the next job.
        store.request_job_cancel(second, now_ms()).await.unwrap();
        assert_eq!(store.get_job(second).await.unwrap().status, JobStatus::Cancelled);
        let third = job(&store).await;
        assert_eq!(store.take_run_branch("c1", "shop", third).await.unwrap().unwrap().job_id, Some(third));
        assert_eq!(store.take_run_branch("c2", "shop", third).await.unwrap(), None);
    }

    /// A second branch of the same name in one workspace is refused as a
    /// duplicate (a variant callers can branch on), and the driver's error is kept.
    #[tokio::test]
    async fn a_branch_name_taken_twice_is_a_duplicate_and_other_failures_keep_their_source() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("v.db")).await.unwrap();
        let (first, second) = (job(&store).await, job(&store).await);
        store.create_run_branch(&new(first, "valor/1-a")).await.unwrap();
        let error = store.create_run_branch(&new(second, "valor/1-a")).await.unwrap_err();
        assert!(matches!(&error, StorageError::Duplicate { what } if what == "store run branch"), "{error:?}");
        // Any other failure (here: the store is closed) is a database error with the driver's error as its source.
        store.close().await;
        let error = store.create_run_branch(&new(second, "valor/2-b")).await.unwrap_err();
        let StorageError::Database { message, source } = &error else { panic!("{error:?}") };
        assert!(message.starts_with("store run branch: "), "{message}");
        assert!(source.as_ref().is_some_and(|source| message.ends_with(&source.to_string())), "{error:?}");
    }

    #[tokio::test]
    async fn one_action_at_a_time_and_none_while_a_job_works() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("v.db")).await.unwrap();
        let first = job(&store).await;
        let branch = store.create_run_branch(&new(first, "valor/1-a")).await.unwrap();
        assert_eq!(store.begin_branch_action(branch.id, BranchAction::Merge).await.unwrap(), None, "job still live");
        store.release_run_branch(branch.id, first, "def").await.unwrap();
        let begun = store.begin_branch_action(branch.id, BranchAction::Merge).await.unwrap().unwrap();
        assert_eq!(begun.action, Some(BranchAction::Merge));
        assert_eq!(store.begin_branch_action(branch.id, BranchAction::Discard).await.unwrap(), None);
        let end = BranchActionEnd {
            state: RunBranchState::Merged,
            note: "fast-forwarded main",
            head_commit: None,
            pushed_to: None,
            pull_request: None,
            worktree_removed: false,
        };
        let ended = store.end_branch_action(branch.id, end).await.unwrap();
        assert_eq!(
            (ended.state, ended.action, ended.head_commit.as_deref()),
            (RunBranchState::Merged, None, Some("def"))
        );
        assert_eq!(store.begin_branch_action(branch.id, BranchAction::Push).await.unwrap(), None, "not open");
        assert_eq!(store.run_branches_to_clean(10).await.unwrap().len(), 1);
        store.mark_worktree_removed(branch.id).await.unwrap();
        assert!(store.run_branches_to_clean(10).await.unwrap().is_empty());
        assert_eq!(store.run_branches("shop", 10).await.unwrap()[0].state, RunBranchState::Merged);
    }
}
