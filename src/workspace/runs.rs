//! Run branches: every code run works in its own git worktree on its own
//! branch and ends in a commit there; a person merges, pushes or discards
//! the branch.
//!
//! - [`RunBranches::prepare`] finds the run's branch — the job's own (a
//!   re-run after a crash), else the conversation's newest open one (a
//!   follow-up) unless another live job holds it, else a new
//!   `<prefix><job>-<slug>` from the workspace's default branch — and its
//!   worktree under `<data_dir>/worktrees/<workspace>/<first job>`. Work an
//!   interrupted attempt left uncommitted is committed first.
//! - [`RunBranches::conclude`] commits what the run changed (also when it
//!   failed or was cancelled: the subject says so) and releases the branch.
//! - [`RunBranches::act`] carries out a merge, push or discard a person
//!   asked for (see `jobs::branch_action`).
//!
//! A workspace that is not a git repository with a commit runs in place, as
//! before, and its result says nothing is committed.

use std::path::{Path, PathBuf};

use crate::config::{ChildEnv, Settings, WorkspaceSettings};
use crate::storage::{BranchAction, BranchActionEnd, NewRunBranch, RunBranch, RunBranchState, StorageError, Store};

use super::git::{Author, Git, GitError, MergeOutcome, branch_name, default_branch};
use super::{Workspace, WorkspaceError, Workspaces};

/// How run branches are made (from `[git]` and the data directory).
#[derive(Debug, Clone)]
pub struct RunBranches {
    git: Git,
    env: ChildEnv,
    prefix: String,
    /// `<data_dir>/worktrees`.
    dir: PathBuf,
}

/// A run's branch and the workspace opened on its worktree.
#[derive(Debug, Clone)]
pub struct PreparedRun {
    pub branch: RunBranch,
    pub workspace: Workspace,
    /// The branch head when this run started (its own changes are what follows).
    pub start: String,
    /// True when this run created the branch (a new Claude Code session, too).
    pub new_branch: bool,
}

/// What the commit at the end of a run recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concluded {
    pub branch: String,
    pub base_branch: String,
    /// The branch head (short form), after the run's commit if it made one.
    pub commit: String,
    /// This run's own changes (`git diff --shortstat`), empty when none.
    pub diff_stat: String,
    /// The files this run changed, as git sees them.
    pub files: Vec<String>,
}

/// Why a run branch could not be prepared or an action not carried out.
#[derive(Debug, thiserror::Error)]
pub enum RunBranchError {
    #[error("{0}")]
    Git(#[from] GitError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("{0}")]
    Workspace(#[from] WorkspaceError),
}

/// How an ending run is described in its commit subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Finished,
    Failed,
    Cancelled,
}

impl RunBranches {
    pub fn from_settings(settings: &Settings) -> Self {
        let author = Author::parse(&settings.git.author)
            .unwrap_or_else(|| Author { name: "valor".into(), email: "valor@localhost".into() });
        Self {
            git: Git::new(settings.child_env.clone(), author, settings.git.no_verify),
            env: settings.child_env.clone(),
            prefix: settings.git.branch_prefix.clone(),
            // Absolute: git resolves a relative path against the repository, not valor's directory.
            dir: std::path::absolute(settings.data_dir.join("worktrees"))
                .unwrap_or_else(|_| settings.data_dir.join("worktrees")),
        }
    }

    pub fn git(&self) -> &Git {
        &self.git
    }

    /// The branch and worktree job `job_id` runs in; `None` when the
    /// workspace is not a git repository with a commit (the run then works
    /// in place).
    pub async fn prepare(
        &self,
        store: &Store,
        workspaces: &Workspaces,
        workspace: &Workspace,
        conversation_id: &str,
        job_id: i64,
        task: &str,
    ) -> Result<Option<PreparedRun>, RunBranchError> {
        let entry = workspaces.by_name(&workspace.name)?;
        let root = workspace.root();
        let (branch, new_branch) = match store.run_branch_of_job(job_id).await? {
            Some(branch) => (branch, false),
            None => match store.take_run_branch(conversation_id, &workspace.name, job_id).await? {
                Some(branch) => (branch, false),
                None => {
                    let Some(base_branch) = default_branch(root, &self.env, entry.default_branch.as_deref()).await
                    else {
                        return Ok(None);
                    };
                    let base_commit = self.git.commit_of(root, &format!("refs/heads/{base_branch}")).await?;
                    let new = NewRunBranch {
                        workspace: workspace.name.clone(),
                        conversation_id: conversation_id.to_owned(),
                        branch: branch_name(&self.prefix, job_id, task),
                        worktree: self.worktree_path(&workspace.name, job_id).display().to_string(),
                        base_branch,
                        base_commit,
                        job_id,
                    };
                    (store.create_run_branch(&new).await?, true)
                }
            },
        };
        let path = PathBuf::from(&branch.worktree);
        self.git.ensure_worktree(root, &path, &branch.branch, &branch.base_commit).await?;
        // An attempt that died mid-run left its work uncommitted: keep it before going on.
        let leftover = format!("Work of an interrupted attempt of job #{}", branch.last_job_id);
        let start = self.git.commit_all(&path, &leftover).await?.head;
        let opened = workspaces.open_worktree(entry, &path)?;
        Ok(Some(PreparedRun { branch, workspace: opened, start, new_branch }))
    }

    fn worktree_path(&self, workspace: &str, job_id: i64) -> PathBuf {
        self.dir.join(workspace).join(job_id.to_string())
    }

    /// Commit what the run changed and let go of the branch.
    pub async fn conclude(
        &self,
        store: &Store,
        run: &PreparedRun,
        job_id: i64,
        end: RunEnd,
        summary: &str,
    ) -> Result<Concluded, RunBranchError> {
        let path = run.workspace.root();
        let message = commit_message(job_id, end, summary);
        let committed = self.git.commit_all(path, &message).await;
        // Released whatever happened, so the next job is not kept off the branch.
        let head = match &committed {
            Ok(committed) => committed.head.clone(),
            Err(_) => run.start.clone(),
        };
        store.release_run_branch(run.branch.id, job_id, &head).await?;
        let head = committed?.head;
        let diff_stat = self.git.diff_stat(path, &run.start, &head).await?;
        let files = self.git.changed_files(path, &run.start, &head).await?;
        Ok(Concluded {
            branch: run.branch.branch.clone(),
            base_branch: run.branch.base_branch.clone(),
            commit: head.chars().take(12).collect(),
            diff_stat,
            files,
        })
    }

    /// Carry out `action` on a branch whose claim the caller holds
    /// (`Store::begin_branch_action`); the answer for the chat. The claim
    /// ends whatever happens.
    pub async fn act(
        &self,
        store: &Store,
        workspaces: &Workspaces,
        branch: &RunBranch,
        action: BranchAction,
    ) -> Result<String, RunBranchError> {
        let outcome = self.carry_out(workspaces, branch, action).await;
        let (state, note, removed, pushed_to) = match &outcome {
            Ok(done) => (done.state, done.text.clone(), done.removed, done.pushed_to.as_deref()),
            Err(error) => (RunBranchState::Open, format!("{} failed: {error}", action.as_str()), false, None),
        };
        let end = BranchActionEnd {
            state,
            note: &note,
            head_commit: None,
            pushed_to,
            pull_request: outcome.as_ref().ok().and_then(|done| done.pull_request.as_deref()),
            worktree_removed: removed,
        };
        store.end_branch_action(branch.id, end).await?;
        outcome.map(|done| done.text)
    }

    async fn carry_out(
        &self,
        workspaces: &Workspaces,
        branch: &RunBranch,
        action: BranchAction,
    ) -> Result<ActionDone, RunBranchError> {
        let entry = workspaces.by_name(&branch.workspace)?;
        let root = entry.path.as_path();
        let name = &branch.branch;
        let into = &branch.base_branch;
        let open = |text: String| ActionDone { state: RunBranchState::Open, text, ..ActionDone::default() };
        match action {
            BranchAction::Merge => Ok(match self.git.merge(root, name, into).await? {
                MergeOutcome::FastForward { head } => ActionDone {
                    state: RunBranchState::Merged,
                    text: format!("Merged `{name}` into `{into}` (fast-forward to {}).", short(&head)),
                    ..ActionDone::default()
                },
                MergeOutcome::Merged { head } => ActionDone {
                    state: RunBranchState::Merged,
                    text: format!("Merged `{name}` into `{into}` (merge commit {}).", short(&head)),
                    ..ActionDone::default()
                },
                MergeOutcome::AlreadyMerged => ActionDone {
                    state: RunBranchState::Merged,
                    text: format!("`{name}` is already part of `{into}`."),
                    ..ActionDone::default()
                },
                MergeOutcome::Conflict { files } => open(format!(
                    "`{name}` does not merge cleanly into `{into}`: both changed {}. Nothing was changed; \
                     ask for a follow-up that resolves it on the branch.",
                    files.iter().map(|file| format!("`{file}`")).collect::<Vec<_>>().join(", ")
                )),
                MergeOutcome::CheckoutInTheWay(reason) => open(format!(
                    "`{into}` is checked out in {} with uncommitted changes the merge would overwrite \
                     ({reason}). Nothing was changed; commit or stash them and merge again.",
                    root.display()
                )),
            }),
            BranchAction::Discard => {
                self.git.remove(root, Path::new(&branch.worktree), name, true).await?;
                Ok(ActionDone {
                    state: RunBranchState::Discarded,
                    text: format!("Discarded `{name}`: its worktree and branch are removed."),
                    removed: true,
                    ..ActionDone::default()
                })
            }
            BranchAction::Push => {
                let Some(remote) = self.git.remote(root).await? else {
                    return Ok(open(format!(
                        "`{name}` was not pushed: workspace {:?} has no remote (or several and none is `origin`).",
                        branch.workspace
                    )));
                };
                self.git.push(root, &remote, name).await?;
                let pull_request = self.pull_request(root, branch).await;
                let text = match &pull_request {
                    Ok(url) => format!("Pushed `{name}` to `{remote}` and opened a pull request: {url}"),
                    Err(why) => format!("Pushed `{name}` to `{remote}`. No pull request: {why}"),
                };
                Ok(ActionDone {
                    state: RunBranchState::Open,
                    text,
                    pushed_to: Some(remote),
                    pull_request: pull_request.ok(),
                    ..ActionDone::default()
                })
            }
        }
    }

    /// `gh pr create` for the pushed branch, when `gh` is installed and signed in.
    async fn pull_request(&self, root: &Path, branch: &RunBranch) -> Result<String, String> {
        if super::child::find_program("gh", &self.env).is_none() {
            return Err("the GitHub CLI (`gh`) is not installed".into());
        }
        let limit = std::time::Duration::from_secs(60);
        let run = async |args: &[&str]| {
            let mut gh = super::child::command("gh", self.env.vars());
            gh.current_dir(root).args(args);
            let output = super::child::output_within(&mut gh, "gh", limit).await?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            match output.status.success() {
                true => Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned()),
                false => Err(format!("`gh {}` failed: {}", args[0], stderr.lines().next().unwrap_or("").trim())),
            }
        };
        run(&["auth", "status"]).await.map_err(|_| "`gh` is not signed in (`gh auth login`)".to_owned())?;
        let title = format!("{} (valor job #{})", branch.branch, branch.last_job_id);
        let body = format!("Work done by valor on branch `{}`.", branch.branch);
        run(&[
            "pr",
            "create",
            "--head",
            &branch.branch,
            "--base",
            &branch.base_branch,
            "--title",
            &title,
            "--body",
            &body,
        ])
        .await
    }

    /// Remove the worktrees of merged and discarded branches (the daydream's
    /// cleanup); how many were removed. A merged branch itself stays.
    pub async fn clean(&self, store: &Store, workspaces: &Workspaces) -> Result<usize, RunBranchError> {
        let mut removed = 0;
        for branch in store.run_branches_to_clean(50).await? {
            let Ok(entry) = workspaces.by_name(&branch.workspace) else { continue };
            let delete = branch.state == RunBranchState::Discarded;
            match self.git.remove(&entry.path, Path::new(&branch.worktree), &branch.branch, delete).await {
                Ok(()) => {
                    store.mark_worktree_removed(branch.id).await?;
                    removed += 1;
                }
                Err(error) => tracing::warn!(branch = %branch.branch, "worktree not removed: {error}"),
            }
        }
        Ok(removed)
    }
}

#[derive(Debug, Default)]
struct ActionDone {
    state: RunBranchState,
    text: String,
    removed: bool,
    pushed_to: Option<String>,
    pull_request: Option<String>,
}

fn short(commit: &str) -> String {
    commit.chars().take(12).collect()
}

/// The subject is the run's summary's first line (at most 72 characters),
/// marked when the run did not finish; the body names the job.
pub fn commit_message(job_id: i64, end: RunEnd, summary: &str) -> String {
    let first = summary.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or("");
    let first = first.trim_start_matches('#').trim();
    let mark = match end {
        RunEnd::Finished => "",
        RunEnd::Failed => "WIP (run failed): ",
        RunEnd::Cancelled => "WIP (run cancelled): ",
    };
    let subject = if first.is_empty() { format!("Work of job #{job_id}") } else { first.to_owned() };
    let mut subject = format!("{mark}{subject}");
    if subject.chars().count() > 72 {
        subject = subject.chars().take(71).collect::<String>() + "…";
    }
    let body: String = summary.chars().take(4000).collect();
    format!("{subject}\n\n{}\n\nvalor job #{job_id}", body.trim())
}

/// The job kind that carries out a merge, push or discard (`jobs::branch_action`).
pub const BRANCH_ACTION_KIND: &str = "branch_action";

/// The button data of `action` on run branch `id`: `branch:<id>:<action>` (≤ 64 bytes).
pub fn button_data(id: i64, action: BranchAction) -> String {
    format!("branch:{id}:{}", action.as_str())
}

/// Button data → (run branch id, action).
pub fn parse_button(data: &str) -> Option<(i64, BranchAction)> {
    let (id, action) = data.strip_prefix("branch:")?.split_once(':')?;
    Some((id.parse().ok()?, BranchAction::parse(action)?))
}

/// What asking for an action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRequest {
    /// Claimed and queued as this job; its result is posted to the branch's conversation.
    Queued { job_id: i64 },
    /// Not done; the text says why (already merged, a run still working, another action first, …).
    Refused(String),
}

/// A person (`requester`, checked against the workspace's `allowed_users`)
/// asks for `action` on run branch `id`: the first request claims the
/// branch and queues a `branch_action` job; every later one is refused
/// with the reason. Nothing is changed before the claim.
pub async fn request_action(
    store: &Store,
    workspaces: &Workspaces,
    id: i64,
    action: BranchAction,
    requester: &super::Requester,
) -> Result<ActionRequest, StorageError> {
    let branch = match store.run_branch(id).await {
        Ok(branch) => branch,
        Err(StorageError::NotFound { .. }) => {
            return Ok(ActionRequest::Refused(format!("there is no run branch {id}")));
        }
        Err(error) => return Err(error),
    };
    let Ok(entry) = workspaces.by_name(&branch.workspace) else {
        return Ok(ActionRequest::Refused(format!("workspace {:?} is no longer configured", branch.workspace)));
    };
    if !super::may_use(entry, requester) {
        return Ok(ActionRequest::Refused(format!(
            "{} may not change branches of workspace {:?}",
            requester.describe(),
            branch.workspace
        )));
    }
    let Some(claimed) = store.begin_branch_action(id, action).await? else {
        let current = store.run_branch(id).await?;
        let why = match (current.state, current.action, current.job_id) {
            (RunBranchState::Merged, ..) => format!("`{}` is already merged", current.branch),
            (RunBranchState::Discarded, ..) => format!("`{}` was discarded", current.branch),
            (_, Some(doing), _) => format!("a {} of `{}` is already under way", doing.as_str(), current.branch),
            (_, None, Some(job)) => {
                format!("job #{job} is still working on `{}`; try again when it is done", current.branch)
            }
            _ => format!("`{}` cannot be changed right now", current.branch),
        };
        return Ok(ActionRequest::Refused(why));
    };
    let new = crate::storage::NewJob {
        kind: BRANCH_ACTION_KIND.into(),
        payload: serde_json::json!({"run_branch": id, "action": action, "requester": requester}),
        priority: 10,
        run_at_ms: None,
        max_attempts: 2,
        conversation_id: Some(claimed.conversation_id.clone()),
        idempotency_key: Some(format!("branch:{id}:{}:{}", action.as_str(), claimed.updated_at_ms)),
    };
    let job = store.enqueue_job(new, crate::storage::wall_clock_ms()).await?.job;
    Ok(ActionRequest::Queued { job_id: job.id })
}

impl Workspaces {
    /// A run's worktree as the workspace it works in: the other workspaces'
    /// roots stay forbidden (valor's data directory, which holds the
    /// worktree, cannot lie inside it).
    pub fn open_worktree(&self, entry: &WorkspaceSettings, path: &Path) -> Result<Workspace, WorkspaceError> {
        let forbidden: Vec<PathBuf> =
            self.entries().iter().filter(|other| other.name != entry.name).map(|other| other.path.clone()).collect();
        Workspace::open(&entry.name, path, &forbidden)
            .map_err(|reason| WorkspaceError::Unusable { name: entry.name.clone(), reason })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn commit_messages_say_how_the_run_ended_and_stay_short() {
        let message = commit_message(3, RunEnd::Finished, "Created hello.txt.\n\nIt says hi.");
        assert!(message.starts_with("Created hello.txt.\n\n"), "{message}");
        assert!(message.ends_with("valor job #3"), "{message}");
        let failed = commit_message(4, RunEnd::Failed, "");
        assert!(failed.starts_with("WIP (run failed): Work of job #4\n"), "{failed}");
        let long = commit_message(5, RunEnd::Cancelled, &"x".repeat(200));
        let subject = long.lines().next().unwrap();
        assert!(subject.starts_with("WIP (run cancelled): ") && subject.chars().count() == 72, "{subject}");
        assert!(commit_message(6, RunEnd::Finished, "## Done\nmore").starts_with("Done\n"));
    }
}
