//! `valor workspace list|init` through the real binary, and the installed
//! subagents loaded by the real Claude Code CLI (npm
//! `@anthropic-ai/claude-code`, talking to aimock): its `system/init` event
//! lists every template as an agent, and the user's own file is untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Aimock, repo_root};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_valor");
const TEMPLATES: [&str; 6] = ["stripe", "sentry", "github", "render", "notion", "linear"];

/// Run `valor --config <dir>/valor.toml args…` with a clean environment; (exit ok, stdout, stderr).
fn valor(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN)
        .arg("--config")
        .arg(dir.join("valor.toml"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

fn write_config(dir: &Path, shop: &Path, missing: &Path) {
    let config = format!(
        "data_dir = {data:?}\n\n[[workspace]]\nname = \"shop\"\npath = {shop:?}\nchats = [10, 11]\n\
         allowed_users = [1, \"@alice\"]\n\n[[workspace]]\nname = \"gone\"\npath = {missing:?}\n",
        data = dir.join("data").display().to_string(),
        shop = shop.display().to_string(),
        missing = missing.display().to_string(),
    );
    std::fs::write(dir.join("valor.toml"), config).unwrap();
}

#[tokio::test]
async fn init_installs_subagents_that_claude_code_loads_and_keeps_the_users_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let shop = dir.path().join("shop");
    let agents = shop.join(".claude/agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(agents.join("github.md"), "---\nname: github\ndescription: mine\nmodel: haiku\n---\nMy own.\n")
        .unwrap();
    write_config(dir.path(), &shop, &dir.path().join("missing"));

    let (ok, listed, stderr) = valor(dir.path(), &["workspace", "list"]);
    assert!(ok, "{stderr}");
    assert!(listed.contains("shop\n") && listed.contains("chats: 10, 11"), "{listed}");
    assert!(listed.contains("users: 1, @alice"), "{listed}");
    assert!(listed.contains("subagents 1/6: github"), "{listed}");
    assert!(listed.contains("gone\n") && listed.contains("NOT USABLE"), "{listed}");

    let (ok, report, stderr) = valor(dir.path(), &["workspace", "init", "shop"]);
    assert!(ok, "{stderr}");
    assert!(report.starts_with("workspace shop: 5 subagent(s) installed, 1 skipped"), "{report}");
    assert!(report.contains("skipped") && report.contains("github.md (a file with this name exists"), "{report}");
    assert_eq!(
        std::fs::read_to_string(agents.join("github.md")).unwrap(),
        "---\nname: github\ndescription: mine\nmodel: haiku\n---\nMy own.\n"
    );
    for name in TEMPLATES {
        assert!(agents.join(format!("{name}.md")).is_file(), "{name}.md missing");
    }
    let stripe = std::fs::read_to_string(agents.join("stripe.md")).unwrap();
    assert!(stripe.starts_with("---\nname: stripe\n") && stripe.contains("\nmodel: sonnet\n"), "{stripe}");
    let (_, listed, _) = valor(dir.path(), &["workspace", "list"]);
    assert!(listed.contains("subagents 6/6"), "{listed}");

    // Running it again changes nothing.
    let (ok, again, _) = valor(dir.path(), &["workspace", "init", "shop"]);
    assert!(ok && again.starts_with("workspace shop: 0 subagent(s) installed, 6 skipped"), "{again}");

    // The real Claude Code CLI loads them as project agents.
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "which agents"}, "response": {"content": "listed"}}])).await;
    let claude = repo_root().join("node_modules/.bin/claude");
    assert!(claude.exists(), "Claude Code is not installed: run `npm ci` (scripts/test.sh does)");
    let home = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(&claude)
        .args(["--output-format", "stream-json", "--verbose", "-p", "--", "which agents"])
        .current_dir(&shop)
        .env("HOME", home.path())
        .env("ANTHROPIC_BASE_URL", &mock.url)
        .env("ANTHROPIC_API_KEY", "test")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(90), output).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let init: Value = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["type"] == "system" && event["subtype"] == "init")
        .unwrap_or_else(|| panic!("no system/init event: {stdout}"));
    let loaded: Vec<&str> = init["agents"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for name in TEMPLATES {
        assert!(loaded.contains(&name), "{name} not loaded by Claude Code: {loaded:?}");
    }
}

#[test]
fn init_refuses_an_unknown_or_unusable_workspace_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let shop = dir.path().join("shop");
    std::fs::create_dir_all(&shop).unwrap();
    write_config(dir.path(), &shop, &dir.path().join("missing"));
    let (ok, _, stderr) = valor(dir.path(), &["workspace", "init", "nope"]);
    assert!(!ok);
    assert!(stderr.contains("there is no workspace named \"nope\""), "{stderr}");
    let (ok, _, stderr) = valor(dir.path(), &["workspace", "init", "gone"]);
    assert!(!ok);
    assert!(stderr.contains("workspace \"gone\" is not usable"), "{stderr}");
    assert!(!dir.path().join("missing").exists(), "nothing was created for an unusable workspace");

    // A `.claude` symlinked out of the workspace is refused; nothing is written outside.
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, shop.join(".claude")).unwrap();
    let (ok, _, stderr) = valor(dir.path(), &["workspace", "init", "shop"]);
    assert!(!ok);
    assert!(stderr.contains(".claude/agents is refused"), "{stderr}");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("valor.toml"), "").unwrap();
    let (ok, listed, _) = valor(empty.path(), &["workspace", "list"]);
    assert!(ok && listed.contains("no workspaces configured"), "{listed}");
}

#[tokio::test]
async fn runs_lists_a_workspaces_branches_with_their_state() {
    let dir = tempfile::tempdir().unwrap();
    let shop = dir.path().join("shop");
    std::fs::create_dir_all(&shop).unwrap();
    write_config(dir.path(), &shop, &dir.path().join("missing"));
    let (ok, empty, stderr) = valor(dir.path(), &["workspace", "runs", "shop"]);
    assert!(ok, "{stderr}");
    assert!(empty.contains("no run branches yet"), "{empty}");

    let store = valor::storage::Store::open(&dir.path().join("data/valor.db")).await.unwrap();
    let new = |job_id: i64, branch: &str| valor::storage::NewRunBranch {
        workspace: "shop".into(),
        conversation_id: "c".into(),
        branch: branch.into(),
        worktree: dir.path().join(format!("data/worktrees/shop/{job_id}")).display().to_string(),
        base_branch: "main".into(),
        base_commit: "0123456789abcdef".into(),
        job_id,
    };
    let first = store.create_run_branch(&new(1, "valor/1-add-hello")).await.unwrap();
    store.release_run_branch(first.id, 1, "fedcba9876543210ffff").await.unwrap();
    store.begin_branch_action(first.id, valor::storage::BranchAction::Merge).await.unwrap().unwrap();
    let end = valor::storage::BranchActionEnd {
        state: valor::storage::RunBranchState::Merged,
        note: "Merged `valor/1-add-hello` into `main` (fast-forward).",
        head_commit: None,
        pushed_to: None,
        pull_request: None,
        worktree_removed: false,
    };
    store.end_branch_action(first.id, end).await.unwrap();
    store.create_run_branch(&new(2, "valor/2-fix-tests")).await.unwrap();
    store.close().await;

    let (ok, listed, stderr) = valor(dir.path(), &["workspace", "runs", "shop"]);
    assert!(ok, "{stderr}");
    let expected = [
        "workspace shop: 2 run branch(es), newest first",
        "#2 valor/2-fix-tests  open (job #2 working)",
        "#1 valor/1-add-hello  merged",
        "base main · head fedcba987654 · last job #1",
        "last action: Merged valor/1-add-hello into main (fast-forward).",
    ];
    for line in expected {
        assert!(listed.contains(line), "{line:?} missing from:\n{listed}");
    }
    assert!(listed.find("#2 ").unwrap() < listed.find("#1 ").unwrap(), "{listed}");
    let (ok, _, stderr) = valor(dir.path(), &["workspace", "runs", "nope"]);
    assert!(!ok && stderr.contains("no workspace named \"nope\""), "{stderr}");
}
