//! One workspace's path checks: every path a tool or a Claude Code run
//! touches is resolved here, against the workspace's canonical root.
//!
//! Invariants: a resolved path is canonical up to its deepest existing
//! ancestor (so symlinks — in the path or in its parents — are followed
//! before the check), the rest are plain names (no `..`, no symlinks that
//! point nowhere); it lies inside the root component-wise (`/srv/shop-evil`
//! is not inside `/srv/shop`); it is not inside a forbidden location (other
//! workspaces' roots nested here, valor's data directory) and has no
//! sensitive component (`.ssh`, `.gnupg`, …). Anything else is refused with
//! a reason; nothing here guesses a default directory.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

/// Longest path (in bytes) accepted before resolution.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest single name accepted (the usual file-system limit).
pub const MAX_NAME_BYTES: usize = 255;

/// Names that are never reachable, wherever they appear (credentials and keys).
const SENSITIVE_NAMES: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".netrc",
    ".pgpass",
    ".git-credentials",
    ".password-store",
    ".npmrc",
    ".pypirc",
    ".yarnrc.yml",
    ".env",
    ".vault-token",
    ".oci",
    ".terraform.d",
    ".gem",
    ".m2",
    ".gradle",
];

/// Sensitive only under a given parent: `(parent, name)`, e.g. `.config/gh`
/// (GitHub CLI tokens) but not every `gh` folder.
const SENSITIVE_UNDER: &[(&str, &str)] = &[
    (".config", "gh"),
    (".config", "gcloud"),
    (".config", "hub"),
    (".config", "doctl"),
    (".config", "op"),
    (".config", "rclone"),
    (".config", "git"),
    (".cargo", "credentials"),
    (".cargo", "credentials.toml"),
];

/// System locations a workspace root may never be, contain or lie inside.
const SYSTEM_ROOTS: &[&str] = &["/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/var/run", "/run"];

/// Characters that look like `.` or `/` but are not (refused in names so a
/// reader is never fooled about where a path goes).
const LOOKALIKES: &[char] = &[
    '\u{2024}', '\u{2025}', '\u{2026}', '\u{FF0E}', '\u{FE52}', '\u{2215}', '\u{2044}', '\u{FF0F}', '\u{29F8}',
    '\u{2571}', '\u{FF3C}', '\u{29F5}', '\u{FE68}',
];

/// Why a path was refused (the text is safe to show to a user or a model).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefusal {
    #[error("the path is empty")]
    Empty,
    #[error("the path contains a NUL byte or a control character")]
    ControlCharacter,
    #[error("the path is too long")]
    TooLong,
    #[error("the path contains a character that imitates `.` or `/`")]
    Lookalike,
    #[error("the path leaves the workspace through `..`")]
    ParentEscape,
    #[error("the path is outside the workspace")]
    Outside,
    #[error("the path goes through a symlink that points nowhere")]
    DanglingSymlink,
    #[error("the path reaches a sensitive location ({0})")]
    Sensitive(String),
    #[error("the path belongs to another workspace or to valor's own data")]
    Forbidden,
    #[error("the path could not be checked: {0}")]
    Unreadable(String),
    #[error("no file at that path")]
    Missing,
    #[error("the path is not a regular file")]
    NotAFile,
    #[error("the file changed while it was being opened")]
    Changed,
    #[error("the file has other hard links, so its content may live outside the workspace")]
    HardLinked,
}

/// A workspace with a checked, canonical root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub name: String,
    /// Canonical (symlinks resolved) and checked at construction.
    root: PathBuf,
    /// Canonical locations inside no workspace may reach (other roots, the data dir).
    forbidden: Vec<PathBuf>,
}

impl Workspace {
    /// Canonicalise `root` and check it is a directory in an acceptable place.
    /// `forbidden` are locations no path may reach (they are canonicalised when they exist).
    pub fn open(name: &str, root: &Path, forbidden: &[PathBuf]) -> Result<Workspace, PathRefusal> {
        let canonical = std::fs::canonicalize(root)
            .map_err(|error| PathRefusal::Unreadable(format!("workspace directory {}: {error}", root.display())))?;
        if !canonical.is_dir() {
            return Err(PathRefusal::Unreadable(format!("{} is not a directory", canonical.display())));
        }
        if canonical.parent().is_none() {
            return Err(PathRefusal::Sensitive("/".into()));
        }
        for system in SYSTEM_ROOTS {
            let system = Path::new(system);
            if canonical.starts_with(system) || system.starts_with(&canonical) {
                return Err(PathRefusal::Sensitive(system.display().to_string()));
            }
        }
        if let Some(name) = sensitive_component(&canonical) {
            return Err(PathRefusal::Sensitive(name));
        }
        let forbidden: Vec<PathBuf> = forbidden
            .iter()
            .map(|path| std::fs::canonicalize(path).unwrap_or_else(|_| path.clone()))
            .filter(|path| path != &canonical)
            .collect();
        // A root inside another workspace or inside valor's data is refused outright.
        if forbidden.iter().any(|path| canonical.starts_with(path)) {
            return Err(PathRefusal::Forbidden);
        }
        Ok(Workspace { name: name.to_owned(), root: canonical, forbidden })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Resolve `requested` (relative to the root, or absolute) to a checked path inside the workspace.
    pub fn resolve(&self, requested: &str) -> Result<PathBuf, PathRefusal> {
        check_text(requested)?;
        let requested = Path::new(requested);
        let candidate = if requested.is_absolute() { requested.to_path_buf() } else { self.root.join(requested) };
        let resolved = resolve_existing_prefix(&candidate)?;
        if !resolved.starts_with(&self.root) {
            return Err(PathRefusal::Outside);
        }
        if self.forbidden.iter().any(|path| resolved.starts_with(path)) {
            return Err(PathRefusal::Forbidden);
        }
        if let Some(name) = sensitive_component(resolved.strip_prefix(&self.root).unwrap_or(&resolved)) {
            return Err(PathRefusal::Sensitive(name));
        }
        Ok(resolved)
    }

    /// `path` shown relative to the root when it is inside (for progress lines).
    pub fn display_relative(&self, path: &str) -> String {
        Path::new(path).strip_prefix(&self.root).map_or_else(|_| path.to_owned(), |p| p.display().to_string())
    }
}

/// Checks on the text itself, before touching the file system.
fn check_text(requested: &str) -> Result<(), PathRefusal> {
    if requested.trim().is_empty() {
        return Err(PathRefusal::Empty);
    }
    if requested.chars().any(char::is_control) {
        return Err(PathRefusal::ControlCharacter);
    }
    if requested.len() > MAX_PATH_BYTES || requested.split('/').any(|name| name.len() > MAX_NAME_BYTES) {
        return Err(PathRefusal::TooLong);
    }
    if requested.chars().any(|c| LOOKALIKES.contains(&c)) {
        return Err(PathRefusal::Lookalike);
    }
    Ok(())
}

/// Canonicalise the deepest existing ancestor of `candidate` and append the
/// rest, which must be plain names that do not exist yet.
fn resolve_existing_prefix(candidate: &Path) -> Result<PathBuf, PathRefusal> {
    let mut existing = candidate.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    let canonical = loop {
        match std::fs::canonicalize(&existing) {
            Ok(canonical) => break canonical,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let Some(last) = existing.components().next_back() else {
                    return Err(PathRefusal::Outside);
                };
                match last {
                    Component::Normal(name) => rest.push(name.to_owned()),
                    Component::CurDir => {}
                    Component::ParentDir => return Err(PathRefusal::ParentEscape),
                    Component::RootDir | Component::Prefix(_) => return Err(PathRefusal::Outside),
                }
                if !existing.pop() {
                    return Err(PathRefusal::Outside);
                }
            }
            Err(error) => return Err(PathRefusal::Unreadable(error.to_string())),
        }
    };
    let mut resolved = canonical;
    for name in rest.iter().rev() {
        resolved.push(name);
        // It did not canonicalise, so if it exists at all it is a symlink to nowhere.
        if std::fs::symlink_metadata(&resolved).is_ok() {
            return Err(PathRefusal::DanglingSymlink);
        }
    }
    Ok(resolved)
}

/// The first sensitive name among the path's components (`parent/name` for
/// a name that is sensitive only under its parent).
fn sensitive_component(path: &Path) -> Option<String> {
    let mut parent: Option<&OsStr> = None;
    for component in path.components() {
        let Component::Normal(name) = component else {
            parent = None;
            continue;
        };
        if is_sensitive(name) {
            return Some(name.to_string_lossy().into_owned());
        }
        if let Some(parent) = parent.and_then(OsStr::to_str)
            && let Some(name) = name.to_str()
            && SENSITIVE_UNDER.iter().any(|(p, n)| p.eq_ignore_ascii_case(parent) && n.eq_ignore_ascii_case(name))
        {
            return Some(format!("{parent}/{name}"));
        }
        parent = Some(name);
    }
    None
}

/// Example files that only document which variables exist.
const ENV_EXAMPLES: &[&str] = &["example", "sample", "template", "dist"];

fn is_sensitive(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else { return false };
    if SENSITIVE_NAMES.iter().any(|s| s.eq_ignore_ascii_case(name)) {
        return true;
    }
    // `.env.local`, `.env.production`: secrets too; `.env.example` is not.
    let lower = name.to_ascii_lowercase();
    lower.strip_prefix(".env.").is_some_and(|suffix| !ENV_EXAMPLES.contains(&suffix))
}

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;
