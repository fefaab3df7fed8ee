//! No Claude Code / Gemini CLI process outlives a valor killed hard: the
//! child-process sweep (`workspace::orphans`) through the real binary —
//! `valor serve` runs a delegated run whose CLI sleeps, is SIGKILLed (the CLI
//! keeps running), and the next `valor serve` stops the orphan group before
//! the job runs again — and against the store with real processes: a live
//! owner's children are never touched, a reused pid is never signalled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/claude.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Aimock;
use serde_json::json;
use support::processes_with;
use valor::storage::{ChildProcess, NewConversation, NewJob, Store, wall_clock_ms};
use valor::workspace::orphans::{ProcessIdentity, child_record, sweep_children};

const BIN: &str = env!("CARGO_BIN_EXE_valor");

/// Start `valor serve` in `dir` (its `valor.toml`, its `data/`); returns once it listens.
async fn serve(dir: &Path, mock: &Aimock) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(BIN);
    command
        .arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("VALOR_HTTP_ADDR", "127.0.0.1:0")
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("ANTHROPIC_BASE_URL", &mock.url)
        .env("VALOR__INTENT__USE_MODEL", "false")
        .env("VALOR__JOBS__WORKERS", "1")
        .env("VALOR__JOBS__POLL_INTERVAL_MS", "50")
        .env("VALOR__JOBS__LEASE_SECS", "2")
        .kill_on_drop(true);
    common::spawn_listening(command).await
}

fn pids(found: &[String]) -> Vec<i64> {
    found.iter().map(|line| line.split(':').next().unwrap().parse().unwrap()).collect()
}

async fn wait_until(what: &str, seconds: u64, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cli_left_running_by_a_killed_valor_is_stopped_at_the_next_start_and_the_job_runs_again() {
    let mock = Aimock::start().await;
    let dir = tempfile::tempdir().unwrap();
    let workspace = dir.path().join("shop");
    std::fs::create_dir_all(&workspace).unwrap();
    support::run_git(&workspace, &["init", "-q", "-b", "main"]);
    std::fs::write(workspace.join("README.md"), "# Shop\n").unwrap();
    support::run_git(&workspace, &["add", "."]);
    support::run_git(&workspace, &["commit", "-q", "-m", "First"]);
    // A stand-in for the Claude Code CLI: the first run sleeps (a long, unique `sleep` in its group);
    // any later run answers at once with a stream-json result.
    let nap = 100_000 + u64::from(std::process::id()) % 100_000;
    let script = dir.path().join("fake-claude");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e \"$0.ran\" ]; then\n  \
             echo '{{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"s-orphan\"}}'\n  \
             echo '{{\"type\":\"result\",\"is_error\":false,\"result\":\"second run done\",\"session_id\":\"s-orphan\",\"num_turns\":1,\"total_cost_usd\":0}}'\n  \
             exit 0\nfi\ntouch \"$0.ran\"\necho partial > wip.txt\nsleep {nap}\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("valor.toml"),
        format!(
            "[claude]\nbin = {:?}\n\n[[workspace]]\nname = \"shop\"\npath = {:?}\n",
            script.display().to_string(),
            workspace.display().to_string()
        ),
    )
    .unwrap();
    let marker = format!("orphan-marker-{}", std::process::id());
    let store = Store::open(&dir.path().join("data/valor.db")).await.unwrap();
    let conversation = store
        .create_conversation(NewConversation { title: "orphans".into(), channel: "web".into(), chat_id: None })
        .await
        .unwrap()
        .id;
    let job = NewJob {
        kind: "claude_code".into(),
        payload: json!({"task": format!("Nap {marker}"), "workspace": "shop"}),
        priority: 0,
        run_at_ms: None,
        max_attempts: 3,
        conversation_id: Some(conversation),
        idempotency_key: None,
    };
    let id = store.enqueue_job(job, wall_clock_ms()).await.unwrap().job.id;

    let mut first = serve(dir.path(), &mock).await;
    let first_pid = i64::from(first.id().unwrap());
    let sleeper = format!("sleep {nap}");
    wait_until("the CLI runs and is recorded", 30, async || {
        !processes_with(&marker).is_empty()
            && !processes_with(&sleeper).is_empty()
            && !store.child_processes().await.unwrap().is_empty()
    })
    .await;
    let recorded = store.child_processes().await.unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].owner_pid, Some(first_pid), "{recorded:?}");
    assert!(recorded[0].owner_start_ticks.is_some() && recorded[0].start_ticks.is_some(), "{recorded:?}");
    let cli = pids(&processes_with(&marker));
    let naps = pids(&processes_with(&sleeper));
    assert!(cli.contains(&recorded[0].pid), "the recorded pid is not the CLI: {recorded:?} {cli:?}");

    first.start_kill().unwrap(); // SIGKILL: valor gets no chance to stop its children
    first.wait().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(pids(&processes_with(&marker)), cli, "the CLI should outlive a SIGKILLed valor (nothing tested)");
    assert_eq!(pids(&processes_with(&sleeper)), naps, "the CLI's command should outlive valor too");

    let mut second = serve(dir.path(), &mock).await;
    // Stopped during start-up (before the workers claim the job): the whole group, the CLI and its `sleep`.
    wait_until("the orphan group is gone", 10, async || {
        processes_with(&sleeper).is_empty() && cli.iter().all(|pid| ProcessIdentity::of(*pid).is_none())
    })
    .await;
    let audit = store.list_audit(Some("process"), 10).await.unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!((audit[0].actor.as_str(), audit[0].decision.as_str()), ("startup", "stopped"), "{audit:?}");
    assert_eq!(audit[0].detail["pid"], recorded[0].pid, "{audit:?}");
    // The job's lease ran out with the old valor: it runs again (the CLI's second run answers) and succeeds.
    wait_until("the job runs again and succeeds", 60, async || {
        store.get_job(id).await.unwrap().status.as_str() == "succeeded"
    })
    .await;
    let job = store.get_job(id).await.unwrap();
    assert_eq!(job.attempts, 2, "{job:?}");
    assert!(job.result.as_ref().unwrap().to_string().contains("second run done"), "{job:?}");
    assert_eq!(store.child_processes().await.unwrap(), Vec::new(), "the finished run's pid was not forgotten");
    // The killed attempt's work was committed on the run's branch before the re-run went on there.
    let branch = job.result.as_ref().unwrap()["branch"].as_str().unwrap().to_owned();
    let log = support::git_out(&workspace, &["log", "--format=%s", &branch]);
    assert_eq!(log, format!("Work of an interrupted attempt of job #{id}\nFirst"), "{log}");
    assert_eq!(support::git_out(&workspace, &["show", "--name-only", "--format=", &branch]), "wip.txt");
    assert!(!workspace.join("wip.txt").exists(), "the run wrote into the user's checkout");
    second.start_kill().unwrap();
    second.wait().await.unwrap();
}

/// A row for `pid` as if `owner` had started it.
fn row(pid: u32, command: &str, owner: Option<ProcessIdentity>) -> ChildProcess {
    ChildProcess {
        owner_pid: owner.map(|owner| owner.pid),
        owner_start_ticks: owner.map(|owner| owner.start_ticks),
        ..child_record(i64::from(pid), command.into(), wall_clock_ms())
    }
}

/// `sh -c` in a process group of its own (as valor starts a CLI), with a child of its own in the group.
fn group_leader(script: &str) -> std::process::Child {
    std::process::Command::new("sh").arg("-c").arg(script).process_group(0).spawn().unwrap()
}

fn exited_within(child: &mut std::process::Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[tokio::test]
async fn the_sweep_stops_orphans_only_and_never_a_live_owners_child_or_a_reused_pid() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("valor.db")).await.unwrap();
    let me = ProcessIdentity::current().unwrap();
    // A valor that is gone: a process that ran and was reaped.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let gone_owner = ProcessIdentity { pid: i64::from(gone.id()), start_ticks: me.start_ticks + 1 };
    gone.wait().unwrap();

    let mut live_owners = group_leader("sleep 311.5; true");
    let mut orphan = group_leader("sleep 312.5; true");
    let mut reused_owner = group_leader("sleep 313.5; true");
    let mut reused_child = group_leader("sleep 314.5; true");
    tokio::time::sleep(Duration::from_millis(200)).await; // each `sh` has started its `sleep`
    store.register_child_process(&row(live_owners.id(), "live owner's", Some(me))).await.unwrap();
    store.register_child_process(&row(orphan.id(), "orphan", Some(gone_owner))).await.unwrap();
    // Its owner's pid runs (this process) but started at another time: a reused pid, so the owner is gone.
    let impostor = ProcessIdentity { pid: me.pid, start_ticks: me.start_ticks + 7 };
    store.register_child_process(&row(reused_owner.id(), "owner pid reused", Some(impostor))).await.unwrap();
    // The child's own pid runs but started at another time: not the process valor started; never signalled.
    let mut stranger = row(reused_child.id(), "child pid reused", Some(gone_owner));
    stranger.start_ticks = stranger.start_ticks.map(|ticks| ticks + 7);
    store.register_child_process(&stranger).await.unwrap();
    store.register_child_process(&row(4_000_001, "long gone", Some(gone_owner))).await.unwrap();
    // Owner unknown (a row from before migration 0009): the start-up sweep leaves it to the daydream.
    let mut legacy_sleeper = group_leader("sleep 315.5; true");
    let legacy = ChildProcess { start_ticks: None, ..row(legacy_sleeper.id(), "legacy", None) };
    store.register_child_process(&legacy).await.unwrap();

    let report = sweep_children(&store, "startup", None, Duration::from_secs(2)).await.unwrap();
    let stopped: Vec<&str> = report.stopped.iter().map(|child| child.command.as_str()).collect();
    assert_eq!(stopped, ["orphan", "owner pid reused"], "{report:?}");
    assert_eq!((report.forgotten, report.kept), (2, 2), "{report:?}");
    assert!(exited_within(&mut orphan, Duration::from_secs(5)), "the orphan group leader still runs");
    assert!(exited_within(&mut reused_owner, Duration::from_secs(5)), "the reused-owner group still runs");
    assert!(
        processes_with("sleep 312.5").is_empty() && processes_with("sleep 313.5").is_empty(),
        "a group member survived"
    );
    for (child, name) in [
        (&mut live_owners, "live owner's child"),
        (&mut reused_child, "reused child pid"),
        (&mut legacy_sleeper, "legacy row"),
    ] {
        assert!(child.try_wait().unwrap().is_none(), "the {name} was signalled");
    }
    assert_eq!(processes_with("sleep 311.5").len(), 2, "the live owner's group (sh and its sleep) was touched");
    let left: Vec<String> = store.child_processes().await.unwrap().into_iter().map(|child| child.command).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"live owner's".to_owned()) && left.contains(&"legacy".to_owned()), "{left:?}");
    let audit = store.list_audit(Some("process"), 10).await.unwrap();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(audit.iter().all(|event| event.decision == "stopped" && event.actor == "startup"), "{audit:?}");

    // A second sweep (another start) changes nothing.
    let again = sweep_children(&store, "startup", None, Duration::from_secs(2)).await.unwrap();
    assert_eq!((again.stopped.len(), again.forgotten, again.kept), (0, 0, 2), "{again:?}");
    for mut child in [live_owners, reused_child, legacy_sleeper] {
        let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
        let _ = child.wait();
    }
}
