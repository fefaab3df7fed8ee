//! `branch_action` jobs: the merge, push or discard of a run branch a person
//! asked for (`workspace::runs::request_action` claimed the branch and
//! queued this). The answer — merged, conflicts, pushed, discarded — is the
//! job's result, posted to the branch's conversation as its final notice.
//!
//! Payload: `{"run_branch", "action", "requester"}`. The requester is checked
//! against the workspace again when the job runs (config may have changed).
//! A re-run after a crash repeats the action, which is safe: a merge that
//! happened is "already merged", a discard of what is gone removes nothing.

use serde_json::json;

use super::handler::{JobContext, JobError, JobHandler};
use crate::storage::{BranchAction, BranchActionEnd, RunBranchState};
use crate::workspace::runs::{BRANCH_ACTION_KIND, RunBranchError, RunBranches};
use crate::workspace::{Requester, Workspaces, may_use};

#[derive(Debug, Clone)]
pub struct BranchActionHandler {
    workspaces: Workspaces,
    branches: RunBranches,
}

impl BranchActionHandler {
    pub fn new(workspaces: Workspaces, branches: RunBranches) -> Self {
        Self { workspaces, branches }
    }
}

#[async_trait::async_trait]
impl JobHandler for BranchActionHandler {
    fn kind(&self) -> &'static str {
        BRANCH_ACTION_KIND
    }

    async fn run(&self, context: &JobContext, payload: serde_json::Value) -> Result<serde_json::Value, JobError> {
        let id = payload["run_branch"].as_i64();
        let action = payload["action"].as_str().and_then(BranchAction::parse);
        let (Some(id), Some(action)) = (id, action) else {
            return Err(JobError::Fail("the payload needs `run_branch` and `action`".into()));
        };
        let store = context.store();
        let branch = store.run_branch(id).await.map_err(|error| JobError::Fail(error.to_string()))?;
        let requester = Requester::from_payload(&payload);
        let allowed = self.workspaces.by_name(&branch.workspace).is_ok_and(|entry| may_use(entry, &requester));
        if !allowed {
            let note = format!("{} may no longer change this workspace's branches", requester.describe());
            let end = BranchActionEnd {
                state: RunBranchState::Open,
                note: &note,
                head_commit: None,
                pushed_to: None,
                pull_request: None,
                worktree_removed: false,
            };
            store.end_branch_action(id, end).await.map_err(|error| JobError::Retry(error.to_string()))?;
            return Err(JobError::Fail(note));
        }
        match self.branches.act(store, &self.workspaces, &branch, action).await {
            Ok(text) => Ok(json!({"reply": text, "branch": branch.branch, "action": action})),
            Err(RunBranchError::Storage(error)) => Err(JobError::Retry(error.to_string())),
            Err(error) => Err(JobError::Fail(format!("{} of `{}` failed: {error}", action.as_str(), branch.branch))),
        }
    }
}
