//! Daydream end to end through the real app: a temporary git repository as
//! the workspace, aimock as the model, the queue drained with
//! `try_execute_next`. All six phases are recorded, the insight file is
//! written, the summary reaches the admin ("daydream") conversation, a stale
//! registered child process is stopped; a busy queue and office hours skip
//! the session with a recorded reason. Also: the `[daydream]` schedule
//! enqueues one job per 6-hour slot, and `valor daydream run` (the real
//! binary) runs a session and prints its phases.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Aimock, TestApp, use_anthropic};
use serde_json::{Value, json};
use valor::config::WorkspaceSettings;
use valor::storage::{ChildProcess, NewJob, wall_clock_ms};

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=Ada", "-c", "user.email=ada@example.com", "-c", "commit.gpgsign=false"])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// A repository with three commits, Rust and Python files, two TODOs, a FIXME and a tests/ folder.
fn sample_repository() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let root = repo.path();
    git(root, &["init", "-q"]);
    std::fs::write(root.join("Cargo.toml"), "[package]\nname = \"demo\"\n").unwrap();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(root.join("src/lib.rs"), "// TODO: split this module\npub fn f() {}\n").unwrap();
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "Start the demo crate"]);
    std::fs::write(root.join("src/util.py"), "# FIXME: handle errors\n# TODO: add typing\n").unwrap();
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "Add a helper script"]);
    std::fs::create_dir_all(root.join("tests")).unwrap();
    std::fs::write(root.join("tests/basic.rs"), "#[test]\nfn works() {}\n").unwrap();
    git(root, &["add", "."]);
    git(root, &["commit", "-q", "-m", "Add the first test"]);
    repo
}

fn job(kind: &str, payload: Value, priority: i64, run_at_ms: Option<i64>) -> NewJob {
    NewJob {
        kind: kind.into(),
        payload,
        priority,
        run_at_ms,
        max_attempts: 1,
        conversation_id: None,
        idempotency_key: None,
    }
}

fn workspace(repo: &Path) -> WorkspaceSettings {
    WorkspaceSettings {
        name: "demo".into(),
        path: repo.to_path_buf(),
        chats: Vec::new(),
        notion_database: None,
        allowed_users: Vec::new(),
        default_branch: None,
    }
}

async fn run_daydream_job(app: &TestApp, trigger: &str) -> Value {
    let store = app.store().await;
    store.enqueue_job(job("daydream", json!({"trigger": trigger}), 100, None), wall_clock_ms()).await.unwrap();
    let outcome = app.job_worker("test").try_execute_next().await.unwrap().expect("the daydream job did not run");
    assert_eq!(outcome.kind, "daydream");
    let sessions = app.get_json("/api/daydream/sessions").await;
    sessions["sessions"][0].clone()
}

#[tokio::test]
async fn a_daydream_records_six_phases_writes_an_insight_file_and_tells_the_admin_conversation() {
    let repo = sample_repository();
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "Daydream review of workspace"},
        "response": {"content": "## Insights\n- A small Rust crate with a Python helper.\n\n## Recommendations\n- Resolve the FIXME in util.py before it bites."}}]))
    .await;
    let repo_path = repo.path().to_path_buf();
    let app = TestApp::spawn(|s| {
        s.jobs.workers = 0;
        use_anthropic(s, &mock);
        s.workspaces.push(workspace(&repo_path));
        s.daydream.min_available_memory_mb = 0;
        s.daydream.keep_insights = 2;
        // The app's own temp sweep (first run at start-up) must not take the old file this test plants.
        s.resources.temp_max_age_hours = 24 * 30;
    })
    .await;
    let data_dir = app.data_dir.as_ref().unwrap().path().to_path_buf();
    // A stale child process valor "started" two days ago, a gone one, an old temp file, old insight files.
    let mut sleeper = tokio::process::Command::new("sleep").arg("300").spawn().unwrap();
    let store = app.store().await;
    let two_days_ago = wall_clock_ms() - 2 * 86_400_000;
    // Owner unknown (a row from before migration 0009): stopped once older than the limit.
    let legacy = |pid: u32, command: &str| ChildProcess {
        pid: i64::from(pid),
        command: command.into(),
        started_at_ms: two_days_ago,
        start_ticks: None,
        owner_pid: None,
        owner_start_ticks: None,
    };
    store.register_child_process(&legacy(sleeper.id().unwrap(), "sleep 300")).await.unwrap();
    store.register_child_process(&legacy(4_000_000, "long gone")).await.unwrap();
    // As old, but its owner (this test process) is alive: never touched, whatever its age.
    let mut owned = tokio::process::Command::new("sleep").arg("301").kill_on_drop(true).spawn().unwrap();
    let owned_pid = i64::from(owned.id().unwrap());
    let owned_row = valor::workspace::orphans::child_record(owned_pid, "sleep 301".into(), two_days_ago);
    assert!(owned_row.owner_pid.is_some() && owned_row.start_ticks.is_some(), "{owned_row:?}");
    store.register_child_process(&owned_row).await.unwrap();
    std::fs::create_dir_all(data_dir.join("tmp")).unwrap();
    let old_temp = data_dir.join("tmp/handoff-old.txt");
    std::fs::write(&old_temp, "old").unwrap();
    let file = std::fs::File::options().write(true).open(&old_temp).unwrap();
    file.set_modified(std::time::SystemTime::now() - Duration::from_secs(3 * 86_400)).unwrap();
    let insights = data_dir.join("insights/demo");
    std::fs::create_dir_all(&insights).unwrap();
    for name in ["20200101T000000Z.md", "20200102T000000Z.md"] {
        std::fs::write(insights.join(name), "old insight").unwrap();
    }

    let session = run_daydream_job(&app, "manual").await;
    assert_eq!(session["outcome"], "completed", "{session:#}");
    let phases: Vec<&str> = session["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(phases, ["readiness", "cleanup", "context", "analysis", "output", "record"]);
    let detail = |name: &str| {
        session["phases"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(
        detail("cleanup").starts_with("1 stale child process(es) stopped, 1 gone one(s) forgotten, 1 old"),
        "{}",
        detail("cleanup")
    );
    assert!(detail("context").contains("demo (3 commits)"), "{}", detail("context"));
    assert!(detail("analysis").contains("demo: model"), "{}", detail("analysis"));

    // The stale child was stopped and forgotten; the old temp file is gone.
    let exit = tokio::time::timeout(Duration::from_secs(10), sleeper.wait()).await.unwrap().unwrap();
    assert!(!exit.success());
    assert!(owned.try_wait().unwrap().is_none(), "a live owner's child was stopped");
    let left: Vec<i64> = store.child_processes().await.unwrap().iter().map(|child| child.pid).collect();
    assert_eq!(left, [owned_pid], "only the live owner's row stays");
    assert!(!old_temp.exists());

    // The insight file holds the model's analysis and the facts; only the newest two are kept.
    let files = session["insight_files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    let written = std::fs::read_to_string(files[0].as_str().unwrap()).unwrap();
    assert!(written.contains("Resolve the FIXME in util.py"), "{written}");
    assert!(written.contains("3 commit(s) by Ada") && written.contains("TODO: 2, FIXME: 1"), "{written}");
    assert!(
        written.contains("Rust (") && written.contains("Cargo (Rust)") && written.contains("1 test file(s) in tests"),
        "{written}"
    );
    assert_eq!(std::fs::read_dir(&insights).unwrap().count(), 2);
    assert!(!insights.join("20200101T000000Z.md").exists());

    // The model was asked once; the summary is a system message in the "daydream" conversation.
    let prompts = mock.requests_to("/v1/messages").await;
    assert_eq!(prompts.len(), 1, "{prompts:#?}");
    let conversation = store.find_conversation("daydream").await.unwrap().expect("no daydream conversation");
    let messages = app.get_json(&format!("/api/conversations/{}/messages", conversation.id)).await;
    let texts: Vec<&str> =
        messages["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("Daydream") && texts[0].contains("Resolve the FIXME"), "{}", texts[0]);
    assert_eq!(session["summary"].as_str().unwrap(), texts[0]);

    let openapi = app.get_json("/openapi.json").await;
    assert!(openapi["paths"]["/api/daydream/sessions"].is_object());
}

#[tokio::test]
async fn without_a_model_the_daydream_records_a_deterministic_analysis() {
    let repo = sample_repository();
    let repo_path = repo.path().to_path_buf();
    let app = TestApp::spawn(|s| {
        s.jobs.workers = 0;
        s.workspaces.push(workspace(&repo_path));
        s.daydream.min_available_memory_mb = 0;
    })
    .await;
    let session = run_daydream_job(&app, "manual").await;
    assert_eq!(session["outcome"], "completed", "{session:#}");
    assert!(session["phases"][3]["detail"].as_str().unwrap().contains("no model configured; deterministic"));
    let written = std::fs::read_to_string(session["insight_files"][0].as_str().unwrap()).unwrap();
    assert!(written.contains("Triage the 3 TODO/FIXME marker(s)"), "{written}");
}

#[tokio::test]
async fn a_busy_queue_skips_the_daydream_with_a_recorded_reason() {
    let app = TestApp::spawn(|s| {
        s.jobs.workers = 0;
        s.daydream.max_queued_jobs = 2;
        s.daydream.min_available_memory_mb = 0;
    })
    .await;
    let store = app.store().await;
    let later = wall_clock_ms() + 3_600_000;
    for _ in 0..3 {
        store.enqueue_job(job("echo", json!({}), 0, Some(later)), wall_clock_ms()).await.unwrap();
    }
    let session = run_daydream_job(&app, "manual").await;
    assert_eq!(session["outcome"], "skipped");
    assert!(
        session["reason"].as_str().unwrap().contains("the queue is busy: 3 jobs queued (threshold 2)"),
        "{session}"
    );
    assert_eq!(session["phases"].as_array().unwrap().len(), 1);
    assert_eq!(session["phases"][0]["status"], "skipped");
    assert!(session["insight_files"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_scheduled_daydream_inside_office_hours_is_skipped_but_a_manual_one_runs() {
    // Office hours are read in the configured zone: Kolkata is UTC+05:30 all year,
    // so a window around its local time is 5.5 hours away from UTC's.
    let now_minute = (wall_clock_ms() / 60_000 + 330).rem_euclid(1440);
    let window = |minute: i64| format!("{:02}:{:02}", minute.rem_euclid(1440) / 60, minute.rem_euclid(1440) % 60);
    let office_hours = format!("{}-{}", window(now_minute - 60), window(now_minute + 60));
    let app = TestApp::spawn(|s| {
        s.jobs.workers = 0;
        s.daydream.office_hours = Some(office_hours.clone());
        s.daydream.timezone = Some("Asia/Kolkata".into());
        s.daydream.min_available_memory_mb = 0;
    })
    .await;
    let session = run_daydream_job(&app, "schedule").await;
    assert_eq!(session["outcome"], "skipped");
    assert_eq!(session["reason"].as_str().unwrap(), format!("inside office hours ({office_hours})"));
    let session = run_daydream_job(&app, "manual").await;
    assert_eq!(session["outcome"], "completed", "{session:#}");
    let sessions = app.get_json("/api/daydream/sessions").await;
    assert_eq!(sessions["sessions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_daydream_schedule_enqueues_a_scheduled_daydream_job_every_six_hours() {
    use std::sync::Arc;
    use valor::jobs::{Daydream, ManualClock, Scheduler};
    let dir = tempfile::tempdir().unwrap();
    let store = valor::storage::Store::open(&dir.path().join("valor.db")).await.unwrap();
    let spec = Daydream::schedule_spec(&valor::config::DaydreamSettings::default()).unwrap();
    assert!(
        Daydream::schedule_spec(&valor::config::DaydreamSettings { enabled: false, ..Default::default() }).is_none()
    );
    let start = 1_795_000_000_000 - 1_795_000_000_000 % 21_600_000 + 60_000; // one minute after a 6-hour slot
    let clock = Arc::new(ManualClock::starting_at(start));
    let scheduler = Scheduler::new(store.clone(), clock.clone(), vec![spec], 1);
    assert!(scheduler.try_run_due().await.unwrap().is_empty(), "the first slot is the next one");
    clock.advance(Duration::from_secs(6 * 3600));
    let created = scheduler.try_run_due().await.unwrap();
    assert_eq!(created.len(), 1);
    let job = store.get_job(created[0]).await.unwrap();
    assert_eq!((job.kind.as_str(), &job.payload), ("daydream", &json!({"trigger": "schedule"})));
    assert!(scheduler.try_run_due().await.unwrap().is_empty(), "one job per slot");
}

#[tokio::test]
async fn valor_daydream_run_runs_a_session_now_and_prints_its_phases() {
    let repo = sample_repository();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[daydream]\nmin_available_memory_mb = 0\n\n[[workspace]]\nname = \"demo\"\npath = {:?}\n",
        repo.path().display().to_string()
    );
    std::fs::write(dir.path().join("valor.toml"), config).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_valor"))
        .args(["daydream", "run"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.starts_with("daydream session 1: completed"), "{stdout}");
    for phase in ["readiness", "cleanup", "context", "analysis", "output", "record"] {
        assert!(stdout.contains(&format!("  {phase} ")), "{phase} missing: {stdout}");
    }
    assert!(stdout.contains("insight file: ") && stdout.contains("insights/demo/"), "{stdout}");
}
