//! Daydream phase 3: what a workspace looks like this week — git activity of
//! the last 7 days (`git log`, read-only through `workspace::child`: argv
//! only, no shell, nothing in the repository can start a program), languages by file
//! extension, stack markers, TODO/FIXME counts and the test layout.
//!
//! Invariants: scanning is read-only and bounded (at most `MAX_FILES` files,
//! files over `MAX_FILE_BYTES` are not read); `.git`, `target`,
//! `node_modules` and hidden directories are skipped; a failed `git` call is
//! reported in the context, never an error of the session.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

const MAX_FILES: usize = 20_000;
const MAX_FILE_BYTES: u64 = 1 << 20;
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", "dist", "build", "__pycache__", "vendor"];

/// The facts gathered about one workspace.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkspaceContext {
    pub name: String,
    pub path: PathBuf,
    /// Commits of the last 7 days.
    pub commits: usize,
    pub authors: Vec<String>,
    /// Newest first, at most 10 (`hash subject`).
    pub recent_subjects: Vec<String>,
    /// Why git activity is missing, if it is.
    pub git_error: Option<String>,
    /// Files per language, most first.
    pub languages: Vec<(String, usize)>,
    /// Build/stack markers found at the top level (e.g. "Cargo (Rust)").
    pub stack: Vec<String>,
    pub todo_count: usize,
    pub fixme_count: usize,
    /// Up to 10 `path:line: text` examples.
    pub todo_examples: Vec<String>,
    pub test_files: usize,
    /// Directories holding tests (relative), at most 10.
    pub test_dirs: Vec<String>,
    pub files_scanned: usize,
}

/// Gather the context of one workspace.
pub async fn gather(name: &str, path: &Path, child_env: &crate::config::ChildEnv) -> WorkspaceContext {
    let mut context = WorkspaceContext { name: name.to_owned(), path: path.to_owned(), ..Default::default() };
    match git_activity(path, child_env).await {
        Ok((commits, authors, subjects)) => {
            context.commits = commits;
            context.authors = authors;
            context.recent_subjects = subjects;
        }
        Err(error) => context.git_error = Some(error),
    }
    let root = path.to_owned();
    match tokio::task::spawn_blocking(move || scan_files(&root)).await {
        Ok(scan) => scan.apply(&mut context),
        Err(error) => tracing::warn!(workspace = name, "scanning the workspace files failed: {error}"),
    }
    context
}

/// `git log` may take this long on a big repository.
const GIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

async fn git_activity(
    path: &Path,
    child_env: &crate::config::ChildEnv,
) -> Result<(usize, Vec<String>, Vec<String>), String> {
    let args = ["log", "--since=7 days ago", "--no-merges", "--pretty=format:%h%x09%an%x09%s"];
    let text = crate::workspace::child::read_only_git(path, child_env, &args, GIT_LIMIT).await?;
    let mut commits = 0;
    let mut authors = std::collections::BTreeSet::new();
    let mut subjects = Vec::new();
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        commits += 1;
        let mut parts = line.splitn(3, '\t');
        let (hash, author, subject) =
            (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        authors.insert(author.to_owned());
        if subjects.len() < 10 {
            subjects.push(format!("{hash} {subject}"));
        }
    }
    Ok((commits, authors.into_iter().collect(), subjects))
}

#[derive(Debug, Default)]
struct FileScan {
    languages: BTreeMap<String, usize>,
    stack: Vec<String>,
    todo: usize,
    fixme: usize,
    todo_examples: Vec<String>,
    test_files: usize,
    test_dirs: std::collections::BTreeSet<String>,
    files: usize,
}

impl FileScan {
    fn apply(self, context: &mut WorkspaceContext) {
        let mut languages: Vec<(String, usize)> = self.languages.into_iter().collect();
        languages.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        context.languages = languages;
        context.stack = self.stack;
        context.todo_count = self.todo;
        context.fixme_count = self.fixme;
        context.todo_examples = self.todo_examples;
        context.test_files = self.test_files;
        context.test_dirs = self.test_dirs.into_iter().take(10).collect();
        context.files_scanned = self.files;
    }
}

/// The language a file extension stands for, if it is source code.
pub fn language_of(extension: &str) -> Option<&'static str> {
    Some(match extension {
        "rs" => "Rust",
        "py" => "Python",
        "js" | "mjs" | "cjs" => "JavaScript",
        "ts" | "tsx" => "TypeScript",
        "go" => "Go",
        "java" => "Java",
        "kt" => "Kotlin",
        "rb" => "Ruby",
        "c" | "h" => "C",
        "cc" | "cpp" | "hpp" => "C++",
        "cs" => "C#",
        "swift" => "Swift",
        "sh" => "Shell",
        "sql" => "SQL",
        "html" => "HTML",
        "css" => "CSS",
        "md" => "Markdown",
        "toml" | "yaml" | "yml" | "json" => "Config",
        _ => return None,
    })
}

const STACK_MARKERS: &[(&str, &str)] = &[
    ("Cargo.toml", "Cargo (Rust)"),
    ("package.json", "npm (Node.js)"),
    ("pyproject.toml", "Python project (pyproject)"),
    ("requirements.txt", "pip requirements"),
    ("go.mod", "Go modules"),
    ("pom.xml", "Maven"),
    ("build.gradle", "Gradle"),
    ("Gemfile", "Bundler (Ruby)"),
    ("Dockerfile", "Docker"),
    ("Makefile", "Make"),
];

fn is_test_file(relative: &Path) -> bool {
    let in_test_dir = relative
        .components()
        .any(|part| matches!(part.as_os_str().to_str(), Some("tests" | "test" | "__tests__" | "spec" | "specs")));
    let name = relative.file_name().and_then(|name| name.to_str()).unwrap_or("");
    in_test_dir
        || name.contains("_test.")
        || name.starts_with("test_")
        || name.contains(".test.")
        || name.contains(".spec.")
}

fn scan_files(root: &Path) -> FileScan {
    let mut scan = FileScan::default();
    for (marker, label) in STACK_MARKERS {
        if root.join(marker).exists() {
            scan.stack.push((*label).to_owned());
        }
    }
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                if !name.starts_with('.') && !SKIPPED_DIRS.contains(&name.as_str()) {
                    pending.push(path);
                }
                continue;
            }
            if !kind.is_file() || scan.files >= MAX_FILES {
                continue;
            }
            scan.files += 1;
            scan_one_file(root, &path, &mut scan);
        }
    }
    scan
}

fn scan_one_file(root: &Path, path: &Path, scan: &mut FileScan) {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let extension = path.extension().and_then(|ext| ext.to_str()).unwrap_or("").to_ascii_lowercase();
    let Some(language) = language_of(&extension) else { return };
    *scan.languages.entry(language.to_owned()).or_default() += 1;
    if is_test_file(relative) {
        scan.test_files += 1;
        if let Some(parent) = relative.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            scan.test_dirs.insert(parent.display().to_string());
        }
    }
    if std::fs::metadata(path).map_or(true, |meta| meta.len() > MAX_FILE_BYTES) {
        return;
    }
    let Ok(text) = std::fs::read_to_string(path) else { return };
    for (number, line) in text.lines().enumerate() {
        let (todo, fixme) = (line.contains("TODO"), line.contains("FIXME"));
        scan.todo += usize::from(todo);
        scan.fixme += usize::from(fixme);
        if (todo || fixme) && scan.todo_examples.len() < 10 {
            let snippet: String = line.trim().chars().take(120).collect();
            scan.todo_examples.push(format!("{}:{}: {snippet}", relative.display(), number + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{is_test_file, language_of};
    use std::path::Path;

    #[test]
    fn extensions_map_to_languages_and_test_files_are_recognised() {
        assert_eq!(language_of("rs"), Some("Rust"));
        assert_eq!(language_of("tsx"), Some("TypeScript"));
        assert_eq!(language_of("png"), None);
        for test in ["tests/api.rs", "src/foo_test.go", "test_util.py", "web/app.test.js", "a/spec/x.rb"] {
            assert!(is_test_file(Path::new(test)), "{test}");
        }
        for not_test in ["src/main.rs", "src/testing_helpers.rs"] {
            assert!(!is_test_file(Path::new(not_test)), "{not_test}");
        }
    }
}
