//! `valor workspace …`: `list` shows the configured workspaces (path check,
//! chats, allowed users, subagents present); `init NAME` installs the
//! embedded Claude Code subagents into the workspace's `.claude/agents/`,
//! keeping every file that is already there and saying which were skipped;
//! `runs NAME` lists the workspace's run branches and their state.
//! Path decisions are audit-logged in the database like any other (actor `cli`).

use anyhow::Context as _;

use crate::config::{Settings, UserRef};
use crate::storage::Store;
use crate::workspace::Workspaces;
use crate::workspace::subagents::{self, AGENTS_DIR, TEMPLATES};

/// What `valor workspace` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkspaceAction {
    List,
    Init { name: String },
    Runs { name: String },
}

/// Run the action; returns the text to print.
pub async fn workspace_command(settings: &Settings, action: WorkspaceAction) -> anyhow::Result<String> {
    let workspaces = Workspaces::new(settings.workspaces.clone(), &settings.data_dir);
    match action {
        WorkspaceAction::List => Ok(list(&workspaces)),
        WorkspaceAction::Runs { name } => {
            workspaces.by_name(&name)?;
            let path = settings.database_path();
            let store = Store::open(&path).await.with_context(|| format!("opening {}", path.display()))?;
            let branches = store.run_branches(&name, 100).await;
            store.close().await;
            Ok(runs(&name, &branches?))
        }
        WorkspaceAction::Init { name } => {
            let entry = workspaces.by_name(&name)?;
            let workspace = workspaces.open(entry)?;
            let path = settings.database_path();
            let store = Store::open(&path).await.with_context(|| format!("opening {}", path.display()))?;
            let outcome = subagents::install(&store, "cli", &workspace).await;
            store.close().await;
            let report = outcome?;
            let mut lines = vec![format!(
                "workspace {name}: {} subagent(s) installed, {} skipped in {}",
                report.installed.len(),
                report.skipped.len(),
                workspace.root().join(AGENTS_DIR).display()
            )];
            lines.extend(report.installed.iter().map(|path| format!("  installed {}", path.display())));
            lines.extend(report.skipped.iter().map(|(path, why)| format!("  skipped   {} ({why})", path.display())));
            Ok(lines.join("\n"))
        }
    }
}

fn list(workspaces: &Workspaces) -> String {
    if workspaces.is_empty() {
        return "no workspaces configured (add a [[workspace]] entry to valor.toml)".into();
    }
    let mut lines = Vec::new();
    for entry in workspaces.entries() {
        let chats = match entry.chats.as_slice() {
            [] => "by name only".to_owned(),
            chats => chats.iter().map(i64::to_string).collect::<Vec<_>>().join(", "),
        };
        let users = match entry.allowed_users.as_slice() {
            [] => "anyone in its chats".to_owned(),
            users => users.iter().map(describe_user).collect::<Vec<_>>().join(", "),
        };
        let state = match workspaces.open(entry) {
            Ok(workspace) => {
                let present = subagents::installed_names(&workspace);
                format!("ok, subagents {}/{}: {}", present.len(), TEMPLATES.len(), present.join(" "))
            }
            Err(error) => format!("NOT USABLE: {error}"),
        };
        lines.push(format!(
            "{}\n  path:  {}\n  chats: {chats}\n  users: {users}\n  state: {}",
            entry.name,
            entry.path.display(),
            state.trim_end()
        ));
    }
    lines.join("\n")
}

fn runs(name: &str, branches: &[crate::storage::RunBranch]) -> String {
    if branches.is_empty() {
        return format!("workspace {name}: no run branches yet (each delegated run makes or continues one)");
    }
    let mut lines = vec![format!("workspace {name}: {} run branch(es), newest first", branches.len())];
    for branch in branches {
        let state = match (branch.action, branch.job_id) {
            (Some(action), _) => format!("{} ({} under way)", branch.state.as_str(), action.as_str()),
            (None, Some(job)) => format!("{} (job #{job} working)", branch.state.as_str()),
            (None, None) => branch.state.as_str().to_owned(),
        };
        let head = branch.head_commit.as_deref().map_or("-", |head| &head[..head.len().min(12)]);
        let mut line = format!(
            "#{} {}  {state}\n  base {} · head {head} · last job #{}",
            branch.id, branch.branch, branch.base_branch, branch.last_job_id
        );
        if let Some(remote) = &branch.pushed_to {
            line.push_str(&format!(" · pushed to {remote}"));
        }
        if let Some(url) = &branch.pull_request {
            line.push_str(&format!(" · PR {url}"));
        }
        let tree = if branch.worktree_removed { "removed".to_owned() } else { branch.worktree.clone() };
        line.push_str(&format!("\n  worktree: {tree}"));
        if let Some(note) = &branch.note {
            line.push_str(&format!("\n  last action: {}", note.replace('`', "")));
        }
        lines.push(line);
    }
    lines.join("\n")
}

fn describe_user(user: &UserRef) -> String {
    match user {
        UserRef::Id(id) => id.to_string(),
        UserRef::Username(name) => format!("@{}", name.trim_start_matches('@')),
    }
}
