//! Architecture invariants that a compiler does not check, enforced by
//! reading the sources: modules depend only "downwards", and only `config`
//! reads the process environment; only `workspace::child` starts programs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules it may use.
/// Direction: config/monitoring ← storage, llm ← agent ← channels, http, mcp ← app ← cli.
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("config", &[][..]),
        ("markdown", &[][..]),
        ("monitoring", &["config"][..]),
        ("storage", &["config", "monitoring"][..]),
        ("llm", &["config", "monitoring"][..]),
        ("workspace", &["config", "monitoring", "storage"][..]),
        ("agent", &["config", "monitoring", "storage", "llm", "workspace"][..]),
        ("channels", &["config", "monitoring", "storage", "llm", "agent", "workspace", "markdown"][..]),
        ("http", &["config", "monitoring", "storage", "llm", "agent", "workspace", "markdown"][..]),
        ("mcp", &["config", "monitoring", "storage", "llm", "agent", "workspace"][..]),
        ("jobs", &["config", "monitoring", "storage", "llm", "agent", "workspace"][..]),
        (
            "app",
            &[
                "config",
                "monitoring",
                "storage",
                "llm",
                "agent",
                "channels",
                "http",
                "mcp",
                "jobs",
                "workspace",
                "markdown",
            ][..],
        ),
        ("cli", &[][..]),
    ])
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under src/ belongs to.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?.to_owned();
    let name = first.trim_end_matches(".rs").to_owned();
    if name == "lib" || name == "main" { None } else { Some(name) }
}

/// Every `crate::<module>` mentioned in code (comments stripped), including
/// grouped imports like `use crate::{a, b::c}`.
fn crate_references(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .map(|line| match line.find("//") {
            Some(index) => &line[..index],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(index) = rest.find("crate::") {
        rest = &rest[index + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            found.push(name);
        }
    }
    found
}

#[test]
fn modules_only_depend_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed = allowed();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        let permitted = allowed.get(module.as_str()).unwrap_or_else(|| {
            panic!("module `{module}` is not in the dependency table of tests/architecture.rs: add it there and to ARCHITECTURE.md")
        });
        for used in crate_references(&std::fs::read_to_string(file).unwrap()) {
            if used != module && allowed.contains_key(used.as_str()) && !permitted.contains(&used.as_str()) {
                violations.push(format!("{} uses crate::{used}", file.display()));
            }
        }
    }
    assert!(violations.is_empty(), "dependency direction violated:\n{}", violations.join("\n"));
}

#[test]
fn only_config_reads_the_environment() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files {
        if file.starts_with(src.join("config")) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for needle in ["env::var(", "env::vars(", "std::env::var"] {
            assert!(!text.contains(needle), "{} reads the environment ({needle}); go through config", file.display());
        }
    }
}

#[test]
fn only_workspace_child_starts_programs() {
    // Every child process gets its environment from one place, so none can
    // inherit valor's secrets by accident.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files {
        if file == src.join("workspace/child.rs") || file.to_string_lossy().ends_with("_tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let production = text.split("#[cfg(test)]").next().unwrap_or_default();
        assert!(
            !production.contains("Command::new("),
            "{} starts a program itself; use workspace::child (clean environment)",
            file.display()
        );
    }
}

#[test]
fn the_reference_scanner_sees_grouped_and_plain_imports() {
    let refs =
        crate_references("use crate::{agent::Agent, http};\nlet x = crate::storage::Store::open(p); // crate::app");
    assert_eq!(refs, ["agent", "http", "storage"]);
}
