//! System prompt assembly: persona + where we are talking + the tools on
//! offer + the current date. Pure functions, so the prompt is testable.

use std::path::Path;

use super::tools::{DelegateCodeTask, ProjectContext, TypedTool};
use crate::llm::ToolSpec;

/// The persona shipped in the binary.
pub const DEFAULT_PERSONA: &str = include_str!("persona.md");

/// Load the persona: the configured file if any, else the embedded default.
pub fn load_persona(file: Option<&Path>) -> anyhow::Result<String> {
    use anyhow::Context as _;
    match file {
        None => Ok(DEFAULT_PERSONA.to_owned()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the persona file {} (agent.persona_file)", path.display()))?;
            anyhow::ensure!(!text.trim().is_empty(), "the persona file {} is empty", path.display());
            Ok(text)
        }
    }
}

/// A configured workspace as the prompt names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceFacts {
    pub name: String,
    /// The configured path, as shown to the model.
    pub path: String,
    /// `None` when it is unknown (not a git repository, or not looked up).
    pub default_branch: Option<String>,
}

/// Where a conversation's code work happens, as far as the prompt is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ProjectScope {
    /// No `[[workspace]]` is configured.
    #[default]
    NoneConfigured,
    /// A Telegram chat that no workspace lists.
    NotLinked,
    /// The chat's workspace, whose `allowed_users` leave the sender out.
    NotAllowed { name: String },
    /// The chat's workspace (Telegram: the entry listing the chat).
    Linked(WorkspaceFacts),
    /// A conversation without a chat (web, API, terminal): the workspaces the
    /// requester may use, one of which every code task must name.
    Choose(Vec<WorkspaceFacts>),
}

/// Most workspaces listed by name for a conversation that must pick one.
const MAX_LISTED_WORKSPACES: usize = 20;

/// Facts about the conversation that go into the system prompt.
#[derive(Debug, Clone, Default)]
pub struct PromptContext<'a> {
    /// "web", "api", "terminal", "telegram".
    pub channel: &'a str,
    pub conversation_title: &'a str,
    pub workspace: ProjectScope,
    /// The prefix of run branches (`[git] branch_prefix`); empty means `valor/`.
    pub run_branch_prefix: &'a str,
    /// Today's date, e.g. "Thursday, 26 November 2026".
    pub date: String,
    /// Capabilities configured but off here, and why.
    pub unavailable: &'a [(&'static str, String)],
}

pub fn system_prompt(persona: &str, context: &PromptContext<'_>, tools: &[ToolSpec]) -> String {
    let mut prompt = String::with_capacity(persona.len() + 512);
    prompt.push_str(persona.trim_end());
    prompt.push_str("\n\n## Context\n");
    prompt.push_str(&format!("- Today is {}.\n", context.date));
    prompt.push_str(&format!("- Channel: {}.\n", context.channel));
    prompt.push_str(&format!("- Conversation: {}.\n", context.conversation_title));
    push_project(&mut prompt, context, tools);
    if tools.is_empty() {
        prompt.push_str("\n## Tools\nNo tools are available in this turn.\n");
    } else {
        prompt.push_str("\n## Tools\n");
        for tool in tools {
            let summary = tool.description.split(". ").next().unwrap_or(&tool.description);
            prompt.push_str(&format!("- {}: {}\n", tool.name, summary.trim_end_matches('.')));
        }
    }
    if !context.unavailable.is_empty() {
        prompt.push_str(
            "\n## Unavailable here
If the user asks for one of these, say that it is unavailable and why; do not promise it.\n",
        );
        for (what, why) in context.unavailable {
            prompt.push_str(&format!("- {what}: {why}\n"));
        }
    }
    prompt
}

/// The conversation's workspace: a line of the context list, or a short section
/// naming it (or the ones to choose from) and what a code run there does.
fn push_project(prompt: &mut String, context: &PromptContext<'_>, tools: &[ToolSpec]) {
    let (scope, unavailable) = (&context.workspace, context.unavailable);
    let prefix = if context.run_branch_prefix.is_empty() { "valor/" } else { context.run_branch_prefix };
    let offered = |name: &str| tools.iter().any(|tool| tool.name == name);
    let (delegate, read) = (DelegateCodeTask::NAME, ProjectContext::NAME);
    let facts: &[WorkspaceFacts] = match scope {
        ProjectScope::NoneConfigured => {
            prompt.push_str("- No project workspace is configured, so there is no code work here.\n");
            return;
        }
        ProjectScope::NotLinked => {
            prompt.push_str("- No project workspace is linked to this chat, so there is no code work here.\n");
            return;
        }
        ProjectScope::NotAllowed { name } => {
            prompt.push_str(&format!(
                "- This chat's workspace {name:?} is not open to the sender (not in its `allowed_users`), so \
                 there is no code work for them here.\n"
            ));
            return;
        }
        ProjectScope::Linked(facts) => {
            let branch = facts.default_branch.as_deref().map(|b| format!(", default branch {b}")).unwrap_or_default();
            prompt.push_str(&format!(
                "\n## Project workspace\nThis chat works in workspace {:?} at {}{branch}.\n",
                facts.name, facts.path
            ));
            std::slice::from_ref(facts)
        }
        ProjectScope::Choose(facts) if facts.is_empty() => {
            prompt.push_str("- None of the configured project workspaces is open to the sender.\n");
            return;
        }
        ProjectScope::Choose(facts) => {
            prompt.push_str(
                "\n## Project workspaces\nThis conversation is not tied to one workspace: a code task must name \
                 its `workspace` (ask the user when it is unclear). Configured: ",
            );
            let listed: Vec<String> =
                facts.iter().take(MAX_LISTED_WORKSPACES).map(|w| format!("{}: {}", w.name, w.path)).collect();
            prompt.push_str(&listed.join("; "));
            if facts.len() > MAX_LISTED_WORKSPACES {
                prompt.push_str(&format!("; and {} more", facts.len() - MAX_LISTED_WORKSPACES));
            }
            prompt.push_str(".\n");
            facts
        }
    };
    debug_assert!(!facts.is_empty());
    if offered(read) {
        prompt.push_str(&format!("- `{read}` reads a workspace (README, CLAUDE.md, git log and status).\n"));
    }
    if offered(delegate) {
        prompt.push_str(&format!(
            "- Code work goes to `{delegate}`: it runs in the background and its outcome comes back into this \
             conversation. Each run works on its own git branch `{prefix}<job>-<slug>` in its own worktree and \
             ends in a commit there. Merging, discarding or pushing that branch needs the user's approval (a button in \
             the chat); never do or promise those yourself.\n"
        ));
    } else if unavailable.iter().any(|(what, _)| what.contains(delegate)) {
        prompt.push_str("- Code work cannot run here right now (see \"Unavailable here\").\n");
    } else {
        prompt.push_str(&format!("- Code work (`{delegate}`) is not open to the sender.\n"));
    }
}

/// Today's date in the form the prompt uses.
pub fn today() -> String {
    chrono::Utc::now().format("%A, %-d %B %Y").to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tool(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: "Search things. More detail.".into(),
            input_schema: serde_json::json!({}),
        }
    }

    #[test]
    fn prompt_contains_persona_date_channel_and_tools() {
        let context = PromptContext {
            channel: "web",
            conversation_title: "launch",
            workspace: ProjectScope::NoneConfigured,
            run_branch_prefix: "",
            date: "Thursday, 26 November 2026".into(),
            unavailable: &[],
        };
        let prompt = system_prompt(DEFAULT_PERSONA, &context, &[tool("search_history")]);
        assert!(prompt.starts_with("# Valor"));
        assert!(prompt.contains("Today is Thursday, 26 November 2026."));
        assert!(prompt.contains("Channel: web."));
        assert!(prompt.contains("- search_history: Search things\n"));
        assert!(prompt.contains("No project workspace is configured"));
    }

    fn shop(branch: Option<&str>) -> WorkspaceFacts {
        WorkspaceFacts { name: "shop".into(), path: "/srv/shop".into(), default_branch: branch.map(str::to_owned) }
    }

    /// The prompt for `scope` with these tools offered and this unavailable list.
    fn prompt_for(scope: ProjectScope, tools: &[&str], unavailable: &[(&'static str, String)]) -> String {
        let context = PromptContext {
            channel: "telegram",
            conversation_title: "dev",
            workspace: scope,
            run_branch_prefix: "valor/",
            date: "Thursday, 3 December 2026".into(),
            unavailable,
        };
        let tools: Vec<ToolSpec> = tools.iter().map(|name| tool(name)).collect();
        let full = system_prompt("# Valor", &context, &tools);
        // Only what this module adds: from the context section up to the tool list.
        let start = full.find("## Context").unwrap();
        let end = full.find("\n## Tools").unwrap();
        full[start..end].to_owned()
    }

    const CODE_TOOLS: &[&str] = &["delegate_code_task", "project_context"];

    #[test]
    fn a_linked_workspace_is_named_with_its_path_branch_and_what_a_run_does() {
        let prompt = prompt_for(ProjectScope::Linked(shop(Some("main"))), CODE_TOOLS, &[]);
        assert!(prompt.contains("This chat works in workspace \"shop\" at /srv/shop, default branch main.\n"));
        for expected in ["`project_context` reads", "`delegate_code_task`", "`valor/<job>-<slug>`", "ends in a commit"]
        {
            assert!(prompt.contains(expected), "{expected:?} missing:\n{prompt}");
        }
        assert!(prompt.contains("Merging, discarding or pushing that branch needs the user's approval"), "{prompt}");
        assert!(!prompt.contains("No project workspace"), "{prompt}");
        // Unknown branch: no guess.
        let prompt = prompt_for(ProjectScope::Linked(shop(None)), CODE_TOOLS, &[]);
        assert!(prompt.contains("workspace \"shop\" at /srv/shop.\n") && !prompt.contains("branch main"), "{prompt}");
    }

    #[test]
    fn code_work_is_described_only_when_offered_and_otherwise_says_why_not() {
        let off = [("code work (delegate_code_task)", "Claude Code is not installed".to_owned())];
        let prompt = prompt_for(ProjectScope::Linked(shop(Some("main"))), &["project_context"], &off);
        assert!(prompt.contains("Code work cannot run here right now"), "{prompt}");
        assert!(!prompt.contains("valor/<job>-<slug>"), "{prompt}");
        let prompt = prompt_for(ProjectScope::Linked(shop(Some("main"))), &["project_context"], &[]);
        assert!(prompt.contains("Code work (`delegate_code_task`) is not open to the sender"), "{prompt}");
    }

    #[test]
    fn a_conversation_without_a_chat_lists_the_workspaces_it_must_name_and_bounds_the_list() {
        let blog = WorkspaceFacts { name: "blog".into(), path: "/srv/blog".into(), default_branch: None };
        let prompt = prompt_for(ProjectScope::Choose(vec![shop(None), blog]), CODE_TOOLS, &[]);
        assert!(prompt.contains("a code task must name its `workspace`"), "{prompt}");
        assert!(prompt.contains("Configured: shop: /srv/shop; blog: /srv/blog.\n"), "{prompt}");
        let many: Vec<WorkspaceFacts> = (0..25)
            .map(|n| WorkspaceFacts { name: format!("w{n}"), path: format!("/srv/w{n}"), default_branch: None })
            .collect();
        let prompt = prompt_for(ProjectScope::Choose(many), CODE_TOOLS, &[]);
        assert!(prompt.contains("w19: /srv/w19; and 5 more.") && !prompt.contains("w20:"), "{prompt}");
        let prompt = prompt_for(ProjectScope::Choose(Vec::new()), CODE_TOOLS, &[]);
        assert!(prompt.contains("None of the configured project workspaces is open to the sender"), "{prompt}");
    }

    #[test]
    fn a_chat_without_a_workspace_or_access_gets_one_line_and_no_code_work() {
        let cases = [
            (ProjectScope::NotLinked, "No project workspace is linked to this chat"),
            (ProjectScope::NotAllowed { name: "shop".into() }, "workspace \"shop\" is not open to the sender"),
        ];
        for (scope, expected) in cases {
            let prompt = prompt_for(scope, CODE_TOOLS, &[]);
            assert!(prompt.contains(expected), "{prompt}");
            assert!(!prompt.contains("## Project workspace"), "{prompt}");
        }
    }

    #[test]
    fn a_missing_persona_file_is_an_error_naming_the_file() {
        let error = load_persona(Some(Path::new("/nonexistent/persona.md"))).err().map(|e| format!("{e:#}"));
        assert!(error.is_some_and(|e| e.contains("/nonexistent/persona.md")));
    }
}
