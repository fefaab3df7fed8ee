//! Inline-button merge / push / discard of a run branch (`callback_query`
//! updates with data `branch:<id>:<merge|push|discard>`, under a code run's
//! result). Who may press is the approvals' rule (`approvals::may_answer`:
//! admins, a workspace's `allowed_users`, the DM whitelist in a private
//! chat), and the press must come from the branch's own chat. The first
//! press claims the branch and queues a `branch_action` job, whose result
//! is posted to the chat; every press is answered with a toast.

use super::Shared;
use super::approvals::{Presser, may_answer, toast};
use crate::storage::{BranchAction, StorageError};
use crate::workspace::runs::{ActionRequest, request_action};
use crate::workspace::{ChatUser, Requester, Workspaces};

pub(super) async fn handle_callback(
    shared: &Shared,
    query_id: &str,
    presser: &Presser<'_>,
    (id, action): (i64, BranchAction),
) -> Result<(), StorageError> {
    let branch = match shared.store.run_branch(id).await {
        Ok(branch) => branch,
        Err(StorageError::NotFound { .. }) => return toast(shared, query_id, "That branch no longer exists.").await,
        Err(error) => return Err(error),
    };
    let conversation = shared.store.get_conversation(&branch.conversation_id).await?;
    if conversation.chat_id != Some(presser.chat_id) || !may_answer(&shared.settings, &shared.workspaces, presser) {
        tracing::warn!(branch = id, user = presser.user_id, "telegram: branch {} refused", action.as_str());
        return toast(shared, query_id, "You are not allowed to change this branch.").await;
    }
    let requester = Requester {
        user: Some(ChatUser { id: presser.user_id, username: presser.username.map(str::to_owned) }),
        is_admin: shared.settings.admins.contains(&presser.user_id),
    };
    let workspaces = Workspaces::new(shared.workspaces.clone(), &shared.data_dir);
    let text = match request_action(&shared.store, &workspaces, id, action, &requester).await? {
        ActionRequest::Queued { job_id } => {
            tracing::info!(branch = id, job = job_id, user = presser.user_id, "telegram: branch {}", action.as_str());
            match action {
                BranchAction::Merge => format!("Merging {}…", branch.branch),
                BranchAction::Push => format!("Pushing {}…", branch.branch),
                BranchAction::Discard => format!("Discarding {}…", branch.branch),
            }
        }
        ActionRequest::Refused(why) => why.replace('`', ""),
    };
    toast(shared, query_id, &text).await
}
