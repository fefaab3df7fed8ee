//! Domain subagents for Claude Code (Stripe, Sentry, GitHub, Render, Notion,
//! Linear): Markdown files with YAML front matter (`name`, `description`,
//! `tools`, `model`) embedded from `agents/`, installed on request into a
//! workspace's `.claude/agents/` (`valor workspace init NAME`), where Claude
//! Code loads them as project subagents.
//!
//! Invariants: every target path goes through `Workspace::resolve` (audit-
//! logged), so a `.claude` symlinked out of the workspace is refused; files
//! are created with `create_new`, so a file already there — the user's own,
//! or a symlink — is never overwritten but reported as skipped.

use std::io::Write as _;
use std::path::PathBuf;

use super::{PathRefusal, Workspace, resolve_audited};
use crate::config::Tier;
use crate::storage::Store;

/// Where Claude Code looks for project subagents, relative to the workspace root.
pub const AGENTS_DIR: &str = ".claude/agents";

/// One embedded template.
#[derive(Debug, Clone, Copy)]
pub struct Template {
    /// File name without `.md`; also the front matter's `name`.
    pub name: &'static str,
    pub text: &'static str,
}

/// Every template, in the order they are installed.
pub const TEMPLATES: [Template; 6] = [
    Template { name: "stripe", text: include_str!("agents/stripe.md") },
    Template { name: "sentry", text: include_str!("agents/sentry.md") },
    Template { name: "github", text: include_str!("agents/github.md") },
    Template { name: "render", text: include_str!("agents/render.md") },
    Template { name: "notion", text: include_str!("agents/notion.md") },
    Template { name: "linear", text: include_str!("agents/linear.md") },
];

/// The front matter of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontMatter {
    pub name: String,
    pub description: String,
    pub tools: Vec<String>,
    /// Claude Code's model alias (`haiku`, `sonnet`, `opus`).
    pub model: String,
}

impl FrontMatter {
    /// valor's tier for the template's model alias.
    pub fn tier(&self) -> Option<Tier> {
        match self.model.as_str() {
            "haiku" => Some(Tier::Small),
            "sonnet" => Some(Tier::Medium),
            "opus" => Some(Tier::Large),
            _ => None,
        }
    }
}

/// Read the `---`-fenced `key: value` front matter (the subset Claude Code's agent files use).
pub fn front_matter(text: &str) -> Result<FrontMatter, String> {
    let rest = text.strip_prefix("---\n").ok_or("the file does not start with `---`")?;
    let (header, _) = rest.split_once("\n---\n").ok_or("the front matter is not closed with `---`")?;
    let mut fields = std::collections::BTreeMap::new();
    for line in header.lines() {
        let (key, value) = line.split_once(':').ok_or_else(|| format!("not `key: value`: {line:?}"))?;
        if fields.insert(key.trim(), value.trim()).is_some() {
            return Err(format!("{} appears twice", key.trim()));
        }
    }
    let field = |key: &str| {
        fields.get(key).filter(|value| !value.is_empty()).map(|value| (*value).to_owned()).ok_or(format!("no {key}"))
    };
    Ok(FrontMatter {
        name: field("name")?,
        description: field("description")?,
        tools: field("tools")?.split(',').map(|tool| tool.trim().to_owned()).collect(),
        model: field("model")?,
    })
}

/// What `install` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InstallReport {
    pub installed: Vec<PathBuf>,
    /// Files left alone, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{path} is refused: {reason}")]
    Refused { path: String, reason: PathRefusal },
    #[error("{path} could not be written: {reason}")]
    Io { path: String, reason: String },
}

/// Install every template into `workspace`'s `.claude/agents/`; existing files are kept.
pub async fn install(store: &Store, actor: &str, workspace: &Workspace) -> Result<InstallReport, InstallError> {
    let dir = checked(store, actor, workspace, AGENTS_DIR).await?;
    std::fs::create_dir_all(&dir).map_err(|error| io_error(AGENTS_DIR, &error))?;
    let mut report = InstallReport::default();
    for template in TEMPLATES {
        let relative = format!("{AGENTS_DIR}/{}.md", template.name);
        // Checked again now that the directory exists (a symlinked `.claude` resolves outside).
        let path = checked(store, actor, workspace, &relative).await?;
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                file.write_all(template.text.as_bytes()).map_err(|error| io_error(&relative, &error))?;
                report.installed.push(path);
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                report.skipped.push((path, "a file with this name exists; it was kept".into()));
            }
            Err(error) => return Err(io_error(&relative, &error)),
        }
    }
    Ok(report)
}

/// Which templates a workspace has (a file of that name in `.claude/agents/`).
pub fn installed_names(workspace: &Workspace) -> Vec<&'static str> {
    TEMPLATES
        .iter()
        .filter(|template| {
            workspace.resolve(&format!("{AGENTS_DIR}/{}.md", template.name)).is_ok_and(|path| path.is_file())
        })
        .map(|template| template.name)
        .collect()
}

async fn checked(store: &Store, actor: &str, workspace: &Workspace, relative: &str) -> Result<PathBuf, InstallError> {
    resolve_audited(store, actor, workspace, relative)
        .await
        .map_err(|reason| InstallError::Refused { path: relative.to_owned(), reason })
}

fn io_error(path: &str, error: &std::io::Error) -> InstallError {
    InstallError::Io { path: path.to_owned(), reason: error.to_string() }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_template_names_itself_and_declares_a_tier_and_its_tools() {
        let mut names = std::collections::BTreeSet::new();
        for template in TEMPLATES {
            let front = front_matter(template.text).unwrap_or_else(|error| panic!("{}: {error}", template.name));
            assert_eq!(front.name, template.name);
            assert!(names.insert(front.name.clone()), "{} twice", front.name);
            assert!(front.tier().is_some(), "{}: model {:?} is no tier", template.name, front.model);
            assert!(front.description.len() > 40, "{}: describe when to use it", template.name);
            assert!(front.tools.contains(&"Read".to_owned()), "{}: {:?}", template.name, front.tools);
            assert!(front.tools.contains(&format!("mcp__{}", template.name)), "{}: {:?}", template.name, front.tools);
            assert!(!front.tools.iter().any(String::is_empty), "{}: empty tool name", template.name);
        }
        // Read-only roles cannot edit files.
        for read_only in ["sentry", "linear"] {
            let template = TEMPLATES.iter().find(|t| t.name == read_only).unwrap();
            let tools = front_matter(template.text).unwrap().tools;
            assert!(!tools.iter().any(|t| t == "Edit" || t == "Write"), "{read_only}: {tools:?}");
        }
    }

    #[test]
    fn malformed_front_matter_is_refused_with_the_reason() {
        let cases = [
            ("no fence", "name: x\n", "does not start"),
            ("open", "---\nname: x\n", "not closed"),
            ("no colon", "---\nname x\n---\n", "not `key: value`"),
            ("twice", "---\nname: a\nname: b\n---\n", "twice"),
            ("missing", "---\nname: a\ndescription: d\ntools: Read\n---\n", "no model"),
            ("empty", "---\nname: a\ndescription:\ntools: Read\nmodel: haiku\n---\n", "no description"),
        ];
        for (label, text, expected) in cases {
            let error = front_matter(text).unwrap_err();
            assert!(error.contains(expected), "{label}: {error}");
        }
    }

    #[tokio::test]
    async fn install_keeps_existing_files_and_refuses_a_symlinked_dot_claude() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("v.db")).await.unwrap();
        let root = dir.path().join("shop");
        std::fs::create_dir_all(root.join(AGENTS_DIR)).unwrap();
        std::fs::write(root.join(AGENTS_DIR).join("github.md"), "mine").unwrap();
        let workspace = Workspace::open("shop", &root, &[]).unwrap();
        let report = install(&store, "test", &workspace).await.unwrap();
        assert_eq!(report.installed.len(), 5);
        assert_eq!(report.skipped.len(), 1);
        assert!(report.skipped[0].0.ends_with("github.md"));
        assert_eq!(std::fs::read_to_string(root.join(AGENTS_DIR).join("github.md")).unwrap(), "mine");
        assert_eq!(installed_names(&workspace).len(), 6);
        let again = install(&store, "test", &workspace).await.unwrap();
        assert_eq!((again.installed.len(), again.skipped.len()), (0, 6));

        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let other = dir.path().join("blog");
        std::fs::create_dir_all(&other).unwrap();
        std::os::unix::fs::symlink(&outside, other.join(".claude")).unwrap();
        let blog = Workspace::open("blog", &other, &[]).unwrap();
        let refused = install(&store, "test", &blog).await.unwrap_err();
        assert!(matches!(refused, InstallError::Refused { .. }), "{refused}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing was written outside");
    }
}
