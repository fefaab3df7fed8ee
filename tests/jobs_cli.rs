//! Jobs through the real binary: `valor jobs list|show|retry|cancel`, SIGTERM
//! handing a running job back, and a crash test — `valor serve` working through 200 queued agent tasks is
//! SIGKILLed mid-run and restarted; every job ends once and its outcome
//! reaches the conversation exactly once — and two `valor serve` processes on
//! one database file, which never run one job twice.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::Aimock;
use serde_json::json;
use valor::storage::{MessageRole, NewConversation, NewJob, Store, wall_clock_ms};

const BIN: &str = env!("CARGO_BIN_EXE_valor");

fn valor(dir: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command.current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("HOME", dir);
    command.kill_on_drop(true);
    command
}

fn new_job(kind: &str, payload: serde_json::Value, conversation: Option<&str>) -> NewJob {
    NewJob {
        kind: kind.into(),
        payload,
        priority: 0,
        run_at_ms: None,
        max_attempts: 3,
        conversation_id: conversation.map(str::to_owned),
        idempotency_key: None,
    }
}

async fn run_cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = valor(dir).arg("jobs").args(args).output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_jobs_command_lists_shows_cancels_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data/valor.db")).await.unwrap();
    let id = store.enqueue_job(new_job("echo", json!({"n": 7}), None), wall_clock_ms()).await.unwrap().job.id;
    store.close().await;

    let (ok, out, _) = run_cli(dir.path(), &["list"]).await;
    assert!(ok && out.contains(&format!("#{id} echo — queued")), "{out}");
    let (ok, out, _) = run_cli(dir.path(), &["show", &id.to_string()]).await;
    assert!(ok && out.contains(r#"payload:      {"n":7}"#), "{out}");
    let (ok, out, _) = run_cli(dir.path(), &["cancel", &id.to_string()]).await;
    assert!(ok && out.starts_with("cancelled:"), "{out}");
    let (ok, _, err) = run_cli(dir.path(), &["cancel", &id.to_string()]).await;
    assert!(!ok && err.contains("already cancelled"), "{err}");
    let (ok, out, _) = run_cli(dir.path(), &["retry", &id.to_string()]).await;
    assert!(ok && out.starts_with("queued again:"), "{out}");
    let (ok, out, _) = run_cli(dir.path(), &["list", "--status", "queued"]).await;
    assert!(ok && out.contains(&format!("#{id} echo — queued")), "{out}");
    let (ok, _, err) = run_cli(dir.path(), &["show", "999"]).await;
    assert!(!ok && err.contains("job 999 not found"), "{err}");
}

/// Start `valor serve` against aimock; returns once it listens.
async fn serve(dir: &Path, mock: &Aimock) -> tokio::process::Child {
    let mut command = valor(dir);
    command
        .arg("serve")
        .env("VALOR_HTTP_ADDR", "127.0.0.1:0")
        .env("ANTHROPIC_API_KEY", "sk-ant-test")
        .env("ANTHROPIC_BASE_URL", &mock.url)
        .env("VALOR__INTENT__USE_MODEL", "false")
        .env("VALOR__JOBS__WORKERS", "3")
        .env("VALOR__JOBS__POLL_INTERVAL_MS", "20")
        .env("VALOR__JOBS__LEASE_SECS", "2");
    common::spawn_listening(command).await
}

/// A data dir whose database holds `count` agent tasks "`marker` number N." for one conversation.
async fn queued_agent_tasks(marker: &str, count: i64) -> (tempfile::TempDir, Store, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data/valor.db")).await.unwrap();
    let conversation = store
        .create_conversation(NewConversation { title: marker.into(), channel: "web".into(), chat_id: None })
        .await
        .unwrap()
        .id;
    for n in 0..count {
        let payload = json!({"task": format!("{marker} number {n}.")});
        store.enqueue_job(new_job("agent_task", payload, Some(&conversation)), wall_clock_ms()).await.unwrap();
    }
    (dir, store, conversation)
}

async fn finished_count(store: &Store) -> i64 {
    let counts = store.count_jobs_by_status().await.unwrap();
    counts["succeeded"] + counts["failed"] + counts["cancelled"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_run_resumes_and_every_job_ends_and_is_announced_exactly_once() {
    const JOBS: i64 = 200;
    let mock = Aimock::start_with(&["-l", "5"]).await;
    mock.add_fixtures(json!([{"match": {"userMessage": "crash-task"}, "response": {"content": "task done"}}])).await;
    let (dir, store, conversation) = queued_agent_tasks("crash-task", JOBS).await;

    let mut first = serve(dir.path(), &mock).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while finished_count(&store).await < 20 {
        assert!(Instant::now() < deadline, "the first server made no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.start_kill().unwrap(); // SIGKILL: no graceful hand-back
    first.wait().await.unwrap();
    let at_kill = finished_count(&store).await;
    eprintln!("killed with {at_kill} of {JOBS} jobs finished");
    assert!(at_kill < JOBS, "every job finished before the kill; the test proved nothing");

    let mut second = serve(dir.path(), &mock).await;
    loop {
        // Count first, then look for pending notices: the other order misses a job finishing in between.
        if finished_count(&store).await == JOBS && store.jobs_awaiting_final_notice(1).await.unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "jobs did not all finish after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.start_kill().unwrap();
    second.wait().await.unwrap();

    let counts = store.count_jobs_by_status().await.unwrap();
    assert_eq!(counts["succeeded"], JOBS, "{counts:?}");
    let messages = store.recent_messages(&conversation, 1000).await.unwrap();
    let mut per_job: BTreeMap<i64, usize> = BTreeMap::new();
    let mut statuses: BTreeMap<i64, usize> = BTreeMap::new();
    let mut reruns: BTreeMap<i64, usize> = BTreeMap::new();
    for message in messages.iter().filter(|m| m.role == MessageRole::System) {
        let id_after = |rest: &str| -> i64 { rest.split([' ', '*']).next().unwrap().parse().unwrap() };
        if let Some((_, rest)) = message.text.split_once("**Job #") {
            // A job's status message: one per job, ended; a re-run says so in it.
            let id = id_after(rest);
            *statuses.entry(id).or_default() += 1;
            assert!(rest.contains(" · done · "), "a status message did not end: {}", message.text);
            if rest.contains("trying again (attempt 2 of ") {
                *reruns.entry(id).or_default() += 1;
            }
        } else {
            let rest = message.text.strip_prefix("Job #").unwrap();
            *per_job.entry(id_after(rest)).or_default() += 1;
        }
    }
    assert_eq!(statuses.len() as i64, JOBS, "a job showed no status");
    assert!(statuses.values().all(|n| *n == 1), "a job's status was posted twice: {statuses:?}");
    // Jobs the kill interrupted ran again, and the chat heard that (in their status).
    assert!(!reruns.is_empty(), "no interrupted job was re-run");
    assert_eq!(per_job.len() as i64, JOBS, "some job's outcome was never announced");
    assert!(per_job.values().all(|n| *n == 1), "an outcome was announced twice: {per_job:?}");
    for id in per_job.keys() {
        let keys: Vec<String> = store.job_notices(*id).await.unwrap().into_iter().map(|(key, _)| key).collect();
        assert!(keys.contains(&"final:0".to_owned()), "{keys:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_database_run_every_job_exactly_once() {
    const JOBS: i64 = 120;
    let mock = Aimock::start_with(&["-l", "5"]).await;
    mock.add_fixtures(json!([{"match": {"userMessage": "pair-task"}, "response": {"content": "pair done"}}])).await;
    let (dir, store, conversation) = queued_agent_tasks("pair-task", JOBS).await;
    let (mut first, mut second) = (serve(dir.path(), &mock).await, serve(dir.path(), &mock).await);
    let deadline = Instant::now() + Duration::from_secs(120);
    while finished_count(&store).await < JOBS || !store.jobs_awaiting_final_notice(1).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the two servers did not finish the queue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for server in [&mut first, &mut second] {
        server.start_kill().unwrap();
        server.wait().await.unwrap();
    }
    let jobs = store.list_jobs(&valor::storage::JobFilter { limit: 500, ..Default::default() }).await.unwrap();
    assert_eq!(jobs.len() as i64, JOBS);
    assert!(jobs.iter().all(|job| job.status.as_str() == "succeeded" && job.attempts == 1), "a job was claimed twice");
    // Each task reached the model once: no job ran in both processes.
    let requests: Vec<String> = mock.requests_to("/v1/messages").await.iter().map(|r| r.to_string()).collect();
    for n in 0..JOBS {
        let runs = requests.iter().filter(|r| r.contains(&format!("pair-task number {n}."))).count();
        assert_eq!(runs, 1, "task {n} ran {runs} times");
    }
    // Both processes took part (final notices are claimed by the delivering worker, `<pid>-w<n>`).
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("data/valor.db").display())).await.unwrap();
    let processes: i64 = sqlx::query_scalar(
        "SELECT COUNT(DISTINCT substr(claimed_by, 1, instr(claimed_by, '-'))) FROM job_notices \
         WHERE notice_key = 'final:0'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(processes, 2, "one server did all the work; the test proved nothing");
    let messages = store.recent_messages(&conversation, 1000).await.unwrap();
    let finals = messages.iter().filter(|m| m.role == MessageRole::System && m.text.contains("finished")).count();
    assert_eq!(finals as i64, JOBS, "each outcome is announced once");
}

#[tokio::test]
async fn sigterm_hands_a_running_job_back_and_the_next_start_finishes_it() {
    // Slow streaming keeps the background turn running while SIGTERM arrives.
    let mock = Aimock::start_with(&["-l", "400"]).await;
    let long = "a slow answer that streams in many separate chunks of text, one by one, taking a while";
    mock.add_fixtures(json!([{"match": {"userMessage": "slow-task"}, "response": {"content": long}}])).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data/valor.db")).await.unwrap();
    let conversation = store
        .create_conversation(NewConversation { title: "term".into(), channel: "web".into(), chat_id: None })
        .await
        .unwrap()
        .id;
    let job = new_job("agent_task", json!({"task": "slow-task please"}), Some(&conversation));
    let id = store.enqueue_job(job, wall_clock_ms()).await.unwrap().job.id;

    let mut first = serve(dir.path(), &mock).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.get_job(id).await.unwrap().progress_percent != Some(0) {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = first.id().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(15), first.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let handed_back = store.get_job(id).await.unwrap();
    assert_eq!(
        (handed_back.status.as_str(), handed_back.attempts, handed_back.worker_id),
        ("queued", 0, None),
        "SIGTERM must re-queue the running job, not fail it"
    );

    let mut second = serve(dir.path(), &mock).await;
    loop {
        let job = store.get_job(id).await.unwrap();
        if job.status.is_finished() && store.jobs_awaiting_final_notice(1).await.unwrap().is_empty() {
            assert_eq!((job.status.as_str(), job.attempts), ("succeeded", 1));
            break;
        }
        assert!(Instant::now() < deadline + Duration::from_secs(60), "the job did not finish after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.start_kill().unwrap();
    second.wait().await.unwrap();
    let messages = store.recent_messages(&conversation, 10).await.unwrap();
    let texts: Vec<&str> = messages.iter().filter(|m| m.role == MessageRole::System).map(|m| m.text.as_str()).collect();
    assert_eq!(texts.len(), 2, "one start notice and one result: {texts:?}");
    assert!(texts[1].contains("a slow answer"), "{texts:?}");
}
